"""Attacks on "press again later and the conversation picks up where it left off" (2026-12-06, a
helper's): each failed before its fix. The pure ones feed the Conversation events; the others run
the kiosk against the simulator on loopback (and the fault proxy for a slow network)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import KioskThread, kiosk_events, kiosk_settings, wait_for
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from edge_agent.agent.health import closed_by_server
from edge_agent.core import conversation as c
from edge_agent.core import protocol as p
from edge_agent.core.store import SessionStore
from edge_agent.core.timing import Timing
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import AgentSimulator, SimulatorThread


def of(actions: list[c.Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def asked_for(actions: list[c.Action]) -> list[str | None]:
    return [o.continue_session_id for o in of(actions, c.OpenLink)]


# ----------------------------------------------------------------------------- 1. a stored session ages
def test_a_session_stored_before_the_start_ages_while_the_kiosk_runs() -> None:
    """The store's session was 50 s old when the daemon started (resume_within_s = 100). The kiosk
    then idles for an hour; the store (recall) says it is 3650 s old. ResumeMemory used the age
    read at start, never updated: the next visitor's short press continued the last visitor's
    conversation, however long the kiosk had stood unpressed."""
    boot = 1000.0
    now = boot

    def recall(agent_id: str | None, slot: str) -> tuple[str, float] | None:
        return ("old-visitor", 50.0 + (now - boot))

    conv = c.Conversation(Timing(resume_within_s=100.0), "old-visitor", 50.0, rng=random.Random(1), recall=recall, aged_at=boot)
    assert conv.continuation_candidate(now + 10.0) == "old-visitor"  # still within: the check bites only on age
    now = boot + 3600.0
    assert conv.continuation_candidate(now) is None
    assert asked_for(conv.handle(c.Press(), now)) == [None]


def test_a_session_stored_before_the_start_ages_while_the_store_cannot_be_read() -> None:
    """The same with the store faulty (recall answers nothing): the age read at start grows on the
    monotonic clock from `aged_at`."""
    conv = c.Conversation(Timing(resume_within_s=100.0), "old-visitor", 50.0, rng=random.Random(1), recall=lambda a, s: None, aged_at=1000.0)
    assert conv.continuation_candidate(1040.0) == "old-visitor"
    assert conv.continuation_candidate(1060.0) is None
    # the store back after its fault: the age it gives at that moment grows the same way
    conv.handle(c.StoreReloaded("old-visitor", 10.0), 2000.0)
    assert conv.continuation_candidate(2080.0) == "old-visitor"
    assert conv.continuation_candidate(2100.0) is None


def test_daemon_does_not_continue_a_session_that_expired_while_it_ran(tmp_path: Path, sim: AgentSimulator) -> None:
    """End to end: the store holds a session 1 s old, resume_within_s = 3 s; the kiosk starts,
    nobody presses for 4 s, then a visitor presses: a fresh session, not the old visitor's."""
    store = SessionStore(tmp_path / "state")
    store.record_start("old-visitor", "agent-1", "default", None, time.time() - 1.0)
    store.record_end("old-visitor", "button", time.time() - 1.0)
    store.close()
    with KioskThread(kiosk_settings(tmp_path, sim.url, session={"resume_within_s": 3.0})) as k:
        time.sleep(4.0)
        k.press()
        k.wait_state(c.LISTENING)
        assert sim.sessions[-1].initiate["data"].get("session_continuation") is None


# ----------------------------------------------------------------------------- 2. refused without a fatal code
@pytest.mark.parametrize("code", [1000, 1011])
def test_a_continuation_refused_with_a_non_fatal_close_does_not_fail_every_press(tmp_path: Path, code: int) -> None:
    """The platform no longer knows the stored session and closes the socket before onready,
    normally (1000) or as an internal error (1011). The kiosk asked for the same continuation for
    the whole reconnect window, failed with the error earcon, and the next press asked for it
    again: no visitor got a conversation until resume_within_s passed."""
    fast = {"dead_after_s": 1.5, "ping_interval_s": 0.5, "connect_timeout_s": 1.0}
    with SimulatorThread(refuse_continuation=code) as sim, KioskThread(kiosk_settings(tmp_path, sim.url, agent=fast, session={"reconnect_window_s": 2.0})) as k:
        k.press()
        k.wait_state(c.LISTENING)
        k.press()
        k.wait_state(c.IDLE)
        k.press()
        wait_for(lambda: k.state in (c.LISTENING, c.ERROR), 15, "listening or error")
        assert k.state == c.LISTENING, f"{sim.continuations_refused} continuations refused, {len(sim.sessions)} sessions"
        assert sim.continuations_refused == 2  # two closes of the same request, then fresh


