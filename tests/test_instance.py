"""The state dir's files as an attacker with the service user's rights leaves them, and the
one-daemon claim where the state dir is read-only: each found by a review, each failing before
its mend. The daemon-level checks (a second `edge-agent run` refused, another user unable to hold
the claim) are in tests/test_service.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_store_faults import Tmpfs

from edge_agent.core.statefiles import LOCK_FILE
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.service.instance import AnotherDaemon, claim, held_by

NOBODY = 65534
"""The service user's stand-in: it owns the state dir and may put anything in it."""

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: root opening a state dir another user owns, as `sudo edge-agent run` does")


@as_root
def test_a_link_at_the_stores_name_makes_no_file_where_it_points(tmp_path: Path) -> None:
    """The service user links `sessions.sqlite3` to a file that does not exist in a dir only root
    may write (`/etc/profile.d/zz.sh`, say); root runs the kiosk by hand: the store was created
    there, through the link, and given to that user, who then wrote a login script for root."""
    state, guarded = tmp_path / "state", tmp_path / "profile.d"
    state.mkdir(mode=0o700)
    guarded.mkdir(mode=0o755)
    os.chown(state, NOBODY, NOBODY)
    (state / DB_NAME).symlink_to(guarded / "zz.sh")
    store = SessionStore(state)
    try:
        assert not (guarded / "zz.sh").exists() and list(guarded.iterdir()) == []
        assert store.fault is not None  # the kiosk runs, its sessions in memory
    finally:
        store.close()


@as_root
def test_a_link_at_the_lock_files_name_is_not_followed(tmp_path: Path) -> None:
    state, target = tmp_path / "state", tmp_path / "roots-file"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    target.write_text("root's\n")
    target.chmod(0o600)
    (state / LOCK_FILE).symlink_to(target)
    held = claim(state)  # not through the link: the state dir itself is locked (_dir_lock)
    assert held is not None
    try:
        with pytest.raises(AnotherDaemon):
            claim(state)
    finally:
        os.close(held)
    st = target.stat()
    assert (st.st_uid, target.read_text()) == (0, "root's\n")


def test_a_read_only_state_dir_is_still_claimed_once(tmp_path: Path) -> None:
    """A card remounted read-only: the store runs from memory, but two daemons still fight over
    the microphone and the broker's client id. flock needs no write access: the lock file is
    locked read-only (so is a root-owned one the service user may only read)."""
    fs = Tmpfs(tmp_path / "ro")
    try:
        first = claim(fs.path)
        assert first is not None
        os.close(first)  # the daemon before the card went read-only
        fs.readonly(True)
        held = claim(fs.path)
        assert held is not None
        try:
            with pytest.raises(AnotherDaemon, match="another edge-agent"):
                claim(fs.path)
            assert held_by(fs.path) == f"pid {os.getpid()}"
        finally:
            os.close(held)
        assert held_by(fs.path) is None
    finally:
        fs.umount()


def _claimed_once(state: Path) -> None:
    held = claim(state)
    assert held is not None
    try:
        with pytest.raises(AnotherDaemon, match="another edge-agent"):
            claim(state)
        assert held_by(state) == f"pid {os.getpid()}"
    finally:
        os.close(held)
    assert held_by(state) is None
    again = claim(state)  # nothing stale
    assert again is not None
    os.close(again)


def test_a_state_dir_without_a_usable_lock_file_is_claimed_on_the_dir_itself(tmp_path: Path) -> None:
    """A card read-only from the first boot (an overlayroot image: no lock file, none to make) or
    a FIFO, a dir or a link at the lock file's name: the claim was dropped with a warning, two
    daemons ran on one state dir and the doctor said none did (found by an attacker). Every
    daemon meets the same there, so all lock the state dir itself."""
    for kind in ("fifo", "dir", "link"):
        state = tmp_path / kind
        state.mkdir(mode=0o700)
        lock = state / LOCK_FILE
        if kind == "fifo":
            os.mkfifo(lock)
        elif kind == "dir":
            lock.mkdir()
        else:
            lock.symlink_to(tmp_path / "nowhere")
        _claimed_once(state)
    fs = Tmpfs(tmp_path / "ro")
    try:
        fs.readonly(True)  # before any daemon ran: no lock file, and none can be made
        assert not (fs.path / LOCK_FILE).exists()
        _claimed_once(fs.path)
    finally:
        fs.umount()


