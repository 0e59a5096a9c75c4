"""A hostile agent server against the link, through real sockets (a helper's review of the link)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

from conftest import KioskThread, kiosk_settings, wait_for
from test_link_attacks import HostileServer
from websockets.asyncio.server import ServerConnection

from edge_agent.agent.dial import MAX_MESSAGE_BYTES
from edge_agent.agent.downlink import EARLY_MESSAGES
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import SimulatorThread


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


_EMPTY_OBJECTS = (MAX_MESSAGE_BYTES - 200) // 3
BIG_CALL = json.dumps({"method": "onfunction", "payload": {"name": "lookup", "params": "PARAMS"}}).replace('"PARAMS"', "[" + ",".join(["{}"] * _EMPTY_OBJECTS) + "]")
"""An `onfunction` within the link's message size whose params parse to ~87 000 empty dicts
(~6 MB of Python objects for 256 KiB on the wire)."""


def test_function_calls_before_onready_do_not_park_hundreds_of_megabytes(tmp_path: Path) -> None:
    """Messages before `onready` are held (at most EARLY_MESSAGES) and handed on after it, each
    as parsed: an `onfunction` kept its whole `params`, which nothing in the kiosk reads. A server
    sending 64 of them within the size limit (16 MB on the wire) and never `onready` parked
    ~400 MB in the kiosk (a Pi 3 has 1 GB) until the conversation gave up on it."""
    sent = threading.Event()

    async def serve(server: HostileServer, ws: ServerConnection) -> None:
        await server.initiate(ws)
        for _ in range(EARLY_MESSAGES):
            await ws.send(BIG_CALL)
        await ws.send(json.dumps({"method": "pong", "data": "1"}))  # a skipped frame: all read
        sent.set()
        await ws.wait_closed()

    assert len(BIG_CALL) <= MAX_MESSAGE_BYTES
    with HostileServer(serve) as srv:
        agent = {"dead_after_s": 30.0, "ping_interval_s": 5.0, "connect_timeout_s": 2.0}
        settings = kiosk_settings(tmp_path, srv.url, agent=agent, session={"reconnect_window_s": 30.0})
        with KioskThread(settings) as k:
            before = _rss_mb()
            k.press()
            wait_for(sent.is_set, 60, "the server's frames sent")
            wait_for(lambda: k.kiosk.stats.bad_frames >= 1, 60, "the kiosk to read them all")
            grown = _rss_mb() - before
    assert grown < 100, f"the kiosk grew by {grown:.0f} MB holding the agent's early messages"


def test_a_server_restart_closing_the_standby_does_not_shorten_its_hold_for_good(tmp_path: Path) -> None:
    """The warm link learns the server's idle limit from a standby the server closes: the next is
    held for 80 % of the life that one had (README "Warm link"), and the hold never grows back.
    A close that asks to try later (1012 service restart, 1001 going away: a deploy closing every
    socket) is no idle limit, and it was taken for one: a restart 2.5 s into a standby's life
    cut a 50 s hold to 2 s for good, a new TCP+TLS connection every 2 s while the kiosk idles
    (a few restarts at random points bring any kiosk down to that)."""

    async def serve(server: HostileServer, ws: ServerConnection) -> None:
        if server.connections == 1:  # the first standby: the server restarts 2.5 s into it
            await asyncio.sleep(2.5)
            await ws.close(1012, "service restart")
            return
        await ws.wait_closed()

    with HostileServer(serve) as srv:
        settings = kiosk_settings(tmp_path, srv.url, agent={"warm_link": True, "connect_timeout_s": 2.0})
        with KioskThread(settings) as k:
            wait_for(lambda: srv.connections >= 2 and k.kiosk.standby.ready, 30, "the standby replaced after the restart")
            hold_s = k.kiosk.standby.hold_s
    assert hold_s == 50.0, f"one server restart cut the standby's hold to {hold_s:.1f} s"


def test_a_network_blip_under_the_standby_does_not_shorten_its_hold_for_good(tmp_path: Path) -> None:
    """A standby cut by the network (a Wi-Fi blip: the socket reset, no close from the server)
    was taken for the server's idle limit too: one blip 3 s into a standby's life cut the 50 s
    hold to ~2.4 s, and it never grows back: a new TCP+TLS connection every 2.4 s for as long as
    the kiosk idles. Only the server's own close teaches the hold; a cut standby is replaced."""
    with SimulatorThread() as sim:
        proxy = FaultProxyThread("127.0.0.1", sim.port)
        with proxy as fp, KioskThread(kiosk_settings(tmp_path, fp.url(), agent={"warm_link": True})) as k:
            wait_for(lambda: k.kiosk.standby.ready, 20, "a standby")
            time.sleep(3.0)
            proxy.cut()
            wait_for(lambda: k.kiosk.standby.opened >= 2 and k.kiosk.standby.ready, 20, "the standby replaced after the cut")
            hold_s = k.kiosk.standby.hold_s
    assert hold_s == 50.0, f"one network blip cut the standby's hold to {hold_s:.1f} s"