def test_one_server_close_before_onready_keeps_the_continuation() -> None:
    """A server's single hiccup (a 1011 before onready) is retried with the same continuation, and
    closes that ask to try later (1013) never count: only a second close of the server's own drops it."""
    conv = c.Conversation(Timing(), "old", 10.0, rng=random.Random(1))
    assert asked_for(conv.handle(c.Press(), 0.0)) == ["old"]
    assert asked_for(conv.handle(c.LinkDown(1, "close_1011", server_closed=True), 0.5)) == ["old"]
    assert asked_for(conv.handle(c.LinkDown(2, "close_1006"), 1.0)) == ["old"]  # the network, not the server
    acts = conv.handle(c.LinkDown(3, "close_1011", server_closed=True), 2.0)
    assert asked_for(acts) == [None] and [n for n in of(acts, c.Notify) if n.kind == "continuation_refused"]
    later = c.Conversation(Timing(), "old", 10.0, rng=random.Random(1))
    later.handle(c.Press(), 0.0)
    for i in range(1, 6):  # "try again later", five times: the same request each time
        assert asked_for(later.handle(c.LinkDown(i, "close_1013"), float(i))) == ["old"]


def test_which_closes_are_the_servers_own() -> None:
    """`LinkDown.server_closed`: the server's close frame came first, with a code that does not ask
    to try later; the kiosk's own close (a frame too big) echoed back is not the server's."""
    assert closed_by_server(ConnectionClosed(Close(1011, "boom"), None))
    assert closed_by_server(ConnectionClosed(Close(1000, ""), Close(1000, ""), rcvd_then_sent=True))
    assert not any(closed_by_server(ConnectionClosed(Close(code, ""), None)) for code in (1001, 1012, 1013, 1014))
    assert not closed_by_server(ConnectionClosed(Close(1009, ""), Close(1009, ""), rcvd_then_sent=False))
    assert not closed_by_server(ConnectionClosed(None, None))  # no close frame: the network
    assert not closed_by_server(TimeoutError())


def test_a_continuation_the_server_never_answers_is_not_asked_for_by_every_press() -> None:
    """The server takes the socket and the `initiate` asking to continue "old", keeps the link
    alive (no LinkDown) and never says onready. After the window the press failed; every press
    after it asked for "old" again. Now the window's end asks once more, fresh, with a window of
    its own (the fresh link was not cut at the next tick)."""
    conv = c.Conversation(Timing(reconnect_window_s=30.0), "old", 10.0, rng=random.Random(1))
    assert asked_for(conv.handle(c.Press(), 0.0)) == ["old"]
    conv.handle(c.Initiated(1), 0.2)  # the server has the request
    for step in range(1, 30):
        assert asked_for(conv.handle(c.Tick(), float(step))) == []
    acts = conv.handle(c.Tick(), 30.0)
    assert asked_for(acts) == [None] and conv.state == c.CONNECTING
    for step in range(31, 60):
        assert asked_for(conv.handle(c.Tick(), float(step))) == [] and conv.state == c.CONNECTING
    conv.handle(c.FromAgent(2, p.OnReady("fresh-1")), 45.0)
    assert conv.state == c.LISTENING and conv.session_id == "fresh-1"


@pytest.mark.parametrize("first_drop", [c.LinkDown(1, "timeout"), c.LinkDown(1, "close_1011", server_closed=True)], ids=["network", "one_server_close"])
def test_a_continuation_never_readied_after_one_drop_is_still_retried_fresh(first_drop: c.LinkDown) -> None:
    """(A second helper's, on the first fix.) The never-ready rule ran only while no link of the
    press had dropped: one network drop (a connect timing out on waking Wi-Fi) or one close of
    the server's own (a "hiccup"), then a server that keeps the next link and never says
    onready, and the window's end failed the press without the fresh try."""
    conv = c.Conversation(Timing(reconnect_window_s=30.0), "old", 10.0, rng=random.Random(1))
    assert asked_for(conv.handle(c.Press(), 0.0)) == ["old"]
    assert asked_for(conv.handle(first_drop, 0.5)) == ["old"]
    conv.handle(c.Initiated(2), 1.5)  # link 2 reached the server, which keeps it and says nothing
    acts: list[c.Action] = []
    step = 1.0
    while step <= 31.0 and conv.state == c.CONNECTING and not asked_for(acts):
        acts = conv.handle(c.Tick(), step)
        step += 0.5
    assert asked_for(acts) == [None], f"state {conv.state}: {of(acts, c.Notify)}"
    assert [n for n in of(acts, c.Notify) if n.kind == "continuation_refused"]


