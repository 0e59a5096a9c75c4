"""Hostile agent servers against the real kiosk, through real sockets on loopback (2026-12-05, a
helper's attack): a server that stops reading must not keep a link alive or a dead one unseen."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from conftest import KioskThread, kiosk_events, kiosk_settings, read_wav, wait_for
from websockets.asyncio.server import ServerConnection, serve

from edge_agent.agent.link import CLOSE_WITHIN_S
from edge_agent.core import conversation as c

SPEECH = Path(__file__).resolve().parents[1] / "edge_agent" / "data" / "demo_speech.wav"
FAST = {"dead_after_s": 1.5, "ping_interval_s": 0.5, "connect_timeout_s": 1.0}
Handler = Callable[["HostileServer", ServerConnection], Awaitable[None]]


class HostileServer:
    """A tiny websockets server on its own loop thread; `handler` plays the hostile agent."""

    def __init__(self, handler: Handler, rcvbuf: int | None = None, **serve_kwargs: Any) -> None:
        self.handler = handler
        self.rcvbuf = rcvbuf
        self.serve_kwargs = serve_kwargs
        self.connections = 0
        self.initiates: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def _main(self) -> None:
        self._stop = asyncio.Event()

        async def handle(ws: ServerConnection) -> None:
            self.connections += 1
            try:
                await self.handler(self, ws)
            except Exception:
                pass

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf is not None:  # inherited by accepted sockets: a server that reads little
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind(("127.0.0.1", 0))
        async with serve(handle, sock=sock, **self.serve_kwargs) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._started.set()
            await self._stop.wait()

    async def initiate(self, ws: ServerConnection) -> dict[str, Any]:
        msg = json.loads(await ws.recv())
        self.initiates.append(msg)
        return msg

    def __enter__(self) -> HostileServer:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def onready(sid: Any) -> str:
    return json.dumps({"method": "onready", "payload": {"session_id": sid}})


# ----------------------------------------------------------------------------- probes
async def _close_at_once(server: HostileServer, ws: ServerConnection) -> None:
    await ws.close(1000, "bye")


def test_a_server_closing_every_standby_at_once_gets_no_reconnect_storm(tmp_path: Path) -> None:
    """(Held up in the attack; kept as a guard.)"""
    with HostileServer(_close_at_once) as srv:
        settings = kiosk_settings(tmp_path, srv.url, agent={**FAST, "warm_link": True})
        with KioskThread(settings) as k:
            time.sleep(6.0)
            n = srv.connections
            opened = k.kiosk.standby.opened
    # standby.py: a failing standby is retried after 5 s, then 10 s ...: two or three sockets
    assert n <= 3, f"{n} standby connections in 6 s ({opened} opened)"



def _chain(name: str) -> list[str]:
    """Where the task `name` waits: its coroutine chain (file:line function)."""
    out: list[str] = []
    for t in asyncio.all_tasks():
        if t.get_name() == name:
            co: Any = t.get_coro()
            while co is not None and hasattr(co, "cr_frame"):
                if co.cr_frame is not None:
                    out.append(f"{co.cr_frame.f_code.co_filename.split('/')[-1]}:{co.cr_frame.f_lineno} {co.cr_frame.f_code.co_name}")
def _link_tasks(k: KioskThread) -> list[str]:
    return k.on_loop(lambda: sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("agent-link-") and not t.done()))


async def _ready_then_stop_reading(server: HostileServer, ws: ServerConnection) -> None:
    await server.initiate(ws)
    await ws.send(onready(f"sess-{server.connections}"))
    ws.transport.pause_reading()  # never reads the kiosk's audio (nor its close frame) again
    while True:  # but talks: the link never looks dead
        await ws.send(json.dumps({"method": "keepalive"}))
        await asyncio.sleep(0.3)


def test_a_conversation_ended_on_a_server_that_stopped_reading_releases_its_link(tmp_path: Path) -> None:
    """The server says onready, then stops reading (TCP window zero) but keeps talking. The visitor
    presses to end: `AgentLink.close` only closed the outbox, whose sender waited in the socket's
    drain for ever, so every such conversation left its task and socket behind for as long as the
    server kept the socket. Now the socket is dropped CLOSE_WITHIN_S after the close was asked."""
    speech = read_wav(SPEECH)
    with HostileServer(_ready_then_stop_reading, rcvbuf=4096) as srv:
        settings = kiosk_settings(tmp_path, srv.url, clip=speech)
        with KioskThread(settings) as k:
            for _ in range(3):
                dropped = k.kiosk.stats.frames_dropped
                k.press()
                k.wait_state(c.LISTENING)
                wait_for(lambda dropped=dropped: k.kiosk.stats.frames_dropped > dropped, 20, "the uplink to back up")
                k.press()  # the visitor ends the conversation
                wait_for(lambda: k.state == c.IDLE, 20, "idle")
                wait_for(lambda: _link_tasks(k) == [], CLOSE_WITHIN_S + 3.0, "the link's task to end")


async def _ready_then_dead(server: HostileServer, ws: ServerConnection) -> None:
    await server.initiate(ws)
    await ws.send(onready(f"sess-{server.connections}"))
    if server.connections == 1:
        ws.transport.pause_reading()  # the path died: nothing read, nothing sent, socket kept
        await asyncio.sleep(3600)
    await ws.wait_closed()


def test_a_dead_link_with_a_full_send_buffer_is_still_replaced(tmp_path: Path) -> None:
    """The network path dies mid-conversation (a Wi-Fi drop): nothing comes from the agent and the
    kiosk's audio fills the socket. The dead-link watch fired, but the link's close then waited in
    websockets' drain (no timeout): no LinkDown, no reconnect, the kiosk "listening" on a dead link
    until the idle timeout. test_faults' silent dead link did not see it: its proxy still reads."""
    speech = read_wav(SPEECH)  # a visitor talking: frames with sound go up uncompressed (deflate.py)
    with HostileServer(_ready_then_dead, rcvbuf=4096) as srv:
        settings = kiosk_settings(tmp_path, srv.url, clip=speech, agent={"dead_after_s": 4.0, "ping_interval_s": 1.0})
        with KioskThread(settings) as k:
            events = kiosk_events(k)
            k.press()
            k.wait_state(c.LISTENING)
            wait_for(lambda: k.kiosk.stats.frames_dropped > 0, 20, "the uplink to back up")
            wait_for(lambda: srv.connections >= 2 and any(e == "reconnected" for e, _ in events), 4.0 + CLOSE_WITHIN_S + 10.0, "a reconnect after the dead link")


