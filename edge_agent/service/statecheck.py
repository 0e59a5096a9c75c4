"""What `edge-agent doctor` says about the state dir, without changing anything in it.

The doctor is often run as root (`sudo edge-agent doctor -c /etc/edge-agent/config.toml`) while
the service runs as its own user. A session database root created there would lock the service
out of it, so the check creates nothing: a missing state dir or database is reported as made on
the first run, and an existing database is opened read-only, in a way that leaves no `-wal` or
`-shm` file behind (`immutable=1` while no `-wal` file shows an open store, `mode=ro` while the
service holds it open and both files are there already).

Run as root, the state dir is judged, by the permission bits (root itself may write anywhere),
for the user the service runs as: `edge-agent` (the shipped unit's User=; EDGE_AGENT_SERVICE_USER
names another) where that user exists, else the dir's owner (a machine without the service:
StateDirectory= makes the service user the owner). Judged for the owner alone, a root-owned 0700
dir passed as "writable by root" and the service then had no store. Run as anyone else, it is
judged for the caller (os.access). Either way a read-only file system is named as such.
"""

from __future__ import annotations

import grp
import os
import pwd
import sqlite3
import stat
from pathlib import Path

from edge_agent.core.statefiles import read_only
from edge_agent.core.store import DB_NAME, is_corruption
from edge_agent.errors import EdgeAgentError

WRITE_HINT = "the service user needs write access (systemd's StateDirectory= gives it); a read-only remount after SD card errors (dmesg) also does this"


class StateDirProblem(EdgeAgentError):
    """A state dir the kiosk cannot keep its sessions in; `hint` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class _Judge:
    """Who the state dir must serve (uid, name, groups), and whether they may read and write a path."""

    def __init__(self, state_dir: Path | None, uid: int | None = None) -> None:
        self.as_root = os.geteuid() == 0
        service = uid if uid is not None else _service_uid() if self.as_root else None
        if not self.as_root:
            self.uid = os.geteuid()
        elif service is not None:
            self.uid = service
        else:
            assert state_dir is not None
            self.uid = state_dir.stat().st_uid
        try:
            entry = pwd.getpwuid(self.uid)
            self.name, self.gids = entry.pw_name, set(os.getgrouplist(entry.pw_name, entry.pw_gid))
        except KeyError:  # a uid without a passwd entry: only its own bits count
            self.name, self.gids = f"uid {self.uid}", set()
        if not self.as_root:
            self.gids |= set(os.getgroups()) | {os.getegid()}

    def may(self, path: Path, st: os.stat_result, want: int) -> bool:
        """`want` (os.R_OK | os.W_OK | os.X_OK) allowed to the judged user on `path`."""
        if not self.as_root:
            return os.access(path, want)
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid in self.gids:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        return bits & want == want


SERVICE_USER = "edge-agent"
"""The user the shipped unit runs the daemon as (systemd/edge-agent.service User=)."""


def _service_uid() -> int | None:
    """The service user's uid, None where no such user exists (not installed as a service)."""
    try:
        return pwd.getpwnam(os.environ.get("EDGE_AGENT_SERVICE_USER") or SERVICE_USER).pw_uid
    except KeyError:
        return None