def test_a_window_the_network_never_let_through_fails_once_without_a_fresh_try() -> None:
    """No `initiate` ever reached a server (connects timing out for the whole window): the server
    refused nothing, so the press fails as before and the stored id stays; a fresh try would only
    have doubled the visitor's wait before the error earcon."""
    conv = c.Conversation(Timing(reconnect_window_s=30.0), "old", 10.0, rng=random.Random(1))
    assert asked_for(conv.handle(c.Press(), 0.0)) == ["old"]
    link, now = 1, 0.0
    while conv.state == c.CONNECTING and now < 40.0:
        now += 5.0
        acts = conv.handle(c.LinkDown(link, "timeout"), now)
        assert asked_for(acts) in ([], ["old"]), acts
        link = conv.link_id
    assert conv.state == c.ERROR and conv.continuation_candidate(now) == "old"
    still = c.Conversation(Timing(reconnect_window_s=30.0), "old", 10.0, rng=random.Random(1))
    still.handle(c.Press(), 0.0)  # the first link still connecting when the window ends (no Initiated)
    assert asked_for(still.handle(c.Tick(), 30.0)) == [] and still.state == c.ERROR


def test_a_fresh_session_the_server_never_answers_either_fails_once() -> None:
    """Nothing to drop (no continuation asked for): the window's end is the failure it was."""
    conv = c.Conversation(Timing(reconnect_window_s=30.0), rng=random.Random(1))
    assert asked_for(conv.handle(c.Press(), 0.0)) == [None]
    conv.handle(c.Initiated(1), 0.2)
    acts = conv.handle(c.Tick(), 30.0)
    assert asked_for(acts) == [] and conv.state == c.ERROR


# ----------------------------------------------------------------------------- 3. the warm link's idle close
def test_a_press_racing_the_servers_idle_close_of_the_standby_still_continues(tmp_path: Path) -> None:
    """agent.warm_link: the server drops a socket that sent no `initiate` after a few seconds,
    1008 (the simulator does, as servers do). A press whose `initiate` crossed that close on the
    wire (0.4 s one way here: a real network's latency) got a "fatal" close_1008 on its first
    link, taken for the platform refusing the continuation: the stored session was dropped and a
    fresh one started, though the platform never saw the request."""
    with SimulatorThread(initiate_timeout_s=3.0) as sim, FaultProxyThread("127.0.0.1", sim.port) as proxy:
        proxy.delay_s = 0.4
        settings = kiosk_settings(tmp_path, proxy.url(), agent={"warm_link": True, "connect_timeout_s": 5.0})
        with KioskThread(settings) as k:
            k.press()
            k.wait_state(c.LISTENING)
            first = sim.sessions[-1].session_id
            k.press()
            k.wait_state(c.IDLE)
            seen = sim.upgrades
            wait_for(lambda: sim.upgrades > seen, 15, "a standby to reach the server")
            time.sleep(3.0 + 0.15)  # the server closes it at 3.0 s; the close is 0.4 s on its way
            k.press()
            wait_for(lambda: k.state in (c.LISTENING, c.ERROR), 20, "listening or error")
            assert k.state == c.LISTENING
            assert sim.sessions[-1].initiate["data"].get("session_continuation") == {"session_id": first}


# ----------------------------------------------------------------------------- a helper's attacks on the continuation promise (2026-12-06), each failed before its fix
@pytest.mark.parametrize("stored_default", [True, False], ids=["continuing", "fresh"])
def test_an_off_record_conversation_cut_after_the_window_reconnects(tmp_path: Path, stored_default: bool) -> None:
    """A server names, in the conversation's first `onready`, the id this kiosk holds for a badge
    holder's slot: the conversation runs off the record (as documented), and goes on. A network
    cut later than `reconnect_window_s` into it must reconnect like any cut mid-conversation.
    It was taken for a link that never became ready: the window counted from the press, so the
    cut was "past the window" at once, and the visitor's live conversation was either failed
    (error earcon, a fresh press) or taken for a refused continuation and restarted fresh."""
    store = SessionStore(tmp_path / "state")
    store.record_start("alice-1", "agent-1", "b-alice", None, time.time() - 5.0)
    store.record_end("alice-1", "button", time.time() - 4.0)
    if stored_default:
        store.record_start("visitor-1", "agent-1", "default", None, time.time() - 3.0)
        store.record_end("visitor-1", "button", time.time() - 2.0)
    store.close()
    st = SimulatorThread(bad_session_id="alice-1")
    sim = st.sim
    with st:
        settings = kiosk_settings(tmp_path, sim.url, agent={"dead_after_s": 1.5, "ping_interval_s": 0.5}, session={"reconnect_window_s": 1.0})
        with KioskThread(settings) as k:
            events = kiosk_events(k)
            k.press()
            k.wait_state(c.LISTENING)
            assert any(f.get("code") == "agent_session_of_another" for e, f in events if e == "error")
            asked = sim.sessions[-1].initiate["data"].get("session_continuation")
            time.sleep(1.5)  # the conversation runs on, past the reconnect window's length
            sessions = len(sim.sessions)
            assert k.state == c.LISTENING  # the conversation is alive
            st.call(sim.drop(), timeout_s=5)  # a network cut
            wait_for(lambda: len(sim.sessions) > sessions or k.state == c.ERROR, 10, f"a reconnect or an error (state {k.state})")
            wait_for(lambda: k.state in (c.LISTENING, c.ERROR), 10, "listening or error")
            kinds = [e for e, _ in events]
            assert k.state == c.LISTENING, f"state {k.state}; events {kinds}"
            assert "continuation_refused" not in kinds, events
            assert "reconnecting" in kinds, kinds
            assert sim.sessions[-1].initiate["data"].get("session_continuation") == asked


