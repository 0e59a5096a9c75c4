"""A hostile tester's second pass over the storage path (a helper's review, 2026-12-06): a
store whose rows carry terminal escape codes listed by `edge-agent sessions` (often run as
root), and a session resumed while the store ran in memory written back to the card as ended."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import toml_dump

from edge_agent.cli import main
from edge_agent.core.store import DB_NAME, SessionStore

LATER = 1e12  # a monotonic time past any retry interval


def test_the_sessions_listing_prints_no_terminal_escape_codes_from_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The store is a file anyone with the service user's rights (or a store copied off another
    kiosk, read with --state-dir) can fill: a row is read as long as its values have the right
    types (`SOUND_ROW`), and the listing printed its id, agent, slot, continued id and end reason
    as they were: an OSC/CSI sequence retitled or rewrote root's terminal (ESC ] ... BEL; a
    carriage return hid the row). Not printable is shown as `?`, as fleet/view.py shows MQTT text."""
    state = tmp_path / "state"
    store = SessionStore(state)
    store.record_start("plain-1", "agent", "default", None, started_at=1000.0)
    store.close()
    db = sqlite3.connect(state / DB_NAME, isolation_level=None)
    db.execute(
        "INSERT INTO sessions (id, agent, slot, continued_from, started_at, ended_at, end_reason, resumed_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        ("evil\x1b]0;owned\x07\rX", "ag\x1b[2J", "sl\u202eot", "prev\x1b[31m", 2000.0, 2001.0, "idle\x1b[8m\n"),
    )
    db.close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(state)}}))
    assert main(["sessions", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out and "\u202e" not in out, repr(out)
    lines = out.splitlines()
    assert len(lines) == 3, lines  # the header and one line per session: the end reason's newline made a fourth
    assert "evil?]0;owned??X" in lines[1] and "plain-1" in lines[2], lines


@pytest.mark.parametrize("resumed_at", [2000.0, 500.0], ids=["clock right", "clock behind"])
def test_a_session_resumed_while_in_memory_is_not_written_back_as_ended(tmp_path: Path, resumed_at: float) -> None:
    """A session that ended on disk and was handed out again (same id) while another process held
    the store: in memory it was active again (`record_start`: its end cleared), but the write-back
    kept the disk's end (`coalesce(excluded.ended_at, ended_at)`): the card said the running
    conversation had ended before it was resumed (`sessions` listed it ended by idle; a restart
    read it so). A row memory resumed is memory's, end included, also when the resume is dated
    before the disk's start (a Pi without a battery clock, until NTP answers: a first fix compared
    the times and missed it)."""
    state = tmp_path / "state"
    store = SessionStore(state, retry_s=0.0)
    store.record_start("s-1", "agent", "default", None, started_at=1000.0)
    store.record_end("s-1", "idle", ended_at=1100.0)
    other = sqlite3.connect(state / DB_NAME, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing: the next write goes to memory
    try:
        store.record_start("s-1", "agent", "default", None, started_at=resumed_at)  # the agent handed it out again
        assert store.fault is not None
        assert store.get("s-1") is not None and store.get("s-1").ended_at is None  # type: ignore[union-attr]
    finally:
        other.execute("COMMIT")
        other.close()
    assert store.retry(now=LATER) and store.fault is None
    store.close()
    reread = SessionStore(state)
    try:
        got = reread.get("s-1")
        assert got is not None and got.resumed_at == resumed_at
        assert got.ended_at is None and got.end_reason is None, got
    finally:
        reread.close()


def test_the_corrupt_file_just_moved_aside_is_kept_when_the_clock_is_behind(tmp_path: Path) -> None:
    """A Pi without a battery clock boots in 1970 (or behind, until NTP answers). Copies moved
    aside after the clock was right carry later names than one moved aside now, and the copies
    kept were the newest *by name*: the file just moved aside (and its WAL) was deleted in the
    same call, `recovered_from` and the `store_corrupt` event named a file that was not there,
    and the copies kept were the older damage. The copy just made is always one of those kept."""
    state = tmp_path / "state"
    SessionStore(state).close()
    for stamp in ("20990101T000000", "20990102T000000"):  # made while the clock was right (here: ahead of it)
        (state / f"{DB_NAME}.corrupt-{stamp}").write_bytes(b"older damage")
    for suffix in ("-wal", "-shm"):
        Path(f"{state / DB_NAME}{suffix}").unlink(missing_ok=True)
    (state / DB_NAME).write_bytes(b"this is not an sqlite database at all" * 200)
    store = SessionStore(state)
    try:
        assert store.fault is None and store.recovered_from is not None
        assert store.recovered_from.exists(), f"{store.recovered_from} was deleted as it was moved aside"
        assert store.recovered_from.read_bytes().startswith(b"this is not an sqlite database")
        assert len(store.corrupt_copies()) == 2  # still bounded
    finally:
        store.close()


def test_a_row_whose_text_is_no_utf8_does_not_move_the_kiosks_store_to_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One row whose id is bytes that are no UTF-8 (a hand edit, another tool's import): every
    read that met it raised, so the kiosk's store moved to memory at its first lookup. The press
    then started fresh (the card's sessions were never read again) and the fault, with the row's
    escape codes in it, went to the log and the status. The row is deleted (said once, without its
    bytes) and the store stays on disk with the rest of its sessions."""
    state = tmp_path / "state"
    store = SessionStore(state)
    store.record_start("kept-1", "agent", "default", None, started_at=1000.0)
    store.close()
    db = sqlite3.connect(state / DB_NAME, isolation_level=None)
    db.execute("INSERT INTO sessions (id, agent, slot, started_at) VALUES (CAST(X'61ff1b5d303b7807' AS TEXT), 'agent', 'default', 2000.0)")
    db.close()
    store = SessionStore(state)
    try:
        newest = store.newest("agent")
        assert store.fault is None, store.fault
        assert newest is not None and newest.id == "kept-1"
        assert [s.id for s in store.recent()] == ["kept-1"]
        store.record_start("next-1", "agent", "default", "kept-1", started_at=3000.0)
        assert store.fault is None
    finally:
        store.close()
    assert "1 row(s) with text that is no UTF-8 deleted" in caplog.text and "\x1b" not in caplog.text
    assert SessionStore(state).newest("agent").id == "next-1"  # type: ignore[union-attr]
