"""One daemon per state dir: a second `edge-agent run` on the same state dir is refused at start.

Two daemons on one kiosk fight over everything: the microphone (the second's open fails and is
retried for good), the broker (one MQTT client id: each connect throws the other off, and the
fleet sees availability flap), the session store (each stores its own conversations, and the
next press continues whichever wrote last) and the fleet's commands (carried out twice). An
operator's `sudo edge-agent run` beside the running service is how it happens.

The claim is an exclusive `flock` on `edge-agent.lock` in the state dir, held for the process's
life: it belongs to the directory itself (a bind mount or another path to it is the same dir, a
container's own volume at the same path is not), only the dir's user (0700) and root can open
it, so no other user can hold it to keep the service from starting, and the kernel drops it
when the process ends (`kill -9`, a power cut: nothing stale). The holder's pid is read from
/proc/locks, not from anything a file says. A first version bound an abstract unix socket named
after the path: any local user could take that name, and it told dirs apart by their path.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from edge_agent.core.statefiles import LOCK_FILE, give_to_dir_owner
from edge_agent.errors import EdgeAgentError

log = logging.getLogger(__name__)


class AnotherDaemon(EdgeAgentError):
    """Another `edge-agent run` holds this state dir."""


def claim(state_dir: Path) -> int | None:
    """Claims `state_dir` for this process until it exits (keep the returned descriptor open);
    raises AnotherDaemon naming the holder when it is taken. None when no claim can be made (a
    state dir that cannot be written: the store then runs from memory, and two daemons cannot
    spoil it): the daemon runs without it, as it did before, with a warning."""
    path = state_dir / LOCK_FILE
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.warning("cannot tell whether another edge-agent runs with %s: %s", state_dir, exc.strerror or exc)
        return None
    give_to_dir_owner(path, state_dir)  # a `sudo edge-agent run` first must not lock the service out of it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        who = f"another edge-agent ({holder})" if holder else "another edge-agent"
        raise AnotherDaemon(f"{who} runs with the state dir {state_dir}: stop it first (sudo systemctl stop edge-agent), or give this one another device.state_dir") from None
    except OSError as exc:  # a file system without locks
        os.close(fd)
        log.warning("cannot tell whether another edge-agent runs with %s: %s", state_dir, exc.strerror or exc)
        return None
    return fd


def held_by(state_dir: Path) -> str | None:
    """Who runs a daemon with `state_dir` ("pid N"), None when none does or it cannot be told
    (the doctor asks). Takes no lock (a probe could refuse a daemon starting that instant) and
    creates nothing."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _holder(fd)
    finally:
        os.close(fd)


def _holder(fd: int) -> str | None:
    """"pid N" of the process holding a flock on `fd`'s file, from /proc/locks (None: not found)."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:  # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"; waiters have "->"
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key and fields[4].isdigit():
                    return f"pid {fields[4]}"
    except OSError:
        pass
    return None
