"""Seeded fuzzer (a helper's hostile review) of the audio on its way from the capture to the socket.

Real parts under test: `Conversation` (core/conversation.py), `Backlog` (core/backlog.py),
`Uplink` (agent/uplink.py), `Outbox` (agent/outbox.py) and `CaptureFeed` (service/capture.py).
Faked at the I/O boundary: the socket (`FakeWS`, records every frame handed to it), the link's
task (`FakeLink` mirrors AgentLink's order: outbox closed, then exactly one LinkDown), the gate
(`FakeGate`: closed frames go as silence and are kept as pre-roll, an opening sends the pre-roll
with the frame) and the standby (never warm). Driven on a real asyncio loop.

Every piece handed to `Uplink.send` is tracked by identity until its fate: sent (to which link),
dropped by the backlog's bound, dropped by the live queue's bound, thrown away at the end of its
conversation, or lost in a dead link's outbox. Checked (`check`): see INVARIANTS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import struct
import types
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from edge_agent.agent import outbox as outbox_mod
from edge_agent.agent import uplink as uplink_mod
from edge_agent.agent import wire as wire_mod
from edge_agent.agent.health import LinkStats
from edge_agent.agent.outbox import BATCH_FRAMES, Outbox
from edge_agent.agent.uplink import Uplink
from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.backlog import Backlog
from edge_agent.core.timing import Timing
from edge_agent.service.capture import CaptureFeed

FRAME_MS = 30
FRAME_BYTES = 960
PREROLL_FRAMES = 5  # the fake gate's pre-roll (documented pre-roll: vad.preroll_ms)
PREROLL_S = PREROLL_FRAMES * FRAME_MS / 1000.0
QUEUE_FRAMES = 33  # AgentLink's default max_queued_frames: "at most the uplink queue's second"

INVARIANTS = (
    "I1 every non-silent piece sent to a link was handed over in that link's conversation",
    "I2 captured no earlier than that conversation's press - pre-roll",
    "I3 nothing goes to the socket after its conversation ended",
    "I4 per conversation, non-silent pieces go in capture order, none twice",
    "I5 every piece has a fate: sent, counted drop (backlog / queue), thrown at the end, or lost in a dead link",
    "I6 a dead link loses at most the uplink queue's second (QUEUE_FRAMES pieces, + one batch in flight)",
    "I7 counters: backlog.dropped, stats.frames_dropped, frames_sent, bytes_up match the fates",
    "I8 the backlog never holds more than backlog_ms",
)


def frame_of(n: int) -> bytes:
    """Captured frame `n`: every 4 bytes say n (so any 10 ms part names its frame)."""
    return struct.pack("<I", n + 1) * (FRAME_BYTES // 4)


def frame_no(piece: bytes) -> int | None:
    if piece.count(0) == len(piece):
        return None
    return struct.unpack("<I", piece[:4])[0] - 1


class Violation(AssertionError):
    pass


class FakeWS:
    """BatchingConnection's face to the Outbox: records what it is handed, in order."""

    def __init__(self, h: Harness, link: FakeLink) -> None:
        self.h, self.link = h, link
        self.open = True
        self.paused = False
        self.resumed = asyncio.Event()

    @property
    def takes_now(self) -> bool:
        return self.open and not self.paused

    def send_binaries_now(self, messages: list[bytes]) -> None:
        assert self.takes_now
        for m in messages:
            self.h.on_sent(self.link, m)

    async def send_binaries(self, messages: list[bytes]) -> None:
        """As websockets 17's send_context: written to the transport at once, then the drain
        waits while flow control holds the socket back (ConnectionClosed if it dies meanwhile)."""
        if not self.open:
            raise ConnectionError("closed")
        for m in messages:
            self.h.on_sent(self.link, m)
        while self.paused and self.open:
            self.resumed.clear()
            await self.resumed.wait()
        if not self.open:  # written, but the drain never came: lost with the socket, not counted as sent
            ended = self.h.ended.get(self.link.gen, False) or self.link.gen != self.h.gen
            for m in messages:
                self.h.pieces[id(m)].fate = "thrown_end" if ended else "lost_dead"
                if not ended:
                    self.h.lost_per_link[self.link.link_id] += 1
            raise ConnectionError("closed")