def service_reads(files: list[tuple[str, str]]) -> str:
    """Run as root (`sudo edge-agent doctor`): each file `run` reads at start (the config, a key,
    password or secret file, the broker's certificates) readable by the service user, every parent
    of it enterable, and none but the config where the shipped unit's sandbox hides it (/tmp,
    /home: `_hidden_by_unit`). Root reads them all, and the config passed while the service's `run` refused a key
    file only root may read (exit 78: RestartPreventExitStatus=, down until someone looks).
    StateDirProblem naming the first one it cannot read; "" where there is no judging to do (not
    root, or no service user on this machine)."""
    uid = _service_uid() if os.geteuid() == 0 else None
    if uid is None or uid == 0:
        return ""
    judge = _Judge(None, uid)
    try:
        group = grp.getgrgid(pwd.getpwuid(uid).pw_gid).gr_name
    except KeyError:
        group = judge.name
    for key, name in files:
        path = Path(name)
        try:
            st = path.stat()
        except OSError:
            continue  # missing: the config check said so
        hidden = _hidden_by_unit(path)
        if key != CONFIG_KEY and hidden:  # the unit runs with its own config path
            raise StateDirProblem(
                f"{key} {path}: {hidden}, so the service's `run` as {judge.name} does not find it and refuses to start (exit 78)",
                f"move it to /etc/edge-agent (root:{group} 0750)",
            )
        # a config where the unit's sandbox hides everything is not the service's (`sudo doctor -c
        # ~/kiosk.toml`): the dirs on the way to it are not judged (it failed on a 0700 /root)
        for parent in () if hidden else dict.fromkeys([*path.absolute().parents, *path.resolve().parents]):
            pst = parent.stat()
            if not judge.may(parent, pst, os.X_OK):
                raise StateDirProblem(
                    f"{key} {path}: {parent} ({_owner(pst)}, mode {stat.S_IMODE(pst.st_mode):o}) does not let {judge.name} reach it (the service's `run` refuses to start: exit 78)",
                    f"move it to /etc/edge-agent (root:{group} 0750), or chmod o+x {parent}",
                )
        if not judge.may(path, st, os.R_OK):
            raise StateDirProblem(
                f"{key} {path} ({_owner(st)}, mode {stat.S_IMODE(st.st_mode):o}) is not readable by {judge.name} (the service's `run` refuses to start: exit 78)",
                f"sudo chgrp {group} {path} && sudo chmod 640 {path}",
            )
    return f"{len(files)} file{'' if len(files) == 1 else 's'} readable by {judge.name}"


CONFIG_KEY = "config file"
"""`service_reads`' key for the config itself: judged for its permission bits, not for where it is
(the shipped unit reads /etc/edge-agent/config.toml whatever `doctor -c` was given); the dirs on
the way to it only where the unit could see it at all."""