def _redirect_to_portal(connection: Any, request: Any) -> Any:
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    return Response(302, "Found", Headers([("Location", "http://portal.example/login?x=1"), ("Content-Length", "0")]), b"")


async def _never(server: HostileServer, ws: ServerConnection) -> None:
    await ws.wait_closed()


def test_an_http_redirect_from_the_server_is_not_reported_as_a_bad_endpoint(tmp_path: Path) -> None:
    """A 302 (a venue's captive portal, a load balancer's maintenance page) is the network's or
    the server's answer, not a configuration error: health.classify called it "bad endpoint"
    (fatal, the error event named the portal's URL as if it were the configured endpoint). The
    configured endpoint is checked at start, so an unusable URI at run time came in a redirect."""
    first = first_link_end(tmp_path, _redirect_to_portal, FAST)
    assert "bad endpoint" not in str(first[1]), first


def first_link_end(tmp_path: Path, process_request: Any, agent: dict[str, Any]) -> tuple[str, Any]:
    """The kiosk's first `error` or `reconnecting` event after a press, against a server that
    answers the upgrade with `process_request` (a redirect) and never speaks."""
    with HostileServer(_never, process_request=process_request) as srv:
        settings = kiosk_settings(tmp_path, srv.url, agent=agent)
        with KioskThread(settings) as k:
            events = kiosk_events(k)
            k.press()
            wait_for(lambda: any(e in ("error", "reconnecting") for e, _ in events), 15, "the link's end")
            return next((e, f) for e, f in events if e in ("error", "reconnecting"))


def test_a_text_message_in_endless_empty_fragments_fails_the_link_as_websockets_would() -> None:
    """(A helper's, on the fragment check.) The link held a text message's fragments until its
    last one with no limit of frames: empty fragments cost 2 bytes on the wire and nothing against
    `max_size`, and "{" followed by empty fragments without end grew the kiosk by a held frame
    each (~94 MB for 0.9 MB sent), the link open throughout. websockets' own assembler fails such
    a link after 4096 fragments (1009); now the held ones do too."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from edge_agent.agent.dial import MAX_MESSAGE_BYTES, MAX_QUEUED_MESSAGES
    from edge_agent.agent.wire import TEXT_FRAGMENTS_MAX, BatchingConnection

    async def main() -> tuple[int | None, int]:
        async def handler(ws: ServerConnection) -> None:
            await ws.recv()  # the kiosk's `initiate`: the link checks text from then on

            async def fragments() -> Any:
                yield "{"
                for _ in range(3 * TEXT_FRAGMENTS_MAX):
                    yield ""
                yield "}"

            try:
                await ws.send(fragments())
            except ConnectionClosed:
                pass

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}", max_size=MAX_MESSAGE_BYTES, max_queue=MAX_QUEUED_MESSAGES, create_connection=BatchingConnection) as ws:
                assert isinstance(ws, BatchingConnection)
                ws.on_bad_text = lambda size: None  # as AgentLink sets it before `initiate`
                await ws.send("initiate")
                try:
                    await asyncio.wait_for(ws.recv(), 20)
                except ConnectionClosed as exc:
                    return (exc.sent.code if exc.sent is not None else None), len(ws._text_fragments or [])
                return None, len(ws._text_fragments or [])

    code, held = asyncio.run(main())
    assert code == 1009 and held == 0, (code, held)
