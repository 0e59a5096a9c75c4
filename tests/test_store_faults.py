"""The session store on a failing SD card: only real corruption is moved aside; a lock, a full
disk or a read-only state dir keep the kiosk running in memory, reported, retried; bounded
history; private files; a reused id keeps its chain.

Faults are real: a second SQLite connection holds the lock, and the state dir is a small tmpfs
mounted for the test (filled up for a full disk, remounted read-only for a card the kernel
turned read-only). The tests run as root, which ignores file modes, so chmod cannot make a
read-only dir; a read-only mount stops root too. Without the right to mount (not root) those
tests skip, saying so.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, DaemonProcess, KioskThread, kiosk_settings, toml_dump, wait_for, write_wav

from edge_agent.core import conversation as c
from edge_agent.core.store import DB_NAME, SessionStore, is_corruption
from edge_agent.core.storeread import recent_read_only
from edge_agent.devtools.simulator import AgentSimulator

LATER = 1e12  # a monotonic time past any retry interval


class Tmpfs:
    """A tmpfs of `size` mounted at `path`; `readonly(True/False)` remounts it."""

    def __init__(self, path: Path, size: str = "1m") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")

    def readonly(self, on: bool) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.path)], check=True)

    def fill(self) -> Path:
        """Fills the file system to the last byte; returns the filler file."""
        filler = self.path / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: full
        finally:
            os.close(fd)
        return filler

    def umount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    fs = Tmpfs(tmp_path / "state")
    yield fs
    fs.umount()


def exclusive_lock(state: Path) -> sqlite3.Connection:
    """Another process's connection holding the database exclusively (no reads, no writes)."""
    other = sqlite3.connect(state / DB_NAME, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    return other


def stored(state: Path) -> list[str]:
    store = SessionStore(state)
    try:
        assert store.fault is None, store.fault
        return [s.id for s in store.recent()]
    finally:
        store.close()


def corrupt_copies(state: Path) -> list[Path]:
    return list(state.glob(f"{DB_NAME}.corrupt-*"))


# ----------------------------------------------------------------------------- not corruption
def test_a_lock_held_by_another_process_at_open_is_not_corruption(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.record_start("before", "agent", "default", None, started_at=100.0)
    store.close()
    other = exclusive_lock(tmp_path)
    store = SessionStore(tmp_path)
    assert store.fault is not None and "locked" in store.fault
    assert store.recovered_from is None and corrupt_copies(tmp_path) == []
    store.record_start("during", "agent", "default", "before", started_at=200.0)  # kept in memory
    assert store.newest("agent").id == "during"  # type: ignore[union-attr]
    assert not store.retry(LATER)  # still locked
    other.rollback()
    other.close()
    assert store.retry(LATER * 2) and store.fault is None
    store.close()
    assert stored(tmp_path) == ["during", "before"]


def test_a_write_lock_during_the_run_keeps_the_session_and_writes_it_back(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, busy_timeout_s=0.1)
    store.record_start("first", "agent", "default", None, started_at=100.0)
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # readers go on (WAL), writers wait
    store.record_start("second", "agent", "default", "first", started_at=200.0)  # raised StoreError before
    store.record_end("second", "button", ended_at=250.0)
    assert store.fault is not None and store.newest("agent").id == "second"  # type: ignore[union-attr]
    other.rollback()
    other.close()
    assert store.retry(LATER)
    store.close()
    assert stored(tmp_path) == ["second", "first"]
    assert SessionStore(tmp_path).newest("agent").end_reason == "button"  # type: ignore[union-attr]


def test_a_read_only_state_dir_runs_in_memory_with_what_it_can_read(tmpfs: Tmpfs) -> None:
    state = tmpfs.path
    store = SessionStore(state)
    store.record_start("on-card", "agent", "default", None, started_at=100.0)
    store.close()
    tmpfs.readonly(True)
    store = SessionStore(state)  # raised OSError from the rename before (daemon exit 1)
    assert store.fault is not None and store.recovered_from is None
    assert store.newest("agent").id == "on-card"  # type: ignore[union-attr]  # resume still works
    store.record_start("while-ro", "agent", "default", "on-card", started_at=200.0)
    assert store.newest("agent").continued_from == "on-card"  # type: ignore[union-attr]
    assert not store.retry(LATER)
    tmpfs.readonly(False)
    assert store.retry(LATER * 2)
    store.close()
    assert stored(state) == ["while-ro", "on-card"] and corrupt_copies(state) == []


def test_a_read_only_state_dir_without_a_database_yet(tmpfs: Tmpfs) -> None:
    tmpfs.readonly(True)
    store = SessionStore(tmpfs.path / "sub")  # neither the dir nor the file can be created
    assert store.fault is not None and "Read-only" in store.fault
    store.record_start("s1", "agent", "default", None)
    assert store.newest("agent").id == "s1"  # type: ignore[union-attr]


def test_a_full_disk_at_start_and_during_the_run(tmpfs: Tmpfs) -> None:
    state = tmpfs.path
    filler = tmpfs.fill()
    store = SessionStore(state)  # a fresh store cannot even write its header
    assert store.fault is not None and store.recovered_from is None and corrupt_copies(state) == []
    store.record_start("s1", "agent", "default", None, started_at=1.0)
    filler.unlink()
    assert store.retry(LATER) and store.fault is None
    # now fill the disk under a running store: the writes go on in memory
    filler = tmpfs.fill()
    for i in range(2, 100):
        store.record_start(f"s{i}", "agent", "default", f"s{i - 1}", started_at=float(i))
    assert store.fault is not None and "full" in store.fault
    assert store.newest("agent").id == "s99"  # type: ignore[union-attr]
    assert corrupt_copies(state) == []
    filler.unlink()
    assert store.retry(LATER * 2), store.fault
    store.close()
    assert stored(state)[0] == "s99" and len(stored(state)) == 99


def _sqlite_error(message: str, code: int | None) -> sqlite3.Error:
    exc = sqlite3.OperationalError(message) if code not in (11, 26) else sqlite3.DatabaseError(message)
    if code is not None:
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


def test_only_corrupt_and_notadb_count_as_corruption() -> None:
    """I/O errors cannot be produced for real here (no device-mapper error target), so the
    classification that keeps them away from the move-aside is checked on SQLite's own codes:
    extended codes (e.g. SQLITE_IOERR_WRITE = 778) reduce to their primary code."""
    assert is_corruption(_sqlite_error("database disk image is malformed", 11))
    assert is_corruption(_sqlite_error("file is not a database", 26))
    assert is_corruption(_sqlite_error("corrupt index", 11 | (3 << 8)))  # SQLITE_CORRUPT_INDEX
    for message, code in [("disk I/O error", 778), ("database is locked", 5), ("database or disk is full", 13), ("attempt to write a readonly database", 8), ("unable to open database file", 14)]:
        assert not is_corruption(_sqlite_error(message, code)), message
    assert is_corruption(_sqlite_error("database disk image is malformed", None))  # Python < 3.11: by message
    assert not is_corruption(_sqlite_error("disk I/O error", None))
    assert not is_corruption(OSError(30, "Read-only file system"))


# ----------------------------------------------------------------------------- real corruption
def test_a_page_that_fails_quick_check_is_moved_aside(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    for i in range(300):
        store.record_start(f"session-{i:04d}-" + "x" * 40, "agent", "default", None, started_at=float(i))
    store.close()
    db = tmp_path / DB_NAME
    data = bytearray(db.read_bytes())
    assert len(data) > 4 * 4096
    data[2 * 4096 : 3 * 4096] = b"\xa5" * 4096  # a torn sector in the middle of the tree
    db.write_bytes(bytes(data))
    store = SessionStore(tmp_path)
    assert store.fault is None and store.recovered_from is not None and store.recovered_from.exists()
    store.record_start("fresh", "agent", "default", None)
    assert [s.id for s in store.recent()] == ["fresh"]


def test_only_the_newest_corrupt_copies_are_kept_and_forget_deletes_them(tmp_path: Path) -> None:
    for i in range(4):
        (tmp_path / f"{DB_NAME}.corrupt-2026010{i}T000000").write_bytes(b"old ids s-secret")
        (tmp_path / f"{DB_NAME}.corrupt-2026010{i}T000000-wal").write_bytes(b"old ids s-secret")
    (tmp_path / DB_NAME).write_bytes(b"not a database" * 100)
    store = SessionStore(tmp_path)
    assert store.recovered_from is not None
    kept = sorted(p.name for p in corrupt_copies(tmp_path))
    assert kept == sorted([store.recovered_from.name, f"{DB_NAME}.corrupt-20260103T000000", f"{DB_NAME}.corrupt-20260103T000000-wal"])
    store.record_start("s1", "agent", "default", None)
    assert store.forget() == 1
    assert corrupt_copies(tmp_path) == []


# ----------------------------------------------------------------------------- history, chain, modes
def test_history_is_bounded_and_keeps_the_newest(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, keep_sessions=5)
    for i in range(12):
        store.record_start(f"s{i:02d}", "agent", "default", None, started_at=float(i))
    assert [s.id for s in store.recent()] == ["s11", "s10", "s09", "s08", "s07"]
    store.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"s03" not in blob  # pruned rows are zeroed, not left in free pages (secure_delete)


def test_a_session_recorded_with_the_clock_behind_is_not_pruned_by_the_fleets_pointers(tmp_path: Path) -> None:
    """A kiosk whose clock is behind (no battery clock, NTP blocked on the site's network) in a
    fleet that shares sessions: the store is full of other kiosks' pointers, all stamped later
    than its own clock says now. Pruning by wall clock deleted the session it had just recorded,
    in the same write (its start the oldest), so the visitor's next press after a restart could
    not continue it. While a row's time lies past the kiosk's clock, the latest written rows are
    kept: the own session stays until newer writes push it out, as with a clock that is right,
    also once its own start is hours old on that clock."""
    now = time.time()
    store = SessionStore(tmp_path, keep_sessions=3)
    ahead = [("agent", f"p{i}", f"s-p{i}", None, now + 86400.0 + i, None) for i in range(3)]
    assert store.merge_shared(ahead) == 3
    store.record_start("s-own", "agent", "default", None)
    assert store.get("s-own") is not None
    store.record_end("s-own", "button")
    assert store.merge_shared([("agent", "p9", "s-p9", None, now + 86400.0 + 9, None)]) == 1
    assert store.get("s-own") is not None and store.newest("agent", "default").id == "s-own"  # type: ignore[union-attr]
    assert len(store.recent()) == 3
    store.record_start("s-own2", "agent", "default", "s-own", started_at=now - 3600.0)  # written now, stamped an hour back
    assert store.merge_shared([("agent", "p10", "s-p10", None, now + 86400.0 + 10, None)]) == 1
    assert [s.id for s in store.recent() if s.slot == "default"] == ["s-own2"]  # s-own pushed out by newer writes, as it would be
    store.close()
    reopened = SessionStore(tmp_path, keep_sessions=3)
    assert len(reopened.recent()) == 3
    reopened.close()


def test_a_session_resumed_with_the_clock_behind_counts_as_filed_now(tmp_path: Path) -> None:
    """The same id handed out again (a continuation that kept its id) while the clock is behind
    the fleet's pointers: it is as new as the write that resumed it, not as old as its first filing."""
    now = time.time()
    store = SessionStore(tmp_path, keep_sessions=3)
    store.record_start("s-own", "agent", "default", None)
    assert store.merge_shared([("agent", f"p{i}", f"s-p{i}", None, now + 86400.0 + i, None) for i in range(2)]) == 2
    store.record_start("s-own", "agent", "default", None)  # resumed
    assert store.merge_shared([("agent", "p9", "s-p9", None, now + 86400.0 + 9, None)]) == 1
    assert store.get("s-own") is not None and store.get("s-p0") is None
    store.close()


# ----------------------------------------------------------------------------- the clock behind: a helper's attacks on the first version
AHEAD = 86400.0


def _lock_for_a_moment(state: Path) -> sqlite3.Connection:
    other = sqlite3.connect(state / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # writers wait: the store's next write goes to memory
    return other


def test_a_session_recorded_in_memory_while_the_clock_is_behind_survives_the_write_back(tmp_path: Path) -> None:
    """The card is busy for a moment (a backup, a stuck write): the session recorded meanwhile is
    kept in memory and written back by `retry` -- with `filed` NULL (UPSERT copies COLUMNS only),
    so with the clock behind it ranks below every row on disk and the next pointer prunes it."""
    now = time.time()
    store = SessionStore(tmp_path, keep_sessions=3, busy_timeout_s=0.05)
    assert store.merge_shared([("agent", f"p{i}", f"s-p{i}", None, now + AHEAD + i, None) for i in range(2)]) == 2
    other = _lock_for_a_moment(tmp_path)
    store.record_start("s-own", "agent", "default", None)  # the clock behind the pointers
    assert store.fault is not None
    other.rollback()
    other.close()
    assert store.retry(now=10**12) and store.fault is None
    assert store.merge_shared([("agent", "p9", "s-p9", None, now + AHEAD + 9, None)]) == 1
    assert store.get("s-own") is not None, "the session recorded during the fault was pruned first"
    assert store.get("s-p0") is None  # the oldest written goes
    store.close()


def test_pruning_in_memory_while_the_clock_is_behind_keeps_the_rows_written_last(tmp_path: Path) -> None:
    """Moved to memory, the rows lost `filed` (copied with COLUMNS, newest time first), so the
    memory store ranked them by rowid: the oldest *time* as the latest written, the reverse of
    the order they were written in. The fleet's pointer shared last (a visitor who walked over
    from another kiosk) was pruned while this kiosk's oldest own session stayed."""
    now = time.time()
    store = SessionStore(tmp_path, keep_sessions=4, busy_timeout_s=0.05)
    store.record_start("s1", "agent", "a", None, started_at=now - 100.0)
    store.record_start("s2", "agent", "b", None, started_at=now - 50.0)
    assert store.merge_shared([("agent", "p0", "s-p0", None, now + AHEAD, None)]) == 1
    assert store.merge_shared([("agent", "p1", "s-p1", None, now + AHEAD + 1, None)]) == 1
    other = _lock_for_a_moment(tmp_path)
    store.record_start("s3", "agent", "c", None)  # to memory: written s1, s2, p0, p1, s3
    other.rollback()
    other.close()
    assert store.fault is not None
    assert store.get("s-p1") is not None, "the pointer written last was pruned"
    assert store.get("s1") is None  # the first written goes
    store.close()


@pytest.mark.parametrize("bad", ["'x'", "9223372036854775807", "1e300", "X'00'"])
def test_a_hand_edited_filed_value_does_not_make_a_resumed_session_the_first_to_go(tmp_path: Path, bad: str) -> None:
    """`filed` is not checked like the other columns (SOUND_ROW): a TEXT, BLOB, huge or REAL value
    left by a hand edit or another tool's import ranks above every number, and FILED
    (max(filed)+1) then hands every later write the same number, ties broken by rowid: a session
    resumed (its rowid old) ranks below pointers filed before it and is pruned first."""
    now = time.time()
    store = SessionStore(tmp_path, keep_sessions=3)
    store.record_start("s-own", "agent", "default", None)
    assert store.merge_shared([("agent", "p1", "s-p1", None, now + AHEAD + 1, None)]) == 1
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute(f"UPDATE sessions SET filed = {bad} WHERE id = 's-p1'")
    db.commit()
    db.close()
    store = SessionStore(tmp_path, keep_sessions=3)
    assert store.merge_shared([("agent", "p2", "s-p2", None, now + AHEAD + 2, None)]) == 1
    store.record_start("s-own", "agent", "default", None)  # resumed: written now
    assert store.merge_shared([("agent", "p3", "s-p3", None, now + AHEAD + 3, None)]) == 1
    assert store.merge_shared([("agent", "p4", "s-p4", None, now + AHEAD + 4, None)]) == 1
    assert store.get("s-own") is not None, "the session resumed before the last two writes was pruned"
    store.close()


def test_the_session_recorded_just_before_the_clock_is_set_right_is_not_the_first_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Pi without a battery clock boots with yesterday's time (fake-hwclock), serves a visitor,
    and NTP sets the clock right a few minutes later. Once no row lies past the clock, pruning
    ranks by time again, and the visitor's session -- stamped a day early, written after every
    pointer -- is the oldest: the next pointer prunes it, the same loss the change fixed."""
    import edge_agent.core.store as store_module

    true_now = time.time()
    clock = {"now": true_now - 86400.0}  # a day behind
    monkeypatch.setattr(store_module.time, "time", lambda: clock["now"])
    store = SessionStore(tmp_path, keep_sessions=3)
    assert store.merge_shared([("agent", f"p{i}", f"s-p{i}", None, true_now - 600.0 + i, None) for i in range(2)]) == 2
    store.record_start("s-visitor", "agent", "default", None)  # stamped a day early
    assert store.get("s-visitor") is not None
    clock["now"] = true_now  # NTP: the clock jumps forward past every row
    assert store.merge_shared([("agent", "p9", "s-p9", None, true_now, None)]) == 1
    assert store.get("s-visitor") is not None, "the visitor's session (written after p0, p1) was pruned once the clock was set right"
    store.close()


@pytest.mark.parametrize("with_resumed_at", [True, False])
def test_an_older_versions_store_on_a_read_only_card_is_read_into_memory(tmp_path: Path, with_resumed_at: bool) -> None:
    """A store an older edge-agent wrote (no `filed`; before that no `resumed_at`) on a card
    mounted read-only: the ALTER TABLE fails, the store runs in memory with what it can read."""
    fs = Tmpfs(tmp_path / "state")
    try:
        state = fs.path
        old = sqlite3.connect(state / DB_NAME)
        extra = ", resumed_at REAL" if with_resumed_at else ""
        old.executescript(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, agent TEXT NOT NULL, slot TEXT NOT NULL, continued_from TEXT,"
            f" started_at REAL NOT NULL, ended_at REAL, end_reason TEXT{extra});"
            f"INSERT INTO sessions (id, agent, slot, started_at) VALUES ('old', 'agent', 'default', {time.time() - 60});"
        )
        old.commit()
        old.close()
        fs.readonly(True)
        store = SessionStore(state, retry_s=0.0)
        assert store.fault is not None
        assert store.newest("agent") is not None and store.newest("agent").id == "old"  # type: ignore[union-attr]
        store.record_start("new", "agent", "default", "old")
        fs.readonly(False)
        assert store.retry(now=10**12) and store.fault is None
        store.close()
        again = SessionStore(state)
        assert {s.id for s in again.recent()} == {"old", "new"}
        again.close()
    finally:
        fs.umount()


def test_forget_also_forgets_that_the_clock_was_behind(tmp_path: Path) -> None:
    """The mark of rows written while the clock was behind goes with them: after a forget, the
    write order restarts at 1, under the old mark, and pruning ranked by write order for good."""
    now = time.time()
    store = SessionStore(tmp_path, keep_sessions=2)
    store.merge_shared([("agent", f"p{i}", f"s-p{i}", None, now + AHEAD + i, None) for i in range(3)])
    store.record_start("s-own", "agent", "default", None)
    assert store.forget() > 0
    store.record_start("s-old", "agent", "a", None, started_at=now - 100.0)  # the clock right: ranked by time again
    store.record_start("s-new", "agent", "b", None, started_at=now - 50.0)
    store.record_start("s-older", "agent", "c", None, started_at=now - 200.0)  # filed last, the oldest: it goes
    assert {s.id for s in store.recent()} == {"s-old", "s-new"}
    store.close()


def test_a_reused_session_id_keeps_its_start_and_its_chain(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.record_start("A", "agent", "default", None, started_at=100.0)
    store.record_end("A", "button", ended_at=150.0)
    store.record_start("B", "agent", "default", "A", started_at=200.0)
    store.record_end("B", "button", ended_at=250.0)
    store.record_start("B", "agent", "default", "B", started_at=300.0)  # the agent handed B out again
    b = store.newest("agent")
    assert b is not None and b.id == "B" and b.continued_from == "A" and b.started_at == 200.0
    assert b.ended_at is None and b.last_active_at == 300.0
    store.record_start("A", "agent", "default", "B", started_at=400.0)  # would make a loop A -> B -> A
    rows = {s.id: s for s in store.recent()}
    assert rows["A"].continued_from is None and rows["A"].started_at == 100.0
    assert store.newest("agent").id == "A"  # type: ignore[union-attr]  # the one used last
    assert all(s.continued_from != s.id for s in store.recent())


def test_a_store_written_by_the_previous_version_is_upgraded(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / DB_NAME)
    old.executescript(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, agent TEXT NOT NULL, slot TEXT NOT NULL, continued_from TEXT,"
        " started_at REAL NOT NULL, ended_at REAL, end_reason TEXT);"
        "INSERT INTO sessions VALUES ('old', 'agent', 'default', NULL, 5.0, 6.0, 'button');"
    )
    old.commit()
    old.close()
    store = SessionStore(tmp_path)
    assert store.fault is None and store.newest("agent").id == "old"  # type: ignore[union-attr]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        state = tmp_path / "fresh" / "state"
        store = SessionStore(state)
        store.record_start("s1", "agent", "default", None)
        assert _mode(state) == 0o700
        files = [state / DB_NAME, state / f"{DB_NAME}-wal", state / f"{DB_NAME}-shm"]
        assert [_mode(f) for f in files] == [0o600] * 3
        store.close()
        # a store made by hand by an older version: 0755 dir, 0644 files, tightened on open
        by_hand = tmp_path / "by-hand"
        by_hand.mkdir(mode=0o755)
        (by_hand / DB_NAME).touch(mode=0o644)
        SessionStore(by_hand).record_start("s1", "agent", "default", None)
        assert _mode(by_hand) == 0o700 and _mode(by_hand / DB_NAME) == 0o600
        # a state dir that holds other things is not ours to change
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o755)
        (shared / "notes.txt").touch()
        SessionStore(shared).close()
        assert _mode(shared) == 0o755 and _mode(shared / DB_NAME) == 0o600
    finally:
        os.umask(old)


def test_forget_while_the_disk_is_locked_wipes_the_disk_when_it_comes_back(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, busy_timeout_s=0.1)
    store.record_start("old-secret", "agent", "default", None, started_at=1.0)
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    store.record_start("s2", "agent", "default", "old-secret", started_at=2.0)  # goes to memory
    assert store.fault is not None
    assert store.forget() == 2 and store.wipe_pending and store.newest("agent") is None
    store.record_start("after", "agent", "default", None, started_at=3.0)
    other.rollback()
    other.close()
    assert store.retry(LATER) and not store.wipe_pending
    store.close()
    assert stored(tmp_path) == ["after"]
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"old-secret" not in blob


# ----------------------------------------------------------------------------- the kiosk through it
class Recorder:
    """Reporter and LED at once: what the fleet and the visitor would see."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.states: list[tuple[str, str | None, str | None]] = []
        self.led: list[str] = []

    def start(self) -> None:
        pass

    def state(self, state: str, session_id: str | None, continued_from: str | None, slot: str | None = None) -> None:
        self.states.append((state, session_id, continued_from))

    def event(self, kind: str, fields: dict[str, Any]) -> None:
        self.events.append((kind, dict(fields)))

    def metrics(self, values: dict[str, Any]) -> None:
        pass

    def show(self, state: str) -> None:
        self.led.append(state)

    def close(self) -> None:
        pass

    def codes(self) -> list[str]:
        return [f.get("code", kind) if kind == "error" else kind for kind, f in self.events]


def conversation(k: KioskThread, sim: AgentSimulator) -> Any:
    """One press-talk-press conversation; returns the simulator's session."""
    n = len(sim.sessions)
    k.press()
    k.wait_state(c.LISTENING)
    wait_for(lambda: len(sim.sessions) > n, 20, "the session")
    k.press()
    k.wait_state(c.IDLE)
    return sim.sessions[n]


def kiosk_on(tmp_path: Path, sim: AgentSimulator, state: Path) -> tuple[KioskThread, Recorder]:
    settings = kiosk_settings(tmp_path, sim.url, device={"state_dir": str(state), "store_retry_s": 1.0})
    rec = Recorder()
    return KioskThread(settings, reporter=rec, led=rec), rec


def test_the_kiosk_runs_through_a_locked_store_and_writes_back_once_it_is_free(tmp_path: Path, sim: AgentSimulator) -> None:
    state = tmp_path / "state"
    store = SessionStore(state)
    store.record_start("earlier", "agent-1", "default", None)
    store.close()
    other = exclusive_lock(state)
    k, rec = kiosk_on(tmp_path, sim, state)
    with k:
        assert "store_unavailable" in rec.codes() and "store_corrupt" not in rec.codes()
        assert k.on_loop(lambda: (k.kiosk.metrics()["store_ok"], rec.led[-1])) == (False, "store_fault")
        first = conversation(k, sim)
        second = conversation(k, sim)  # resume works within the process
        assert second.initiate["data"]["session_continuation"] == {"session_id": first.session_id}
        other.rollback()
        other.close()
        wait_for(lambda: "store_recovered" in rec.codes(), 20, "the store back on disk")
        # read on the loop: the event goes out before the LED is set, in the same callback (and a
        # store query between them lets the test thread in)
        assert k.on_loop(lambda: (k.kiosk.metrics()["store_ok"], rec.led[-1])) == (True, c.IDLE)
    assert corrupt_copies(state) == []
    assert stored(state) == [second.session_id, first.session_id, "earlier"]


def test_the_kiosk_starts_and_resumes_on_a_read_only_state_dir(tmp_path: Path, tmpfs: Tmpfs, sim: AgentSimulator) -> None:
    store = SessionStore(tmpfs.path)
    store.record_start("on-card", "agent-1", "default", None)
    store.close()
    tmpfs.readonly(True)
    k, rec = kiosk_on(tmp_path, sim, tmpfs.path)  # raised OSError (exit 1, a crash loop) before
    with k:
        assert "store_unavailable" in rec.codes() and rec.led[-1] == "store_fault"
        first = conversation(k, sim)
        assert first.initiate["data"]["session_continuation"] == {"session_id": "on-card"}
        tmpfs.readonly(False)
        wait_for(lambda: "store_recovered" in rec.codes(), 10, "the store back on disk")
        second = conversation(k, sim)
        assert second.initiate["data"]["session_continuation"] == {"session_id": first.session_id}
    assert stored(tmpfs.path) == [second.session_id, first.session_id, "on-card"]


def test_the_kiosk_runs_on_a_full_disk(tmp_path: Path, tmpfs: Tmpfs, sim: AgentSimulator) -> None:
    filler = tmpfs.fill()
    k, rec = kiosk_on(tmp_path, sim, tmpfs.path)
    with k:
        first = conversation(k, sim)
        assert "store_unavailable" in rec.codes() and corrupt_copies(tmpfs.path) == []
        filler.unlink()
        wait_for(lambda: "store_recovered" in rec.codes(), 10, "the store back on disk")
    assert stored(tmpfs.path) == [first.session_id]


def test_a_daemon_process_on_a_read_only_state_dir_starts_and_stays_up(tmp_path: Path, tmpfs: Tmpfs, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    tmpfs.readonly(True)
    cfg = tmp_path / "config.toml"
    mic = write_wav(tmp_path / "mic.wav", bytes(32000 * 2))
    cfg.write_text(
        toml_dump(
            {
                "device": {"id": "ro-kiosk", "state_dir": str(tmpfs.path / "state")},
                "agent": {"endpoint": sim.url, "agent_id": "agent-1"},
                "audio": {"input": f"loop:{mic}", "output": "null"},
                "button": {"source": "keyboard"},
            }
        )
    )
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log(r"store_unavailable")
    d.wait_log(r"ready: device ro-kiosk")
    mark = d.press()
    d.wait_log(r"state: listening", after=mark)
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_the_sessions_command_refuses_an_unusable_store_instead_of_faking_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = SessionStore(state)
    store.record_start("kept", "agent", "default", None)
    store.close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(state)}}))
    other = exclusive_lock(state)
    out = subprocess.run([sys.executable, "-m", "edge_agent", "sessions", "-c", str(cfg), "--forget"], capture_output=True, text=True, cwd=REPO, timeout=60)
    other.rollback()
    other.close()
    assert out.returncode == 1 and "locked" in out.stderr, out.stdout + out.stderr
    assert stored(state) == ["kept"] and corrupt_copies(state) == []
    # a writer's lock (not an exclusive one) opens fine and fails the wipe itself: it said
    # "forgot 1 sessions", exit 0, while the disk kept every id (the pending wipe died with the process)
    writer = sqlite3.connect(state / DB_NAME, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    out = subprocess.run([sys.executable, "-m", "edge_agent", "sessions", "-c", str(cfg), "--forget"], capture_output=True, text=True, cwd=REPO, timeout=60)
    writer.rollback()
    writer.close()
    assert out.returncode == 1 and "NOT forgotten" in out.stderr and "forgot" not in out.stdout, out.stdout + out.stderr
    assert stored(state) == ["kept"]


def test_once_the_store_is_back_a_press_continues_what_it_holds(tmp_path: Path, sim: AgentSimulator) -> None:
    state = tmp_path / "state"
    SessionStore(state).close()
    other = sqlite3.connect(state / DB_NAME, isolation_level=None)
    other.execute("INSERT INTO sessions (id, agent, slot, started_at) VALUES ('earlier', 'agent-1', 'default', ?)", (time.time(),))
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")  # nothing of the store can be read: the kiosk starts blank
    k, rec = kiosk_on(tmp_path, sim, state)
    with k:
        assert "store_unavailable" in rec.codes()
        other.rollback()
        other.close()
        wait_for(lambda: "store_recovered" in rec.codes(), 10, "the store back on disk")
        first = conversation(k, sim)
        assert first.initiate["data"]["session_continuation"] == {"session_id": "earlier"}


def test_a_storage_fault_the_kiosk_runs_through_is_logged_as_a_warning(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """`error: code='store_unavailable'` went to the journal at INFO, as if routine (and not at
    all with `log.level = "warning"`)."""
    state = tmp_path / "state"
    SessionStore(state).close()
    other = exclusive_lock(state)
    caplog.set_level(logging.INFO, logger="edge_agent")
    k, rec = kiosk_on(tmp_path, sim, state)
    with k:
        assert "store_unavailable" in rec.codes()
    other.rollback()
    other.close()
    logged = [r for r in caplog.records if "store_unavailable" in r.getMessage()]
    assert logged and all(r.levelno == logging.WARNING for r in logged), [(r.levelname, r.getMessage()) for r in logged]


def test_making_the_store_private_never_follows_a_link(tmp_path: Path) -> None:
    """The service user can plant links in its own state dir; root's `sessions --forget` then made
    the store's files 0600 through them, chmodding whatever they pointed to (say /etc/passwd)."""
    from edge_agent.core.statefiles import make_private

    victim = tmp_path / "victim.conf"
    victim.write_text("someone else's file\n")
    victim.chmod(0o644)
    state = tmp_path / "state"
    state.mkdir()
    (state / (DB_NAME + "-wal")).symlink_to(victim)
    make_private(state / (DB_NAME + "-wal"), 0o600)
    assert victim.stat().st_mode & 0o777 == 0o644
    SessionStore(state).close()  # the store's own pass over its files
    assert victim.stat().st_mode & 0o777 == 0o644 and victim.read_text() == "someone else's file\n"
    fifo = state / "fifo"
    os.mkfifo(fifo, 0o644)
    make_private(fifo, 0o600)  # no regular file: left as it is (and the open did not block)
    assert fifo.stat().st_mode & 0o777 == 0o644


def test_a_fifo_at_the_store_path_is_a_fault_not_a_hang(tmp_path: Path) -> None:
    """SQLite opening a FIFO at the store's path read-only (the salvage of what a read-only card
    still holds) waited for a writer: `run` hung before its first log line, deaf to Ctrl-C. (In a
    child process: the wait is inside SQLite, where no signal reaches Python.)"""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.mkfifo(state / DB_NAME)
    code = (
        "import sys; from edge_agent.core.store import SessionStore; s = SessionStore(__import__('pathlib').Path(sys.argv[1]));"
        " s.record_start('s', 'agent', 'default', None); print(s.fault is not None, s.newest('agent') is not None); s.close()"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code, str(state)], capture_output=True, text=True, cwd=REPO, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("opening the store hung on the FIFO")
    assert out.stdout.split() == ["True", "True"], out.stdout + out.stderr  # a fault; the kiosk carries on in memory


def test_the_installers_check_on_a_full_card_is_one_line_and_leaves_no_empty_file(tmp_path: Path) -> None:
    """`edge-agent echo ... -o OUT` with no room left for OUT: the check that opens it first
    passed, the write failed as an unexpected error (exit 70) and left OUT at 0 bytes."""
    data = REPO / "tests" / "data"
    speaker = tmp_path / "played.wav"
    mic = data / "kiosk_dev_quiet.wav"
    with wave.open(str(mic)) as w:
        frames = w.getnframes()
    write_wav(speaker, bytes(2 * frames))
    fs = Tmpfs(tmp_path / "card", "64k")
    try:
        fs.fill()
        out = fs.path / "clean.wav"
        done = subprocess.run([sys.executable, "-m", "edge_agent", "echo", str(mic), str(speaker), "-o", str(out)], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert [line for line in done.stderr.splitlines() if line.startswith("edge-agent")] == [f"edge-agent: cannot write {out}: No space left on device"], done.stderr
        assert not out.exists()
    finally:
        fs.umount()


def _as_a_stranger(state: Path) -> list[str]:
    """A command prefix (and the state dir's permissions) that make `state` another user's 0700
    dir for the child: as root, its owner changed and the child without the capabilities that
    let root read anything (setpriv, util-linux); as a user, the dir made unsearchable."""
    if os.geteuid() != 0:
        state.chmod(0)
        return []
    os.chown(state, 4321, 4321)
    state.chmod(0o700)
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_a_state_dir_this_user_may_not_search_is_a_store_fault_not_a_crash(tmp_path: Path) -> None:
    """An operator runs `edge-agent sessions` (or `run`) as a user who may not search the
    service's 0700 state dir: both exited 70, "unexpected error: PermissionError ... report it";
    `run` is to keep sessions in memory, `sessions` to say what to do, in one line."""
    state = tmp_path / "state"
    SessionStore(state).close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(state)}}))
    prefix = _as_a_stranger(state)
    try:
        for args in (["sessions"], ["sessions", "--forget"]):
            out = subprocess.run([*prefix, sys.executable, "-m", "edge_agent", *args, "-c", str(cfg)], capture_output=True, text=True, timeout=60, cwd=REPO)
            assert out.returncode == 1 and out.stderr.count("\n") == 1 and "cannot read" in out.stderr and "unexpected" not in out.stderr, (args, out.stderr)
        probe = f"from edge_agent.core.store import SessionStore; print(SessionStore({str(state)!r}).fault)"
        out = subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 0 and "Permission denied" in out.stdout, out.stdout + out.stderr
    finally:
        state.chmod(0o700)


