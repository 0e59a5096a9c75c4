"""A review of the warm link's standby (a helper, 2026-12-07): the real daemon in process
(conftest's KioskThread) against the loopback simulator, through the fault proxy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conftest import KioskThread, kiosk_settings, toml_dump, wait_for
from test_link_attacks import HostileServer
from websockets.asyncio.server import ServerConnection

from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import SimulatorThread

WARM = {"warm_link": True}


def test_a_press_on_a_standby_whose_server_died_silently_connects_fresh_at_once(tmp_path: Path) -> None:
    """The standby's server died without a word (a crashed host, a dead NAT entry: the socket
    stays open, nothing comes back). A press took it, sent `initiate` into it and waited for the
    dead-link timeout (`dead_after_s`, 15 s) before a fresh connect; with a reconnect window
    shorter than that, the press failed outright. A cold connect gets the visitor in within a
    second: the standby must not cost more than that.

    And `warm_presses`, a counter, never counts that press, not even for a while: it was counted
    at the take and taken back once the standby was found dead (0 -> 1 -> 0), and a dashboard (a
    Prometheus rate, a Home Assistant total) reads a counter that falls as a restart."""
    with SimulatorThread() as sim:
        proxy = FaultProxyThread("127.0.0.1", sim.port)
        with proxy as fp, KioskThread(kiosk_settings(tmp_path, fp.url(), agent=WARM)) as k:
            wait_for(lambda: k.kiosk.standby.ready and fp.connections >= 1, 20, "a standby")
            proxy.freeze()  # the standby's server is gone; a new connection reaches a live one
            time.sleep(0.2)
            pressed = time.monotonic()
            k.press()
            counted = []
            while k.state != c.LISTENING and time.monotonic() < pressed + 30:
                counted.append(k.on_loop(k.kiosk.metrics)["warm_presses"])
                time.sleep(0.01)
            k.wait_state(c.LISTENING, 1)
            waited_s = time.monotonic() - pressed
            counted.append(k.on_loop(k.kiosk.metrics)["warm_presses"])
            assert k.kiosk.conversation.session_id is not None
    assert waited_s < 4.0, f"the press on a dead standby waited {waited_s:.1f} s for the agent"
    assert len(counted) > 10 and max(counted) == 0, f"a press the warm link did not serve was counted for a while: {sorted(set(counted))}"


def test_the_standby_a_reload_closes_is_waited_for_at_shutdown(tmp_path: Path) -> None:
    """A reload (SIGHUP) ends the standby on the old settings; nothing kept it, so a stop right
    after the reload never waited for its close (a second, when the server does not answer the
    close): its task outlived the kiosk's shutdown, left for the loop's end to cancel mid-close."""
    with SimulatorThread() as sim:
        proxy = FaultProxyThread("127.0.0.1", sim.port)
        with proxy as fp:
            settings = kiosk_settings(tmp_path, fp.url(), agent=WARM)
            cfg = tmp_path / "reload.toml"
            agent = {"endpoint": fp.url(), "agent_id": "agent-2", "public_key": "test-key", "warm_link": True}
            audio = {"input": settings.audio.input, "output": settings.audio.output}
            cfg.write_text(toml_dump({"device": {"id": settings.device.id, "state_dir": str(settings.device.state_dir)}, "agent": agent, "audio": audio, "button": {"source": "none"}}))
            k = KioskThread(settings)
            with k:
                wait_for(lambda: k.kiosk.standby.ready, 20, "a standby")
                old = k.kiosk.standby.link
                proxy.freeze()  # the close handshake gets no answer: it takes its close_timeout
                time.sleep(0.2)

                def reload_and_stop() -> None:
                    k.kiosk.reloads.reload_from(lambda: config.load(cfg))
                    k.kiosk.stop()

                k.on_loop(reload_and_stop)
                k._thread.join(20)
                leftover = list(k.leftover_tasks)
                k.leftover_tasks = []  # asserted here, with the reason
            assert old is not None and k.kiosk.standby.link is not old
    assert leftover == [], f"the standby the reload closed outlived the kiosk: {leftover}"


def test_a_server_closing_an_idle_standby_with_1001_does_not_delay_the_next_press(tmp_path: Path) -> None:
    """A server that closes idle sockets with 1001 (going away: AWS API Gateway at its idle
    timeout). The standby backs off as after a restart (README "Warm link"); a press meanwhile
    must still connect at once, cold, and the conversation start normally."""

    async def serve(server: HostileServer, ws: ServerConnection) -> None:
        if server.connections == 1:  # the standby: closed as idle after 1.5 s
            await asyncio.sleep(1.5)
            await ws.close(1001, "Going away")
            return
        await server.initiate(ws)
        await ws.send('{"method": "onready", "payload": {"session_id": "s-1"}}')
        await ws.wait_closed()

    with HostileServer(serve) as srv, KioskThread(kiosk_settings(tmp_path, srv.url, agent=WARM)) as k:
        wait_for(lambda: srv.connections >= 1 and k.kiosk.standby.ready, 20, "a standby")
        wait_for(lambda: k.kiosk.standby.link is None, 20, "the standby closed by the server")
        pressed = time.monotonic()
        k.press()
        k.wait_state(c.LISTENING, 20)
        waited_s = time.monotonic() - pressed
        errors = k.kiosk.counters["errors"]
    assert waited_s < 2.0, f"the press after a 1001 idle close waited {waited_s:.1f} s"
    assert errors == 0
