"""A helper's review (ownrows): a kiosk's own fresh start in its store. A fresh start's pointer
names the session it `replaces` and beats it whatever the clocks say (README, "The fleet
remembers"); the store kept that only for rows other kiosks shared, not for the kiosk's own. The
test failed before the fix."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from conftest import Broker, KioskThread, Observer, wait_for
from test_share import AHEAD_S, _converse, _kiosk, _newest, _SkewedClock

import edge_agent.core.store as store_module
import edge_agent.core.storerows as storerows
import edge_agent.service.records as records
from edge_agent.core import conversation as c
from edge_agent.core.events import Press
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import AgentSimulator


def test_a_fresh_start_survives_a_restart_when_the_session_it_replaced_is_heard_again(tmp_path: Path, sim: AgentSimulator, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kiosk A's clock runs 10 minutes ahead; the person talks at A (S1), which kiosk B files. B's
    link to the broker goes down; there the person long-presses (a fresh S2, `replaces` S1: held,
    the link is down) and leaves. B restarts (a power cut: its pointers in memory gone) with the
    link back; the broker hands it A's retained S1, whose start from the future is clamped to B's
    later now, and B's store moved S1 past its own S2 (its row did not keep what S2 replaces): the
    next short press at B continued the conversation the person had chosen to leave."""
    holder: dict[str, threading.Thread] = {}
    for module in (records, store_module, storerows):
        monkeypatch.setattr(module, "time", _SkewedClock(holder))
    obs = Observer(broker.port)
    proxy_thread = FaultProxyThread("127.0.0.1", broker.port)
    proxy = proxy_thread.__enter__()
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            holder["a"] = a._thread
            assert a.kiosk.share is not None
            a.kiosk.share._clock = lambda: time.time() + AHEAD_S  # its share reads the same (skewed) wall clock
            b = _kiosk(tmp_path, "kiosk-b", sim, proxy.port)
            with b:
                first = _converse(a, sim, obs, "kiosk-a", "pat")
                wait_for(lambda: (n := _newest(b, "pat")) is not None and n.id == first.session_id and n.ended_at, 20, "B to know how S1 ended")
                proxy.mode = "refuse"  # B's link to the broker goes down
                proxy_thread.cut()
                wait_for(lambda: not b.kiosk.reporter.connected.is_set(), 20, "B to notice")  # type: ignore[attr-defined]
                before = len(sim.sessions)
                b.send(Press(long=True, slot="pat"))  # a long press: fresh
                b.wait_state(c.LISTENING)
                fresh = wait_for(lambda: len(sim.sessions) > before and sim.sessions[-1], 20, "S2")
                b.send(Press(slot="pat"))  # ends it
                b.wait_state(c.IDLE)
                assert fresh.continued_from is None
                assert _newest(b, "pat").id == fresh.session_id
            proxy.mode = "pass"
            with KioskThread(b.kiosk.settings) as b_again:  # B restarted, its link back
                share = b_again.kiosk.share
                assert share is not None
                wait_for(lambda: share.counts["received"] >= 1, 20, "the broker's retained S1")
                wait_for(lambda: share.pending == 0, 10, "the pointers filed")
                b_again.on_loop(lambda: None)
                newest = _newest(b_again, "pat")
                assert newest.id == fresh.session_id, f"B's store took back S1 ({first.session_id}) over its own fresh S2 ({fresh.session_id})"
                again = _converse(b_again, sim, obs, "kiosk-b", "pat")
                assert again.continued_from == fresh.session_id, f"B's next press continued {again.continued_from}, not the person's fresh {fresh.session_id}"
                # and the fleet follows: A never heard of S2 (held at B, gone with the restart) and
                # took S3 for older than its S1 by the clocks, published S1 over it, and both kiosks
                # went back to S1 (the restart now defends S2: tests/test_ownrestart_review.py)
                wait_for(lambda: _newest(a, "pat").id == again.session_id, 20, "A to take S3")
                time.sleep(2.0)
                assert (_newest(a, "pat").id, _newest(b_again, "pat").id) == (again.session_id, again.session_id)
    finally:
        obs.close()
        proxy_thread.__exit__(None, None, None)


@pytest.mark.parametrize("fault_at", ["the fresh start", "after the fresh start"])
@pytest.mark.parametrize("whose", ["own", "shared"])
def test_what_a_fresh_start_replaces_is_kept_through_a_store_fault(tmp_path: Path, fault_at: str, whose: str) -> None:
    """The card busy for a moment (a backup, a stuck write): the store runs in memory and writes
    back once the disk is free. The rows went across (disk to memory, memory back to disk) without
    `replaces`, so after a restart the replaced session, heard again with its start from a clock
    ahead clamped to a later now, was moved past the fresh start: the next press continued the
    conversation the person had chosen to leave. Both ways, for the kiosk's own fresh start and
    for one another kiosk shared."""
    now = time.time()
    store = SessionStore(tmp_path, busy_timeout_s=0.05)
    assert store.merge_shared([("agent-1", "pat", "s-1", None, now - 60.0, now - 50.0)]) == 1  # another kiosk's S1
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    if fault_at == "the fresh start":
        other.execute("BEGIN EXCLUSIVE")  # writers wait: the fresh start goes to memory
    if whose == "own":
        store.record_start("s-2", "agent-1", "pat", None, now - 30.0, replaces="s-1")
    else:
        assert store.merge_shared([("agent-1", "pat", "s-2", None, now - 30.0, None, "s-1")]) == 1
    if fault_at == "after the fresh start":
        other.execute("BEGIN EXCLUSIVE")
        store.record_end("s-2", "button", now - 20.0)  # the disk's rows carried into memory
    assert store.fault is not None
    assert store.merge_shared([("agent-1", "pat", "s-1", None, now - 10.0, None)]) == 0  # S1 heard again, in memory
    assert store.newest("agent-1", "pat").id == "s-2", "in memory, S1 heard again was moved past the fresh start that replaced it"  # type: ignore[union-attr]
    store = written_back_and_reopened(store, other, tmp_path)
    try:
        store.merge_shared([("agent-1", "pat", "s-1", None, time.time(), None)])  # S1 heard again: clamped to now
        assert store.newest("agent-1", "pat").id == "s-2", "after the write-back, S1 heard again was moved past the fresh start"  # type: ignore[union-attr]
    finally:
        store.close()


def written_back_and_reopened(store: SessionStore, other: sqlite3.Connection, path: Path) -> SessionStore:
    """The other program lets the card go: the store writes memory back, then the kiosk restarts."""
    other.rollback()
    other.close()
    assert store.retry(now=10**12) and store.fault is None
    store.close()
    return SessionStore(path)