def test_a_slot_forgotten_while_the_store_runs_in_memory_is_forgotten_on_disk_when_it_comes_back(tmp_path: Path) -> None:
    """A fleet-wide forget of one slot (a badge holder's) reaching a kiosk whose card was busy
    deleted it only in memory: when the disk came back, `retry` wrote memory back and the slot's
    rows on disk stayed, so the next badge scan continued the forgotten session (found by an
    attacker). Other slots' sessions, and what was recorded in memory meanwhile, stay."""
    store = SessionStore(tmp_path, busy_timeout_s=0.05, retry_s=1.0)
    store.record_start("alice-1", "agent", "b-alice", None, 1000.0)
    store.record_start("s-default", "agent", "default", None, 1001.0)
    blocker = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer, a stuck card: writes fail, the store goes to memory
    store.record_start("s-default-2", "agent", "default", None, 1002.0)
    assert store.fault is not None
    assert store.forget_slot("agent", "b-alice") == 1 and store.newest("agent", "b-alice") is None
    blocker.execute("ROLLBACK")
    blocker.close()
    assert store.retry(now=10**9) and store.fault is None
    assert store.newest("agent", "b-alice") is None
    assert store.newest("agent", "default").id == "s-default-2" and store.get("s-default") is not None
    store.close()
    again = SessionStore(tmp_path)  # what the disk holds, read afresh
    assert again.newest("agent", "b-alice") is None and again.newest("agent", "default").id == "s-default-2"
    again.close()


