"""A helper's review (badgefleet2) of badge readers and fleet features, each test failing before
its fix: a badge left lying on the reader, retained metrics nobody current published, and the
`sessions` listing while the store ranks by write order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Broker, wait_for
from test_badge import SECRET, _Emitted, _secret, _settings, _write
from test_fleetview_review import REPO, _retain

from edge_agent.core import conversation as c
from edge_agent.core.slots import BadgeKeyer
from edge_agent.core.store import SessionStore
from edge_agent.hardware.badge import BadgeReader, typed


# ----------------------------------------------------------------------------- 1. a badge left lying on the reader
def test_a_badge_left_on_the_reader_does_not_take_the_kiosk_back_after_another_scan(tmp_path: Path) -> None:
    """Alice's card stays in the RFID field, re-read every 1.5 s (repeat_ignore_s 2 s, README: "the
    same badge again within repeat_ignore_s of its last read ... is ignored"). Bob scans his badge in
    between: his conversation starts, and Alice's card, re-read 0.5 s later (1.5 s after its own
    last read), is still a repeat. Only the last badge's read was remembered, so it was a press:
    Bob's conversation ended (`switched`) and Alice's started again, at every scan of anyone else."""
    fifo = tmp_path / "badge.fifo"
    os.mkfifo(fifo)
    clock = [100.0]
    reader = BadgeReader(_settings(device=str(fifo), secret_file=str(_secret(tmp_path)), repeat_ignore_s=2.0, min_interval_s=0.5), BadgeKeyer(SECRET), clock=lambda: clock[0])
    emitted = _Emitted()
    reader.start(emitted, lambda: None)
    keyer = BadgeKeyer(SECRET)
    alice, bob = keyer.slot_for("ALICE0042"), keyer.slot_for("BOB00007")
    try:
        start = time.time()
        for n, (at, badge) in enumerate([(100.0, "ALICE0042"), (101.5, "ALICE0042"), (102.5, "BOB00007"), (103.0, "ALICE0042"), (104.5, "ALICE0042")]):
            clock[0] = at
            _write(fifo, typed(badge, start_s=start + at))
            wait_for(lambda n=n: reader.counts["accepted"] + reader.counts["repeats"] + reader.counts["flood"] == n + 1, 20, f"read {n} handled")
        assert emitted.events == [c.Press(origin="badge", slot=alice), c.Press(origin="badge", slot=bob)], "the card left on the reader pressed again"
        assert reader.counts["repeats"] == 3
        clock[0] = 110.0  # Alice takes her card away and scans it again later: one press
        _write(fifo, typed("ALICE0042", start_s=start + 110))
        wait_for(lambda: len(emitted.events) == 3, 20, "a later scan taken")
    finally:
        reader.close()


# ----------------------------------------------------------------------------- 3. retained metrics nobody current published
def test_retained_metrics_are_not_shown_as_the_kiosks_current_figures(broker: Broker) -> None:
    """A kiosk publishes its metrics live, never retained (README: "metrics only every
    mqtt.metrics_interval_s (30 s), so wait that long for RTT, CPU, temperature and the echo room
    (null before)"). A metrics message the broker retained is someone else's (any operator login,
    a forged or a long-stale one): the view showed it as the kiosk's figures now, a healthy kiosk
    at 95 degrees with a POOR echo room, a sick one looking fine."""
    _retain(
        broker.port,
        {
            "edge-agent/k1/availability": b"online",
            "edge-agent/k1/state": json.dumps({"state": "idle", "since": "2026-01-01T00:00:00+00:00"}).encode(),
            "edge-agent/k1/metrics": json.dumps({"rtt_ms": 1.0, "cpu_percent": 1.0, "rss_mb": 40.0, "temperature_c": 95.0, "echo_poor_room": True}).encode(),
        },
    )
    r = subprocess.run([sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--json", "--wait-s", "1"], capture_output=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    row = {k["id"]: k for k in json.loads(r.stdout)["kiosks"]}["k1"]
    assert row["online"] is True and row["state"] == "idle"
    assert (row["rtt_ms"], row["cpu_percent"], row["temperature_c"], row["echo_poor_room"]) == (None, None, None, None), row


# ----------------------------------------------------------------------------- 4. the `sessions` listing while the store ranks by write order
def test_the_sessions_listing_shows_first_what_the_kiosk_holds_newest_after_a_boot_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Visitor A talked two hours ago (X, the clock right); the Pi booted three hours behind and
    visitor B talked (Z, written after X, stamped earlier); the clock is right again. The store is
    marked (README: "the rows written since come first (by time), the rest in write order") and the
    next press continues Z. `edge-agent sessions` ("newest first, the last 50 unless --limit")
    ranked by the wall clock alone: Z, the conversation just held, came after every session from
    before the boot, and `--limit` (50 by default, of a store of 1 000) cut it from the listing.
    The store's own `recent` (which names a slot's sessions in a fleet forget) ranked the same."""
    state = tmp_path / "state"
    true_now = time.time()
    store = SessionStore(state)
    for n in range(3):
        store.record_start(f"X{n}-before-the-boot", "agent-42", "default", None, started_at=true_now - 7200.0 + n)
    monkeypatch.setattr(time, "time", lambda: true_now - 3 * 3600.0 + 3000.0)  # the boot three hours behind
    store.record_start("Z-visitor-b", "agent-42", "default", None, started_at=true_now - 3 * 3600.0 + 3000.0)
    store.record_end("Z-visitor-b", "button", ended_at=true_now - 3 * 3600.0 + 3100.0)
    monkeypatch.undo()  # NTP set the clock right
    newest = store.newest("agent-42", "default")
    assert newest is not None and newest.id == "Z-visitor-b"  # what the next press continues
    assert [s.id for s in store.recent(2)] == ["Z-visitor-b", "X2-before-the-boot"]
    store.close()
    r = subprocess.run([sys.executable, "-m", "edge_agent", "sessions", "--state-dir", str(state), "--json", "--limit", "2"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [row["id"] for row in json.loads(r.stdout)] == ["Z-visitor-b", "X2-before-the-boot"], r.stdout
