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
when the process ends (`kill -9`, a power cut: nothing stale). A lock file this user may only
read (root's, from a run by hand; a card remounted read-only) is locked read-only, which flock
allows. The holder's pid comes from /proc/locks, and where that cannot tell (btrfs, whose device
numbers differ from stat()'s; a holder in another PID namespace) from the pid the holder wrote
into the file. A first version bound an abstract unix socket named after the path: any local
user could take that name, and it told dirs apart by their path.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import stat
import time
from pathlib import Path
from typing import NamedTuple

from edge_agent.core import config
from edge_agent.core.statefiles import LOCK_FILE, give_to_dir_owner, make_private_dir
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.service.notify import SystemdNotifier

log = logging.getLogger(__name__)

WAIT_POLL_S = 0.5
"""A service waiting for a hand-run daemon to end tries the lock this often (it takes over
within this long of the other's exit)."""


class AnotherDaemon(EdgeAgentError):
    """Another `edge-agent run` holds this state dir (`holder`: "another edge-agent (pid N)")."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


def claim(state_dir: Path, moved_by: str = "device.state_dir") -> int | None:
    """Claims `state_dir` for this process until it exits (keep the returned descriptor open);
    raises AnotherDaemon naming the holder when it is taken. A lock file this user may only read
    (root's, from a run by hand; a read-only state dir) is locked read-only: flock needs no
    write access. None when no claim can be made (no lock file and no way to make one, a file
    system without locks): the daemon runs without it, as before, with a warning. `moved_by`: what
    the refusal tells the user to change (the demo takes `--state-dir`, not the config's key)."""
    path = state_dir / LOCK_FILE
    fd = _open_lock(state_dir, path)
    if fd is None:
        return None
    on_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # each kind of daemon looks for the other: one that had to lock the dir (the lock file
        # unusable then), or one that locks a lock file this one cannot open (root's, 0600)
        holder = _file_holder(path) if on_dir else _dir_holder(state_dir)
    except BlockingIOError:
        holder = _from_locks(fd)[0] or _pid_in(fd) or "a process"
        if on_dir and _foreign(holder, state_dir):
            os.close(fd)
            _unclaimed(state_dir, OSError(f"{holder}, not an edge-agent's user, locks the state dir: make it 0700"))
            return None
    except OSError as exc:  # a file system without locks
        os.close(fd)
        _unclaimed(state_dir, exc)
        return None
    if holder is not None:
        os.close(fd)
        who = f"another edge-agent ({holder})" if holder != "a process" else "another edge-agent"
        raise AnotherDaemon(f"{who} runs with the state dir {state_dir}: stop it first (sudo systemctl stop edge-agent), or give this one another {moved_by}", who) from None
    with contextlib.suppress(OSError):  # for where /proc/locks cannot tell the pid (btrfs, another PID namespace)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class ServiceClaim(NamedTuple):
    """What `claim_as_service` got: the lock's fd (None where none could be taken) and whether it
    waited for another daemon first (then the config on disk may have changed meanwhile)."""

    fd: int | None
    waited: bool


def claim_as_service(state_dir: Path, notifier: SystemdNotifier, poll_s: float = WAIT_POLL_S) -> ServiceClaim:
    """`claim`, for a daemon systemd started: where another edge-agent holds the state dir (an
    operator's run by hand), wait for it to end instead of exiting. Refused, the service
    restarted every RestartSec into its start limit and stayed down after the hand run ended:
    no kiosk until someone came back to start it. While it waits it tells systemd it is up
    (READY=1, so `systemctl start` does not hang on a hand run that lasts an hour) with a STATUS
    line naming the holder, keeps the watchdog fed and ignores SIGHUP (a reload would end it);
    SIGTERM ends it as usual. SIGHUP stays ignored once it takes over, until the kiosk's loop
    handles it: systemd, told READY=1, sends a reload at any time, and the default action killed
    the service while it set up (the caller reads the config afresh, which is what a reload
    asks). By hand (no NOTIFY_SOCKET) the refusal stands: one line, exit 1."""
    try:
        return ServiceClaim(claim(state_dir), waited=False)
    except AnotherDaemon as exc:
        if not notifier.enabled:
            raise
        holder = exc.holder
    log.warning("%s runs with the state dir %s: waiting for it to stop, then this service takes over", holder, state_dir)
    hangup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    took_over = False
    try:
        notifier.send("READY=1", f"STATUS=waiting for {holder} to stop: it runs with the state dir {state_dir}", must_arrive=True)
        step_s = min(poll_s, notifier.watchdog_s / 3) if notifier.watchdog_s else poll_s
        while True:
            notifier.watchdog(time.monotonic())
            time.sleep(step_s)
            try:
                fd = claim(state_dir)
            except AnotherDaemon as still:
                if still.holder != holder:
                    holder = still.holder
                    notifier.send(f"STATUS=waiting for {holder} to stop: it runs with the state dir {state_dir}")
                continue
            log.info("the state dir %s is free: starting", state_dir)
            notifier.send("WATCHDOG=1", "STATUS=starting")  # the kiosk's set-up gets a whole WatchdogSec
            took_over = True
            return ServiceClaim(fd, waited=True)
    finally:
        if not took_over:  # SIGTERM while waiting: as it was
            signal.signal(signal.SIGHUP, hangup)


def settings_after_wait(config_path: str | Path | None, held: config.Settings) -> config.Settings:
    """The config as it is now on disk, for a service that waited for a run by hand: the operator
    runs by hand to try edits, and the service took over with the config from before them (and
    the next run by hand was refused). The config read at start stays where the new one is
    invalid or moves the state dir (this service holds the old one's lock), with one line why."""
    try:
        fresh = config.load(config_path)
        config.validate_for_run(fresh)
    except ConfigError as exc:
        log.error("%s: the config read at start is used", exc.every())
        return held
    if fresh.device.state_dir != held.device.state_dir:
        log.error("device.state_dir changed to %s while this service waited: it runs with %s, which it holds (restart it to move)", fresh.device.state_dir, held.device.state_dir)
        return held
    return fresh


def _open_lock(state_dir: Path, path: Path) -> int | None:
    """The lock file, made (0600, the state dir's user's) or opened, never through a link; where
    there is none to use (a read-only state dir without one, a FIFO, a dir or a link at its
    name), the state dir itself (`_dir_lock`). None only when neither opens."""
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO put there does not hang the start
    try:
        make_private_dir(state_dir)
        made = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | flags, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        if not os.path.isfile(path):  # a read-only state dir with no lock file yet (or none to reach)
            return _dir_lock(state_dir, exc)
    else:
        give_to_dir_owner(made, state_dir)  # a `sudo edge-agent run` first must not lock the service out of it
        return made
    error: OSError | None = None
    for mode in (os.O_RDWR, os.O_RDONLY):
        try:
            fd = os.open(path, mode | flags)
        except OSError as exc:
            error = exc
            continue
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
        os.close(fd)
        error = OSError(f"{path} is not a regular file")
        break
    return _dir_lock(state_dir, error)


def _dir_lock(state_dir: Path, why: OSError | None) -> int | None:
    """The state dir itself, to lock where the lock file cannot be used: every daemon meets the
    same file (or lack of one) there, so all lock the dir, and one is refused as ever. The claim
    was dropped there instead, with a warning, and two daemons ran (a card read-only from the
    first boot, an overlayroot image; a FIFO at the lock's name). Only the dir's user and root
    can open a 0700 dir; no pid is written, /proc/locks names the holder."""
    try:
        return os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        _unclaimed(state_dir, why or exc)
        return None


def _dir_holder(state_dir: Path) -> str | None:
    """Who holds the state dir's own lock ("pid N", "a process" when it cannot be told), None when nobody
    does: a daemon started while the lock file could not be used locks the dir (`_dir_lock`), and
    one started after it became usable (the FIFO removed, the card remounted read-write) locked
    only the file, and both ran. A lock there by a user no edge-agent runs as (a state dir made
    0755 by hand) is no daemon's: warned about, not obeyed."""
    try:
        fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        holder = _holder_of(fd)
    finally:
        os.close(fd)
    if _foreign(holder, state_dir):
        log.warning("%s, not an edge-agent's user, locks the state dir %s: ignored (make the dir 0700)", holder, state_dir)
        return None
    return holder


def _file_holder(path: Path) -> str | None:
    """Who holds a flock on the lock file at `path` ("pid N"), as /proc/locks tells without
    opening it (this user may not: root's 0600 file); None when nobody does or it cannot tell."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    holder = _locks_on(st)[0] if stat.S_ISREG(st.st_mode) else None
    if _foreign(holder, path.parent):  # a user who may write a dir others may open put it there
        log.warning("%s, not an edge-agent's user, locks %s: ignored (make the state dir 0700)", holder, path)
        return None
    return holder


def _foreign(holder: str | None, state_dir: Path) -> bool:
    """Whether the process `holder` ("pid N") runs as a user who could not run this state dir's
    daemon: neither root, nor this process's user, nor the dir's owner; only in a dir others
    may open (a 0700 one, only its owner and root can). False when unknown."""
    if not holder or not holder.startswith("pid "):
        return False
    try:
        uid = os.stat(f"/proc/{holder[4:]}").st_uid
        dir_st = os.stat(state_dir)
    except OSError:
        return False
    return dir_st.st_mode & 0o077 != 0 and uid not in (0, os.geteuid(), dir_st.st_uid)


def _unclaimed(state_dir: Path, why: OSError | None) -> None:
    """The daemon runs without a claim, and says so once at start."""
    log.warning("cannot tell whether another edge-agent runs with %s: %s", state_dir, (why.strerror if why is not None else None) or why)


def held_by(state_dir: Path) -> str | None:
    """Who runs a daemon with `state_dir` ("pid N"), None when none does or it cannot be told
    (the doctor asks). Creates nothing, and takes no lock where /proc/locks can tell (a probe
    could refuse a daemon starting that instant); where it cannot, a shared lock for an instant.
    Asks the lock file, or the state dir where the daemons lock that (`_dir_lock`)."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        fd = -1
    if fd >= 0 and not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        fd = -1
    if fd < 0:  # none to open, or one this user may not (root's 0600): /proc/locks may still tell
        return _file_holder(state_dir / LOCK_FILE) or _dir_holder(state_dir)
    try:
        holder = _holder_of(fd)
    finally:
        os.close(fd)
    return holder or _dir_holder(state_dir)  # or a daemon that had to lock the dir itself


def _holder_of(fd: int) -> str | None:
    """Who holds a flock on `fd`'s file ("pid N", "a process" when it cannot be told), None when
    nobody does: /proc/locks, or where it cannot tell, a shared lock for an instant (released
    when the caller closes `fd`), and then the pid the holder wrote into a lock file."""
    found, known = _from_locks(fd)
    if found is not None or known:
        return found
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _pid_in(fd) or "a process"
    except OSError:
        pass
    return None


def _from_locks(fd: int) -> tuple[str | None, bool]:
    """("pid N" of the process holding a flock on `fd`'s file, or None; whether /proc/locks names
    files on that file system at all), from one read of /proc/locks. It names them by the device
    number stat() gives, except on btrfs and for locks taken in another PID namespace: there a
    lock would not show, and its absence says nothing."""
    return _locks_on(os.fstat(fd))


def _locks_on(st: os.stat_result) -> tuple[str | None, bool]:
    """`_from_locks` for the file `st` describes."""
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = [line.split() for line in locks]
    except OSError:
        lines = []
    known = False
    for fields in lines:  # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"; waiters have "->"
        if len(fields) < 6 or not fields[5].startswith(dev):
            continue
        known = True
        if fields[1] == "FLOCK" and fields[5] == f"{dev}{st.st_ino}" and fields[4].isdigit():
            return f"pid {fields[4]}", True
    return None, known


def _pid_in(fd: int) -> str | None:
    """The pid the holder wrote into the lock file, as "pid N" (None: none readable)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return f"pid {text}" if text.isdigit() else None