def test_a_row_with_text_where_a_time_belongs_is_skipped_not_a_crash_at_start(tmp_path: Path) -> None:
    """A damaged record, a hand edit or another tool's import left TEXT in a REAL column of the
    non-STRICT table; `PRAGMA quick_check` passes it, so it is no corruption to move aside, and
    the daemon died at start (`time.time() - newest.last_active_at`: TypeError, exit 70, a
    restart loop into the start limit; found by an attacker). Every read skips such a row: the
    kiosk starts, continues the newest sound session, and `edge-agent sessions` lists the rest."""
    from edge_agent.hardware.button import NoButton
    from edge_agent.service.daemon import Kiosk

    settings = kiosk_settings(tmp_path, "ws://127.0.0.1:9/")
    state = settings.device.state_dir
    store = SessionStore(state)
    store.record_start("s-old", settings.agent.agent_key, settings.session.slot, None, 1000.0)
    store.record_start("s-bad", settings.agent.agent_key, settings.session.slot, None, 2000.0)
    store.close()
    db = sqlite3.connect(state / DB_NAME)
    db.execute("UPDATE sessions SET ended_at = 'garbled' WHERE id = 's-bad'")
    db.commit()
    assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    db.close()
    kiosk = Kiosk(settings, button=NoButton())
    try:
        assert kiosk.store.newest(settings.agent.agent_key, settings.session.slot).id == "s-old"
        assert kiosk.store.get("s-bad") is None and [s.id for s in kiosk.store.recent()] == ["s-old"]
    finally:
        kiosk.store.close()
    listed = subprocess.run([sys.executable, "-m", "edge_agent", "sessions", "--state-dir", str(state), "--json"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert [s["id"] for s in json.loads(listed.stdout)] == ["s-old"]


@pytest.mark.parametrize("bad", ["started_at = 'garbled'", "started_at = 9e999", "resumed_at = 9e999", "ended_at = x'00'", "started_at = started_at * 1000"])
def test_a_row_of_the_wrong_type_or_an_infinite_time_is_dropped_when_the_store_opens(tmp_path: Path, bad: str) -> None:
    """Reads skipped such a row, but every write still compared with it: SQLite orders TEXT above
    any number and +inf above every time, so it was the newest of its slot for good, a newer
    session another kiosk shared for that slot was never filed, and an infinite one shadowed
    every later session and was never pruned (found by an attacker)."""
    state = tmp_path / "state"
    store = SessionStore(state, 3)
    store.record_start("s-old", "agent", "b-alice", None, time.time() - 60)
    store.record_start("s-bad", "agent", "b-alice", None, time.time() - 30)
    store.close()
    db = sqlite3.connect(state / DB_NAME)
    db.execute(f"UPDATE sessions SET {bad} WHERE id = 's-bad'")
    db.commit()
    db.close()
    store = SessionStore(state, 3)
    try:
        assert store.merge_shared([("agent", "b-alice", "s-shared", None, time.time(), None)]) == 1
        assert store.newest("agent", "b-alice").id == "s-shared"
        store.record_start("s-now", "agent", "b-alice", None, time.time() + 1)
        assert store.newest("agent", "b-alice").id == "s-now"
    finally:
        store.close()
    db = sqlite3.connect(state / DB_NAME)
    assert db.execute("SELECT count(*) FROM sessions WHERE id = 's-bad'").fetchone()[0] == 0
    db.close()


def test_a_row_of_an_infinite_time_on_a_read_only_card_stays_out_of_memory_and_off_the_disk(tmpfs: Tmpfs) -> None:
    """A card read-only at boot: the store salvaged such a row into memory, where it shadowed the
    shared sessions as on disk, and the card back, wrote it back to the disk it was to be dropped
    from (found by an attacker)."""
    state = tmpfs.path
    store = SessionStore(state, 3)
    store.record_start("s-old", "agent", "b-alice", None, time.time() - 60)
    store.record_start("s-bad", "agent", "b-alice", None, time.time() - 30)
    store.close()
    db = sqlite3.connect(state / DB_NAME)
    db.execute("UPDATE sessions SET started_at = 9e999 WHERE id = 's-bad'")
    db.commit()
    db.close()
    tmpfs.readonly(True)
    store = SessionStore(state, 3, retry_s=0.0)
    try:
        assert store.fault is not None  # in memory, from what the disk holds
        filed = store.merge_shared([("agent", "b-alice", "s-shared", None, time.time(), None)])
        tmpfs.readonly(False)
        assert store.retry(now=time.monotonic() + 1)
        newest = store.newest("agent", "b-alice")
    finally:
        store.close()
    db = sqlite3.connect(state / DB_NAME)
    bad_on_disk = db.execute("SELECT count(*) FROM sessions WHERE id = 's-bad'").fetchone()[0]
    db.close()
    assert (filed, newest.id if newest else None, bad_on_disk) == (1, "s-shared", 0)


# ----------------------------------------------------------------------------- the clock behind, the card read-only at boot
def _a_visitor_recorded_a_day_behind(state: Path, monkeypatch: pytest.MonkeyPatch, keep: int) -> dict[str, float]:
    """A Pi booted with yesterday's time served a visitor after two of the fleet's pointers (the
    right time) came in: the visitor's session, written last, is stamped a day before them.
    Returns the clock, still a day behind; set `now` to set it right."""
    import edge_agent.core.store as store_module

    true_now = time.time()
    clock = {"now": true_now - AHEAD, "true": true_now}
    monkeypatch.setattr(store_module.time, "time", lambda: clock["now"])
    store = SessionStore(state, keep_sessions=keep)
    assert store.merge_shared([("agent", f"p{i}", f"s-p{i}", None, true_now - 600.0 + i, None) for i in range(2)]) == 2
    store.record_start("s-visitor", "agent", "default", None)
    store.close()
    return clock


def test_a_card_read_only_at_boot_keeps_the_mark_of_a_clock_that_was_behind(tmpfs: Tmpfs, monkeypatch: pytest.MonkeyPatch) -> None:
    """NTP set the clock right across a reboot and the card came up read-only: the store ran in
    memory from what the disk held but without the disk's mark of rows written while the clock
    was behind, so it ranked by time again and the next pointer pruned the visitor's session
    (stamped a day early, written last). On disk the mark kept it."""
    clock = _a_visitor_recorded_a_day_behind(tmpfs.path, monkeypatch, keep=3)
    clock["now"] = clock["true"]
    tmpfs.readonly(True)
    store = SessionStore(tmpfs.path, keep_sessions=3)
    try:
        assert store.fault is not None
        assert store.merge_shared([("agent", "p9", "s-p9", None, clock["true"], None)]) == 1
        assert store.get("s-visitor") is not None, "the visitor's session was pruned in memory, ranked by time"
        assert store.get("s-p0") is None  # the first written goes
    finally:
        store.close()


@pytest.mark.parametrize("clock_set_right", [False, True])
def test_a_card_read_only_at_boot_with_fewer_sessions_kept_keeps_those_written_last(tmpfs: Tmpfs, monkeypatch: pytest.MonkeyPatch, clock_set_right: bool) -> None:
    """`keep_sessions` lowered in the same reboot (an operator's edit) and the card read-only:
    the store took the newest rows *by time* into memory, so with the clock behind (or marked
    as having been) the visitor's session, written last, was left on the card and out of memory:
    their next press started fresh. Taken as pruning would take them: by the order written."""
    clock = _a_visitor_recorded_a_day_behind(tmpfs.path, monkeypatch, keep=5)
    if clock_set_right:
        clock["now"] = clock["true"]
    tmpfs.readonly(True)
    store = SessionStore(tmpfs.path, keep_sessions=2)
    try:
        assert store.fault is not None
        newest = store.newest("agent", "default")
        assert newest is not None and newest.id == "s-visitor"
        assert {s.id for s in store.recent()} == {"s-visitor", "s-p1"}
    finally:
        store.close()


# ----------------------------------------------------------------------------- a helper's attacks on the store (2026-12-06), each failed before its fix
def _crash_after_recording(state: Path, *ids: str) -> None:
    """A kiosk that filed `ids` (in this order, one slot) and lost power before closing the store:
    the database and its -wal and -shm stay as a power cut leaves them (nothing checkpointed)."""
    code = (
        "import os, sys; from pathlib import Path; from edge_agent.core.store import SessionStore\n"
        "s = SessionStore(Path(sys.argv[1]))\n"
        "prev = None\n"
        "for i, sid in enumerate(sys.argv[2:]):\n"
        "    s.record_start(sid, 'agent', 'default', prev, started_at=100.0 + i); prev = sid\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(state), *ids], check=True, cwd=REPO, timeout=60)


def _newest_on_a_read_only_card(state: Path) -> str | None:
    """The session a press would continue, the store opened on `state` mounted read-only."""
    store = SessionStore(state)
    try:
        assert store.fault is not None  # in memory, from what the card holds
        newest = store.newest("agent")
        return newest.id if newest else None
    finally:
        store.close()


def test_a_card_read_only_at_boot_after_a_power_cut_without_its_shm_still_resumes(tmpfs: Tmpfs) -> None:
    """Power cut (the sessions are in the -wal, nothing checkpointed), the -shm gone (a state dir
    restored from a backup that skips -shm files, a cleaner), and the card comes up read-only.
    `edge-agent sessions` reads that WAL (storeread copies it); the kiosk's own salvage tried
    `mode=ro` (refused without a -shm) and then `immutable=1`, which ignores the WAL: it ran in
    memory with no session at all and the visitor's next press started fresh."""
    state = tmpfs.path
    _crash_after_recording(state, "s-first", "s-visitor")
    assert (state / f"{DB_NAME}-wal").stat().st_size > 0
    (state / f"{DB_NAME}-shm").unlink()
    tmpfs.readonly(True)
    assert [s.id for s in recent_read_only(state / DB_NAME, 10)] == ["s-visitor", "s-first"]  # the CLI sees them
    assert _newest_on_a_read_only_card(state) == "s-visitor", "the read-only card's WAL was left out of memory"


def test_a_write_order_past_what_user_version_holds_keeps_the_mark_of_a_clock_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`filed` is trusted up to 2**52 (FILED_UNSOUND), but the clock-behind mark lives in PRAGMA
    user_version, a signed 32-bit number: SQLite stores 0 for anything past 2**31 - 1, silently.
    One row imported with its write order in milliseconds (another tool's import, a hand edit)
    and every later write is numbered past it: the mark of a visitor filed while the clock was
    behind read 0, and once NTP set the clock right the next pointer pruned that visitor's
    session (stamped a day early) instead of the first row written."""
    import edge_agent.core.store as store_module

    true_now = time.time()
    clock = {"now": true_now - AHEAD}
    monkeypatch.setattr(store_module.time, "time", lambda: clock["now"])
    store = SessionStore(tmp_path, keep_sessions=3)
    assert store.merge_shared([("agent", "p0", "s-p0", None, true_now - 600.0, None)]) == 1
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    db.execute("UPDATE sessions SET filed = 1764000000000 WHERE id = 's-p0'")  # milliseconds: sound by FILED_UNSOUND
    db.close()
    store = SessionStore(tmp_path, keep_sessions=3)
    assert store.merge_shared([("agent", "p1", "s-p1", None, true_now - 500.0, None)]) == 1
    store.record_start("s-visitor", "agent", "default", None)  # the clock a day behind
    store.close()
    clock["now"] = true_now  # NTP
    store = SessionStore(tmp_path, keep_sessions=3)
    try:
        assert store.fault is None, store.fault
        assert store.merge_shared([("agent", "p9", "s-p9", None, true_now, None)]) == 1
        assert store.get("s-visitor") is not None, "the visitor's session was pruned: the mark read 0"
        assert store.get("s-p0") is None  # the first written goes
    finally:
        store.close()


def test_forget_while_the_store_runs_in_memory_also_forgets_that_the_clock_was_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """d54c1ad made forget clear the clock-behind mark on disk (the write order restarts at 1,
    under the old mark, and pruning ranked by write order with the clock right). A forget that
    lands in memory (another program holds the store's write lock) deletes the rows there but
    keeps the mark carried from the disk: the new rows, numbered 1, 2, 3 under it, were pruned by
    write order, and a badge holder who talked ten seconds ago lost their thread to a fleet
    pointer three days old that merely arrived later. The disk then took the mark back too."""
    import edge_agent.core.store as store_module

    true_now = time.time()
    clock = {"now": true_now - AHEAD}
    monkeypatch.setattr(store_module.time, "time", lambda: clock["now"])
    store = SessionStore(tmp_path, keep_sessions=2, busy_timeout_s=0.1)
    assert store.merge_shared([("agent", "p0", "s-p0", None, true_now - 600.0, None)]) == 1
    store.record_start("s-visitor", "agent", "default", None)  # a day behind: the disk is marked
    clock["now"] = true_now  # NTP
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # a backup or `sqlite3` holding the write lock
    try:
        assert store.forget() == 2
        assert store.fault is not None and store.recent() == []
        store.record_start("s-badge", "agent", "badge-1", None, started_at=true_now - 10.0)
        assert store.merge_shared([("agent", "badge-2", "s-old-pointer", None, true_now - 3 * AHEAD, None)]) == 1
        store.record_start("s-now", "agent", "default", None, started_at=true_now)
        kept = {s.id for s in store.recent()}
    finally:
        other.rollback()
        other.close()
        store.close()
    assert kept == {"s-now", "s-badge"}, "pruned by write order under the mark forget left in memory"


def test_a_card_read_only_at_boot_continues_the_same_session_of_a_tie_as_the_disk(tmpfs: Tmpfs) -> None:
    """Two of the fleet's pointers for one slot started the same second (kiosks that publish whole
    seconds): merge_shared files the later one (ties by the larger id) and on disk the press
    continues it (`newest`: ties by rowid, the one filed last). The memory copy of a card
    read-only at boot is inserted newest first, so its rowids run backwards: there the tie went
    to the other session, and the visitor was handed someone else's conversation."""
    state = tmpfs.path
    store = SessionStore(state)
    t = float(int(time.time()) - 60)
    assert store.merge_shared([("agent", "default", "s-a", None, t, None)]) == 1
    assert store.merge_shared([("agent", "default", "s-b", None, t, None)]) == 1
    on_disk = store.newest("agent")
    store.close()
    assert on_disk is not None and on_disk.id == "s-b"
    tmpfs.readonly(True)
    assert _newest_on_a_read_only_card(state) == "s-b", "a read-only card continued the other session of the tie"


@pytest.mark.parametrize("reader", ["sessions", "doctor"])
def test_a_fifo_at_the_store_path_beside_a_wal_and_shm_is_an_error_not_a_hang_for_the_readers(tmp_path: Path, reader: str) -> None:
    """The kiosk's own salvage was made to skip a FIFO at the store's path (it hung before its
    first log line); the readers were not. With a -wal and a -shm beside it, `statefiles.read_only`
    opens the path `mode=ro` and SQLite waits there for a writer: `sudo edge-agent sessions` and
    the doctor hung for good, deaf to Ctrl-C (the service user can make all three in its own state
    dir). In a child process: the wait is inside SQLite."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.mkfifo(state / DB_NAME)
    (state / f"{DB_NAME}-wal").write_bytes(b"")
    (state / f"{DB_NAME}-shm").write_bytes(b"")
    if reader == "sessions":
        call = "from edge_agent.core.storeread import recent_read_only as f; args = (db, 5)"
    else:
        call = "from edge_agent.service.statecheck import _count_read_only as f; args = (db,)"
    code = f"import sys; from pathlib import Path; db = Path(sys.argv[1]); {call}\ntry:\n    f(*args)\nexcept Exception as exc:\n    print(type(exc).__name__)\n"
    try:
        out = subprocess.run([sys.executable, "-c", code, str(state / DB_NAME)], capture_output=True, text=True, cwd=REPO, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {reader} reader hung on the FIFO")
    assert out.stdout.strip() in ("StoreError", "StateDirProblem"), out.stdout + out.stderr


def test_forgetting_one_slot_deletes_the_moved_aside_copies_that_may_hold_it(tmp_path: Path) -> None:
    """A badge holder asks to be forgotten (a slot's forget, also a fleet's): their session was in a
    store since moved aside as corrupt. The copy cannot be read to delete their rows from, and it
    stayed on the card until a full forget."""
    (tmp_path / f"{DB_NAME}.corrupt-20260101T000000").write_bytes(b"badge-7 s-theirs")
    (tmp_path / f"{DB_NAME}.corrupt-20260101T000000-wal").write_bytes(b"badge-7 s-theirs")
    store = SessionStore(tmp_path)
    store.record_start("s-someone-else", "agent", "badge-9", None)
    assert store.forget_slot("agent", "badge-7") == 0  # nothing of theirs in the live store
    assert corrupt_copies(tmp_path) == []
    assert [s.id for s in store.recent()] == ["s-someone-else"]  # the other slots stay
