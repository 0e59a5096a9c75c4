"""A hostile review of the day's fixes (2026-12-06): each test (but the one keeping the ordinary
case) fails on the code before its fix.

The store now ranks a slot's newest session by write order while a row lies past the clock
(`storerows.newest_order`, commit 10616f0), but filing what the fleet shares
(`storerows.merge_pointer`) still took the slot's newest by the wall clock: a session stored
under a clock that ran ahead stayed "the newest" there, so a continuation of the session the
press now continues (the visitor moved on to kiosk B and talked there) was never filed. The
README: "A session that continues the slot's newest is newer whatever the kiosks' clocks say".
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from conftest import KioskThread, kiosk_settings, toml_dump, wait_for

from edge_agent.core import config
from edge_agent.core.store import SessionStore
from edge_agent.devtools.simulator import AgentSimulator

DAY_S = 86400.0


def test_a_continuation_of_the_session_a_press_continues_is_filed_while_a_row_lies_past_the_clock(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    try:
        now = time.time()
        # a visitor of a day the kiosk's clock ran ten days ahead (no battery clock, a bad time server)
        store.record_start("s-ahead", "agent", "badge-7", None, started_at=now + 10 * DAY_S)
        # today, the clock right: the badge holder talks here; the press ranks by write order
        store.record_start("s-here", "agent", "badge-7", None, started_at=now)
        newest = store.newest("agent", "badge-7")
        assert newest is not None and newest.id == "s-here"
        # the holder walks on to kiosk B (its clock right) and continues that conversation there
        filed = store.merge_shared([("agent", "badge-7", "s-at-b", "s-here", now + 30.0, None)])
        newest = store.newest("agent", "badge-7")
        assert filed == 1 and newest is not None and newest.id == "s-at-b", (filed, newest)
    finally:
        store.close()


def test_a_continuation_is_still_filed_once_and_ranks_first_with_the_clock_right(tmp_path: Path) -> None:
    """The fix keeps the ordinary case: no row past the clock, the continuation is the newest."""
    store = SessionStore(tmp_path)
    try:
        now = time.time()
        store.record_start("s-1", "agent", "badge-7", None, started_at=now - 60.0)
        filed = store.merge_shared([("agent", "badge-7", "s-2", "s-1", now - 30.0, None), ("agent", "badge-7", "s-2", "s-1", now - 30.0, None)])
        newest = store.newest("agent", "badge-7")
        assert filed == 1 and newest is not None and newest.id == "s-2"
    finally:
        store.close()


def test_a_reload_back_to_a_plain_ws_endpoint_is_warned_about_again(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """`ExposureLog` (commit b78e090) logs what a reload newly brings, but remembered every line for
    the life of the process: a reload to plain ws:// on the network (warned), one mending it to
    wss://, and a later one back to ws:// (a config restored from an old copy) sent the key and the
    visitors' voice in clear again with no word, the very case the fix was for."""
    settings = kiosk_settings(tmp_path, sim.url)
    cfg = tmp_path / "reload.toml"

    def reload_to(endpoint: str) -> None:
        agent = {"endpoint": endpoint, "agent_id": settings.agent.agent_id, "public_key": "test-key"}
        base = {"device": {"id": settings.device.id, "state_dir": str(settings.device.state_dir)}, "button": {"source": "none"}}
        cfg.write_text(toml_dump({**base, "agent": agent, "audio": {"input": settings.audio.input, "output": settings.audio.output}}))
        done = caplog.text.count("config reloaded")
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: config.load(cfg)))
        wait_for(lambda: caplog.text.count("config reloaded") == done + 1, 5, f"the reload to {endpoint}")

    with KioskThread(settings) as k:
        caplog.set_level(logging.INFO)
        reload_to("ws://192.0.2.10:8080/millis")
        assert caplog.text.count("exposure: agent.endpoint is plain ws://") == 1, caplog.text[-1500:]
        reload_to("wss://192.0.2.10:8443/millis")
        reload_to("ws://192.0.2.10:8080/millis")
        assert k.kiosk.settings.agent.endpoint == "ws://192.0.2.10:8080/millis"
        assert caplog.text.count("exposure: agent.endpoint is plain ws://") == 2, caplog.text[-1500:]