class FakeLink:
    """AgentLink without the socket: the harness says when it connects, is ready, drops."""

    harness: Harness

    def __init__(self, settings: Any, link_id: int, emit: Any, stats: LinkStats, max_queued_frames: int = QUEUE_FRAMES, quiet_settle_s: float = 1.0) -> None:
        self.link_id, self._emit, self.stats = link_id, emit, stats
        self.outbox = Outbox(stats, max_queued_frames, quiet_settle_s)
        self.send_audio = self.outbox.send_audio
        self.send_held = self.outbox.send_held
        self.ws: FakeWS | None = None
        self.task: asyncio.Task[None] | None = None
        self.ready = False
        self.down_sent = False
        self.down_pending = False
        self.gen = self.harness.gen
        self.harness.links.append(self)

    @property
    def first_audio_sent_at(self) -> float | None:
        return self.outbox.first_audio_sent_at

    @property
    def queued(self) -> bool:
        return self.outbox.queued

    @property
    def finished(self) -> bool:
        return self.down_sent

    def start(self, continuation: str | None, delay_s: float = 0.0) -> None:
        pass

    def close(self) -> None:
        self.harness.leftovers(self, "closed")
        self.outbox.close()
        if not self.down_sent:
            self.down_pending = True

    async def wait_closed(self, timeout_s: float = 2.0) -> None:
        pass


class FakeStandby:
    def take(self, *a: Any) -> None:
        return None

    def close(self) -> None:
        return None


