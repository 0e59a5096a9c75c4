"""A review of the warm link's metrics and hold (a helper, standby3): the real daemon in process
(conftest's KioskThread) against the loopback simulator through the fault proxy, or a websockets
server playing the agent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import KioskThread, kiosk_settings, wait_for
from test_link_attacks import HostileServer
from websockets.asyncio.server import ServerConnection

from edge_agent.core import conversation as c
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import SimulatorThread

WARM = {"warm_link": True}


def _metrics(k: KioskThread) -> dict[str, Any]:
    metrics: dict[str, Any] = k.on_loop(k.kiosk.metrics)
    return metrics


def test_a_press_a_dead_standby_could_not_serve_is_no_warm_press(tmp_path: Path) -> None:
    """The standby's server died unheard; the press took it, its ping got no answer and a fresh
    link connected within the press (StandbyGone). The metrics still counted a warm press: a fleet
    admin read `warm_presses` as the warm link serving every press while each went cold. A press
    on a live standby counts; the one a fresh connect served does not (`agent_connects` counts the
    two sockets really opened: the standby's and the fresh one)."""
    with SimulatorThread() as sim:
        proxy = FaultProxyThread("127.0.0.1", sim.port)
        with proxy as fp, KioskThread(kiosk_settings(tmp_path, fp.url(), agent=WARM)) as k:
            wait_for(lambda: k.kiosk.standby.ready and fp.connections >= 1, 20, "a standby")
            k.press()  # a live standby: a warm press
            k.wait_state(c.LISTENING, 20)
            k.press()
            wait_for(lambda: k.state == c.IDLE and k.kiosk.standby.ready, 20, "the conversation over, a new standby")
            before = _metrics(k)
            proxy.freeze()  # the standby's server is gone; a new connection reaches a live one
            time.sleep(0.2)
            k.press()
            k.wait_state(c.LISTENING, 30)
            after = _metrics(k)
    assert before["warm_presses"] == 1, f"the press on a live standby counted {before['warm_presses']}"
    assert after["warm_presses"] == 1, "a press a fresh connect served after the standby was found dead was counted as a warm press"
    assert after["agent_connects"] - before["agent_connects"] == 1, "the fresh connect behind the dead standby was not counted"


def _going_away_after(limit_s: list[float], code: int = 1001) -> Any:
    """A server that closes each idle socket with `code` (1001: going away) after the next of
    `limit_s` (the last repeating), and serves a conversation on any that sends `initiate`."""

    async def serve(server: HostileServer, ws: ServerConnection) -> None:
        n = server.connections
        try:
            await asyncio.wait_for(server.initiate(ws), limit_s[min(n, len(limit_s)) - 1])
        except TimeoutError:
            await ws.close(code, "Going away" if code == 1001 else "idle")
            return
        await ws.send('{"method": "onready", "payload": {"session_id": "s-' + str(n) + '"}}')
        await ws.wait_closed()

    return serve


def test_a_server_closing_idle_sockets_with_1001_teaches_the_hold(tmp_path: Path) -> None:
    """An idle limit shorter than `warm_hold_s`, enforced with 1001 (going away: AWS API Gateway at
    its idle timeout). Each standby lived to the limit and was taken for a restart: backed off
    5 s, 10 s, 20 s ... 60 s, the hold never learned, and the warm link was missing most of the
    time (README "Warm link": when the server drops it sooner, the kiosk holds for less). Closes
    at the same age, again and again, are the server's idle limit."""
    with HostileServer(_going_away_after([2.5])) as srv, KioskThread(kiosk_settings(tmp_path, srv.url, agent=WARM)) as k:
        wait_for(lambda: k.kiosk.standby.ready, 20, "a standby")
        samples: list[bool] = []
        end = time.monotonic() + 30.0
        while time.monotonic() < end:
            samples.append(k.kiosk.standby.ready)
            time.sleep(0.1)
        hold_s = k.kiosk.standby.hold_s
        closes = srv.connections
    ready = sum(samples) / len(samples)
    # learned (2 s), or one growth step above it that the limit cuts back (GROW: 3 s)
    assert hold_s <= 3.0, f"the hold stayed {hold_s:.1f} s against a 2.5 s idle limit ({closes} standbys)"
    assert ready > 0.7, f"the warm link was ready {ready:.0%} of 30 s against a server closing idle sockets with 1001"


def test_1001_closes_at_random_ages_do_not_shorten_the_hold(tmp_path: Path) -> None:
    """A 1001 at a random point of a standby's life (a deploy going away, a load balancer
    draining) is no idle limit: closes at ages that disagree must leave the hold as it was."""
    with HostileServer(_going_away_after([3.0, 9.0, 1000.0])) as srv, KioskThread(kiosk_settings(tmp_path, srv.url, agent=WARM)) as k:
        wait_for(lambda: srv.connections >= 3 and k.kiosk.standby.ready, 60, "a third standby")
        hold_s = k.kiosk.standby.hold_s
    assert hold_s == 50.0, f"two 1001 closes at 3 s and 9 s cut the hold to {hold_s:.1f} s"


@pytest.mark.slow  # 25-40 s: standbys living out their holds
def test_a_hold_learned_from_a_limit_that_went_away_grows_back(tmp_path: Path) -> None:
    """A server closed idle sockets after 2.5 s for a while (a proxy during a deploy, a restart
    closing with 1000), then no more. The hold learned 2 s and never grew again: a new socket to
    the vendor every 2 s for the daemon's life (43 000 a day) where 50 s would do."""
    with HostileServer(_going_away_after([2.5, 2.5, 1000.0], code=1000)) as srv, KioskThread(kiosk_settings(tmp_path, srv.url, agent=WARM)) as k:
        wait_for(lambda: k.kiosk.standby.hold_s < 2.5, 30, "the hold to learn the 2.5 s limit")
        learned_s = k.kiosk.standby.hold_s
        wait_for(lambda: k.kiosk.standby.hold_s >= 6.0, 60, f"the hold (learned {learned_s:.1f} s, now {k.kiosk.standby.hold_s:.1f} s) to grow back once the limit was gone")


@pytest.mark.slow  # 25-40 s: standbys living out their holds
def test_a_limit_that_stays_keeps_the_warm_link_ready_while_the_hold_probes_it(tmp_path: Path) -> None:
    """The hold grows back past a limit that stays (GROW), meets it once in about four standbys and
    learns it again: the warm link stays ready, with a 1001 limit too (one 1001 alone backs off
    as after a restart; one at the age the hold was learned from does not)."""
    with HostileServer(_going_away_after([2.5])) as srv, KioskThread(kiosk_settings(tmp_path, srv.url, agent=WARM)) as k:
        wait_for(lambda: k.kiosk.standby.hold_s < 2.5, 30, "the hold to learn the 2.5 s limit")
        holds, samples = set(), []
        end = time.monotonic() + 25.0
        while time.monotonic() < end:
            holds.add(round(k.kiosk.standby.hold_s, 1))
            samples.append(k.kiosk.standby.ready)
            time.sleep(0.1)
    assert max(holds) > 2.5, f"the hold never probed past the limit: {sorted(holds)}"
    assert sum(samples) / len(samples) > 0.8, f"the warm link was ready {sum(samples) / len(samples):.0%} of 25 s"