def test_reconnects_turned_off_still_let_a_press_start_a_conversation(tmp_path: Path) -> None:
    """`session.reconnect_window_s = 0` is accepted by the config (the range starts at 0): an
    operator's way to turn reconnects off (a drop ends the conversation; the next press continues
    it). The first `onready` was given the same window, so every press failed at the first tick
    after it, with the error earcon, before any server could answer: no visitor could talk."""
    with SimulatorThread(onready_delay_s=0.3) as sim, KioskThread(kiosk_settings(tmp_path, sim.url, session={"reconnect_window_s": 0.0})) as k:
        events = kiosk_events(k)
        k.press()
        wait_for(lambda: k.state in (c.LISTENING, c.ERROR), 10, "listening or error")
        assert k.state == c.LISTENING, [f for e, f in events if e == "error"]


def test_a_continuation_refused_after_a_forget_does_not_name_the_forgotten_session(tmp_path: Path) -> None:
    """The operator's privacy switch (MQTT `forget_sessions`) lands while a short press is still
    connecting to the last visitor's session. The README: the conversation goes on off the
    record and "the states and events it publishes name no session". The platform then refuses
    the continuation (`onsessionended` before `onready`): the `continuation_refused` event, which
    goes out over MQTT, named the session the forget had just wiped."""
    store = SessionStore(tmp_path / "state")
    store.record_start("last-visitor", "agent-1", "default", None, time.time() - 5.0)
    store.record_end("last-visitor", "button", time.time() - 4.0)
    store.close()
    with SimulatorThread(refuse_continuation=0) as sim, FaultProxyThread("127.0.0.1", sim.port) as proxy:
        proxy.delay_s = 0.5  # the refusal is a second away: the forget comes first
        settings = kiosk_settings(tmp_path, proxy.url(), agent={"connect_timeout_s": 5.0})
        with KioskThread(settings) as k:
            events = kiosk_events(k)
            k.press()
            k.wait_state(c.CONNECTING)
            assert k.on_loop(k.kiosk.forget_sessions) == 1
            mark = len(events)  # the press's own request named it before the forget
            wait_for(lambda: sim.continuations_refused == 1, 10, "the refusal")
            wait_for(lambda: any(e in ("continuation_refused", "conversation_started") for e, _ in events), 10, "the refusal to reach the kiosk")
            named = [(e, f) for e, f in events[mark:] if "last-visitor" in repr(f)]
            assert named == [], named
            k.wait_state(c.LISTENING)  # the fresh retry goes on, off the record
            k.press()
            wait_for(lambda: k.state == c.IDLE, 15, "idle")


def test_a_stop_while_a_replaced_link_still_closes_leaves_no_task_behind(tmp_path: Path) -> None:
    """A refused continuation is retried fresh on a new link while the refused one still closes
    (half a second each way here): the kiosk kept only the new link, so at a stop right then it
    waited for that one alone and the old link's task outlived the kiosk (a helper's finding;
    `KioskThread` fails on any task left)."""
    store = SessionStore(tmp_path / "state")
    store.record_start("last-visitor", "agent-1", "default", None, time.time() - 5.0)
    store.record_end("last-visitor", "button", time.time() - 4.0)
    store.close()
    with SimulatorThread(refuse_continuation=0) as sim, FaultProxyThread("127.0.0.1", sim.port) as proxy:
        proxy.delay_s = 0.5
        with KioskThread(kiosk_settings(tmp_path, proxy.url(), agent={"connect_timeout_s": 5.0})) as k:
            events = kiosk_events(k)
            k.press()
            wait_for(lambda: any(e == "continuation_refused" for e, _ in events), 15, "the refusal")
        # leaving the block stops the kiosk: no task may outlive it
