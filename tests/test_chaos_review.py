"""A hostile review of combined faults while visitors use the kiosk: two or three at once or in
quick succession (the broker, the agent link, the store, a press, a reload), through the real
stacks (mosquitto, the loopback simulator behind the fault proxy, SQLite's own locks). After each,
what an operator relies on: the right session stored and continued at the next short press, the
broker's retained state the kiosk's own within 5 s of the broker being back, idle and ready for the
next press, nothing left growing, no crash logged."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import Broker, KioskThread, Observer, kiosk_events, kiosk_settings, wait_for

from edge_agent.core import conversation as c
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import AgentSimulator

FAST = {"dead_after_s": 1.5, "ping_interval_s": 0.5, "connect_timeout_s": 1.0}
STATE = "edge-agent/test-kiosk/state"


@pytest.fixture
def proxy(sim: AgentSimulator) -> Iterator[FaultProxyThread]:
    t = FaultProxyThread("127.0.0.1", sim.port)
    with t:
        yield t


def _settings(tmp_path: Path, url: str, port: int | None = None, **extra: Any) -> Any:
    sections: dict[str, Any] = {"agent": FAST, "device": {"store_retry_s": 1.0}, **extra}
    if port is not None:
        sections["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": port, "discovery": False, "metrics_interval_s": 60}
    return kiosk_settings(tmp_path, url, **sections)


def _retained_state(port: int) -> dict[str, Any] | None:
    obs = Observer(port, "edge-agent/test-kiosk/#")
    try:
        obs.settle(5)
        got = [p for t, p, r, _ in obs.received() if r and t == STATE]
        return json.loads(got[-1]) if got else None
    finally:
        obs.close()


def _broker_agrees(k: KioskThread, port: int, within_s: float = 5.0) -> dict[str, Any]:
    """The retained state is the kiosk's own (state and session) within `within_s`."""
    t0 = time.monotonic()
    last: dict[str, Any] | None = None
    while time.monotonic() - t0 < within_s:
        own = k.on_loop(lambda: (k.kiosk.conversation.state, k.kiosk.conversation.published_ids()[0]))
        try:
            last = _retained_state(port)
        except AssertionError:
            last = None
        if last is not None and (last["state"], last["session_id"]) == own:
            return last
        time.sleep(0.2)
    raise AssertionError(f"retained {last} != the kiosk's {own} {within_s} s after the broker came back")


