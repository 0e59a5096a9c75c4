"""A seeded random fuzzer of the Conversation with each link's `Downlink` (agent/downlink.py) in
the loop, as `AgentLink._receive` drives it, and a model of the speaker: agent audio, `clear`,
`pause`/`unpause` and earcons. Invariants checked at every step: the speaker holds agent audio
only of the current conversation's current link and only while it streams, it is paused exactly
when the conversation's turns say the agent paused, and a reply latency is told only for audio
of the link whose `start_answering` began it. Run: `PYTHONPATH=.:tests python tests/downfuzz.py 400`."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from convfuzz import timing_for

from edge_agent.agent.downlink import Downlink
from edge_agent.core import conversation as c
from edge_agent.core import protocol as p


class Violation(AssertionError):
    pass


class SimLink:
    """One agent link as `AgentLink._receive` handles what the server sends."""

    def __init__(self, link_id: int, h: Harness) -> None:
        self.link_id, self.h, self.alive = link_id, h, True
        self.down = Downlink(lambda pcm: h.feed(c.AgentAudio(link_id, pcm)), lambda m: h.feed(c.FromAgent(link_id, m)), lambda what, level: None)

    def receive(self, msg: bytes | p.ServerMessage) -> None:
        if not self.alive:
            return
        if isinstance(msg, bytes):
            self.down.audio(msg)
            return
        if isinstance(msg, (p.OnReady, p.SessionEnded)) or self.down.message(msg):
            self.h.feed(c.FromAgent(self.link_id, msg))
        if isinstance(msg, p.OnReady):
            self.down.ready_now()
        if isinstance(msg, p.SessionEnded):
            self.h.drop(self, None)


@dataclass
class Harness:
    seed: int
    rng: random.Random
    conv: c.Conversation = None  # type: ignore[assignment]
    now: float = 0.0
    links: dict = field(default_factory=dict)
    closing: list = field(default_factory=list)
    speaker: list = field(default_factory=list)  # ("agent", link, conversation) or ("earcon", name)
    paused: bool = False
    conv_no: int = 0
    link_conv: dict = field(default_factory=dict)
    answering_link: int | None = None
    log: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conv = c.Conversation(timing_for(self.rng), rng=random.Random(self.seed))

    def fail(self, msg: str) -> None:
        raise Violation(f"seed {self.seed}: {msg}\n" + "\n".join(self.log[-40:]))

    def drop(self, link: SimLink, error: str | None, server_closed: bool = False, fatal: bool = False) -> None:
        if link.alive:
            link.alive = False
            self.feed(c.LinkDown(link.link_id, error, fatal, server_closed))

    def feed(self, ev: c.Event) -> None:
        acts = self.conv.handle(ev, self.now)
        shown = [a for a in acts if not isinstance(a, c.Play)]
        self.log.append(f"{self.now:7.2f} {self.conv.state:>10} {ev!r:.80} -> {shown!r:.300} plays={len(acts) - len(shown)}")
        if isinstance(ev, c.FromAgent) and isinstance(ev.message, p.StartAnswering) and self.conv.streaming and ev.link_id == self.conv.link_id:
            self.answering_link = ev.link_id
        for a in acts:
            if isinstance(a, c.Notify) and a.kind == "response_latency" and (not isinstance(ev, c.AgentAudio) or ev.link_id != self.answering_link):
                self.fail(f"the latency of a start_answering on link {self.answering_link} told for {ev!r:.40}")
            if isinstance(a, c.NewVisitor):
                self.conv_no += 1
            elif isinstance(a, c.OpenLink):
                self.links[a.link_id] = SimLink(a.link_id, self)
                self.link_conv[a.link_id] = self.conv_no
            elif isinstance(a, c.CloseLink) and a.link_id in self.links and self.links[a.link_id].alive:
                self.closing.append(self.links[a.link_id])
            elif isinstance(a, c.Play) and isinstance(ev, c.AgentAudio):
                self.speaker.append(("agent", ev.link_id, self.link_conv[ev.link_id]))
            elif isinstance(a, c.Playback):
                if a.command == "clear":
                    self.speaker.clear()
                self.paused = a.command == "pause"
            elif isinstance(a, c.Earcon):
                self.speaker.append(("earcon", a.name))
        self.check()

    def check(self) -> None:
        conv = self.conv
        for item in self.speaker:
            if item[0] == "agent" and item[2] != self.conv_no:
                self.fail(f"audio of conversation {item[2]} queued in conversation {self.conv_no}")
            if item[0] == "agent" and item[1] != conv.link_id:
                self.fail(f"audio of link {item[1]} queued, the link is {conv.link_id}")
            if item[0] == "agent" and not conv.streaming:
                self.fail(f"agent audio queued while {conv.state}")
        if self.paused and not conv.streaming:
            self.fail(f"the speaker paused while {conv.state}")
        if conv.streaming and self.paused != conv._turns.paused:
            self.fail(f"the speaker paused={self.paused}, the agent paused={conv._turns.paused}")

    def step(self) -> None:
        rng = self.rng
        self.now += rng.choice([0.0, 0.05, 0.2, 0.5, 1.0])
        r = rng.random()
        live = [link for link in self.links.values() if link.alive]
        if r < 0.05:
            self.feed(c.Press(long=rng.random() < 0.3))
        elif r < 0.07:
            self.feed(c.End())
        elif r < 0.12 and self.closing:
            self.drop(self.closing.pop(0), None)
        elif r < 0.17 and live:
            self.drop(rng.choice(live), rng.choice(["close_1006", "timeout"]), server_closed=rng.random() < 0.3, fatal=rng.random() < 0.03)
        elif r < 0.6 and live:
            link = rng.choice(live) if rng.random() < 0.2 else live[-1]
            k = rng.random()
            msg: bytes | p.ServerMessage
            if k < 0.15:
                msg = p.OnReady(f"s{rng.randint(1, 5)}")
            elif k < 0.55:
                msg = bytes(rng.choice([1, 2, 3, 320]))
            else:
                msg = rng.choice([p.Clear(), p.Pause(), p.Unpause(), p.StartAnswering(), p.SessionEnded(), p.Transcript("x", True)])
            link.receive(msg)
        elif r < 0.7:
            self.feed(c.Initiated(self.conv.link_id))
        elif r < 0.8:
            if not self.paused:  # the speaker played all it had
                self.speaker.clear()
                self.feed(c.PlaybackDrained())
        elif r < 0.85:
            self.feed(c.VisitorSpeech(rng.random() < 0.5))
        else:
            self.feed(c.Tick())


def run(seed: int, steps: int = 1500) -> Harness:
    h = Harness(seed, random.Random(seed))
    for _ in range(steps):
        h.step()
    return h


if __name__ == "__main__":
    import collections
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    fails: collections.Counter[str] = collections.Counter()
    first: dict[str, str] = {}
    for seed in range(n):
        try:
            run(seed)
        except Violation as v:
            key = str(v).split("\n")[0].split(": ", 1)[1][:60]
            fails[key] += 1
            first.setdefault(key, str(v))
    for k, count in fails.most_common():
        print(count, k, "\n", first[k][-4000:])
    print("seeds", n, "failed", sum(fails.values()))