def test_the_demo_leaves_a_running_kiosks_state_dir_alone(tmp_path: Path) -> None:
    """`edge-agent demo --state-dir` naming the service's dir ran a second kiosk on its store."""
    from test_newcomer import ea, one_line_error

    held = claim(tmp_path / "state")  # what the running kiosk holds
    assert held is not None
    try:
        line = one_line_error(ea("demo", "--auto", "--state-dir", str(tmp_path / "state"), timeout_s=60), 1)
    finally:
        os.close(held)
    assert f"another edge-agent (pid {os.getpid()}) runs with the state dir {tmp_path / 'state'}" in line, line
    assert line.endswith("or give this one another --state-dir DIR"), line  # the demo's flag, not the config's key (a newcomer's find)


HOLD = (
    "import sys, time; from pathlib import Path; from edge_agent.service.instance import claim; "
    "print('claimed' if claim(Path(sys.argv[1])) is not None else 'unclaimed', flush=True); time.sleep(30)"
)


def test_a_daemon_on_the_dir_lock_refuses_one_started_after_the_lock_file_came_back(tmp_path: Path) -> None:
    """One daemon started while the lock file could not be used (a FIFO at its name, a card
    read-only from the first boot) locks the dir; the FIFO removed (the card remounted
    read-write), a second daemon locked the new lock file and both ran (found by an attacker)."""
    import subprocess
    import sys

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.mkfifo(state / LOCK_FILE)
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "claimed"
        (state / LOCK_FILE).unlink()
        assert held_by(state) == f"pid {first.pid}"
        with pytest.raises(AnotherDaemon, match=f"pid {first.pid}"):
            claim(state)
    finally:
        first.kill()
        first.wait()
    again = claim(state)  # nothing stale once it has gone
    assert again is not None
    os.close(again)


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(), reason="needs root and setpriv: another user holds the dir")
def test_another_user_locking_a_state_dir_made_0755_keeps_no_kiosk_from_starting(tmp_path: Path) -> None:
    """Where the daemons lock the dir itself, any user who can open a dir made 0755 by hand could
    hold that lock: the kiosk was refused (by hand), or waited for good as a service. A lock by a
    user no edge-agent runs as is no daemon's: warned about and not obeyed (found by an
    attacker)."""
    import shutil
    import subprocess
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="edge-agent-squat-"))  # where that user can reach it
    base.chmod(0o755)
    state = base / "state"
    state.mkdir(mode=0o755)
    (state / LOCK_FILE).mkdir()  # no usable lock file: the daemons lock the dir
    squat = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)"
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-c", squat, str(state)]
    squatter = subprocess.Popen(as_nobody, stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "held"
        assert held_by(state) is None
        fd = claim(state)  # runs, without a claim (the squatter has the dir's lock), and says so
        assert fd is None
        (state / LOCK_FILE).rmdir()  # a lock file usable again: the squatter's dir lock is ignored
        fd = claim(state)
        assert fd is not None
        os.close(fd)
    finally:
        squatter.kill()
        squatter.wait()
        shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists() or not Path("/usr/bin/python3").exists(), reason="needs root, setpriv, /usr/bin/python3: two users")
def test_a_daemon_that_must_lock_the_dir_is_refused_while_one_holds_a_lock_file_it_cannot_open(tmp_path: Path) -> None:
    """Root's run by hand locks a lock file left 0600 and root's; the service user cannot open it,
    so it locks the dir, and both ran: only the other order was refused; and `held_by`, asked as
    that user, said nobody ran (found by attackers)."""
    import shutil
    import subprocess
    import tempfile

    from conftest import REPO

    base = Path(tempfile.mkdtemp(prefix="edge-agent-order-"))  # where that user can reach it
    base.chmod(0o755)
    shutil.copytree(REPO / "edge_agent", base / "edge_agent", ignore=shutil.ignore_patterns("__pycache__"))
    state = base / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)  # the service user's state dir
    os.close(os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600))  # root's, left by an older run
    held = claim(state)  # `sudo edge-agent run`: locks the file
    assert held is not None
    hold = (
        "import sys, time; from pathlib import Path; from edge_agent.service.instance import claim, AnotherDaemon\n"
        "from edge_agent.service.instance import held_by\n"
        "try:\n    print('claimed' if claim(Path(sys.argv[1])) is not None else 'unclaimed', held_by(Path(sys.argv[1])), flush=True)\n"
        "except AnotherDaemon:\n    print('refused', held_by(Path(sys.argv[1])), flush=True)\n"
    )
    as_service = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-c", hold, str(state)]
    try:
        got = subprocess.run(as_service, capture_output=True, text=True, cwd=base, env={"PYTHONPATH": str(base)}, timeout=60)
        # and `held_by` (the doctor, `sessions --forget`, the echo tool's --keep-grade) names it too
        assert got.stdout.strip() == f"refused pid {os.getpid()}", (got.stdout, got.stderr)
    finally:
        os.close(held)
        shutil.rmtree(base)
