"""A helper's review (attack7) of the day's changes: a fresh start's `replaces` in the fleet's
stores, and the standby proven at the press. Each test failed before its fix."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import KioskThread, kiosk_settings, wait_for
from test_share_fuzz import _newest, _skewed

from edge_agent.core import conversation as c
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import SimulatorThread


def test_a_replaced_session_heard_again_from_a_kiosk_ahead_does_not_take_the_slot_back() -> None:
    """Kiosk 1 (clock 120 s ahead) held s0 for p0 and went offline; it ended s0 meanwhile (paho
    holds the end). Kiosk 2 started a fresh s1 (`new`: it `replaces` s0), kiosk 0 filed it, then
    kiosk 2 went offline. Kiosk 1 back online sends s0's end: its start, still in the future for
    kiosk 0, is clamped to a later now, and kiosk 0's store moved s0 past s1, so its next press
    continued the conversation the person had chosen to leave. A continuation in s1's place is
    guarded (`storerows.merge_pointer`: the session the newest continues is not moved past it); a
    fresh start that `replaces` it is "newer whatever the clocks say, as a continuation" (README)."""
    for fresh in (False, True):
        fleet = _skewed([0.0, 120.0, 0.0])
        try:
            s0 = fleet.start(1, "p0")
            fleet.quiesce()
            assert _newest(fleet, "p0") == [s0, s0, s0]
            fleet.drop(1, notice=False)
            fleet.end(1, s0)  # paho holds it: kiosk 1 is offline
            s1 = fleet.start(2, "p0") if fresh else fleet.continue_newest(2, "p0")
            fleet.quiesce(reconnect=False)
            assert _newest(fleet, "p0")[0] == s1 and _newest(fleet, "p0")[2] == s1
            fleet.drop(2, notice=True)
            fleet.reconnect(1, flush_first=True)  # s0's end reaches the broker, then back to every kiosk online
            fleet.quiesce(reconnect=False)
            assert _newest(fleet, "p0")[0] == s1, f"{'a fresh' if fresh else 'a continuing'} s1 was taken back by its predecessor s0's end at kiosk 0"
        finally:
            fleet.close()


def test_a_press_on_a_live_standby_behind_a_slow_path_starts_one_session(tmp_path: Path) -> None:
    """A kiosk on a slow uplink (a congested mobile link: 1.8 s round trip) with the warm link.
    The first press after the start takes the standby; no round trip was measured yet, so the
    standby's proof gave the server 1.5 s to answer a ping sent behind `initiate`, took it for
    dead and connected afresh: the server, alive all along, had started a session on the first
    `initiate` (billed, nobody talking in it) and started a second on the fresh link. The
    standby's own connect measured the path: its answer may take that long."""
    with SimulatorThread() as sim, FaultProxyThread("127.0.0.1", sim.port) as fp:
        fp.delay_s = 0.9  # each way
        with KioskThread(kiosk_settings(tmp_path, fp.url(), agent={"warm_link": True})) as k:
            wait_for(lambda: k.kiosk.standby.ready, 30, "a standby")
            before = len(sim.sessions)
            k.press()
            k.wait_state(c.LISTENING, 30)
            time.sleep(2.0)  # what a second link would have started meanwhile
            sessions = sim.sessions[before:]
            connects = k.kiosk.uplink.stats.connects
    assert len(sessions) == 1, f"one press started {len(sessions)} sessions on the agent ({connects} connects)"
