"""Link options: the warm link (agent.warm_link), a connected standby socket between
conversations, and uplink compression (agent.compression).

Through a real simulator on loopback: the press uses the standby's socket (no new connection),
continuation still works, an unused standby is replaced, a server that drops idle sockets
teaches the kiosk a shorter hold, and a server that refuses standbys does not break presses.
"""

from __future__ import annotations

import time
from pathlib import Path

from conftest import KioskThread, kiosk_settings, wait_for

from edge_agent.core import conversation as c
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import SimulatorThread

WARM = {"warm_link": True}


def _standing_by(k: KioskThread) -> bool:
    return k.kiosk.standby.ready


def test_press_uses_the_standby_socket_and_continues_the_session(tmp_path: Path) -> None:
    with SimulatorThread() as sim, KioskThread(kiosk_settings(tmp_path, sim.url, agent=WARM)) as k:
        # the kiosk can see the upgrade done before the simulator's thread has run its handler
        wait_for(lambda: _standing_by(k) and sim.connections >= 1, 20, "a standby link")
        assert sim.connections == 1 and sim.sessions == []  # connected, but no initiate yet
        k.press()
        k.wait_state(c.LISTENING)
        assert sim.connections == 1, "the press must not open another socket"
        assert sim.sessions[0].initiate["data"].get("session_continuation") is None
        first = sim.sessions[0].session_id
        k.press()  # end
        k.wait_state(c.IDLE)
        # as above: the kiosk can see the upgrade before the simulator's thread has counted it
        wait_for(lambda: _standing_by(k) and sim.connections >= 2, 20, "a fresh standby after the conversation")
        assert sim.connections == 2
        k.press()  # continue the stored session, over the new standby
        k.wait_state(c.LISTENING)
        assert sim.connections == 2
        assert sim.sessions[1].initiate["data"]["session_continuation"] == {"session_id": first}
        assert k.kiosk.standby.taken == 2


def test_unused_standby_is_replaced_after_its_hold(tmp_path: Path) -> None:
    with SimulatorThread() as sim, KioskThread(kiosk_settings(tmp_path, sim.url, agent={**WARM, "warm_hold_s": 1.0})) as k:
        wait_for(lambda: sim.connections >= 3, 20, "standbys replaced every second")
        assert sim.sessions == []  # never initiated: no session is started (nor billed)
        wait_for(lambda: _standing_by(k), 20, "a standby")
        k.press()
        k.wait_state(c.LISTENING)


def test_server_dropping_idle_sockets_shortens_the_hold(tmp_path: Path) -> None:
    # the server closes sockets that send no initiate within 2.5 s, the kiosk would hold 50 s
    with SimulatorThread(initiate_timeout_s=2.5) as sim, KioskThread(kiosk_settings(tmp_path, sim.url, agent=WARM)) as k:
        wait_for(lambda: k.kiosk.standby.hold_s < 2.5, 20, "the hold to adapt to the server")
        assert k.kiosk.standby.hold_s >= 1.0
        opened = k.kiosk.standby.opened
        # from now on the kiosk replaces its standby (within its hold) before the server drops it
        wait_for(lambda: sim.connections >= opened + 1, 20, "the standby replaced")
        wait_for(lambda: _standing_by(k), 20, "a standby")
        k.press()
        k.wait_state(c.LISTENING)
        assert k.state == c.LISTENING and k.kiosk.conversation.session_id is not None


def test_refused_standby_backs_off_and_a_press_still_connects(tmp_path: Path) -> None:
    with SimulatorThread(reject_status=503) as sim, KioskThread(kiosk_settings(tmp_path, sim.url, agent=WARM)) as k:
        wait_for(lambda: sim.upgrades >= 1, 20, "a standby attempt")
        time.sleep(2.0)
        assert sim.upgrades == 1, "a refused standby must back off, not hammer the server"
        assert k.state == c.IDLE
        sim.reject_status = None  # the server is back; a press connects cold at once
        k.press()
        k.wait_state(c.LISTENING)
        assert k.kiosk.standby.taken == 0



def test_gated_silence_is_compressed_on_the_wire_unless_turned_off(tmp_path: Path) -> None:
    """The kiosk streams the gate's silence while nobody speaks; with deflate (the default) it
    must cost next to nothing on the wire, and `compression = false` must really turn it off."""
    for on in (True, False):
        (tmp_path / str(on)).mkdir()
        settings = {"compression": on}
        with SimulatorThread() as sim, FaultProxyThread("127.0.0.1", sim.port) as proxy:
            with KioskThread(kiosk_settings(tmp_path / str(on), proxy.url(), agent=settings)) as k:  # a silent mic
                k.press()
                k.wait_state(c.LISTENING)
                payload0, wire0 = k.kiosk.stats.bytes_up, proxy.bytes_up
                wait_for(lambda p0=payload0: k.kiosk.stats.bytes_up - p0 >= 50 * 960, 20, "~50 frames of 30 ms")
                server_side = sim._conn(None)  # the newest session's socket
                assert server_side is not None
                names = [e.name for e in server_side.protocol.extensions]
            # both counts once the traffic is over: the kiosk stopped, and the proxy passed on all of
            # it (the agent saw the socket close); read while frames flowed, the proxy lags the kiosk
            wait_for(lambda: sim.sessions[-1].closed, 20, "the agent socket to close")
            payload, wire = k.kiosk.stats.bytes_up - payload0, proxy.bytes_up - wire0
        assert payload >= 40 * 960, payload  # ~50 frames of 30 ms were sent either way
        if on:
            assert names == ["permessage-deflate"] and wire < payload / 10, (names, wire, payload)
        else:
            assert names == [] and wire > payload, (names, wire, payload)
