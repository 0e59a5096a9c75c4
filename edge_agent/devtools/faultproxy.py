"""A small fault-injecting TCP proxy for tests and the soak benchmark (loopback only).

Sits between the kiosk and the agent (simulator) and, on command, misbehaves like a network:
- `cut()`: abort every open connection (RST), like a Wi-Fi drop;
- `freeze()`: the connections open now forward nothing more, either way, and stay open (their
  server died silently, or their NAT entry did), while new ones pass;
- mode "blackhole": keep sockets open but forward nothing either way (a dead NAT entry);
- mode "refuse": accept and immediately close new connections (server unreachable);
- mode "slow": forward client->server at `rate_bytes_s` (a congested uplink);
- mode "deaf": forward client->server, hold server->client back (the client's sends arrive, no
  answer comes back: a broker's acknowledgements stuck on a one-way link);
- `delay_s`: extra latency on every chunk in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from edge_agent.devtools.loopthread import LoopThread

MODES = ("pass", "blackhole", "refuse", "slow", "deaf")


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host, self.port = host, port
        self.mode = "pass"
        self.delay_s = 0.0
        self.rate_bytes_s = 16_000
        self.connections = 0
        self.bytes_up = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._open: set[int] = set()
        self._frozen: set[int] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.AbstractServer | None = None

    def url(self, path: str = "/millis") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    async def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # a small receive window from the handshake on, so a slow link pushes back like a real one
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        listener.bind((self.host, self.port))
        self._server = await asyncio.start_server(self._handle, sock=listener)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._frozen.clear()  # their pumps read again, and end on the cut
        self.cut()
        if self._handlers:  # they end on the cut: cancelled instead, asyncio logged each as an error
            await asyncio.wait(self._handlers, timeout=1.0)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Abort every open connection in both directions, without a goodbye."""
        for w in list(self._writers):
            transport = w.transport
            if not transport.is_closing():
                transport.abort()
        self._writers.clear()

    def freeze(self) -> None:
        """The connections open now forward nothing more (new ones pass): a server died silently."""
        self._frozen |= self._open

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "refuse":
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        conn = self.connections
        self._open.add(conn)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        up = asyncio.create_task(self._pump(client_r, server_w, upstream=True, conn=conn))
        down = asyncio.create_task(self._pump(server_r, client_w, upstream=False, conn=conn))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        self._open.discard(conn)
        self._frozen.discard(conn)
        for t in (up, down):
            t.cancel()
        for w in (client_w, server_w):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool, conn: int = 0) -> None:
        """Reads and forwards; with `delay_s`, each chunk is forwarded `delay_s` after it was read
        while reading goes on (latency, not a bandwidth cap: a burst is not serialised)."""
        in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        forward = asyncio.create_task(self._forward(in_flight, writer, upstream, conn))
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self._holds(upstream, conn):  # stop reading: TCP back-pressure builds up behind us
                    await asyncio.sleep(0.05)
                data = await reader.read(4096)
                if forward.done():
                    forward.result()  # the far side failed: end with its reason
                in_flight.put_nowait((loop.time() + self.delay_s, data))
                if not data:
                    await forward
                    return
                # bounded: only a pure delay keeps chunks in flight; otherwise (slow, blackhole) the
                # next read waits for the forwarder, so back-pressure reaches the sender at once
                while in_flight.qsize() > (64 if self.delay_s > 0 and self.mode == "pass" else 0):
                    await asyncio.sleep(0.005)
        finally:
            forward.cancel()

    def _holds(self, upstream: bool, conn: int) -> bool:
        """This direction forwards nothing now (blackhole, frozen: neither; deaf: server -> client)."""
        return self.mode == "blackhole" or conn in self._frozen or (self.mode == "deaf" and not upstream)

    async def _forward(self, in_flight: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter, upstream: bool, conn: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await in_flight.get()
            if not data:
                return
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if upstream and self.mode == "slow":
                await asyncio.sleep(len(data) / self.rate_bytes_s)
            while self._holds(upstream, conn):  # what was in flight when the hole opened is held back
                await asyncio.sleep(0.05)
            if upstream:
                self.bytes_up += len(data)
            writer.write(data)
            await writer.drain()


class FaultProxyThread(LoopThread):
    """Runs a FaultProxy on its own event loop thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("fault-proxy")
        self.proxy = FaultProxy(*args, **kwargs)

    def __enter__(self) -> FaultProxy:
        self.start_loop()
        self.call(self.proxy.start())
        return self.proxy

    def cut(self) -> None:
        self.loop.call_soon_threadsafe(self.proxy.cut)

    def freeze(self) -> None:
        self.loop.call_soon_threadsafe(self.proxy.freeze)

    def __exit__(self, *exc: object) -> None:
        self.stop_loop(self.proxy.stop())
