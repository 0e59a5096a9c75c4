"""A fresh conversation at another kiosk, while a kiosk whose clock runs ahead holds the slot's
newest (a helper's review, skew3): newest wins by the wall-clock start, times written by
different kiosks, so kiosk A (10 minutes ahead) ranked B's new session as older than its own,
sent its own again, the broker kept it, and B filed it over its new session: the person's next
press continued the conversation they had chosen to leave. A fresh start now names the slot's
newest its kiosk knew (`replaces`), which it beats whatever the clocks say. Each test failed
before the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Broker, wait_for
from test_share import _a_ahead_and_b, _cmd, _converse, _newest, _quiet, _share, _wire

from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator

TOPIC = "edge-agent/_sessions/agent-1/pat"


def test_a_fresh_start_at_a_kiosk_behind_is_not_taken_back_by_the_kiosk_ahead(tmp_path: Path, sim: AgentSimulator, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """A (clock 10 min ahead) holds S1 for `pat`; a `new` command at B starts S2, not continuing
    S1. The fleet's newest for `pat` is S2: at B, at A, on the broker, and B's next press continues S2."""
    with _a_ahead_and_b(tmp_path, sim, broker, monkeypatch) as (a, b, obs):
        first = _converse(a, sim, obs, "kiosk-a", "pat")
        wait_for(lambda: (n := _newest(b, "pat")) is not None and n.id == first.session_id and n.ended_at, 20, "B to know how S1 ended")
        before = len(sim.sessions)
        _cmd(obs, "kiosk-b", action="new", slot="pat")
        b.wait_state(c.LISTENING)
        second = wait_for(lambda: len(sim.sessions) > before and sim.sessions[-1], 20, "S2")
        _cmd(obs, "kiosk-b", action="end")
        b.wait_state(c.IDLE)
        assert second.continued_from is None
        obs.wait(TOPIC, lambda p: bool(p) and json.loads(p)["session_id"] == second.session_id and json.loads(p)["ended_at"] is not None)
        _quiet(obs, [a, b], TOPIC)  # whatever A answers has reached B
        assert _newest(b, "pat").id == second.session_id, f"B filed A's S1 ({first.session_id}) over its own new S2 ({second.session_id})"
        assert _newest(a, "pat").id == second.session_id, "A still ranks its S1 over B's new S2"
        retained = [p for p in obs.find(TOPIC) if p][-1]
        assert json.loads(retained)["session_id"] == second.session_id, "the broker was left holding S1"
        third = _converse(b, sim, obs, "kiosk-b", "pat")
        assert third.continued_from == second.session_id, f"B's next press continued {third.continued_from}, not the new conversation {second.session_id}"


@pytest.mark.parametrize("replaces", [7, True, ["s-1"], {"id": "s-1"}, "", "bad id", "s" * 129, "s-1\n"])
def test_a_pointer_with_a_bad_replaces_is_rejected_and_counted(tmp_path: Path, replaces: object) -> None:
    """`replaces` arrives from any broker user: a value no session id can be is a bad pointer,
    counted and dropped (not filed, not a crash), as a bad `continued_from` is."""
    share, bus, store = _share(tmp_path)
    handler = bus.handlers["fleet/_sessions/agent-1/+"]
    handler("fleet/_sessions/agent-1/pat", _wire("s-2", 999_000.0, replaces=replaces))
    assert share.counts["rejected"] == 1
    assert store.newest("agent-1", "pat") is None


def test_a_fresh_start_beats_the_session_it_replaces_whatever_the_clocks_and_old_pointers_still_count(tmp_path: Path) -> None:
    """The rules alone: a pointer naming the slot's newest as the one it `replaces` is filed over it,
    though its start is earlier. A pointer without the field (an older kiosk's) is ranked by its
    start as before."""
    share, bus, store = _share(tmp_path)
    handler = bus.handlers["fleet/_sessions/agent-1/+"]
    handler("fleet/_sessions/agent-1/pat", _wire("s-1", 999_600.0, ended_at=999_700.0))
    assert store.newest("agent-1", "pat").id == "s-1"  # type: ignore[union-attr]
    handler("fleet/_sessions/agent-1/pat", _wire("s-0", 999_000.0))  # older, no `replaces`: not filed
    assert store.newest("agent-1", "pat").id == "s-1"  # type: ignore[union-attr]
    handler("fleet/_sessions/agent-1/pat", _wire("s-2", 999_000.0, continued_from=None, replaces="s-1"))
    assert store.newest("agent-1", "pat").id == "s-2"  # type: ignore[union-attr]
    assert store.get("s-2").continued_from is None  # type: ignore[union-attr]  # a fresh start continues nothing
    assert share.counts["rejected"] == 0
