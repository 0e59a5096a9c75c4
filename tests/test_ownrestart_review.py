"""A kiosk offline while a person talks there holds the slot's pointer for the broker (paho's
queue, the share's own pointers); restarted before it reconnects, it lost both, and the fleet never
heard of that conversation: the person was taken back to the one before at the next kiosk. The
store now marks a kiosk's own rows (`own`) and a restart defends each slot whose newest is its own
(`SessionStore.own_newest`, `SessionShare(own=...)`)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from conftest import Broker, KioskThread, Observer, wait_for
from test_ownrows_review import written_back_and_reopened
from test_share import _converse, _kiosk, _newest

import edge_agent.fleet.share as share_module
from edge_agent.core import conversation as c
from edge_agent.core.events import Press
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.faultproxy import FaultProxy, FaultProxyThread
from edge_agent.devtools.simulator import AgentSimulator, SimSession


def _talk_offline(b: KioskThread, proxy: FaultProxy, proxy_thread: FaultProxyThread, sim: AgentSimulator, long: bool) -> SimSession:
    """B's broker link is cut and stays down; a press there (long: a fresh start) and an end."""
    proxy.mode = "refuse"
    proxy_thread.cut()
    wait_for(lambda: not b.kiosk.reporter.connected.is_set(), 20, "B to notice")
    before = len(sim.sessions)
    b.send(Press(long=long, slot="pat"))
    b.wait_state(c.LISTENING)
    held: SimSession = wait_for(lambda: len(sim.sessions) > before and sim.sessions[-1], 20, "the session at B")
    b.send(Press(slot="pat"))
    b.wait_state(c.IDLE)
    return held


def test_a_conversation_held_offline_reaches_the_fleet_after_a_restart(tmp_path: Path, sim: AgentSimulator, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(share_module, "RESEND_AFTER_S", 1.0)
    obs = Observer(broker.port)
    proxy_thread = FaultProxyThread("127.0.0.1", broker.port)
    proxy = proxy_thread.__enter__()
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            b = _kiosk(tmp_path, "kiosk-b", sim, proxy.port)
            with b:
                first = _converse(a, sim, obs, "kiosk-a", "pat")
                wait_for(lambda: (n := _newest(b, "pat")) is not None and n.id == first.session_id and n.ended_at, 20, "B to hear S1")
                second = _talk_offline(b, proxy, proxy_thread, sim, long=False)  # continues S1, held
                assert second.continued_from == first.session_id
            proxy.mode = "pass"
            with KioskThread(b.kiosk.settings) as b2:  # restarted, then connected
                wait_for(b2.kiosk.reporter.connected.is_set, 20, "B back")
                wait_for(lambda: (n := _newest(a, "pat")) is not None and n.id == second.session_id, 20, "A to hear S2")
                back = _converse(a, sim, obs, "kiosk-a", "pat")
                assert back.continued_from == second.session_id
    finally:
        obs.close()
        proxy_thread.__exit__(None, None, None)


def test_own_newest_names_the_slots_whose_newest_is_this_kiosks(tmp_path: Path) -> None:
    """Own rows (started or resumed here) against shared ones, carried through a spell in memory;
    a session another kiosk resumed since is theirs to publish."""
    store = SessionStore(tmp_path / "s.sqlite3")
    try:
        store.record_start("o1", "a", "mine", None, 100.0)
        store.merge_shared([("a", "mine", "x1", None, 50.0, None)])  # older: ours stays newest
        store.merge_shared([("a", "theirs", "x2", None, 100.0, None)])
        store.record_start("o2", "a", "theirs", None, 90.0)  # older than theirs
        store.record_start("o3", "a", "resumed", None, 100.0, replaces="x9")
        store.merge_shared([("a", "resumed", "o3", None, 200.0, None)])  # resumed at another kiosk
        got = {(s.slot, s.id, replaces) for s, replaces in store.own_newest(10)}
        assert got == {("mine", "o1", None)}
        store.record_start("o4", "a", "fresh", None, 300.0, replaces="o1")
        assert [(s.slot, s.id, r) for s, r in store.own_newest(1)] == [("fresh", "o4", "o1")]
    finally:
        store.close()


@pytest.mark.parametrize("how", ["started", "resumed"])
def test_own_is_kept_through_a_store_fault(tmp_path: Path, how: str) -> None:
    """The card busy for a moment: rows go to memory and back; a session started in memory, or
    another kiosk's resumed here in memory, is this kiosk's after the write-back and a restart."""
    now = time.time()
    store = SessionStore(tmp_path, busy_timeout_s=0.05)
    assert store.merge_shared([("agent-1", "pat", "s-1", None, now - 60.0, now - 50.0)]) == 1  # another kiosk's
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # writers wait: the start goes to memory
    store.record_start("s-1" if how == "resumed" else "s-2", "agent-1", "pat", None, now - 30.0)
    assert store.fault is not None
    want = ["s-1" if how == "resumed" else "s-2"]
    assert [s.id for s, _ in store.own_newest(10)] == want
    store = written_back_and_reopened(store, other, tmp_path)
    try:
        assert [s.id for s, _ in store.own_newest(10)] == want
    finally:
        store.close()
