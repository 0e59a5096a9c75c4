"""A seeded random fuzzer for the Conversation (no hypothesis): plausible event sequences with a
model of the daemon around it (the store, the current link), invariants checked at every step."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.timing import Timing

SLOTS = [None, None, None, "default", "lobby", "b-alice"]
AGENTS = [None, None, None, None, "other"]


class Violation(AssertionError):
    pass


@dataclass
class Harness:
    seed: int
    t: Timing
    conv: c.Conversation = None  # type: ignore[assignment]
    now: float = 0.0
    store: dict = field(default_factory=dict)  # sid -> ((agent, slot), at)
    forgotten: set = field(default_factory=set)
    open_link: int | None = None
    sid_counter: int = 0
    log: list = field(default_factory=list)
    conv_reconnected: int = 0
    conv_opens: int = 0
    state_since: float = 0.0
    stored_ids: set = field(default_factory=set)
    max_opens: int = 0
    last_tick: float = 0.0
    expect_cont: object = None
    calm: bool = False
    refused_seen: int = 0
    starts: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store["old"] = ((None, "default"), -5.0)
        self.stored_ids.add("old")
        self.conv = c.Conversation(self.t, "old", 5.0, rng=random.Random(self.seed), recall=self.recall, foreign=self.foreign, own_agent_id="own", aged_at=0.0)

    # the store, as the daemon's
    def recall(self, agent: str | None, slot: str):
        best = None
        for sid, (tgt, at) in self.store.items():
            if tgt == (agent, slot) and (best is None or at >= best[1]):
                best = (sid, at)
        return None if best is None else (best[0], self.now - best[1])

    def foreign(self, sid: str, agent: str | None, slot: str) -> bool:
        return sid in self.store and self.store[sid][0] != (agent, slot)

    def fail(self, msg: str) -> None:
        raise Violation(f"seed {self.seed}: {msg}\n" + "\n".join(self.log[-40:]))

    def feed(self, ev: c.Event) -> list[c.Action]:
        conv = self.conv
        self.expect_cont = None
        fresh = ev.long if isinstance(ev, c.Press) else ev.fresh if isinstance(ev, c.Start) else False if isinstance(ev, c.Talk) else None
        if fresh is not None:
            def expect(a, fresh=fresh):
                if fresh or not self.t.resume:
                    return None
                got = self.recall(conv.whose.agent(a.agent_id), a.slot)
                return got[0] if got is not None and got[1] <= self.t.resume_within_s else None
            self.expect_cont = expect
        before_state, before_link = conv.state, conv.link_id
        try:
            acts = conv.handle(ev, self.now)
        except Exception as e:
            self.fail(f"exception {e!r} on {ev}")
        evs = f"AgentAudio({ev.link_id}, {len(ev.pcm)}B)" if isinstance(ev, c.AgentAudio) else repr(ev)
        shown = [f"Play({len(a.pcm)}B)" if isinstance(a, c.Play) else repr(a) for a in acts]
        self.log.append(f"{self.now:8.2f} {before_state:>10} {evs} -> {', '.join(shown)}")
        self.check(ev, before_state, before_link, acts)
        return acts

    def check(self, ev, before_state, before_link, acts) -> None:
        conv = self.conv
        if conv.state not in c.STATES:
            self.fail(f"bad state {conv.state}")
        if before_state == c.IDLE and conv.state == c.IDLE and acts and not isinstance(ev, (c.Press, c.Start, c.Talk)):
            self.fail(f"{ev} in idle did something")
        first_open_of_conv = False
        new_conv = False
        link = before_link
        for a in acts:
            if isinstance(a, c.NewVisitor):
                new_conv = True
                first_open_of_conv = True
                self.conv_reconnected = 0
                self.conv_opens = 0
            if isinstance(a, c.OpenLink):
                link += 1
                if a.link_id != link:
                    self.fail(f"OpenLink id {a.link_id} not the next ({link})")
                self.open_link = a.link_id
                self.conv_opens += 1
                self.max_opens = max(self.max_opens, self.conv_opens)
                cont = a.continue_session_id
                if cont is not None and cont in self.forgotten and first_open_of_conv:
                    self.fail(f"a new conversation asks to continue forgotten {cont}")
                if cont is not None and first_open_of_conv and cont in self.store and self.store[cont][0] != (conv.whose.agent(a.agent_id), a.slot):
                    self.fail(f"a new conversation of {(a.agent_id, a.slot)} asks for {cont} held for {self.store[cont][0]}")
                if a.delay_s < 0:
                    self.fail("negative delay")
                if first_open_of_conv and self.expect_cont is not None:
                    exp = self.expect_cont(a)
                    if cont != exp:
                        self.fail(f"a new conversation of {(a.agent_id, a.slot)} asks for {cont}, the store's newest is {exp}")
                first_open_of_conv = False
            if isinstance(a, c.CloseLink) and a.link_id == self.open_link:
                self.open_link = None
            if isinstance(a, c.StoreStart):
                tgt = (a.agent_id, a.slot)
                if conv.record.off_record:
                    self.fail(f"stored {a.session_id} off the record")
                named = ev.message.session_id if isinstance(ev, c.FromAgent) and isinstance(ev.message, p.OnReady) else ev.session_id if isinstance(ev, c.LinkReady) else None
                if named != a.session_id:
                    self.fail(f"StoreStart {a.session_id} not from this onready")
                if a.session_id in self.store and self.store[a.session_id][0] != tgt:
                    self.fail(f"{a.session_id} filed under {tgt} but held for {self.store[a.session_id][0]}")
                self.store.pop(a.session_id, None)
                self.store[a.session_id] = (tgt, self.now)
                self.stored_ids.add(a.session_id)
                self.forgotten.discard(a.session_id)
            if isinstance(a, c.StoreEnd):
                if a.session_id not in self.stored_ids:
                    self.fail(f"StoreEnd of never stored {a.session_id}")
                if a.session_id in self.forgotten:
                    self.fail(f"StoreEnd of forgotten {a.session_id}")
                if a.session_id in self.store and a.reason not in ("replaced", "reconnected"):
                    tgt, _ = self.store.pop(a.session_id)
                    self.store[a.session_id] = (tgt, self.now)  # re-inserted: the newest of equal times
            if isinstance(a, c.Play) and not conv.streaming:
                self.fail("Play while not streaming")
            if isinstance(a, c.StateChanged):
                for sid in (a.session_id, a.continued_from):
                    if sid is not None and sid in self.forgotten:
                        self.fail(f"state names forgotten {sid}")
            if isinstance(a, c.Notify):
                for k in ("session_id", "previous", "continued_from", "continue_session_id"):
                    sid = a.fields.get(k)
                    if sid is not None and sid in self.forgotten:
                        self.fail(f"event {a.kind} names forgotten {sid}")
                if a.kind == "response_latency" and a.fields["ms"] > (self.now - conv._started_at) * 1000.0 + 1e-6:
                    self.fail(f"response latency {a.fields['ms']} ms in a conversation {self.now - conv._started_at:.2f} s old")
                if a.kind == "reconnected":
                    self.conv_reconnected += 1
                    if self.conv_reconnected > self.t.max_reconnects:
                        self.fail("more reconnects than max_reconnects")
        busy = (c.CONNECTING, c.LISTENING, c.SPEAKING)
        kinds = [a.kind for a in acts if isinstance(a, c.Notify)]
        if conv.starts_refused != self.refused_seen:
            self.refused_seen = conv.starts_refused
            kinds.append("start_refused")
        opens = [a for a in acts if isinstance(a, c.OpenLink)]
        if isinstance(ev, c.Start) and before_state in busy and acts:
            self.fail("a Start while busy did something")
        if isinstance(ev, c.End) and before_state in busy and conv.state != c.ENDING:
            self.fail("an End while busy did not end it")
        if isinstance(ev, (c.Press, c.Start)) and "start_refused" not in kinds and (before_state not in busy or "conversation_ended" in kinds):
            want = ev.slot or conv.whose.default_slot
            if isinstance(ev, c.Press) and before_state in busy and not conv.whose.other(ev.slot, ev.agent_id) and not opens:
                pass
            elif not opens or opens[-1].slot != want or conv.state != c.CONNECTING:
                self.fail(f"{ev} did not start a conversation for {want}")
        if isinstance(ev, c.Press) and before_state in busy and "start_refused" not in kinds and conv.state not in (c.ENDING, c.CONNECTING):
            self.fail("a press during a conversation did not end it")
        if isinstance(ev, c.Press) and before_state in busy and "start_refused" in kinds and (conv.state != before_state or "conversation_ended" in kinds):
            self.fail("a refused switch ended the conversation")
        for a in [x for x in acts if isinstance(x, c.OpenLink)][-1:] + [x for x in acts if isinstance(x, c.StateChanged)][-1:]:
            if a.slot != conv.whose.slot:
                self.fail(f"{a} names slot other than {conv.whose.slot}")
        if any(isinstance(a, c.NewVisitor) for a in acts):
            self.starts.append(self.now)
            n = sum(1 for x in self.starts if x > self.now - 60.0)
            if n > self.t.start_burst + self.t.starts_per_minute + 1:
                self.fail(f"{n} starts in 60 s")
        if (before_state == c.CONNECTING and conv.state == c.ERROR and not conv._links.was_ready and self.t.reconnect_window_s > 0
                and not (isinstance(ev, c.LinkDown) and (ev.fatal or ev.server_closed)) and not isinstance(ev, c.FromAgent)
                and self.now - conv._links.since < 5.0 - 1e-9):
            self.fail(f"the first onready got only {self.now - conv._links.since:.2f} s (window {self.t.reconnect_window_s} s)")
        sc = [a for a in acts if isinstance(a, c.StateChanged)]
        if sc and sc[-1].state != conv.state:
            self.fail("last StateChanged is not the state")
        if conv.state != before_state or sc:
            self.state_since = self.now if conv.state != before_state else self.state_since
        if conv.state == c.IDLE and self.open_link is not None:
            self.fail(f"idle with link {self.open_link} still open")
        if conv.state == c.IDLE and any(isinstance(a, (c.Play, c.OpenLink)) for a in acts if True) and not new_conv:
            self.fail("idle and played/opened")
        if self.t.duplex_half and conv.state == c.SPEAKING and conv.mic_open(self.now):
            self.fail("mic open while the agent speaks (half duplex)")
        if conv.mic_open(self.now) and not (conv.streaming or conv.holding):
            self.fail("mic open outside a conversation")
        if conv.record.off_record:
            pub = conv.published_ids()
            if pub != (None, None):
                self.fail("off record but publishes ids")
        # liveness, given ticks every <= 1 s
        gap = 1.5
        W = max(self.t.reconnect_window_s, 5.0)
        limits = {c.ENDING: self.t.ending_timeout_s + gap, c.ERROR: self.t.error_hold_s + gap, c.CONNECTING: 2 * W + self.t.backoff_cap_s * 1.5 + 2 * gap}
        if conv.state in limits and self.now - conv._state_since > limits[conv.state]:
            self.fail(f"{conv.state} for {self.now - conv._state_since:.1f} s")
        if isinstance(ev, c.Tick) and conv.streaming and self.now - conv._started_at >= self.t.max_duration_s:
            self.fail("streaming past max_duration")

    # event generation
    def sid(self, rng: random.Random) -> str:
        r = rng.random()
        ids = list(self.store)
        if r < 0.55 or not ids:
            self.sid_counter += 1
            return f"s{self.sid_counter}"
        if r < 0.7 and self.conv.session_id:
            return self.conv.session_id
        if r < 0.8 and self.forgotten:
            return rng.choice(sorted(self.forgotten))
        return rng.choice(sorted(ids))

    def step(self, rng: random.Random) -> None:
        conv = self.conv
        self.now += rng.choice([0.0, 0.01, 0.1, 0.3, 0.5, 1.0])
        if self.now - self.last_tick >= 0.5:  # the daemon ticks on its own
            self.last_tick = self.now
            self.feed(c.Tick())
        r = rng.random()
        if self.calm and r < 0.16 and rng.random() < 0.85:
            r = 0.42 + rng.random() * 0.58  # fewer presses and starts: longer conversations
        if self.calm and 0.33 <= r < 0.42 and rng.random() < 0.7:
            r = 0.9
        if self.calm and r > 0.96 and rng.random() < 0.5 and conv.state == c.IDLE:
            ev = c.StoreReloaded(*(lambda g: (g[0], g[1]) if g else (None, None))(self.recall(None, conv.whose.default_slot)))
            self.feed(ev)
            return
        slot, agent = rng.choice(SLOTS), rng.choice([*AGENTS, "own"])
        cur = conv.link_id
        if r < 0.08:
            ev = c.Press(long=rng.random() < 0.3, origin=rng.choice(["button", "badge", "mqtt"]), slot=slot, agent_id=agent if rng.random() < 0.3 else None)
        elif r < 0.12:
            ev = c.Start(fresh=rng.random() < 0.5, slot=slot, agent_id=agent if rng.random() < 0.3 else None)
        elif r < 0.14:
            ev = c.End(rng.choice(["command", "shutdown"]))
        elif r < 0.16 and self.t.push_to_talk:
            ev = c.Talk(rng.random() < 0.5, long=rng.random() < 0.3, slot=slot if rng.random() < 0.3 else None)
        elif r < 0.30:
            if self.open_link is None:
                ev = c.Tick()
            else:
                ev = c.FromAgent(self.open_link if rng.random() < 0.9 else max(0, cur - 1), p.OnReady(self.sid(rng)))
        elif r < 0.33:
            ev = c.Initiated(cur)
        elif r < 0.42:
            lid = self.open_link if (self.open_link is not None and rng.random() < 0.9) else max(0, cur - rng.randint(0, 2))
            ev = c.LinkDown(lid, rng.choice([None, "close_1006", "timeout"]), fatal=rng.random() < 0.05, server_closed=rng.random() < 0.2)
            if lid == self.open_link:
                self.open_link = None
        elif r < 0.52:
            ev = c.AgentAudio(cur, bytes(rng.choice([0, 1, 2, 320])))
        elif r < 0.58:
            ev = c.FromAgent(cur, rng.choice([p.Clear(), p.Pause(), p.Unpause(), p.StartAnswering(), p.Transcript("t", True), p.ResponseText("r", False)]))
        elif r < 0.60:
            ev = c.FromAgent(cur, p.SessionEnded())
        elif r < 0.66:
            ev = c.PlaybackDrained()
        elif r < 0.72:
            ev = c.VisitorSpeech(rng.random() < 0.5)
        elif r < 0.735:
            if rng.random() < 0.5:
                ev = c.SessionsForgotten()
            else:
                ev = c.SessionsForgotten(slot=rng.choice(["default", "lobby", "b-alice"]), agent_id=rng.choice([None, None, "other"]))
            self.forget(ev)
        else:
            ev = c.Tick()
        self.feed(ev)

    def forget(self, ev: c.SessionsForgotten) -> None:
        target = None if ev.slot is None else (ev.agent_id, ev.slot)
        for sid, (tgt, _) in list(self.store.items()):
            if target is None or tgt == target:
                del self.store[sid]
                self.forgotten.add(sid)
        # the conversation's own live session (not stored yet, or memory) is forgotten too
        if target is None or target == (self.conv.whose.agent_id, self.conv.whose.slot):
            for sid in (self.conv.session_id, self.conv.continued_from):
                if sid is not None:
                    self.forgotten.add(sid)


def timing_for(rng: random.Random) -> Timing:
    return Timing(
        idle_timeout_s=rng.choice([5.0, 30.0]),
        max_duration_s=rng.choice([20.0, 120.0]),
        reconnect_window_s=rng.choice([0.0, 3.0, 10.0, 30.0]),
        duplex_half=rng.random() < 0.7,
        push_to_talk=rng.random() < 0.2,
        max_reconnects=rng.choice([1, 3, 10]),
        min_link_life_s=rng.choice([2.0, 10.0]),
        start_burst=rng.choice([2, 10]),
    )


def run(seed: int, steps: int = 2000) -> Harness:
    rng = random.Random(seed)
    h = Harness(seed, timing_for(rng))
    h.calm = seed % 2 == 1
    for _ in range(steps):
        h.step(rng)
    return h


if __name__ == "__main__":
    import collections
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    fails = collections.Counter()
    first = {}
    for seed in range(n):
        try:
            run(seed, steps)
        except Violation as v:
            key = str(v).split("\n")[0].split(": ", 1)[1][:60]
            fails[key] += 1
            first.setdefault(key, (seed, str(v)))
    for k, v in fails.most_common():
        print(v, k, "first seed", first[k][0])
    print("seeds", n, "failed", sum(fails.values()))