def _hidden_by_unit(path: Path) -> str | None:
    """What the shipped unit's sandbox does to `path` (as written, or where its links lead) where
    the service cannot see it there, else None. Judged by the permission bits alone, a key file in
    /tmp or /home passed, and the service's `run` did not find it."""
    for real in dict.fromkeys([path.absolute(), path.resolve()]):
        if any(real.is_relative_to(t) for t in ("/tmp", "/var/tmp")):
            return "under the shipped unit (PrivateTmp=yes) the service sees a /tmp of its own"
        if any(real.is_relative_to(h) for h in ("/home", "/root", "/run/user")):
            return "the shipped unit (ProtectHome=yes) hides it from the service"
    return None


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _owner(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"


def check_state_dir(state_dir: Path) -> str:
    """One line on the state dir's health (how many sessions it holds); StateDirProblem when the
    kiosk could not keep its sessions there. Creates, opens for writing or changes nothing."""
    d = state_dir
    if not d.exists() and d.is_symlink():  # a link to a stick or partition not mounted: the kiosk cannot make it
        raise StateDirProblem(
            f"{d} is a link to {os.readlink(d)}, which does not exist (the kiosk cannot create it: it runs, but without resume after a restart)",
            "mount what the link points to, or make the dir it names (or point device.state_dir at a directory)",
        )
    if not d.exists():
        return _missing(d)
    if not d.is_dir():
        raise StateDirProblem(f"{d}: not a directory", f"device.state_dir must name a directory (the kiosk keeps {DB_NAME} in it)")
    judge = _Judge(d)
    if _read_only_fs(d):
        raise StateDirProblem(f"{d}: Read-only file system (the kiosk runs, but without resume after a restart)", WRITE_HINT)
    if not judge.may(d, d.stat(), os.R_OK | os.W_OK | os.X_OK):
        raise StateDirProblem(f"{d} ({_owner(d.stat())}, mode {stat.S_IMODE(d.stat().st_mode):o}) is not writable by {judge.name} (the kiosk runs, but without resume after a restart)", WRITE_HINT)
    walked = dict.fromkeys([*d.absolute().parents, *d.resolve().parents])  # the path as written (its links too) and where it leads
    for parent in walked if judge.as_root else ():  # as anyone else os.access walked them
        st = parent.stat()
        if not judge.may(parent, st, os.X_OK):
            raise StateDirProblem(
                f"{parent} ({_owner(st)}, mode {stat.S_IMODE(st.st_mode):o}) does not let {judge.name} reach {d} (the kiosk runs, but without resume after a restart)",
                f"use the service's {SERVICE_STATE_DIR}, or a state dir whose every parent {judge.name} may enter (chmod o+x, or a dir elsewhere)",
            )
    db = d / DB_NAME
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if not judge.may(path, st, os.R_OK | os.W_OK):
            raise StateDirProblem(
                f"{path} ({_owner(st)}, mode {stat.S_IMODE(st.st_mode):o}) is not writable by {judge.name} (the kiosk runs, but without resume after a restart)",
                f"sudo chown {judge.name}: {path} (a `run` as root, or an older `doctor` as root, leaves such files)",
            )
    if not db.exists():
        return f"{d} (no sessions stored yet: the store is created on the first run{_for(judge, d)})"
    count = _count_read_only(db)
    return f"{d} ({count} session{'' if count == 1 else 's'} stored{_for(judge, d)})"


def _for(judge: _Judge, d: Path) -> str:
    who = f", writable by {judge.name}" if judge.as_root else ""
    return who if d.resolve() == SERVICE_STATE_DIR else f"{who}; {_unit_note(d)}"


def _unit_note(d: Path) -> str:
    """What the shipped unit makes of a state dir other than its own."""
    real = d.resolve()
    if real.is_relative_to("/tmp") or real.is_relative_to("/var/tmp"):
        return f"under the shipped unit (PrivateTmp=yes) the service sees a /tmp of its own, emptied at every restart: use {SERVICE_STATE_DIR}"
    if any(real.is_relative_to(home) for home in ("/home", "/root", "/run/user")):
        return f"the shipped unit (ProtectHome=yes) hides this from the service, ReadWritePaths= or not: use {SERVICE_STATE_DIR}"
    return f"the shipped unit writes only under {SERVICE_STATE_DIR}: this dir needs ReadWritePaths= in a drop-in"


SERVICE_STATE_DIR = Path("/var/lib/edge-agent")
"""The state dir the shipped unit's StateDirectory= makes (owned by the service user)."""


def _missing(d: Path) -> str:
    """A state dir not there yet: the one systemd's StateDirectory= makes, or one the first run
    can make (its nearest existing parent writable: os.access says EROFS even for root). Before,
    any missing path passed as made by StateDirectory=, also under a read-only parent, where `run`
    then had no store."""
    if d == SERVICE_STATE_DIR:
        return f"{d} does not exist yet: systemd's StateDirectory= creates it when the service starts"
    parent = d.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StateDirProblem(
            f"{d} does not exist, and {parent} is not writable to create it" + (" (read-only file system)" if os.geteuid() == 0 else " by this user"),
            f"use the service's {SERVICE_STATE_DIR} (device.state_dir left out), or: sudo install -d -m 700 -o edge-agent {d}",
        )
    return f"{d} does not exist yet: it is created on the first run ({_unit_note(d)})"


def _count_read_only(db: Path) -> int:
    """Sessions in the database, read without creating a file beside it (`statefiles.read_only`)."""
    try:
        with read_only(db) as conn:
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise StateDirProblem(f"{db}: corrupt (quick_check: {row[0] if row else 'no answer'})", _CORRUPT_HINT)
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'").fetchone() is None:
                return 0
            return int(conn.execute("SELECT count(*) FROM sessions").fetchone()[0])
    except sqlite3.Error as exc:
        if is_corruption(exc):
            raise StateDirProblem(f"{db}: corrupt ({exc})", _CORRUPT_HINT) from None
        raise StateDirProblem(f"{db}: cannot read: {exc}", "another process holding it locked (fuser), or an SD card failing (dmesg)") from None


_CORRUPT_HINT = f"the kiosk moves it aside on start ({DB_NAME}.corrupt-<time>) and starts a fresh store: earlier sessions cannot be resumed"
