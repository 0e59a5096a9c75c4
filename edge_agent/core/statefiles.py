"""Files in the kiosk's state dir: private whatever the umask, and owned by the dir's user.

The session store (and anything else kept in `device.state_dir`) holds session ids: the dir is
0700 and its files 0600 however the process was started, and a file root makes there
(`sudo edge-agent sessions --forget`) goes to the user the service runs as.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def give_to_dir_owner(path: Path, state_dir: Path) -> None:
    """As root, a file made in another user's state dir (`sudo edge-agent sessions --forget`)
    goes to that user, who could not write it otherwise (SQLite gives -wal and -shm its owner)."""
    st = state_dir.stat()
    if os.geteuid() == 0 and st.st_uid != 0:
        with contextlib.suppress(OSError):  # a file system without owners: as before
            os.chown(path, st.st_uid, st.st_gid)


def make_private(path: Path, mode: int, only_holding: str | None = None) -> None:
    """Sets an existing file or our own state dir to exactly `mode` (whatever the umask made of
    it). With `only_holding`, a dir that also holds anything not named after it (a misconfigured
    state_dir = "~") is left alone."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if st.st_mode & 0o777 == mode or st.st_uid != os.geteuid():
        return
    if only_holding is not None and any(not p.name.startswith(only_holding) for p in path.iterdir()):
        return
    try:
        path.chmod(mode)
    except OSError:
        pass  # a read-only state dir: the open that follows reports it
