"""AgentLink: one WebSocket connection to the Millis endpoint, the thin I/O layer of the protocol.

It opens the socket (agent/dial.py: TLS verified by default), sends `initiate`, pings every few
seconds for RTT, sends uplink audio from its `Outbox` (agent/outbox.py: a bounded queue, oldest
dropped and counted when the network is slower than the microphone), and turns everything
received into Conversation events (agent audio and what comes before `onready` through its
`Downlink`, agent/downlink.py). Whatever happens, each link ends with exactly one `LinkDown`,
classified fatal (no point retrying: bad key, unknown agent, policy close) or retryable
(network, server restart) by `classify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection

from edge_agent.agent.dial import dial, tune
from edge_agent.agent.downlink import EARLY_AUDIO_BYTES as EARLY_AUDIO_BYTES
from edge_agent.agent.downlink import Downlink
from edge_agent.agent.health import STANDBY_ANSWER_S, StandbyGone, asks_to_try_later, closed_by_server
from edge_agent.agent.health import LinkStats as LinkStats
from edge_agent.agent.health import classify as classify
from edge_agent.agent.outbox import Outbox
from edge_agent.agent.wire import QUIET_SETTLE_S, BatchingConnection
from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.config_agent import AgentSettings
from edge_agent.core.ratelimit import left_out_note
from edge_agent.errors import NotReadyError, ProtocolError

log = logging.getLogger(__name__)

CLOSE_WITHIN_S = 5.0
"""A link asked to end (`close`), or ended by a fault, has this long to close cleanly; then its
socket is aborted. A server that stops reading (a hung one, or a dead path the kernel still holds
open) fills the send buffer, and websockets' drain has no timeout: the close waited in it for
ever, so a dead link was never reported (no reconnect until the idle timeout) and a conversation
ended on such a server kept its socket and task (a helper's attack: one leaked per conversation)."""


class AgentLink:
    """One connection attempt (`link_id`). Events go to `emit` on the event loop."""

    def __init__(
        self,
        settings: AgentSettings,
        link_id: int,
        emit: Callable[[c.Event], None],
        stats: LinkStats,
        max_queued_frames: int = 33,
        quiet_settle_s: float = QUIET_SETTLE_S,
    ) -> None:
        """`max_queued_frames`: uplink audio waiting for the socket (33 x 30 ms = 1 s); older
        frames are dropped and counted, because late speech is worth less than current speech.
        `quiet_settle_s`: silence after sound that still goes out live (agent/wire.py QuietBatch)."""
        self.settings = settings
        self.link_id = link_id
        self._emit = emit
        self.stats = stats
        self.outbox = Outbox(stats, max_queued_frames, quiet_settle_s)
        self.send_audio = self.outbox.send_audio
        self.send_held = self.outbox.send_held
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = False
        self.downlink = Downlink(lambda pcm: self._emit(c.AgentAudio(self.link_id, pcm)), lambda msg: self._emit(c.FromAgent(self.link_id, msg)), self._skipped)
        """The agent's audio in whole samples, and what it says before `onready` held until then (agent/downlink.py)."""
        self.ready_at: float | None = None
        self._heard_at = 0.0
        """Loop time of the newest message from the agent (the dead-link watch reads it)."""
        self._continuation: str | None = None
        self._activated: asyncio.Event | None = None
        """Set for a standby link: `initiate` waits for it (see `start_standby`)."""
        self._hold_s = 0.0
        self._connect_s = 0.0  # the last connect's opening handshake: a round trip or more
        self._answered = False
        """The server has sent something since `initiate` (a standby's fatal close before it is not a refusal)."""
        self.on_served: Callable[[], None] = lambda: None  # a standby a press took got its session ready (agent/standby.py)
        self.try_later = self.server_closed = False
        """The link ended on the server's close asking to try later (a restart), or on one of its
        own (a close frame, not asking to try later; a standby's too): agent/standby.py."""

    # ------------------------------------------------------------------ control
    @property
    def _closing(self) -> bool:
        """The link is ending (asked to, or its socket went): nothing more goes up."""
        return self.outbox.closed

    @property
    def first_audio_sent_at(self) -> float | None:
        """time.monotonic() at which the first uplink frame went to the socket."""
        return self.outbox.first_audio_sent_at

    @property
    def queued(self) -> bool:
        """Uplink audio is waiting for the socket."""
        return self.outbox.queued

    @property
    def finished(self) -> bool:
        """The link's task has ended (or never started): nothing of it runs any more."""
        return self._task is None or self._task.done()

    def start(self, continuation: str | None, delay_s: float = 0.0) -> None:
        self._continuation = continuation
        self._task = asyncio.get_running_loop().create_task(self._run(delay_s), name=f"agent-link-{self.link_id}")

    def start_standby(self, hold_s: float) -> None:
        """Connects now and sends `initiate` only on `activate`, so a press skips the TCP, TLS
        and HTTP handshakes (on a real network most of press-to-stream). Unused for `hold_s`,
        the standby ends itself (LinkDown without a reason) before servers drop idle sockets."""
        self._activated = asyncio.Event()
        self._hold_s = hold_s
        self.start(None)

    def activate(self, link_id: int, emit: Callable[[c.Event], None], continuation: str | None) -> bool:
        """Makes a standby the conversation's link; False when it is ending or gone already."""
        if self._activated is None or not self._unused_standby or self._closing or self._task is None or self._task.done():
            return False
        self.link_id, self._emit, self._continuation = link_id, emit, continuation
        self._activated.set()
        return True

    @property
    def standing_by(self) -> bool:
        """A connected standby waiting for `activate`."""
        return self._ws is not None and self._unused_standby and not self._closing

    @property
    def _unused_standby(self) -> bool:
        """A standby not activated (yet): nothing was initiated on it."""
        return self._activated is not None and not self._activated.is_set()

    def close(self) -> None:
        """Asks the link to end; its LinkDown follows once the socket is closed (aborted after
        CLOSE_WITHIN_S if the close cannot go out)."""
        self.outbox.close()
        if self._task is not None and (self._ws is None or self._unused_standby):
            self._task.cancel()
        elif self._task is not None and not self._task.done():
            self._task.get_loop().call_later(CLOSE_WITHIN_S, self._abort)

    def _abort(self) -> None:
        """The close did not go out in time: the socket is dropped, so the link's task ends."""
        ws = self._ws
        if ws is not None and self._task is not None and not self._task.done():
            log.warning("agent link %d: the close did not go out within %g s (the server reads nothing); socket dropped", self.link_id, CLOSE_WITHIN_S)
            ws.transport.abort()

    async def wait_closed(self, timeout_s: float = 2.0) -> None:
        """Waits for a clean close; past `timeout_s` (a stalled network cannot finish the close
        handshake) the connection is aborted, so no task outlives the link. Aborted at the
        transport first: a congested uplink blocks the close frame's drain, which websockets does
        not time out, and a cancelled task would wait in it for as long as the network is stuck."""
        task = self._task
        if task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        if not task.done():
            ws = self._ws
            if ws is not None:
                ws.transport.abort()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ I/O
    async def _run(self, delay_s: float) -> None:
        error: str | None = None
        fatal = server_closed = False
        try:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if self._closing:
                return
            try:
                await self._connect()
            except StandbyGone as exc:  # its server died unheard: a cold connect, as the press would have
                log.warning("agent link %d: %s; connecting afresh", self.link_id, exc)
                self._activated, self._ws = None, None  # a plain link from here on
                if not self._closing:
                    await self._connect()
        except asyncio.CancelledError:
            error = "cancelled"
        except Exception as exc:  # every way a socket can end is classified, none escapes
            fatal, error = classify(exc)
            server_closed = closed_by_server(exc)
            self.try_later, self.server_closed = asks_to_try_later(exc), server_closed
            if self._activated is not None and not self._answered and (fatal or server_closed):
                # a standby's `initiate` crossed the server's close of a socket that had sent none
                # (servers drop those after a few seconds, 1008): no word on the request; a fresh
                # link asks again. It was taken for a refusal, and a short press started fresh.
                fatal = server_closed = False
                error = f"{error} on the standby, before any answer to initiate"
            if self._closing:
                fatal, error, server_closed = False, None, False
        finally:
            self._ws = None
            self.outbox.close()
            if error and error != "cancelled":
                if self._unused_standby:  # routine, not a fault
                    log.info("standby link %d ended: %s", self.link_id, error)
                else:
                    log.warning("agent link %d ended: %s%s", self.link_id, error, " (fatal)" if fatal else "")
            self._emit(c.LinkDown(self.link_id, error, fatal, server_closed))

    async def _connect(self) -> None:
        """Connects, holds a standby until `activate`, sends `initiate` and serves the link."""
        opened_at = asyncio.get_running_loop().time()
        async with dial(self.settings) as ws:
            self._ws = ws
            self._connect_s = asyncio.get_running_loop().time() - opened_at
            self.stats.connects += 1
            tune(ws)
            if self._activated is not None and not await self._hold(ws, self._activated):
                self.outbox.close()  # held long enough unused: end quietly, a fresh one follows
                return
            init = p.Initiate(
                public_key=self.settings.public_key or "",
                agent_id=self.settings.agent_id,
                agent_config=self.settings.config or None,
                metadata=self.settings.metadata or None,
                include_metadata_in_prompt=self.settings.include_metadata_in_prompt,
                continue_session_id=self._continuation,
            )
            if isinstance(ws, BatchingConnection):  # from `initiate` on (a standby's silence before it stands)
                ws.on_bad_text = self._bad_text
            await ws.send(init.to_wire())
            self._emit(c.Initiated(self.link_id))
            await self._serve(ws, proving=self._activated is not None)

    async def _hold(self, ws: ClientConnection, activated: asyncio.Event) -> bool:
        """A standby waits for `activate` (True), for `hold_s` to pass (False), or for the
        server to close it (raises ConnectionClosed, so the close is classified like any other).
        Before `initiate` the server has nothing to say: a message ends the standby at once
        (ProtocolError), so a server cannot park data in a socket nobody reads yet."""
        closed = asyncio.ensure_future(ws.wait_closed())
        woken = asyncio.ensure_future(activated.wait())
        heard = asyncio.ensure_future(ws.recv())  # websockets: cancelling recv loses nothing
        try:
            await asyncio.wait({closed, woken, heard}, timeout=self._hold_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (closed, woken, heard):
                waiter.cancel()
            await asyncio.gather(closed, woken, heard, return_exceptions=True)  # recv done before the next
        if heard.done() and not heard.cancelled() and heard.exception() is None:
            raise ProtocolError("the server sent a message to a standby before initiate")
        if activated.is_set():
            return True
        if closed.done() and not closed.cancelled():
            while True:  # the close ends this with the ConnectionClosed that says why
                await ws.recv()
        return False

    async def _serve(self, ws: ClientConnection, proving: bool = False) -> None:
        self._heard_at = asyncio.get_running_loop().time()
        tasks = [asyncio.create_task(self._receive(ws)), asyncio.create_task(self._send(ws)), asyncio.create_task(self._ping(ws)), asyncio.create_task(self._watch_dead())]
        proof = asyncio.create_task(self._prove_standby(ws)) if proving else None
        tasks += [proof] if proof is not None else []
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in sorted(done, key=lambda t: t is not proof):  # a dead standby's abort ends the receive too
                t.result()  # re-raise the reason the first task ended
        finally:
            for t in tasks:
                t.cancel()
            try:  # bounded: a full send buffer blocks the close frame's drain for ever
                await asyncio.wait_for(ws.close(), CLOSE_WITHIN_S)
            except TimeoutError:
                ws.transport.abort()

    async def _prove_standby(self, ws: ClientConnection) -> None:
        """A standby's server may have died unheard (a crashed host, a NAT entry gone): a ping goes
        behind `initiate`, and with no answer within STANDBY_ANSWER_S (or 4 round trips, or twice its connect) a fresh link
        connects (StandbyGone). The press waited for the dead-link timeout (15 s) instead."""
        pong = asyncio.ensure_future(await ws.ping())
        pong.add_done_callback(lambda f: f.cancelled() or f.exception())  # a close's error is no news
        # nor under twice the standby's own connect: with no round trip measured yet, a live server
        # behind a slow path (1.8 s) was taken for dead, its session started twice (two billed)
        within_s = min(self.settings.dead_after_s, max(STANDBY_ANSWER_S, 4.0 * (self.stats.rtt_ms or 0.0) / 1000.0, 2.0 * self._connect_s))
        await asyncio.wait({pong}, timeout=within_s)
        if not pong.done() and not self._answered:
            ws.transport.abort()  # no close handshake with a dead server (close_timeout on the press's time)
            raise StandbyGone(f"the standby had no answer to initiate within {within_s:g} s")
        await asyncio.get_running_loop().create_future()  # proven: waits with the rest

    def _audio(self, pcm: bytes) -> None:
        """Agent audio after `onready`, from `recv` or straight from the socket's read (wire.py)."""
        self._heard_at = asyncio.get_running_loop().time()
        self.stats.bytes_down += len(pcm)
        self.downlink.audio(pcm)

    async def _receive(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            msg = await ws.recv()
            self._answered = True
            if isinstance(msg, bytes) and self.ready:
                self._audio(msg)
                continue
            self._heard_at = loop.time()
            if isinstance(msg, bytes):
                self.stats.bytes_down += len(msg)
                self.downlink.audio(msg)  # held until onready (a greeting sent ahead of it)
                continue
            try:
                event = p.parse_server_text(msg)
            except ProtocolError as exc:
                self.stats.bad_frames += 1
                self._skipped(f"a bad frame, skipped: {exc}", logging.WARNING)
                if isinstance(exc, NotReadyError) and not self.ready:  # an onready with no usable
                    raise  # session id: a retry gets the same (any other bad frame is skipped, as later)
                continue
            if isinstance(event, p.Pong):
                rtt_ms = time.time() * 1000.0 - event.sent_ms
                if 0.0 <= rtt_ms <= self.settings.dead_after_s * 1000.0:  # a ping of ours is no older
                    self.stats.rtt_ms = rtt_ms
                else:  # echoes no recent ping of ours (a server's own number, or the clock jumped)
                    self.stats.bad_frames += 1
                    self._skipped(f"a pong echoing no recent ping ({rtt_ms:.0f} ms), skipped", logging.INFO)
                continue
            if isinstance(event, p.Unknown):
                self._skipped(f"unknown method {event.method!r}, ignored", logging.INFO)
                continue
            if isinstance(event, p.OnReady):
                if not self.ready:  # a second onready renames the session (core/sessionrecord.py)
                    self.ready_at = time.monotonic()
                    if self._activated is not None:  # the session started on the standby: a warm press
                        self.on_served()
                self.ready = True
                if isinstance(ws, BatchingConnection):  # from now on audio may skip `recv` (only while one waits)
                    ws.on_binary = self._audio
            elif isinstance(event, p.Clear):
                self.stats.clear_arrived_at = time.monotonic()
            if isinstance(event, (p.OnReady, p.SessionEnded)) or self.downlink.message(event):
                self._emit(c.FromAgent(self.link_id, event))
            if isinstance(event, p.OnReady):
                self.downlink.ready_now()  # what came before it follows it, in order
            if isinstance(event, p.SessionEnded):
                self.outbox.close()
                return

    def _bad_text(self, size: int) -> None:
        """A text frame that is not UTF-8 (agent/wire.py): skipped and counted, also before
        `onready` is read: the socket's read sees a frame before `recv` hands on the `onready`
        ahead of it, so one that came right behind it (one TCP segment) cost the reconnect this
        was to spare. A garbled `onready` itself is skipped too, and the link then ends as any
        that never gets ready."""
        self.stats.bad_frames += 1
        self._skipped(f"a text frame of {size} bytes that is not UTF-8, skipped", logging.WARNING)

    def _skipped(self, what: str, level: int) -> None:
        """Every frame skipped is logged through one limiter shared by all links: a broken or
        hostile server must not flood the journal, whatever kind of frame it repeats."""
        if not log.isEnabledFor(level):
            return  # not spending the limiter on lines nobody sees
        left_out = self.stats.frame_log.allow(time.monotonic())
        if left_out is not None:
            more = left_out_note(left_out, "skipped frames")
            log.log(level, "agent link %d: %s%s", self.link_id, what, more)

    async def _send(self, ws: ClientConnection) -> None:
        assert isinstance(ws, BatchingConnection)  # what `connect` was told to make
        await self.outbox.serve(ws)

    async def _watch_dead(self) -> None:
        """Ends the link when the agent has been silent for `dead_after_s` (pongs count, so a
        healthy idle link never trips it). One timer per period instead of a timeout around every
        receive: agent audio arrives ~50 times a second, and each `wait_for` costs a task."""
        loop = asyncio.get_running_loop()
        limit_s = self.settings.dead_after_s
        while True:
            await asyncio.sleep(max(0.0, self._heard_at + limit_s - loop.time()))
            if loop.time() - self._heard_at >= limit_s:
                raise TimeoutError(f"nothing from the agent for {limit_s:g} s")

    async def _ping(self, ws: ClientConnection) -> None:
        while True:
            await ws.send(p.ping_to_wire(int(time.time() * 1000)))
            await asyncio.sleep(self.settings.ping_interval_s)