def _exclusive_lock(state: Path) -> sqlite3.Connection:
    other = sqlite3.connect(state / DB_NAME, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # readers go on (WAL), writers wait: the store's next write goes to memory
    return other


def _resources(k: KioskThread) -> tuple[int, int, int]:
    import gc

    gc.collect()  # the test's own paho observers, closed, hold a socket pair until collected
    me = psutil.Process()
    return me.num_fds(), threading.active_count(), k.on_loop(lambda: len([t for t in asyncio.all_tasks() if not t.done()]))


def _continues(k: KioskThread, sim: AgentSimulator, expected: str | None) -> Any:
    """The next short press continues `expected`; ends it again, idle."""
    n = len(sim.sessions)
    k.press()
    wait_for(lambda: len(sim.sessions) > n and k.state == c.LISTENING, 15, "the next press's session")
    s = sim.sessions[n]
    cont = s.initiate["data"].get("session_continuation")
    assert cont == ({"session_id": expected} if expected else None), (cont, expected)
    k.press()
    k.wait_state(c.IDLE)
    return s


@pytest.fixture
def crashes(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    caplog.set_level(logging.INFO)
    got: list[logging.LogRecord] = []
    yield got
    got += [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert not got, [(r.name, r.getMessage()) for r in got]


@pytest.mark.slow
def test_broker_down_while_the_link_drops_and_comes_back(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread, broker: Broker, crashes: list[Any]) -> None:
    with KioskThread(_settings(tmp_path, proxy.proxy.url(), broker.port)) as k:
        events = kiosk_events(k)
        wait_for(k.kiosk.reporter.online, 10, "online")
        k.press()
        k.wait_state(c.LISTENING)
        first = sim.sessions[0].session_id
        before = _resources(k)
        broker.kill()
        proxy.cut()
        wait_for(lambda: [e for e, _ in events].count("reconnected") == 1, 10, "reconnected")
        second = sim.sessions[-1].session_id
        assert sim.sessions[-1].initiate["data"]["session_continuation"] == {"session_id": first}
        broker.start()
        _broker_agrees(k, broker.port)
        k.press()
        k.wait_state(c.IDLE)
        _broker_agrees(k, broker.port)
        _continues(k, sim, second)
        after = _resources(k)
        assert after[0] <= before[0] + 4 and after[1] <= before[1] + 2, (before, after)


@pytest.mark.slow
def test_press_as_the_link_drops(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread, crashes: list[Any]) -> None:
    with KioskThread(_settings(tmp_path, proxy.proxy.url())) as k:
        for seed in range(5):
            k.press()
            wait_for(lambda: k.state == c.LISTENING, 15, "listening")
            sid = sim.sessions[-1].session_id
            if seed % 2:
                proxy.cut()
                time.sleep(0.002 * seed)
                k.press()
            else:
                k.press()
                proxy.cut()
            k.wait_state(c.IDLE, 10)
            time.sleep(0.3)
            assert k.state == c.IDLE
            _continues(k, sim, sid)


@pytest.mark.slow
def test_store_locked_while_a_reconnect_brings_a_new_id(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread, broker: Broker, crashes: list[Any]) -> None:
    state = tmp_path / "state"
    with KioskThread(_settings(tmp_path, proxy.proxy.url(), broker.port)) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        first = sim.sessions[0].session_id
        other = _exclusive_lock(state)
        broker.kill()
        proxy.cut()
        wait_for(lambda: [e for e, _ in events].count("reconnected") == 1, 10, "reconnected")
        second = sim.sessions[-1].session_id
        k.press()
        k.wait_state(c.IDLE)
        broker.start()
        _broker_agrees(k, broker.port)
        other.rollback()
        other.close()
        wait_for(lambda: any(e == "store_recovered" for e, _ in events), 10, "store back")
        _continues(k, sim, second)
    store = SessionStore(state)
    rows = {r.id: r for r in store.recent()}
    store.close()
    assert rows[second].continued_from == first and rows[first].end_reason == "reconnected", rows


@pytest.mark.slow
def test_reload_while_the_broker_is_down_and_the_link_drops(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread, broker: Broker, crashes: list[Any]) -> None:
    settings = _settings(tmp_path, proxy.proxy.url(), broker.port, session={"reconnect_window_s": 2.0})
    with KioskThread(settings) as k:
        events = kiosk_events(k)
        wait_for(k.kiosk.reporter.online, 10, "online")
        k.press()
        k.wait_state(c.LISTENING)
        first = sim.sessions[0].session_id
        broker.kill()
        new = _settings(tmp_path, proxy.proxy.url(), broker.port, agent={**FAST, "agent_id": "agent-2"}, session={"reconnect_window_s": 2.0})
        proxy.proxy.mode = "refuse"
        proxy.cut()
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: new))  # deferred: a conversation
        wait_for(lambda: any(e == "conversation_ended" for e, _ in events), 10, "the end past the window")
        k.wait_state(c.IDLE)
        wait_for(lambda: k.kiosk.settings.agent.agent_id == "agent-2", 5, "the deferred reload")
        proxy.proxy.mode = "pass"
        broker.start()
        _broker_agrees(k, broker.port)
        _continues(k, sim, None)  # another agent: nothing of it to continue
        back = _settings(tmp_path, proxy.proxy.url(), broker.port, session={"reconnect_window_s": 2.0})
        assert k.on_loop(lambda: k.kiosk.reloads.reload(back)) is True
        _continues(k, sim, first)


@pytest.mark.slow
def test_pause_then_the_link_drops(tmp_path: Path, sim_thread: Any, proxy: FaultProxyThread, crashes: list[Any]) -> None:
    sim = sim_thread.sim
    with KioskThread(_settings(tmp_path, proxy.proxy.url())) as k:
        events = kiosk_events(k)
        for n in range(3):
            k.press()
            wait_for(lambda: k.state == c.LISTENING, 15, "listening")
            sid = sim.sessions[-1].session_id
            sim_thread.call(sim.say(bytes(32000)))
            wait_for(lambda: k.state == c.SPEAKING, 5, "speaking")
            sim_thread.call(sim.control(["pause", "clear", "pause"][n]))
            proxy.cut()
            wait_for(lambda n=n: [e for e, _ in events].count("reconnected") == n + 1, 10, "reconnected")
            time.sleep(0.3)
            sim_thread.call(sim.say(bytes(3200)))
            wait_for(lambda: k.state == c.SPEAKING, 5, "speaking after the reconnect")
            wait_for(lambda: k.state == c.LISTENING, 5, "the reply heard to its end")
            new = sim.sessions[-1].session_id
            assert new != sid
            k.press()
            k.wait_state(c.IDLE)
            _continues(k, sim, new)


@pytest.mark.slow
def test_forget_while_reconnecting(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread, crashes: list[Any]) -> None:
    with KioskThread(_settings(tmp_path, proxy.proxy.url())) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        proxy.proxy.mode = "refuse"
        proxy.cut()
        wait_for(lambda: any(e == "reconnecting" for e, _ in events), 10, "reconnecting")
        k.on_loop(k.kiosk.forget_sessions)
        proxy.proxy.mode = "pass"
        wait_for(lambda: any(e == "reconnected" for e, _ in events), 10, "reconnected")
        k.press()
        k.wait_state(c.IDLE)
        _continues(k, sim, None)
    store = SessionStore(tmp_path / "state")
    ids = [r.id for r in store.recent()]
    store.close()
    assert len(ids) == 1, ids  # only the fresh one after the forget


class Chaos:
    """A seeded driver: faults and presses in random order, then everything put right."""

    def __init__(self, seed: int, k: KioskThread, sim_thread: Any, proxy: FaultProxyThread, broker: Broker, state: Path) -> None:
        import random

        self.rng = random.Random(seed)
        self.k, self.st, self.sim, self.proxy, self.broker, self.state = k, sim_thread, sim_thread.sim, proxy, broker, state
        self.events = kiosk_events(k)
        self.lock: sqlite3.Connection | None = None
        self.broker_up = True
        self.log: list[str] = []
        self.sections: dict[str, Any] = {}

    def seen(self) -> str | None:
        """The newest session id the kiosk was told of (ready, reconnected, renamed)."""
        for kind, f in reversed(self.events):
            if kind in ("conversation_started", "reconnected", "session_changed") and f.get("session_id"):
                return str(f["session_id"])
        return None

    def step(self) -> None:
        r = self.rng
        what = r.choice(["press", "press", "long", "cut", "cut", "refuse", "broker", "lock", "pause", "clear", "say", "reload", "wait", "rename", "hangup"])
        self.log.append(what)
        if what == "press":
            self.k.press()
        elif what == "long":
            self.k.press(long=True)
        elif what == "cut":
            self.proxy.cut()
        elif what == "refuse":
            self.proxy.proxy.mode = "refuse" if self.proxy.proxy.mode == "pass" else "pass"
            self.proxy.cut()
        elif what == "broker":
            if self.broker_up:
                self.broker.kill()
            else:
                self.broker.start()
            self.broker_up = not self.broker_up
        elif what == "lock":
            if self.lock is None:
                try:
                    self.lock = _exclusive_lock(self.state)
                except sqlite3.OperationalError:
                    pass
            else:
                self.lock.rollback()
                self.lock.close()
                self.lock = None
        elif what in ("pause", "clear", "say"):
            try:
                self.st.call(self.sim.say(bytes(6400)) if what == "say" else self.sim.control(what))
            except Exception:  # no open session
                pass
        elif what == "rename":
            try:
                self.st.call(self.sim.control("onready", payload={"session_id": f"renamed-{r.randrange(10**6)}"}))
            except Exception:  # no open session
                pass
        elif what == "hangup":
            self.st.call(self.sim.hang_up())
        elif what == "reload":
            new = _settings(self.state.parent, self.proxy.proxy.url(), self.broker.port, **self.sections)
            self.k.on_loop(lambda: self.k.kiosk.reloads.reload_from(lambda: new))
        time.sleep(r.choice([0.0, 0.01, 0.05, 0.2, 0.6]))

    def settle(self) -> None:
        """Every fault put right, the conversation ended: idle, the broker agreeing, the next press
        continuing the newest session the kiosk was told of."""
        self.proxy.proxy.mode = "pass"
        if not self.broker_up:
            self.broker.start()
            self.broker_up = True
        if self.lock is not None:
            self.lock.rollback()
            self.lock.close()
            self.lock = None
        self.k.on_loop(lambda: None)  # the presses sent are handled
        time.sleep(0.3)
        wait_for(lambda: self.k.state in (c.IDLE, c.LISTENING, c.SPEAKING, c.ERROR), 15, f"a settled state after {self.log}")
        if self.k.state in (c.LISTENING, c.SPEAKING):
            self.k.press()
        wait_for(lambda: self.k.state in (c.IDLE, c.ERROR), 10, f"idle after {self.log}")
        time.sleep(0.2)
        _broker_agrees(self.k, self.broker.port)
        store_down = self.k.on_loop(lambda: self.k.kiosk.store.fault)
        if store_down:
            wait_for(lambda: self.k.on_loop(lambda: self.k.kiosk.store.fault) is None, 10, "the store back")
        _continues(self.k, self.sim, self.seen())
        _broker_agrees(self.k, self.broker.port)


SECTIONS: dict[str, Any] = {"session": {"start_burst": 1000, "starts_per_minute": 600.0, "reconnect_window_s": 3.0}}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(int(os.environ.get("CHAOS_FROM", "0")), int(os.environ.get("CHAOS_TO", "4"))))
def test_seeded_chaos(tmp_path: Path, sim_thread: Any, proxy: FaultProxyThread, broker: Broker, seed: int, crashes: list[Any]) -> None:
    state = tmp_path / "state"
    sections = {"session": {**SECTIONS["session"], "share": seed % 3 == 0}, "agent": {**FAST, "warm_link": seed % 2 == 1}}
    with KioskThread(_settings(tmp_path, proxy.proxy.url(), broker.port, **sections)) as k:
        wait_for(k.kiosk.reporter.online, 10, "online")
        chaos = Chaos(seed, k, sim_thread, proxy, broker, state)
        chaos.sections = sections
        base = _resources(k)
        for _ in range(3):
            for _ in range(12):
                chaos.step()
            chaos.settle()
        now = _resources(k)
        assert now[0] <= base[0] + 4 and now[1] <= base[1] + 2 and now[2] <= base[2] + 4, (base, now, chaos.log)


def _timer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]


def test_a_broker_restarting_again_and_again_does_not_pile_up_resend_threads(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """With `session.share`, every (re)connect started a thread that slept RESEND_AFTER_S (30 s)
    before looking whether the broker had sent the kiosk's pointers back; a connect since made it
    do nothing. A broker restarting (or dropping the kiosk, two kiosks with one client id: once a
    second) kept one thread per connect of the last 30 s alive: 3 restarts, 3 threads, where one
    wait, the newest connect's, is all there is to do."""
    earlier = set(_timer_threads())  # (left sleeping by the kiosks of earlier tests)
    with KioskThread(_settings(tmp_path, sim.url, broker.port, session={"share": True})) as k:
        wait_for(k.kiosk.reporter.online, 10, "online")
        _continues(k, sim, None)  # a session of ours to publish again after each connect
        for _ in range(3):
            broker.kill()
            wait_for(lambda: not k.kiosk.reporter.online(), 10, "offline")
            broker.start()
            wait_for(k.kiosk.reporter.online, 10, "online again")
        time.sleep(0.5)
        waits = [t for t in _timer_threads() if t not in earlier]
        assert len(waits) <= 1, [t.name for t in waits]
        _continues(k, sim, sim.sessions[-1].session_id)
