"""A hostile review of the badge reader and the session store (2026-12-05, a helper's): a card
left on a reader, a secret file of zeros, a forget while another program reads the store, and a
kiosk starting while `sessions --forget` wipes. Each failed before its fix."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import toml_dump

from edge_agent.cli import main
from edge_agent.core import conversation as c
from edge_agent.core.config import from_dict
from edge_agent.core.config_hardware import BadgeSettings
from edge_agent.core.slots import BadgeKeyer
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.errors import ConfigError
from edge_agent.hardware.badge import BadgeReader
from edge_agent.service import instance

SECRET = b"fleet-secret-0123456789abcdef"


def _settings(**badge: Any) -> BadgeSettings:
    return from_dict({"badge": badge}).badge


def test_a_badge_left_on_a_continuously_reading_reader_is_one_press() -> None:
    """An RFID reader re-reads a card that stays in its field (every 1.5 s here, within
    repeat_ignore_s = 2 of the read before). The window was counted from the last *accepted*
    read: every other read was a press, and a second press of one's own badge ends one's
    conversation, so it ended and started again every 3 s (each start a billed session)."""
    clock = [1000.0]
    reader = BadgeReader(_settings(device="/dev/null", secret_file="x", repeat_ignore_s=2.0, min_interval_s=0.5), BadgeKeyer(SECRET), clock=lambda: clock[0])
    emitted: list[c.Event] = []
    reader._emit = emitted.append
    for i in range(9):  # on the reader for 12 s
        clock[0] = 1000.0 + 1.5 * i
        reader.accept("CARD0001")
    assert len(emitted) == 1 and reader.counts["repeats"] == 8, reader.counts
    clock[0] += 2.5  # taken away, and scanned again: a press (it ends the conversation)
    reader.accept("CARD0001")
    assert len(emitted) == 2, reader.counts
    # a badge dropped as a flood (too soon after another) starts no repeat window: scanned again
    # once the flood interval is over, it is a press
    clock[0] += 10.0
    reader.accept("CARD0002")
    clock[0] += 0.2
    reader.accept("CARD0003")  # flood
    clock[0] += 0.5
    reader.accept("CARD0003")
    assert len(emitted) == 4 and reader.counts["flood"] == 1, reader.counts


def test_a_secret_file_of_one_byte_repeated_is_no_secret(tmp_path: Path) -> None:
    """`head -c 32 /dev/zero`, or a file a power cut left NUL-filled: 32 NUL bytes passed as a
    secret everyone knows, so anyone could compute a badge's slot key and test a guess offline."""
    secret = tmp_path / "badge_secret"
    for content in (b"\0" * 32, b"a" * 40):
        secret.write_bytes(content)
        with pytest.raises(ConfigError, match="one byte repeated"):
            _settings(device="/dev/null", secret_file=str(secret)).with_secret()
    secret.write_bytes(os.urandom(32))
    assert _settings(device="/dev/null", secret_file=str(secret)).with_secret().secret is not None


def _holding(state: Path) -> list[str]:
    return sorted(p.name for p in state.iterdir() if p.is_file() and b"secret-id-" in p.read_bytes())


def test_a_forget_while_another_program_reads_the_store_says_the_card_is_not_scrubbed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A read held open during the forget (`edge-agent sessions`, a backup) keeps the checkpoint
    from truncating the WAL: `sessions --forget` said "forgot 50" with every id still in the
    `-wal` file. Now it waits a moment, then says so and exits 1; run again with the reader gone,
    it scrubs them."""
    state = tmp_path / "state"
    store = SessionStore(state)
    for i in range(50):
        store.record_start(f"secret-id-{i:04d}", "agent", "default", None, started_at=100.0 + i)
    store.close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(state)}}))
    reader = sqlite3.connect(state / DB_NAME, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sessions").fetchone()
    try:
        assert main(["sessions", "--forget", "-c", str(cfg)]) == 1
        err = capsys.readouterr().err
        assert "forgot 50 sessions" in err and "NOT scrubbed from the card" in err, err
        assert _holding(state), "the reader should have kept the old pages (the test's premise)"
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert main(["sessions", "--forget", "-c", str(cfg)]) == 0
    assert _holding(state) == []


def test_a_kiosk_cannot_start_while_sessions_forget_is_wiping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sessions --forget` refuses beside a running kiosk (it would continue what was wiped), but
    checked only once, before it opened the store, and held no claim: a kiosk started meanwhile
    (systemd's Restart=, a reboot; the MQTT clear of the fleet's pointers waits on the broker) ran
    with the state dir, and a conversation in it survived in its memory."""
    state = tmp_path / "state"
    store = SessionStore(state)
    store.record_start("to-forget", "agent", "default", None, 100.0)
    store.close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(state)}}))
    started: list[object] = []
    real_forget = SessionStore.forget

    def forget_while_a_kiosk_starts(self: SessionStore, **kwargs: float) -> int:
        try:
            fd = instance.claim(state)  # what `edge-agent run` does first
        except instance.AnotherDaemon as exc:
            started.append(exc)
        else:
            started.append(fd)
            if fd is not None:
                os.close(fd)
        return real_forget(self, **kwargs)

    monkeypatch.setattr(SessionStore, "forget", forget_while_a_kiosk_starts)
    assert main(["sessions", "--forget", "-c", str(cfg)]) == 0
    assert started and isinstance(started[0], instance.AnotherDaemon), f"a daemon claimed the state dir mid-forget: {started}"
    fd = instance.claim(state)  # and released after it
    assert fd is not None
    os.close(fd)
