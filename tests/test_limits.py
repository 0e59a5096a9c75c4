"""The bounds of issue 14 in the pure state machine and the parser: start rate limit, reconnect
cap, backoff reset only after a link lived, idle timeout while paused, session id validation."""

from __future__ import annotations

import json
import random

import pytest

from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.ratelimit import FailureStreak, LogThrottle, TokenBucket
from edge_agent.core.timing import Timing
from edge_agent.errors import ProtocolError


def make(**timing: object) -> c.Conversation:
    return c.Conversation(Timing(**timing), rng=random.Random(1))  # type: ignore[arg-type]


def of(actions: list[c.Action], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(3, 0.5)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_s(0.0) == pytest.approx(2.0)
    assert not bucket.take(1.9) and bucket.take(2.0) and not bucket.take(2.1)
    assert bucket.take(100.0) and bucket.take(100.0) and bucket.take(100.0) and not bucket.take(100.0)  # never above the burst


def test_log_throttle_passes_a_few_then_one_per_interval_with_the_count_left_out() -> None:
    throttle = LogThrottle(first=2, every_s=10.0)
    passed = [throttle.allow(t * 0.01) for t in range(1000)]  # 1 000 in 0 .. 9.99 s
    assert passed[:2] == [0, 0] and all(x is None for x in passed[2:])
    assert throttle.allow(10.0) == 998  # the next one passes, saying how many were left out
    assert throttle.total == 1001


def test_failure_streak_reports_the_first_then_one_per_interval_until_it_ends() -> None:
    streak = FailureStreak(every_s=60.0)
    assert streak.ended(0.0) is None
    reported = [streak.failed(t * 3.0) for t in range(41)]  # a retry every 3 s for 2 minutes
    assert [i * 3 for i, r in enumerate(reported) if r] == [0, 60, 120]
    assert streak.ended(121.0) == (41, 121.0)
    assert streak.failed(130.0) and streak.failures == 1  # a new streak: reported at once


def test_starts_beyond_the_bucket_are_refused_whatever_asks() -> None:
    conv = make(start_burst=2, starts_per_minute=6.0)
    for i in range(2):  # start and end, twice
        assert of(conv.handle(c.Press(origin="mqtt"), i * 1.0), c.OpenLink)
        conv.handle(c.Press(origin="mqtt"), i * 1.0 + 0.1)
        conv.handle(c.LinkDown(conv.link_id), i * 1.0 + 0.2)
    refused = conv.handle(c.Press(), 2.5)  # the button
    assert not of(refused, c.OpenLink) and conv.state == c.IDLE
    assert of(refused, c.Notify)[-1].kind == "start_refused" and of(refused, c.Earcon) == [c.Earcon("error")]
    assert not of(conv.handle(c.Start(fresh=True), 2.6), c.OpenLink)
    assert not of(conv.handle(c.Talk(held=True), 2.7), c.OpenLink)
    assert conv.starts_refused == 3 and conv.start_wait_s(2.7) == pytest.approx(7.3, abs=0.01)  # 0.1 token left at 1.0 s, +0.1/s
    assert of(conv.handle(c.Press(), 12.0), c.OpenLink)  # refilled (one per 10 s)


def test_a_link_lost_right_after_onready_backs_off_more_each_time_and_gives_up_past_the_cap() -> None:
    conv = make(max_reconnects=4, reconnect_window_s=1000.0)
    conv.handle(c.Press(), 0.0)
    now, delays = 0.0, []
    for n in range(4):
        conv.handle(c.FromAgent(conv.link_id, p.OnReady(f"s{n}")), now + 0.1)
        (open_,) = of(conv.handle(c.LinkDown(conv.link_id, "close_1006"), now + 0.2), c.OpenLink)
        delays.append(open_.delay_s)
        now += 0.2 + open_.delay_s
    assert delays == sorted(delays) and delays[-1] > 3 * delays[0]  # backoff grows, never reset
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s4")), now + 0.1)
    acts = conv.handle(c.LinkDown(conv.link_id, "close_1006"), now + 0.2)
    assert not of(acts, c.OpenLink) and conv.state == c.ERROR
    (error,) = [n for n in of(acts, c.Notify) if n.kind == "error"]
    assert error.fields["code"] == "reconnect_limit" and "4 reconnects" in error.fields["message"]


def test_a_link_that_lived_resets_the_backoff() -> None:
    conv = make(min_link_life_s=10.0)
    conv.handle(c.Press(), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.1)
    first = of(conv.handle(c.LinkDown(conv.link_id), 20.0), c.OpenLink)[0].delay_s
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s2")), 21.0)
    second = of(conv.handle(c.LinkDown(conv.link_id), 40.0), c.OpenLink)[0].delay_s
    assert max(first, second) <= Timing().backoff_base_s * 1.5  # both the first step


def test_idle_timeout_applies_while_the_agent_holds_playback() -> None:
    conv = make(idle_timeout_s=5.0, max_duration_s=600.0)
    conv.handle(c.Press(), 0.0)
    conv.handle(c.FromAgent(conv.link_id, p.OnReady("s1")), 0.1)
    conv.handle(c.AgentAudio(conv.link_id, b"\1\0" * 160), 1.0)
    conv.handle(c.FromAgent(conv.link_id, p.Pause()), 1.1)
    assert conv.state == c.SPEAKING and not conv.mic_open(2.0)  # muted: the speaker never drains
    conv.handle(c.Tick(), 5.0)
    assert conv.state == c.SPEAKING
    acts = conv.handle(c.Tick(), 6.2)
    assert [n.fields["reason"] for n in of(acts, c.Notify) if n.kind == "conversation_ended"] == ["idle"]


@pytest.mark.parametrize("sid", ["abc\nWATCHDOG=trigger", "x\r", "a\x1b[31m", "", "x" * 129, "a b", "é", "a\\b", "a;b", "a\0"])
def test_unusable_session_ids_are_protocol_errors(sid: str) -> None:
    with pytest.raises(ProtocolError):
        p.parse_server_text(json.dumps({"method": "onready", "payload": {"session_id": sid}}))


@pytest.mark.parametrize("sid", ["abc", "5a6f0c2e-1d1b-4ed6-9b1a-ed65", "x" * 128, "sess_01.AB:c", "Zm9v+YmFy/cXV4LnNlc3Npb24="])
def test_plain_session_ids_are_accepted(sid: str) -> None:
    assert p.parse_server_text(json.dumps({"method": "onready", "payload": {"session_id": sid}})) == p.OnReady(sid)
