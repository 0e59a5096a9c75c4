"""A local Millis-protocol agent for the demo, tests and benchmarks (`edge-agent simulate-agent`).

Per connection it expects `initiate`, answers `onready` with a new session id, and remembers
sessions so a continued one says so: its transcript and response text tell how many earlier
turns the conversation continues (`--data-opt-out` makes it ignore continuations, like an agent
with Data Opt-Out). It finds the end of each visitor utterance by energy, then answers with
`ontranscript`, `start_answering`, `onresponsetext` and the utterance played back plus a short
tone, paced at real time; a visitor talking over the reply gets `clear`. It can hang up after N
turns or when told to. Everything received is recorded for tests to assert on.

Hostile modes play servers a kiosk must survive: `drop_after_ready` (accepts, says onready, cuts
the socket), `bad_session_id` (an onready with this id, say one with a newline), `greet_bytes`
(sends that much binary before `initiate`, to park data in a standby link), `never_ready`
(answers pings, never says onready), and `ping_flood` (stops reading and sends pings).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.agent.wire import read_in_small_chunks
from edge_agent.core import protocol as p
from edge_agent.devtools.loopthread import LoopThread
from edge_agent.devtools.simsound import CHUNK_BYTES, CHUNK_MS, VOICE_RMS, rms, tone
from edge_agent.errors import ProtocolError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PingFlood:
    """What `AgentSimulator.ping_flood` did: pings sent, seconds it ran, and whether it ended
    because the socket was closing (the kiosk aborted it) rather than because time ran out."""

    sent: int
    elapsed_s: float
    closed: bool


@dataclass
class SimSession:
    session_id: str
    initiate: dict[str, Any]
    continued_from: str | None
    earlier_turns: int
    turns: int = 0
    uplink: bytearray = field(default_factory=bytearray)
    sent: list[str] = field(default_factory=list)
    pings: int = 0
    closed: bool = False
    barge_ins: int = 0


class AgentSimulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        data_opt_out: bool = False,
        end_after_turns: int = 0,
        end_silence_ms: int = 700,
        record_dir: Path | None = None,
        valid_keys: set[str] | None = None,
        reject_status: int | None = None,
        close_code: int | None = None,
        initiate_timeout_s: float = 10.0,
        drop_after_ready: bool = False,
        bad_session_id: str | None = None,
        greet_bytes: int = 0,
        onready_delay_s: float = 0.0,
        never_ready: bool = False,
        refuse_continuation: int | None = None,
        early_audio_ms: int = 0,
    ) -> None:
        """`reject_status`: answer the WebSocket upgrade with this HTTP status (a refusing server);
        `close_code`: close every session right after onready with this code (a policy close);
        `initiate_timeout_s`: a socket that sends no `initiate` this long is closed with 1008, as
        servers drop idle sockets (what a kiosk's standby link has to live with); `onready_delay_s`:
        wait this long after `initiate` before `onready` (a server slow to start a session);
        audio arriving meanwhile is recorded like any other; `never_ready`: accept `initiate`,
        answer pings, never say `onready` (a platform that cannot start the session);
        `refuse_continuation`: an `initiate` with a `session_continuation` is refused, closed with
        this code, or with 0 by `onsessionended` before `onready` (a platform that no longer knows
        the session; counted in `continuations_refused`); `early_audio_ms`: after `initiate`, this
        much of a greeting tone before `onready` (the protocol allows audio first)."""
        self.host, self.port = host, port
        self.data_opt_out = data_opt_out
        self.end_after_turns = end_after_turns
        self.end_silence_ms = end_silence_ms
        self.record_dir = record_dir
        self.valid_keys = valid_keys
        self.reject_status = reject_status
        self.close_code = close_code
        self.initiate_timeout_s = initiate_timeout_s
        self.drop_after_ready = drop_after_ready
        self.bad_session_id = bad_session_id
        self.greet_bytes = greet_bytes
        self.early_closes = 0
        """Sockets the client closed before sending initiate."""
        self.onready_delay_s = onready_delay_s
        self.never_ready = never_ready
        self.refuse_continuation = refuse_continuation
        self.continuations_refused = 0
        self.early_audio_ms = early_audio_ms
        self.upgrades = 0
        self.violations: list[str] = []  # what clients sent that the documented protocol has no place for
        self.sessions: list[SimSession] = []
        self._turns: dict[str, int] = {}
        self._conns: dict[str, ServerConnection] = {}
        self._server: Server | None = None
        self.connections = 0

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/millis"

    async def start(self) -> None:
        # close_timeout: stopping must not wait 10 s for a client that cannot answer (a blackholed one)
        self._server = await serve(self._handle, self.host, self.port, ping_interval=None, max_size=4 * 1024 * 1024, process_request=self._upgrade, close_timeout=2.0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _conn(self, session_id: str | None) -> ServerConnection | None:
        """The open socket of a session (the newest session when None)."""
        sid = session_id or (self.sessions[-1].session_id if self.sessions else None)
        return self._conns.get(sid or "")

    def _open_conn(self, session_id: str | None) -> ServerConnection:
        ws = self._conn(session_id)
        if ws is None:
            raise ProtocolError(f"no open session {session_id or '(newest)'}")
        return ws

    async def hang_up(self, session_id: str | None = None) -> None:
        """Ends a session (the newest when None) with onsessionended, as an agent saying goodbye."""
        ws = self._conn(session_id)
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(p.server_to_wire("onsessionended"))
                await ws.close()

    async def control(self, method: str, session_id: str | None = None, data: Any = None, payload: Any = None) -> float:
        """Sends a control message (`clear`, `pause`, any method, with data and payload if given);
        returns time.monotonic() of the send (taken before the write: after it, the kiosk on
        another thread may already have acted on the message)."""
        ws = self._open_conn(session_id)
        message = p.server_to_wire(method, data, payload)
        sent_at = time.monotonic()
        await ws.send(message)
        return sent_at

    async def send_raw(self, message: str | bytes | list[bytes], session_id: str | None = None, text: bool | None = None) -> None:
        """Sends one message as it is (a hostile server's oversized frame, say; a list: one message in those fragments); `text=True`
        sends bytes as a text frame (a garbled one, when they are not UTF-8)."""
        await self._open_conn(session_id).send(message, text=text)

    async def say(self, audio: bytes, session_id: str | None = None) -> None:
        """Sends agent audio at once, in 20 ms chunks (no pacing: fills the kiosk's speaker queue)."""
        ws = self._open_conn(session_id)
        for off in range(0, len(audio), CHUNK_BYTES):
            await ws.send(audio[off : off + CHUNK_BYTES])

    async def ping_flood(self, seconds: float, session_id: str | None = None) -> PingFlood:
        """A hostile server: stops reading a session's socket (the newest when None) and sends
        pings, each asking for a pong it never reads, for `seconds` or until the socket is gone.
        Returns how many it sent, for how long, and whether the socket was closing at its end
        (the kiosk gave up on it) rather than the time running out."""
        ws = self._open_conn(session_id)
        ws.transport.pause_reading()
        sent, start = 0, time.monotonic()
        end = start + seconds
        while time.monotonic() < end and not ws.transport.is_closing():
            for _ in range(100):
                ws.protocol.send_ping(sent.to_bytes(8, "big") + bytes(117))  # 125 bytes: the most a ping holds
                sent += 1
            ws.send_data()
            while ws.transport.get_write_buffer_size() > 64 * 1024 and not ws.transport.is_closing() and time.monotonic() < end:
                await asyncio.sleep(0.001)  # the kiosk reads at its pace: nothing piles up here
            await asyncio.sleep(0)
        return PingFlood(sent=sent, elapsed_s=time.monotonic() - start, closed=ws.transport.is_closing())

    async def drop(self, session_id: str | None = None) -> None:
        """Cuts a session's socket without onsessionended (a network fault, as the kiosk sees it)."""
        ws = self._conn(session_id)
        if ws is not None:
            ws.transport.abort()

    def _upgrade(self, conn: ServerConnection, request: Any) -> Any:
        self.upgrades += 1
        if self.reject_status is not None:
            return conn.respond(HTTPStatus(self.reject_status), "refused by the simulator\n")
        return None

    async def _send(self, ws: ServerConnection, sess: SimSession, method: str, data: Any = None, payload: Any = None) -> None:
        sess.sent.append(method)
        await ws.send(p.server_to_wire(method, data, payload))

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        read_in_small_chunks(ws.transport)
        try:
            for off in range(0, self.greet_bytes, 64 * 1024):  # hostile: talks before initiate
                await ws.send(bytes(min(64 * 1024, self.greet_bytes - off)))
            first = await asyncio.wait_for(ws.recv(), timeout=self.initiate_timeout_s)
            init = p.Initiate.from_wire(json.loads(first))
        except (TimeoutError, ValueError, ProtocolError, ConnectionClosed) as exc:
            if isinstance(exc, ConnectionClosed):
                self.early_closes += 1
                return
            log.warning("simulator: bad or missing initiate: %s", exc)
            self.violations.append(f"bad or missing initiate: {exc}")
            await ws.close(1008, "initiate expected")
            return
        if self.valid_keys is not None and init.public_key not in self.valid_keys:
            await ws.close(4001, "invalid public key")
            return
        if self.refuse_continuation is not None and init.continue_session_id:
            self.continuations_refused += 1
            if self.refuse_continuation:
                await ws.close(self.refuse_continuation, "unknown session")
            else:
                await ws.send(p.server_to_wire("onsessionended"))
                await ws.close()
            return
        cont = None if self.data_opt_out else init.continue_session_id
        earlier = self._turns.get(cont, 0) if cont else 0
        sess = SimSession(self.bad_session_id or uuid.uuid4().hex, json.loads(first), cont if cont in self._turns else None, earlier)
        self.sessions.append(sess)
        self._turns[sess.session_id] = earlier
        self._conns[sess.session_id] = ws
        if self.early_audio_ms:
            greeting = tone(440, self.early_audio_ms)
            for off in range(0, len(greeting), 640):
                await ws.send(greeting[off : off + 640])
        if self.onready_delay_s > 0:
            await asyncio.sleep(self.onready_delay_s)
        if self.never_ready:
            with contextlib.suppress(ConnectionClosed):
                async for msg in ws:  # alive (pongs), never ready
                    if isinstance(msg, str) and (ping := self._ping_data(msg)) is not None:
                        await ws.send(p.server_to_wire("pong", ping))
            return
        await self._send(ws, sess, "onready", payload={"session_id": sess.session_id})
        if self.close_code is not None:
            await ws.close(self.close_code, "closed by the simulator")
        if self.drop_after_ready:
            ws.transport.abort()
        try:
            await self._converse(ws, sess)
        except ConnectionClosed:
            pass
        finally:
            sess.closed = True
            self._conns.pop(sess.session_id, None)
            self._record(sess)

    def _ping_data(self, text: str) -> Any:
        """A ping's data, to echo (None: no ping); the official client's is its clock in ms as a
        string. Any other text, or a ping's data of another kind, is listed in `violations`."""
        obj = None
        with contextlib.suppress(ValueError, RecursionError):
            obj = json.loads(text)
        if not isinstance(obj, dict) or obj.get("method") != "ping":
            self.violations.append(f"a text message that is no ping: {text[:80]!r}")
            return None
        data = obj.get("data")
        if not isinstance(data, str) or not data.isdigit():
            self.violations.append(f"a ping whose data is not its clock in ms as a string: {data!r}")
        return data

    async def _converse(self, ws: ServerConnection, sess: SimSession) -> None:
        utterance = bytearray()
        pending = bytearray()
        quiet_ms = voice_ms = 0
        reply: asyncio.Task[None] | None = None
        barge_ms = 0
        async for msg in ws:
            if isinstance(msg, str):
                if (ping := self._ping_data(msg)) is not None:
                    sess.pings += 1
                    await self._send(ws, sess, "pong", data=ping)
                continue
            sess.uplink += msg
            pending += msg
            while len(pending) >= CHUNK_BYTES:
                chunk, pending = bytes(pending[:CHUNK_BYTES]), pending[CHUNK_BYTES:]
                voiced = rms(chunk) > VOICE_RMS
                if reply is not None and not reply.done():
                    barge_ms = barge_ms + CHUNK_MS if voiced else 0
                    if barge_ms >= 200:  # the visitor talks over the agent: stop and listen
                        reply.cancel()  # done only once the loop runs it: forget it now, so the
                        reply = None  # rest of this read is the visitor's, not a second barge-in
                        sess.barge_ins += 1
                        await self._send(ws, sess, "clear")
                        barge_ms = 0
                    else:
                        continue
                if voiced:
                    utterance += chunk
                    voice_ms += CHUNK_MS
                    quiet_ms = 0
                elif voice_ms:
                    quiet_ms += CHUNK_MS
                    utterance += chunk
                    if quiet_ms >= self.end_silence_ms:
                        if voice_ms >= 200:
                            reply = asyncio.create_task(self._answer(ws, sess, bytes(utterance), voice_ms))
                        utterance.clear()
                        voice_ms = quiet_ms = 0

    async def _answer(self, ws: ServerConnection, sess: SimSession, utterance: bytes, voice_ms: int) -> None:
        sess.turns += 1
        self._turns[sess.session_id] = sess.earlier_turns + sess.turns
        n = sess.earlier_turns + sess.turns
        cont = f"continuing {sess.earlier_turns} earlier turns" if sess.continued_from else "new conversation"
        await self._send(ws, sess, "ontranscript", data=f"utterance {n} ({voice_ms / 1000:.1f} s of speech)", payload={"is_final": True})
        await self._send(ws, sess, "start_answering")
        await self._send(ws, sess, "onresponsetext", data=f"Turn {n}, {cont}. Here is what you said.", payload={"is_final": True})
        try:
            await self._play(ws, utterance[: SAMPLE_RATE_HZ * 2 * 5] + tone(660, 300))
            if self.end_after_turns and sess.turns >= self.end_after_turns:
                await self._send(ws, sess, "onsessionended")
                await ws.close()
        except ConnectionClosed:
            pass

    async def _play(self, ws: ServerConnection, audio: bytes) -> None:
        """Streams agent audio paced at real time, ~100 ms ahead, and waits until it has played."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, off in enumerate(range(0, len(audio), CHUNK_BYTES)):
            await ws.send(audio[off : off + CHUNK_BYTES])
            ahead = start + i * CHUNK_MS / 1000 - 0.1 - loop.time()  # stay ~100 ms ahead of real time
            if ahead > 0:
                await asyncio.sleep(ahead)
        await asyncio.sleep(max(0.0, start + len(audio) / (2 * SAMPLE_RATE_HZ) - loop.time()))

    def _record(self, sess: SimSession) -> None:
        if self.record_dir is None:
            return
        self.record_dir.mkdir(parents=True, exist_ok=True)
        (self.record_dir / f"{sess.session_id}.raw").write_bytes(bytes(sess.uplink))
        meta = {"session_id": sess.session_id, "initiate": sess.initiate, "continued_from": sess.continued_from, "earlier_turns": sess.earlier_turns, "turns": sess.turns, "sent": sess.sent}
        (self.record_dir / f"{sess.session_id}.json").write_text(json.dumps(meta, indent=1))


class SimulatorThread(LoopThread):
    """Runs an AgentSimulator on its own event loop thread (tests, demo, benchmarks)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("agent-simulator")
        self.sim = AgentSimulator(**kwargs)

    def __enter__(self) -> AgentSimulator:
        self.start_loop()
        self.call(self.sim.start())
        return self.sim

    def __exit__(self, *exc: object) -> None:
        self.stop_loop(self.sim.stop())


async def serve_forever(host: str, port: int, **kwargs: Any) -> None:
    sim = AgentSimulator(host, port, **kwargs)
    await sim.start()
    log.info("agent simulator listening on %s", sim.url)
    print(f"agent simulator listening on {sim.url}", flush=True)
    await asyncio.Future()