class FakeGate:
    """Closed: the frame goes as silence and joins the pre-roll; an opening sends the pre-roll
    and the frame; open: the frame."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.is_open = False
        self.ring: list[bytes] = []
        self.held_frames = 0
        self.debt = 0
        self.frames_sent = 0  # the microphone's frames let through (the kiosk's frames_sent counts these, not silence)

    @property
    def silence(self) -> bytes:
        return bytes(FRAME_BYTES)  # a new object each time: tracked by identity

    def forget_heard(self) -> None:
        self.ring = []

    def start_went_ahead(self, n: int) -> None:
        pass

    def new_visitor(self) -> None:
        pass

    def hear(self, frame: bytes, captured_at: float) -> tuple[tuple[bytes, ...], bool]:
        # the pre-roll is the frames captured in the last PREROLL_S (the clock may jump: a tick)
        self.ring = [f for f in self.ring if captured_at - self.captured[frame_no(f)] < PREROLL_S - 1e-9]
        if self.is_open:
            if self.rng.random() < 0.05:
                self.is_open = False
            self.frames_sent += 1
            return (frame,), True
        if self.rng.random() < 0.2:
            self.is_open = True
            out = (*self.ring, frame)
            self.ring = []
            self.frames_sent += len(out)
            return out, True
        self.ring = [*self.ring, frame][-PREROLL_FRAMES:]
        return (self.silence,), True


class FakeMic:
    def __init__(self, gate: FakeGate) -> None:
        self.gate = gate

    def hear(self, frame: bytes, captured_at: float) -> tuple[tuple[bytes, ...], bool]:
        return self.gate.hear(frame, captured_at)

    def lead(self, pcm: bytes, captured_at: float) -> bytes:
        return pcm


class FakeTicker:
    def frame(self, captured_at: float) -> None:
        pass


@dataclass
class Piece:
    obj: bytes
    frame: int | None
    captured_at: float
    gen: int
    fate: str | None = None
    link: int | None = None


@dataclass
class Harness:
    rng: random.Random
    backlog_ms: int = 600
    now: float = 1000.0
    gen: int = 0
    links: list[FakeLink] = field(default_factory=list)
    pieces: dict[int, Piece] = field(default_factory=dict)
    press_at: dict[int, float] = field(default_factory=dict)
    ended: dict[int, bool] = field(default_factory=dict)
    trace: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    frames_captured: int = 0
    sent_order: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    lost_per_link: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    last_home: dict[int, tuple[FakeLink, bool]] = field(default_factory=dict)

    def setup(self) -> None:
        FakeLink.harness = self
        self.stats = LinkStats()
        self.backlog = Backlog(self.backlog_ms, FRAME_MS)
        self.conv = c.Conversation(Timing(duplex_half=False, starts_per_minute=1000.0, start_burst=1000, idle_timeout_s=1e6), rng=random.Random(self.rng.random()))
        self.uplink = Uplink(self.stats, FakeStandby(), self.backlog, self.dispatch)  # type: ignore[arg-type]
        self.gate = FakeGate(self.rng)
        self.gate.captured = self.captured
        self.counters: dict[str, int] = defaultdict(int)
        self.capture = CaptureFeed(self.conv, FakeMic(self.gate), self.gate, self.uplink, FakeTicker(), self.counters, lambda: self.now)  # type: ignore[arg-type]
        self._wrap()

    # ------------------------------------------------------------------ tracking
    def _wrap(self) -> None:
        h = self
        uplink_send = self.uplink.send

        def send(frames: tuple[bytes, ...], captured_at: float, holding: bool) -> None:
            link = h.uplink.link
            for f in frames:
                n = frame_no(f)
                h.pieces[id(f)] = Piece(f, n, h.captured.get(n, captured_at) if n is not None else captured_at, h.gen)
            if not holding and link is not None:
                ob = link.outbox
                if ob.closed:
                    for f in frames:
                        h.fate(f, "uncounted:sent to a closed outbox")
                else:
                    before = [x for x, _ in ob._queue]
                    uplink_send(frames, captured_at, holding)
                    after = {id(x) for x, _ in ob._queue}
                    for x in before + list(frames):
                        if id(x) not in after and h.pieces[id(x)].fate is None:
                            h.fate(x, "dropped_queue")
                return
            if holding:
                uplink_send(frames, captured_at, holding)
                return
            for f in frames:
                h.fate(f, "uncounted:no link")

        self.uplink.send = send  # type: ignore[method-assign]
        backlog_add = self.backlog.add

        def add(frames: Any) -> None:  # whoever adds (the capture, or a link's audio put back)
            frames = list(frames)
            before = [x for x in h.backlog._frames]
            backlog_add(frames)
            after = {id(x) for x in h.backlog._frames}
            for x in before + frames:
                if id(x) not in after:
                    h.fate(x, "dropped_backlog")
            if h.backlog._bytes > h.backlog.max_bytes:
                h.err("I8 backlog over its bound")

        self.backlog.add = add  # type: ignore[method-assign]
        uplink_held = self.uplink.held

        def held(command: str) -> None:
            frames = list(h.backlog._frames)
            link = h.uplink.link
            if command == "drop" or link is None:
                for f in frames:
                    h.fate(f, "thrown_end" if command == "drop" else "uncounted:held with no link")
            elif link.outbox.closed:
                for f in frames:
                    h.fate(f, "uncounted:held to a closed outbox")
            uplink_held(command)

        self.uplink.held = held  # type: ignore[method-assign]

    def fate(self, f: bytes, what: str, link: FakeLink | None = None) -> None:
        pc = self.pieces[id(f)]
        if pc.fate is not None:
            self.err(f"I4 piece of frame {pc.frame} had fate {pc.fate}, now {what}")
        pc.fate = what
        if link is not None:
            pc.link = link.link_id
        if what.startswith("uncounted"):
            self.err(f"I5 piece of frame {pc.frame} (gen {pc.gen}): {what}")

    def leftovers(self, link: FakeLink, why: str) -> None:
        """What is still in a link's outbox when it closes or dies: its fate is told at the end
        (lost with the link, thrown away with its conversation, or put back and sent after all)."""
        if link.outbox.closed:
            return
        ended = self.ended.get(link.gen, False) or link.gen != self.gen
        for f in list(link.outbox._held) + [f for f, _ in link.outbox._queue]:
            self.last_home[id(f)] = (link, ended)

    def on_sent(self, link: FakeLink, m: bytes) -> None:
        pc = self.pieces.get(id(m))
        if pc is None:
            self.err("a piece nobody handed over went up")
            return
        self.fate(m, "sent", link)
        if pc.gen != link.gen:
            self.err(f"I1 frame {pc.frame} of conversation {pc.gen} went to link {link.link_id} of conversation {link.gen}")
        if self.ended.get(link.gen):
            self.err(f"I3 frame {pc.frame} went to link {link.link_id} after conversation {link.gen} ended")
        if pc.frame is not None:
            if pc.captured_at < self.press_at[link.gen] - PREROLL_S - 1e-9:
                self.err(f"I2 frame {pc.frame} captured {self.press_at[link.gen] - pc.captured_at:.3f} s before the press of conversation {link.gen}")
            order = self.sent_order[link.gen]
            if order and order[-1][0] > pc.frame:
                self.err(f"I4 frame {pc.frame} went after frame {order[-1][0]} in conversation {link.gen}")
            order.append((pc.frame, len(m)))

    def err(self, msg: str) -> None:
        self.errors.append(msg)
        raise Violation(msg + "\n" + "\n".join(self.trace[-int(os.environ.get("OUTFUZZ_TRACE", "40")):]))

    # ------------------------------------------------------------------ the daemon's part
    def dispatch(self, event: c.Event) -> None:
        actions = self.conv.handle(event, self.now)
        for a in actions:
            if isinstance(a, c.NewVisitor):
                self.gen += 1
                self.press_at[self.gen] = self.now
                self.gate.new_visitor()
            elif isinstance(a, c.OpenLink):
                self.uplink.open(a, None, None)  # type: ignore[arg-type]
            elif isinstance(a, c.CloseLink):
                self.uplink.close(a.link_id)
            elif isinstance(a, c.HeldAudio):
                self.uplink.held(a.command)
                if a.command == "drop":
                    self.capture.held_dropped()
            elif isinstance(a, c.Notify) and a.kind == "conversation_ended":
                self.ended[self.gen] = True
            elif isinstance(a, c.StateChanged) and a.state == c.LISTENING and self.uplink.link is not None and not (self.uplink.link.first_audio_sent_at is not None or self.uplink.link.queued):
                s = self.gate.silence
                self.pieces[id(s)] = Piece(s, None, self.now, self.gen)
                if self.uplink.start_stream(s):
                    self.gate.debt += 1
                else:
                    self.pieces[id(s)].fate = "unused"

    # ------------------------------------------------------------------ steps
    captured: dict[int, float] = field(default_factory=dict)

    def capture_frame(self) -> None:
        self.now += FRAME_MS / 1000.0
        n = self.frames_captured
        self.frames_captured += 1
        self.captured[n] = self.now
        self.capture.frame(frame_of(n), self.now)

    def _down(self, link: FakeLink, error: str | None = "net") -> None:
        link.down_pending = False
        if link.down_sent:
            return
        link.down_sent = True
        if link.ws is not None:
            link.ws.open = False
            link.ws.resumed.set()
        self.dispatch(c.LinkDown(link.link_id, error, False, False))

    KINDS = ("frame", "press", "end", "connect", "ready", "drop", "session_ended", "pause", "linkdown", "tick", "lead")

    def step(self) -> None:
        if not hasattr(self, "weights"):  # each seed its own mix: long connects, flaky links, ...
            base = {"frame": 55, "press": 5, "end": 2, "connect": 8, "ready": 8, "drop": 3, "session_ended": 1, "pause": 6, "linkdown": 4, "tick": 3, "lead": 5}
            self.weights = [base[k] * self.rng.choice([0.1, 0.3, 1.0, 1.0, 3.0]) for k in self.KINDS]
        self.do(self.rng.choices(self.KINDS, self.weights)[0])

    def do(self, kind: str) -> None:
        """One event of `kind` (nothing when it does not apply now)."""
        live = [ln for ln in self.links if not ln.down_sent and not ln.outbox.closed]
        cur = self.uplink.link
        if kind == "frame":
            self.trace.append("frame")
            self.capture_frame()
        elif kind == "press":
            slot = self.rng.choice([None, "a", "b"])
            self.trace.append(f"press slot={slot}")
            self.dispatch(c.Press(slot=slot))
        elif kind == "end":
            self.trace.append("end")
            self.dispatch(c.End())
        elif kind == "connect" and cur is not None and cur.ws is None and not cur.outbox.closed:
            self.trace.append(f"connect {cur.link_id}")
            cur.ws = FakeWS(self, cur)
            cur.ws.paused = self.rng.random() < 0.3
            cur.task = asyncio.get_running_loop().create_task(cur.outbox.serve(cur.ws))  # type: ignore[arg-type]
            self.dispatch(c.Initiated(cur.link_id))
        elif kind == "ready" and cur is not None and cur.ws is not None and not cur.ready and not cur.outbox.closed:
            self.trace.append(f"onready {cur.link_id}")
            cur.ready = True
            self.dispatch(c.FromAgent(cur.link_id, p.OnReady(f"s{cur.link_id}")))
        elif kind == "drop" and live:
            link = self.rng.choice(live)
            self.trace.append(f"drop {link.link_id}")
            self.leftovers(link, "dropped")
            link.outbox.close()
            self._down(link)
        elif kind == "session_ended" and cur is not None and cur.ready and not cur.outbox.closed:
            self.trace.append(f"session_ended {cur.link_id}")
            self.dispatch(c.FromAgent(cur.link_id, p.SessionEnded()))
            self.leftovers(cur, "ended")
            cur.outbox.close()
            cur.down_pending = True
        elif kind == "pause" and cur is not None and cur.ws is not None:
            cur.ws.paused = not cur.ws.paused
            self.trace.append(f"paused={cur.ws.paused} {cur.link_id}")
            cur.ws.resumed.set()
        elif kind == "linkdown":
            pend = [ln for ln in self.links if ln.down_pending]
            if pend:
                link = self.rng.choice(pend)
                self.trace.append(f"linkdown {link.link_id}")
                self._down(link, None)
        elif kind == "tick":
            self.now += self.rng.choice([0.1, 1.0, 5.0])
            self.trace.append(f"tick {self.now:.2f}")
            self.dispatch(c.Tick())
        elif kind == "lead" and self.gen and self.now - self.press_at[self.gen] < 0.1 and self.gate.is_open and self.capture.led_bytes + 320 < FRAME_BYTES:  # a hurried source, right after a press
            self.trace.append("lead")
            self.capture.lead(frame_of(self.frames_captured)[:320], self.now + 0.01)

    # ------------------------------------------------------------------ the end
    async def settle(self) -> None:
        for ln in self.links:
            if ln.ws is not None:
                ln.ws.paused = False
                ln.ws.resumed.set()
        for _ in range(20):
            await asyncio.sleep(0)

    def check_end(self) -> None:
        for pc in self.pieces.values():
            if pc.fate is None and not self._still_in_flight(pc):
                home = self.last_home.get(id(pc.obj))
                if home is None:
                    self.err(f"I5 piece of frame {pc.frame} (gen {pc.gen}) has no fate")
                link, ended = home
                if ended:
                    pc.fate = "thrown_end"
                else:
                    pc.fate = "lost_dead"
                    self.lost_per_link[link.link_id] += 1
        for link_id, n in self.lost_per_link.items():
            if n > QUEUE_FRAMES + BATCH_FRAMES:  # the queue's second, and the batch the socket had
                self.err(f"I6 link {link_id} died with {n} pieces of its conversation unsent, more than the queue's {QUEUE_FRAMES} (+{BATCH_FRAMES} in flight)")
        counts: dict[str, int] = defaultdict(int)
        sent_bytes = 0
        for pc in self.pieces.values():
            counts[pc.fate or "?"] += 1
            if pc.fate == "sent":
                sent_bytes += len(pc.obj)
        if counts["dropped_backlog"] != self.backlog.dropped:
            self.err(f"I7 backlog.dropped {self.backlog.dropped} != {counts['dropped_backlog']}")
        if counts["dropped_queue"] != self.stats.frames_dropped:
            self.err(f"I7 frames_dropped {self.stats.frames_dropped} != {counts['dropped_queue']}")
        if counts["sent"] != self.stats.frames_sent or sent_bytes != self.stats.bytes_up:
            self.err(f"I7 frames_sent {self.stats.frames_sent}/{self.stats.bytes_up} != {counts['sent']}/{sent_bytes}")

    def _still_in_flight(self, pc: Piece) -> bool:
        """Still held or queued for a conversation that has not ended (the run stopped)."""
        if any(x is pc.obj for x in self.backlog._frames):
            return True
        return any(any(x is pc.obj for x in ln.outbox._held) or any(x is pc.obj for x, _ in ln.outbox._queue) for ln in self.links if not ln.outbox.closed)


@contextlib.asynccontextmanager
async def faked(h: Harness, clock: bool = True) -> AsyncIterator[Harness]:
    """`h` set up with FakeLink as the uplink's link (and, with `clock`, the outbox and its
    batching on the harness's clock); put back, and every link's task ended, afterwards."""
    saved = uplink_mod.AgentLink
    uplink_mod.AgentLink = FakeLink  # type: ignore[misc,assignment]
    saved_time = wire_mod.time, outbox_mod.time
    if clock:
        wire_mod.time = outbox_mod.time = types.SimpleNamespace(monotonic=lambda: h.now)  # type: ignore[assignment]
    try:
        h.setup()
        yield h
    finally:
        uplink_mod.AgentLink = saved  # type: ignore[misc]
        wire_mod.time, outbox_mod.time = saved_time  # type: ignore[assignment]
        for ln in h.links:
            if ln.task is not None:
                ln.outbox.close()
                ln.task.cancel()
        await asyncio.sleep(0)


async def run_async(seed: int, steps: int, backlog_ms: int = 600) -> Harness:
    h = Harness(random.Random(seed), backlog_ms=backlog_ms)
    async with faked(h):
        for _ in range(steps):
            h.step()
            for _ in range(h.rng.randrange(0, 3)):
                await asyncio.sleep(0)
            if h.errors:  # raised in a task (the sender's): reported here
                raise Violation(h.errors[0] + "\n" + "\n".join(h.trace[-40:]))
        await h.settle()
        if h.errors:
            raise Violation(h.errors[0] + "\n" + "\n".join(h.trace[-40:]))
        h.check_end()
    return h


def run(seed: int, steps: int, backlog_ms: int = 600) -> Harness:
    return asyncio.run(run_async(seed, steps, backlog_ms))


if __name__ == "__main__":
    import sys

    seeds, steps = int(sys.argv[1]), int(sys.argv[2])
    found: dict[str, list[int]] = defaultdict(list)
    for s in range(seeds):
        try:
            run(s, steps, int(sys.argv[3]) if len(sys.argv) > 3 else 600)
        except Violation as v:
            found[str(v).split("\n")[0][:2]].append(s)
            if len(found[str(v).split("\n")[0][:2]]) == 1:
                print(f"seed {s}: {v}\n")
    print({k: (len(v), v[:10]) for k, v in found.items()})
