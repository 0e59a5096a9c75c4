"""Faults the kiosk must ride out, each injected through real sockets (fault proxy, simulator)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import DATA, Broker, KioskThread, LateMic, Observer, kiosk_events, kiosk_settings, read_wav, wait_for

from edge_agent.core import conversation as c
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.faultproxy import FaultProxy, FaultProxyThread
from edge_agent.devtools.simulator import AgentSimulator, SimulatorThread

FAST = {"dead_after_s": 1.5, "ping_interval_s": 0.5, "connect_timeout_s": 1.0}


@pytest.fixture
def proxy(sim: AgentSimulator) -> Iterator[FaultProxyThread]:
    t = FaultProxyThread("127.0.0.1", sim.port)
    with t:
        yield t


def _set(proxy: FaultProxyThread, mode: str) -> None:
    proxy.loop.call_soon_threadsafe(setattr, proxy.proxy, "mode", mode)


def test_link_cut_mid_conversation_reconnects_and_continues_each_time(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread) -> None:
    p: FaultProxy = proxy.proxy
    settings = kiosk_settings(tmp_path, p.url(), agent=FAST)
    with KioskThread(settings) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        ids = [sim.sessions[0].session_id]
        for n in (1, 2):
            proxy.cut()
            # the state flips inside Conversation.handle, the events follow as the kiosk carries out
            # the actions: wait for the event, which comes last
            wait_for(lambda n=n: len(sim.sessions) == n + 1 and [e for e, _ in events].count("reconnected") == n, 10, f"reconnect #{n}")
            s = sim.sessions[n]
            assert s.initiate["data"]["session_continuation"] == {"session_id": ids[-1]}  # the newest id
            ids.append(s.session_id)
        kinds = [e for e, _ in events]
        assert kinds.count("reconnecting") == 2 and kinds.count("reconnected") == 2
        assert k.kiosk.metrics()["reconnects"] == 2
        reconnected = [f for e, f in events if e == "reconnected"]
        assert [f["continued_from"] for f in reconnected] == ids[:2]
    store = SessionStore(tmp_path / "state")
    rows = {r.id: r for r in store.recent()}
    assert rows[ids[0]].end_reason == "reconnected" and rows[ids[1]].continued_from == ids[0]
    assert rows[ids[2]].continued_from == ids[1] and rows[ids[2]].end_reason == "shutdown"


def test_a_silent_dead_link_is_detected_and_replaced(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread) -> None:
    settings = kiosk_settings(tmp_path, proxy.proxy.url(), agent=FAST)
    with KioskThread(settings) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        first = sim.sessions[0].session_id
        _set(proxy, "blackhole")
        t0 = time.monotonic()
        wait_for(lambda: any(e == "reconnecting" for e, _ in events), 15, "the dead link to be noticed")
        # dead_after_s after the last pong (pings every 0.5 s), then a tick: well under the 60 s
        # default even on a loaded machine
        assert time.monotonic() - t0 < FAST["dead_after_s"] + 3.0
        time.sleep(1.0)  # attempts into the black hole time out and back off
        _set(proxy, "pass")
        wait_for(lambda: k.state == c.LISTENING and len(sim.sessions) >= 2, 15, "the conversation back")
        assert sim.sessions[-1].initiate["data"]["session_continuation"] == {"session_id": first}


def test_past_the_window_it_ends_cleanly_and_the_next_press_continues(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread) -> None:
    settings = kiosk_settings(tmp_path, proxy.proxy.url(), agent=FAST, session={"reconnect_window_s": 2.0})
    with KioskThread(settings) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        first = sim.sessions[0].session_id
        _set(proxy, "refuse")
        proxy.cut()
        wait_for(lambda: any(e == "conversation_ended" and f["reason"] == "link_lost" for e, f in events), 8, "the end")
        k.wait_state(c.IDLE)
        attempts = proxy.proxy.connections
        assert 2 <= attempts <= 12  # backed off, not a storm
        _set(proxy, "pass")
        k.press()
        wait_for(lambda: k.state == c.LISTENING, 15)
        assert sim.sessions[-1].initiate["data"]["session_continuation"] == {"session_id": first}


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [({"valid_keys": {"the-right-key"}}, "close_4001"), ({"reject_status": 403}, "http_403"), ({"reject_status": 401}, "http_401"), ({"close_code": 1008}, "close_1008")],
)
def test_fatal_refusals_go_to_error_without_a_retry_storm(tmp_path: Path, kwargs: dict[str, Any], code: str, broker: Broker) -> None:
    obs = Observer(broker.port, "edge-agent/#")
    try:
        with SimulatorThread(**kwargs) as sim:
            settings = kiosk_settings(tmp_path, sim.url, agent=FAST, mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port})
            with KioskThread(settings) as k:
                obs.wait("edge-agent/test-kiosk/availability", lambda p: p == b"online")
                k.press()
                k.wait_state(c.ERROR, 15)
                time.sleep(2.0)
                assert sim.upgrades == 1  # no retry storm
                err = obs.wait("edge-agent/test-kiosk/event", lambda p: b'"error"' in p and code.encode() in p)
                assert b'"code": "agent"' in err
                obs.wait("edge-agent/test-kiosk/state", lambda p: b'"error"' in p)
                k.wait_state(c.IDLE, 15)  # back to idle; the next press tries again
    finally:
        obs.close()


@pytest.mark.parametrize("code", [4004, 1008, 0], ids=["close_4004", "close_1008", "ended_before_onready"])
def test_a_continuation_the_platform_refuses_is_asked_again_as_a_fresh_session(tmp_path: Path, code: int) -> None:
    """The platform refuses to continue the stored session (it no longer knows the id: a close
    code, or onsessionended before onready): every short press failed on it, with the error
    earcon, for the 7 days of resume_within_s. Now the press asks once more without it."""
    with SimulatorThread(refuse_continuation=code) as sim, KioskThread(kiosk_settings(tmp_path, sim.url, agent=FAST)) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        k.press()
        k.wait_state(c.IDLE)
        for visitor in range(2):  # each continues the newest session, refused, then fresh
            k.press()
            k.wait_state(c.LISTENING, 15)
            assert sim.sessions[-1].initiate["data"].get("session_continuation") is None
            k.press()
            k.wait_state(c.IDLE)
            assert sim.continuations_refused == visitor + 1
        assert len(sim.sessions) == 3 and not [f for kind, f in events if kind == "error"], events
        refused = [f for kind, f in events if kind == "continuation_refused"]
        assert [f["session_id"] for f in refused] == [sim.sessions[0].session_id, sim.sessions[1].session_id], refused


def test_retryable_refusal_backs_off_with_a_cap(tmp_path: Path) -> None:
    with SimulatorThread(reject_status=503) as sim:
        settings = kiosk_settings(tmp_path, sim.url, agent=FAST, session={"reconnect_window_s": 6.0})
        with KioskThread(settings) as k:
            k.press()
            # the window (6 s) ends in ERROR; a loaded machine may make fewer tries, never more
            k.wait_state(c.ERROR, 20)
            # 0.25, 0.5, 1, 2, 4 s nominal (+-50 % jitter): a handful of tries, not hundreds
            assert 3 <= sim.upgrades <= 9, sim.upgrades


def test_continuation_not_honoured_by_an_opt_out_agent(tmp_path: Path) -> None:
    with SimulatorThread(data_opt_out=True) as sim:
        clip = read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 12]
        with KioskThread(kiosk_settings(tmp_path, sim.url, clip)) as k:
            events = kiosk_events(k)
            k.press()
            wait_for(lambda: sim.sessions and sim.sessions[0].turns >= 1, 20, "a reply")
            k.press()
            k.wait_state(c.IDLE)
            k.press()
            k.wait_state(c.LISTENING)
            first, second = sim.sessions[0], sim.sessions[1]
            # we asked to continue; the agent kept no history, and the kiosk works regardless
            assert second.initiate["data"]["session_continuation"] == {"session_id": first.session_id}
            assert second.continued_from is None and second.earlier_turns == 0
            wait_for(lambda: [e for e, _ in events].count("conversation_started") == 2, 10, "the second start event")
            started = [f for e, f in events if e == "conversation_started"]
            assert started[-1]["continued_from"] == first.session_id
    assert SessionStore(tmp_path / "state").newest("agent-1").continued_from == first.session_id  # type: ignore[union-attr]


def test_microphone_missing_at_start_is_retried_until_it_appears(tmp_path: Path, sim: AgentSimulator) -> None:
    settings = kiosk_settings(tmp_path, sim.url)
    missing = tmp_path / "usb-mic.wav"
    from dataclasses import replace

    settings = replace(settings, audio=replace(settings.audio, input=f"file:{missing}"))
    with KioskThread(settings, wait_ready=False, source=LateMic(missing)) as k:
        time.sleep(1.0)
        assert not k.kiosk.ready.is_set()
        (tmp_path / "mic.wav").replace(missing)
        wait_for(k.kiosk.ready.is_set, 20, "READY once the microphone appeared")
        k.press()
        k.wait_state(c.LISTENING)


def test_corrupt_state_file_is_moved_aside_reported_and_the_kiosk_runs(tmp_path: Path, sim: AgentSimulator) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / DB_NAME).write_bytes(b"\x00garbage after a bad SD card write" * 50)
    settings = kiosk_settings(tmp_path, sim.url)
    with KioskThread(settings, wait_ready=False) as k:
        events = kiosk_events(k)
        wait_for(k.kiosk.ready.is_set, 20)
        k.press()
        k.wait_state(c.LISTENING)
    assert any(e == "error" and f["code"] == "store_corrupt" for e, f in events) or k.kiosk.store.recovered_from is not None
    assert list(state.glob(f"{DB_NAME}.corrupt-*"))
    assert SessionStore(state).newest("agent-1").id == sim.sessions[0].session_id  # type: ignore[union-attr]


def test_slow_uplink_drops_oldest_audio_counted_and_memory_stays_flat(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread) -> None:
    clip = read_wav(DATA / "kiosk_dev_noisy.wav")[: 32000 * 30]
    settings = kiosk_settings(tmp_path, proxy.proxy.url(), clip, agent={"dead_after_s": 60.0}, audio={"duplex": "full"})
    with KioskThread(settings) as k:
        k.press()
        k.wait_state(c.LISTENING)
        # gated silence compresses to almost nothing, so the wire needs ~10 KB/s: give it 500 B/s
        proxy.loop.call_soon_threadsafe(setattr, proxy.proxy, "rate_bytes_s", 500)
        _set(proxy, "slow")
        proc = psutil.Process()
        rss0, captured0, t0 = proc.memory_info().rss, k.kiosk.counters["frames_captured"], time.monotonic()
        # socket buffers are capped at about a second or two of audio: then the oldest frames go
        wait_for(lambda: k.kiosk.stats.frames_dropped > 50, 15, "uplink frames to be dropped")
        time.sleep(4.0)
        rss1, captured1, t1 = proc.memory_info().rss, k.kiosk.counters["frames_captured"], time.monotonic()
        # capture never blocks: frames keep arriving at the microphone's pace
        assert (captured1 - captured0) * 0.03 >= 0.9 * (t1 - t0)
        # read both on the loop: drops go on while the test thread looks
        published, counted = k.on_loop(lambda: (k.kiosk.metrics()["uplink_dropped"], k.kiosk.stats.frames_dropped))
        assert published == counted > 50
        assert rss1 - rss0 < 10e6
        assert k.state == c.LISTENING


@pytest.mark.slow
def test_a_stop_with_a_congested_uplink_is_prompt(tmp_path: Path, sim: AgentSimulator, proxy: FaultProxyThread) -> None:
    """The close frame waits behind audio a congested uplink cannot carry: the link gives the close
    handshake 1.5 s, then aborts the connection. It used to wait in the close frame's drain for
    as long as the network stayed stuck (forever here), so SIGTERM never finished and a test's
    kiosk thread ran on into the next tests."""
    clip = read_wav(DATA / "kiosk_dev_noisy.wav")[: 32000 * 30]
    settings = kiosk_settings(tmp_path, proxy.proxy.url(), clip, agent={"dead_after_s": 60.0}, audio={"duplex": "full"})
    k = KioskThread(settings)
    with k:
        k.press()
        k.wait_state(c.LISTENING)
        proxy.loop.call_soon_threadsafe(setattr, proxy.proxy, "rate_bytes_s", 500)
        _set(proxy, "slow")
        wait_for(lambda: k.kiosk.stats.frames_dropped > 20, 20, "the uplink to back up")
        t0 = time.monotonic()
        k.loop.call_soon_threadsafe(k.kiosk.stop)
        k._thread.join(30)
        stopped_s = time.monotonic() - t0
        assert not k._thread.is_alive(), "the kiosk did not stop"
    assert stopped_s < 10.0, stopped_s  # 1.5 s for the link, 1 s for a standby, the rest is clean-up
    assert k.result == 0


@pytest.mark.slow
def test_a_microphone_gone_for_good_does_not_write_a_line_per_retry(tmp_path: Path, sim: AgentSimulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A USB microphone unplugged for a month was retried every 5 s with an ERROR line each time
    (17 000 lines a day, pushing everything else out of the journal). The first few retries are
    logged, then one now and then saying how many were left out (the retries go on)."""
    import logging

    from edge_agent.service import audio_watch

    monkeypatch.setattr(audio_watch, "AUDIO_RETRY_S", 0.02)  # a month of retries in seconds
    settings = kiosk_settings(tmp_path, sim.url)
    from dataclasses import replace

    settings = replace(settings, audio=replace(settings.audio, input=f"file:{tmp_path / 'unplugged.wav'}"))
    from edge_agent.audio.devices import FileSource

    class GoneMic(FileSource):
        def __init__(self) -> None:
            self.frames_captured, self.overruns, self.last_frame_at, self.stalled = 0, 0, time.monotonic(), False
            self.attempts = 0

        def start(self, loop: Any, on_frame: Any) -> None:
            self.attempts += 1
            FileSource.__init__(self, tmp_path / "unplugged.wav", 30)  # raises AudioError: the file never appears

        def stop(self) -> None:
            pass

    mic = GoneMic()
    with caplog.at_level(logging.INFO), KioskThread(settings, wait_ready=False, source=mic):
        wait_for(lambda: mic.attempts >= 20, 30, "20 retries")
    retries = [r for r in caplog.records if "audio input" in r.getMessage() and "still unavailable" in r.getMessage()]
    assert 1 <= len(retries) <= 5, [r.getMessage() for r in retries]
