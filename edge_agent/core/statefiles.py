"""Files in the kiosk's state dir: private whatever the umask, and owned by the dir's user.

The session store (and anything else kept in `device.state_dir`) holds session ids: the dir is
0700 and its files 0600 however the process was started, and a file root makes there
(`sudo edge-agent sessions --forget`) goes to the user the service runs as.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

DB_NAME = "sessions.sqlite3"
"""The session store (core/store.py), with its -wal and -shm (and .corrupt-* copies) beside it."""
LEDGER_FILE = "mqtt-discovery.json"
"""Where the kiosk published Home Assistant discovery (fleet/discovery_sync.py)."""
ECHO_GRADE_FILE = "echo-grade.json"
"""How well the echo canceller copes with the kiosk's room (service/roomgrade.py)."""
LOCK_FILE = "edge-agent.lock"
"""Held (flock) by the daemon running with this state dir (service/instance.py)."""
OWN_FILES = (DB_NAME, LEDGER_FILE, ECHO_GRADE_FILE, LOCK_FILE)
"""Everything the kiosk keeps in its state dir (each may have a .tmp beside it while written):
a dir holding anything else is not only ours (a misconfigured state_dir = "~")."""


def give_to_dir_owner(fd: int, state_dir: Path) -> None:
    """As root, a file made in another user's state dir (`sudo edge-agent sessions --forget`)
    goes to that user, who could not write it otherwise (SQLite gives -wal and -shm its owner).
    Through the descriptor the file was opened with, never its path: that user may swap the name
    for a link between the open and the chown, and a chown by path handed them whatever it named."""
    st = state_dir.stat()
    if os.geteuid() == 0 and st.st_uid != 0:
        with contextlib.suppress(OSError):  # a file system without owners: as before
            os.fchown(fd, st.st_uid, st.st_gid)


def file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, to tell it from one put in its place; None when
    there is none (OSError for other faults)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_dev, st.st_ino


def make_private_dir(path: Path) -> None:
    """Makes `path` and every missing dir above it 0700, whatever the umask (`mkdir(parents=True)`
    gave the parents the umask's mode: 0777 under umask 0, where any user could rename the state
    dir away and put their own in its place, with a store file of theirs that the kiosk then
    wrote its sessions to). An existing dir is left as it is; errors as `mkdir`'s."""
    for parent in reversed(path.parents):
        if not parent.exists():
            with contextlib.suppress(FileExistsError):  # made meanwhile by someone else
                parent.mkdir(mode=0o700)
    path.mkdir(mode=0o700, exist_ok=True)


def make_private(path: Path, mode: int, only_holding: tuple[str, ...] | None = None) -> None:
    """Sets an existing file or our own state dir to exactly `mode` (whatever the umask made of
    it). With `only_holding`, a dir that also holds anything not named after one of them (a
    misconfigured state_dir = "~") is left alone. A link is never followed (opened O_NOFOLLOW,
    changed through that descriptor), nor is anything but a regular file or a dir changed: root's
    `sessions --forget` chmodded whatever the service user had linked a store file to."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return  # none there, a link (ELOOP), unreadable: the open that follows reports what matters
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) or st.st_mode & 0o777 == mode or st.st_uid != os.geteuid():
            return
        if only_holding is not None and any(not p.name.startswith(only_holding) for p in path.iterdir()):
            return
        try:
            os.fchmod(fd, mode)
        except OSError:
            pass  # a read-only state dir: the open that follows reports it
    finally:
        os.close(fd)


def write_private(path: Path, text: str, keep_mode: bool = False) -> None:
    """Replaces a small state file atomically and durably (a temporary file of its own, synced,
    renamed over it, the dir synced), 0600 from the start and owned by the state dir's user;
    with `keep_mode`, a file already there keeps its mode, owner and group instead (a broker's
    password file mosquitto must still read) and a new one stays the caller's.
    The temporary file is made new (O_EXCL, a name of its own): nothing already at a name beside
    the file (a link, a leftover) is followed, truncated or chowned. OSError for the caller: a
    full or read-only card leaves the old file as it was, and no temporary file behind; one a
    power cut left behind (or an older version's fixed-name one) goes at the next write."""
    for leftover in path.parent.glob(glob.escape(path.name) + ".tmp*"):
        with contextlib.suppress(OSError):
            leftover.unlink()  # a link itself, never what it points to
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
            if keep_mode:
                _take_mode_of(f.fileno(), path)
            else:
                give_to_dir_owner(f.fileno(), path.parent)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # a file system that cannot sync a dir: the rename stands
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _take_mode_of(fd: int, path: Path) -> None:
    """The file at `fd` gets the mode (and, as root, the owner and group) of the one at `path`, if any."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    os.fchmod(fd, st.st_mode & 0o777)
    if os.geteuid() == 0:
        os.fchown(fd, st.st_uid, st.st_gid)


def read_regular(path: Path | str, limit: int) -> bytes:
    """At most `limit` bytes of a regular file, opened without blocking: OSError when it cannot be
    read (FileNotFoundError when there is none), ValueError when it is no regular file (a FIFO
    would block the caller until something wrote to it; a device is no file anything keeps)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit)
    finally:
        os.close(fd)


def same_file(a: Path | str, b: Path | str) -> bool:
    """`a` and `b` name one file: the same path, or the file itself through another name (a link,
    `./`). One that does not exist (yet), or cannot be looked at, is another file. `realpath`, not
    `Path.resolve`: Python 3.11's raises RuntimeError for a link that loops (`echo -o LOOP`,
    `provision --passwd LOOP` exited 70, "unexpected error"); opening it then says what is wrong."""
    real_a, real_b = os.path.realpath(a), os.path.realpath(b)
    try:
        return real_a == real_b or os.path.samefile(real_a, real_b)
    except OSError:
        return False


def read_small_file(path: Path, max_bytes: int) -> bytes:
    """A small state file's bytes (`read_regular`); ValueError too when it is larger than
    `max_bytes` (not ours: it is not read whole)."""
    raw = read_regular(path, max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    return raw


@contextmanager
def read_only(db: Path, timeout_s: float = 0.5) -> Iterator[sqlite3.Connection]:
    """`db` opened for reading only, creating no file beside it (sqlite3.Error when it cannot be).
    A `-wal` without its `-shm` (a state dir copied off a running kiosk, a -shm cleaned away)
    cannot be read in place read-only, and `immutable` leaves it out, with the latest sessions in
    it: the database and its WAL are read from a private copy instead (removed on leaving)."""
    if db.exists() and not _regular(db):  # SQLite opening a FIFO read-only waits for a writer, for good
        raise sqlite3.OperationalError("not a regular file")
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    if wal.exists() and not shm.exists() and _regular(db) and _regular(wal):  # a device or FIFO is not copied
        with tempfile.TemporaryDirectory(prefix="edge-agent-store-") as tmp:
            copy = Path(tmp) / db.name
            try:
                shutil.copyfile(db, copy)
                shutil.copyfile(wal, f"{copy}-wal")
            except OSError as exc:
                raise sqlite3.OperationalError(f"cannot copy it to read its WAL: {exc.strerror or exc}") from None
            conn = sqlite3.connect(copy, timeout=timeout_s)
            try:
                yield conn
            finally:
                conn.close()
        return
    mode = "mode=ro" if wal.exists() and shm.exists() else "immutable=1"
    conn = sqlite3.connect(f"file:{quote(str(db))}?{mode}", uri=True, timeout=timeout_s)
    try:
        yield conn
    finally:
        conn.close()


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False
