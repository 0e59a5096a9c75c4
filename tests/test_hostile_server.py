"""A hostile or broken agent server, through real sockets (the simulator's hostile modes): the
kiosk bounds what it costs (sessions, memory, journal lines) and passes none of its strings to
systemd or the journal raw."""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import KioskThread, kiosk_events, kiosk_settings, wait_for

from edge_agent.agent.dial import MAX_MESSAGE_BYTES
from edge_agent.core import conversation as c
from edge_agent.core.sessionrecord import MAX_RENAMES
from edge_agent.core.store import SessionStore
from edge_agent.devtools.simulator import AgentSimulator, SimulatorThread
from edge_agent.service.notify import SystemdNotifier

FAST = {"dead_after_s": 1.5, "ping_interval_s": 0.5, "connect_timeout_s": 1.0}


def test_a_link_dying_right_after_onready_is_not_retried_forever(tmp_path: Path) -> None:
    """Accepts, says onready, drops: each retry is a new (billed) session. The backoff grows
    (a link that did not live does not reset it) and the conversation gives up past the cap."""
    with SimulatorThread(drop_after_ready=True) as sim:
        settings = kiosk_settings(tmp_path, sim.url, agent=FAST, session={"max_reconnects": 3})
        with KioskThread(settings) as k:
            events = kiosk_events(k)
            k.press()
            wait_for(lambda: any(e == "error" for e, _ in events), 15, "the conversation to give up")
            assert len(sim.sessions) == 4  # the first and 3 reconnects, not one every 250 ms
            error = next(f for e, f in events if e == "error")
            assert error["code"] == "reconnect_limit" and "3 reconnects" in error["message"]
            time.sleep(1.0)
            assert len(sim.sessions) == 4 and k.state in (c.ERROR, c.IDLE)
            delays = [f["attempt"] for e, f in events if e == "reconnecting"]
            assert delays == [1, 2, 3]  # backoff attempts grew: never reset by a short-lived onready


def test_a_session_id_with_a_newline_never_reaches_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    lines: list[str] = []
    try:
        with SimulatorThread(bad_session_id="abc\nWATCHDOG=trigger") as sim:
            settings = kiosk_settings(tmp_path, sim.url, agent=FAST, session={"reconnect_window_s": 2.0})
            with KioskThread(settings) as k:
                events = kiosk_events(k)
                k.press()
                gave_up = lambda: any(e == "error" for e, _ in events)  # noqa: E731
                # the window (2 s) of refused ids ends in the error; a kiosk that took the id would
                # never give up (and fail the asserts below, with the id it stored)
                wait_for(lambda: gave_up() or k.kiosk.conversation.session_id is not None, 20, "the conversation to give up (or take the id)")
                time.sleep(0.5)
                session_id, bad_frames, initiates = k.kiosk.conversation.session_id, k.kiosk.stats.bad_frames, len(sim.sessions)
        while True:
            try:
                lines += sock.recv(4096).decode().split("\n")
            except TimeoutError:
                break
    finally:
        sock.close()
    assert any(line.startswith("STATUS=") for line in lines)
    assert not any(line.startswith("WATCHDOG=") and line != "WATCHDOG=1" for line in lines), lines
    assert gave_up() and session_id is None and bad_frames >= 1  # the id was refused, never stored
    # once: a server whose first words make no sense says the same to a retry, and each retry may
    # start a session the platform bills (it was retried four times in 2 s; found by a newcomer)
    assert bad_frames == 1 and initiates == 1, (bad_frames, initiates)


def test_the_notifier_sends_no_line_of_a_value_s_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notifier = SystemdNotifier()
        notifier.send("STATUS=listening session x\nWATCHDOG=trigger\r\x1b[2J", "READY=1")
        notifier.close()
        assert sock.recv(4096).decode().split("\n") == ["STATUS=listening session x WATCHDOG=trigger  [2J", "READY=1"]


def _flood(sim: AgentSimulator, n: int, method: str, data: Any = None, payload: Any = None) -> Any:
    async def go() -> None:
        for _ in range(n):
            await sim.control(method, data=data, payload=payload)

    return go()


def test_transcripts_stay_out_of_the_info_log_and_never_forge_lines(tmp_path: Path, sim_thread: SimulatorThread, caplog: pytest.LogCaptureFixture) -> None:
    sim = sim_thread.sim
    evil = "hello\nERROR edge_agent: forged line \x1b[31mred"
    for transcripts in (False, True):
        (tmp_path / str(transcripts)).mkdir()
        settings = kiosk_settings(tmp_path / str(transcripts), sim.url, log={"transcripts": transcripts})
        caplog.clear()
        # captured from DEBUG: the private lines are there (at debug when transcripts are off), so
        # the test knows both messages were handled before it looks at the INFO lines
        with caplog.at_level(logging.DEBUG), KioskThread(settings) as k:
            k.press()
            k.wait_state(c.LISTENING)
            sim_thread.call(_flood(sim, 1, "ontranscript", evil, {"is_final": True}))
            sim_thread.call(_flood(sim, 1, "onresponsetext", "agent says\nhi", {"is_final": True}))
            ours = lambda: [r.getMessage() for r in list(caplog.records) if r.name.startswith("edge_agent")]  # noqa: E731
            wait_for(lambda f=ours: any("forged" in m for m in f()) and any("agent says" in m for m in f()), 20, "both messages to be handled")
        info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
        said = [m for m in info if "forged" in m or "agent says" in m]
        if transcripts:
            assert len(said) == 2, info
            assert all("\n" not in m and "\x1b" not in m for m in said), said
        else:
            assert said == [], said


def test_every_kind_of_skipped_frame_goes_through_one_log_limiter(tmp_path: Path, sim_thread: SimulatorThread, caplog: pytest.LogCaptureFixture) -> None:
    sim = sim_thread.sim
    with caplog.at_level(logging.INFO), KioskThread(kiosk_settings(tmp_path, sim.url)) as k:
        k.press()
        k.wait_state(c.LISTENING)
        caplog.clear()
        sim_thread.call(_flood(sim, 1000, "no_such_method"), timeout_s=60)
        sim_thread.call(_flood(sim, 1000, "ontranscript", 42), timeout_s=60)  # malformed: data not a string
        wait_for(lambda: k.kiosk.stats.bad_frames >= 1000, 10, "the bad frames to be read")
        assert k.state == c.LISTENING
    lines = [r for r in caplog.records if r.name == "edge_agent.agent.link"]
    assert 1 <= len(lines) <= 8, len(lines)  # 2 000 skipped frames, a handful of lines


def test_a_standby_that_hears_anything_before_initiate_is_closed(tmp_path: Path) -> None:
    """A server could otherwise park megabytes in a socket nobody reads until the next press."""
    with SimulatorThread(greet_bytes=8 * 1024 * 1024) as sim, KioskThread(kiosk_settings(tmp_path, sim.url, agent={"warm_link": True})) as k:
        wait_for(lambda: sim.early_closes >= 1, 20, "the standby to be closed by the kiosk")
        assert not k.kiosk.standby.ready
        sim.greet_bytes = 0
        k.press()  # connects cold meanwhile (the standby is backing off)
        k.wait_state(c.LISTENING)


def test_a_message_over_the_size_limit_closes_the_link(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    sim = sim_thread.sim
    settings = kiosk_settings(tmp_path, sim.url, agent=FAST, session={"max_reconnects": 0})
    with KioskThread(settings) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        sim_thread.call(sim.send_raw(bytes(MAX_MESSAGE_BYTES)))  # at the limit: played
        time.sleep(0.3)
        assert k.state in (c.LISTENING, c.SPEAKING)
        sim_thread.call(sim.send_raw(bytes(MAX_MESSAGE_BYTES + 1)))
        wait_for(lambda: any(e == "error" for e, _ in events), 20, "the link to be closed")
    assert MAX_MESSAGE_BYTES <= 256 * 1024


def test_the_servers_echo_of_the_kiosks_own_close_code_is_no_refusal() -> None:
    """The kiosk closes a link over a bad frame (1009 too big, 1007 bad UTF-8); a server that
    echoes that code, as RFC 6455 servers do, made it read as a refusal of the session: fatal,
    the conversation failed with no reconnect. The code the server chose itself still counts."""
    from websockets.exceptions import ConnectionClosed
    from websockets.frames import Close

    from edge_agent.agent.health import classify

    for code in (1002, 1007, 1009):
        assert classify(ConnectionClosed(Close(code, ""), Close(code, ""), False)) == (False, f"close_{code} sent")
    assert classify(ConnectionClosed(Close(1008, "policy"), Close(1008, "policy"), True))[0]  # theirs first: a refusal
    assert classify(ConnectionClosed(Close(4001, "bad key"), None, None)) == (True, "close_4001 'bad key'")


def test_a_paused_agent_does_not_keep_the_kiosk_muted_past_the_idle_timeout(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    sim = sim_thread.sim
    with KioskThread(kiosk_settings(tmp_path, sim.url, session={"idle_timeout_s": 2.0, "max_duration_s": 600.0})) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)

        async def speak_then_pause() -> None:
            await sim.say(bytes(32000 * 3))  # 3 s of agent audio
            await sim.control("pause")

        sim_thread.call(speak_then_pause())
        k.wait_state(c.SPEAKING)
        wait_for(lambda: any(e == "conversation_ended" for e, _ in events), 20, "the idle timeout while paused")
        ended = next(f for e, f in events if e == "conversation_ended")
        assert ended["reason"] == "idle"


def test_long_lived_links_still_reconnect_every_time(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    """A link that lived (min_link_life_s, shortened here) resets the backoff: a fast reconnect each time."""
    sim = sim_thread.sim
    with KioskThread(kiosk_settings(tmp_path, sim.url, agent=FAST)) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        k.kiosk.conversation.t = replace(k.kiosk.conversation.t, min_link_life_s=0.5)
        for n in (1, 2, 3):
            time.sleep(0.7)
            sim_thread.call(sim.drop())
            wait_for(lambda n=n: [e for e, _ in events].count("reconnected") == n, 10, f"reconnect #{n}")
        assert [f["attempt"] for e, f in events if e == "reconnecting"] == [1, 1, 1]


def test_a_pong_no_float_can_hold_is_a_skipped_frame_not_a_lost_link(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    """A pong is the kiosk's own clock echoed: a 400-digit one (an int, but no float) used to end
    the link with an OverflowError (a reconnect: a new billed session) instead of being skipped."""
    sim = sim_thread.sim
    with KioskThread(kiosk_settings(tmp_path, sim.url)) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        for data in ("-1" + "0" * 400, "9" * 400, 10**400):
            sim_thread.call(_flood(sim, 1, "pong", data))
        wait_for(lambda: k.kiosk.stats.bad_frames >= 3, 10, "the three pongs to be skipped")
        time.sleep(0.3)
        assert k.state == c.LISTENING and k.kiosk.stats.connects == 1
        assert not any(e == "reconnecting" for e, _ in events), events
        assert k.kiosk.stats.rtt_ms is None or k.kiosk.stats.rtt_ms < 60_000


FLOOD_S = 20.0  # the old kiosk buffered 43 MB of pongs in 10 s and never gave up


def test_a_server_that_stops_reading_cannot_make_the_kiosk_buffer_pongs(tmp_path: Path, sim_thread: SimulatorThread, caplog: pytest.LogCaptureFixture) -> None:
    """Every ping is answered with a pong, read or not: a server that stops reading and sends
    pings grew the kiosk's socket buffer without bound (43 MB in 10 s here, the link still
    'listening'). Past `MAX_UNSENT_BYTES` the link is aborted and reconnected like a dead one."""
    sim = sim_thread.sim
    settings = kiosk_settings(tmp_path, sim.url, agent={"dead_after_s": 120.0})  # not the dead-link timer
    with caplog.at_level(logging.WARNING), KioskThread(settings) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        flood = sim_thread.call(sim.ping_flood(FLOOD_S), timeout_s=FLOOD_S + 20)
        # Given up during the flood, not outlasted by it. Not a byte bound: the pongs the kiosk
        # handed the kernel sit in both sockets' buffers, which loopback autotuning grows to tens
        # of MB (9 MB of pongs were sent in one run before the abort reached the simulator).
        assert flood.closed and flood.elapsed_s < FLOOD_S, flood
        # the flood ends when the server sees the socket closing; the kiosk's event follows on its own thread
        wait_for(lambda: any(e == "reconnecting" for e, _ in events), 5, f"a reconnect after {flood}")
        k.wait_state(c.LISTENING)  # and reconnected
    assert any("stopped reading" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_server_flipping_speaking_and_listening_cannot_flood_the_journal_mqtt_or_systemd(tmp_path: Path, sim_thread: SimulatorThread, caplog: pytest.LogCaptureFixture) -> None:
    """Agent audio makes the kiosk speaking, a `clear` listening again, a `start_answering` then
    audio a response latency: 2 000 such rounds wrote 6 000 INFO lines, 4 000 retained MQTT
    states (and STATUS= lines) and 2 000 events in under two seconds. What leaves the kiosk is
    rate-limited; the last state reported is still the kiosk's own."""
    sim = sim_thread.sim
    with caplog.at_level(logging.INFO), KioskThread(kiosk_settings(tmp_path, sim.url, audio={"duplex": "full"})) as k:
        events = kiosk_events(k)
        states: list[str] = []
        k.kiosk.reporter.state = lambda state, *rest: states.append(state)  # type: ignore[method-assign]
        k.press()
        k.wait_state(c.LISTENING)

        async def flip() -> None:
            for _ in range(2000):
                await sim.say(bytes(2))
                await sim.control("clear")
                await sim.control("start_answering")

        sim_thread.call(flip(), timeout_s=120)
        wait_for(lambda: k.kiosk.counters["replies"] >= 1999, 30, "every round to be handled")
        wait_for(lambda: states[-1:] == [c.LISTENING] and k.state == c.LISTENING, 10, "the kiosk's own state to be reported last")
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("edge_agent")]
    assert len(states) < 100, len(states)
    assert sum("state: " in m for m in lines) < 100 and sum("response latency" in m for m in lines) < 50, len(lines)
    assert sum(e == "response_latency" for e, _ in events) < 50


@pytest.mark.slow
def test_a_server_that_never_says_onready_does_not_hold_the_kiosk_connecting(tmp_path: Path) -> None:
    """Accepts `initiate`, answers every ping, never says `onready`: the link is alive (the dead
    timer never trips) and nothing was lost, so no reconnect window ran: the kiosk said
    'connecting' (LED, MQTT state) until someone pressed again. The first `onready` now has the
    reconnect window to come; past it the conversation ends in an error."""
    with SimulatorThread(never_ready=True) as sim:
        settings = kiosk_settings(tmp_path, sim.url, agent=FAST, session={"reconnect_window_s": 2.0})
        with KioskThread(settings) as k:
            events = kiosk_events(k)
            k.press()
            k.wait_state(c.CONNECTING)
            wait_for(lambda: any(e == "error" for e, _ in events), 15, "the conversation to give up")
            assert k.state in (c.ERROR, c.IDLE)
            assert k.kiosk.stats.rtt_ms is not None  # the link was alive all along: pongs came
            assert len(sim.sessions) == 1


def test_a_pong_that_echoes_no_recent_ping_leaves_the_rtt_alone(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    """The RTT (a metric, long-term statistics in Home Assistant) is the age of the ping a pong
    echoes. A pong of 0 made it 1.7e12 ms (55 years); one from the future, 0. Only an echo of a
    ping younger than the dead-link limit counts; others are skipped and counted."""
    sim = sim_thread.sim
    with KioskThread(kiosk_settings(tmp_path, sim.url, agent={"ping_interval_s": 60.0, "dead_after_s": 120.0})) as k:
        k.press()
        k.wait_state(c.LISTENING)
        wait_for(lambda: k.kiosk.stats.rtt_ms is not None, 10, "the first (real) pong")
        real = k.kiosk.stats.rtt_ms
        bad = k.kiosk.stats.bad_frames
        now_ms = int(time.time() * 1000)
        for data in ("0", str(now_ms - 3_600_000), str(now_ms + 3_600_000)):
            sim_thread.call(_flood(sim, 1, "pong", data))
        wait_for(lambda: k.kiosk.stats.bad_frames >= bad + 3, 10, "the three pongs to be skipped")
        assert k.kiosk.stats.rtt_ms == real and k.state == c.LISTENING


def test_agent_audio_sent_before_onready_is_played_after_it(tmp_path: Path) -> None:
    """The protocol lets audio come before `onready` and the vendor's client plays it; the kiosk
    dropped it, so an agent whose greeting went ahead of its onready was never heard. It is kept
    (at most EARLY_AUDIO_BYTES) and played at onready, after the ready earcon."""
    from edge_agent.agent.link import EARLY_AUDIO_BYTES
    from edge_agent.devtools.simulator import SimulatorThread

    with SimulatorThread(early_audio_ms=1000) as sim, KioskThread(kiosk_settings(tmp_path, sim.url)) as k:
        played: list[bytes] = []
        write = k.kiosk.sink.buffer.write
        k.kiosk.sink.buffer.write = lambda pcm, reply=False, cue=False: (played.append(pcm), write(pcm, reply, cue))[1]  # type: ignore[method-assign]
        earcons = b"".join(k.kiosk.earcons.get(name) for name in ("press", "ready"))
        k.press()
        k.wait_state(c.LISTENING)
        wait_for(lambda: sum(map(len, played)) - len(earcons) >= 32000, 10, "the 1 s greeting at the speaker")
    assert EARLY_AUDIO_BYTES >= 32000 * 5  # a greeting of a few seconds fits; a flood does not


def test_a_second_onready_with_a_new_session_id_is_the_one_continued(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    """Through the real link and store: the kiosk kept the first id, and its next press asked to
    continue a session the platform had moved on from; a server renaming in every frame costs
    MAX_RENAMES store writes, not one per frame."""
    sim = sim_thread.sim
    settings = kiosk_settings(tmp_path, sim.url)
    with KioskThread(settings) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        rename = json.dumps({"method": "onready", "payload": {"session_id": "platform-renamed-1"}})
        sim_thread.call(sim.send_raw(rename), timeout_s=5)
        wait_for(lambda: any(e == "session_changed" for e, _ in events), 5, "the session change")
        k.press()  # ends it
        wait_for(lambda: k.state == c.IDLE, 10, "idle")
        k.press()
        k.wait_state(c.LISTENING)
        assert sim.sessions[1].initiate["data"]["session_continuation"] == {"session_id": "platform-renamed-1"}

        async def renames() -> None:
            for i in range(200):
                await sim.send_raw(json.dumps({"method": "onready", "payload": {"session_id": f"flood-{i}"}}))

        sim_thread.call(renames(), timeout_s=30)
        wait_for(lambda: any(e == "error" and f.get("code") == "agent_renames" for e, f in events), 5, "the renames to be refused")
        assert k.state == c.LISTENING
    ids = [s.id for s in SessionStore(tmp_path / "state").recent(1000)]
    assert "platform-renamed-1" in ids and sum(i.startswith("flood-") for i in ids) == MAX_RENAMES, ids


def test_a_text_frame_that_is_not_utf8_is_skipped_not_a_reconnect(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    """websockets fails a connection whose text message is not UTF-8 (1007) when `recv` decodes
    it: one garbled frame cost the visitor a reconnect (a pause, and a new session to the
    platform). It is a bad frame like any other now: counted, logged, skipped."""
    sim = sim_thread.sim
    with KioskThread(kiosk_settings(tmp_path, sim.url, audio={"duplex": "full"})) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        sim_thread.call(sim.send_raw(b'{"method": "ontranscript", "data": "\xff\xfe garbled"}', text=True), timeout_s=5)
        wait_for(lambda: k.kiosk.stats.bad_frames >= 1, 5, "the garbled frame to be skipped")
        sim_thread.call(sim.say(bytes(3200)), timeout_s=5)  # the link still carries the agent
        k.wait_state(c.SPEAKING, 5)
        time.sleep(0.5)
        assert len(sim.sessions) == 1 and not any(e == "reconnecting" for e, _ in events), events
        assert k.kiosk.stats.bad_frames == 1


def test_a_garbled_text_message_in_fragments_is_skipped_and_a_sound_one_kept(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    """A text message sent in fragments went to websockets whole (only single frames were checked),
    so a garbled one still failed the link (1007): a reconnect and a new session. Now the fragments
    are held until the last one and the message checked as a whole: a garbled one is skipped and
    counted once; a sound one (a character split across its fragments) is handled as before."""
    sim = sim_thread.sim
    with KioskThread(kiosk_settings(tmp_path, sim.url, audio={"duplex": "full"})) as k:
        events = kiosk_events(k)
        k.press()
        k.wait_state(c.LISTENING)
        garbled = [b'{"method": "ontranscript", ', b'"data": "\xff\xfe garbled"}']
        sim_thread.call(sim.send_raw(garbled, text=True), timeout_s=5)
        wait_for(lambda: k.kiosk.stats.bad_frames >= 1, 5, "the garbled message to be skipped")
        sound = '{"method": "start_answering", "note": "caf\u00e9"}'.encode()
        cut = sound.index(b"\xc3") + 1  # inside the two bytes of the é
        sim_thread.call(sim.send_raw([sound[:cut], sound[cut:]], text=True), timeout_s=5)
        sim_thread.call(sim.say(bytes(3200)), timeout_s=5)  # the link still carries the agent
        k.wait_state(c.SPEAKING, 5)
        wait_for(lambda: any(e == "response_latency" for e, _ in events), 5, "the start_answering sent in fragments to be read")
        time.sleep(0.5)
        assert len(sim.sessions) == 1 and not any(e == "reconnecting" for e, _ in events), events
        assert k.kiosk.stats.bad_frames == 1


def test_a_garbled_frame_right_behind_onready_is_skipped_too(tmp_path: Path) -> None:
    """`onready` and a garbled frame in one TCP write (a server batching its output): the socket's
    read saw the garbled frame before `recv` handed on the `onready`, so a skip set up at
    `onready` came too late, and the link failed (1007) as before."""
    from edge_agent.core import protocol as p

    st = SimulatorThread()
    sim = st.sim
    with st:
        plain_send = AgentSimulator._send

        async def onready_and_garbled(self: AgentSimulator, ws: Any, sess: Any, method: str, data: Any = None, payload: Any = None) -> None:
            if method != "onready":
                await plain_send(self, ws, sess, method, data, payload)
                return
            sess.sent.append(method)
            async with ws.send_context():  # both frames in one write
                ws.protocol.send_text(p.server_to_wire(method, data, payload).encode())
                ws.protocol.send_text(b'{"method": "ontranscript", "data": "\xff\xfe garbled"}')

        sim._send = onready_and_garbled.__get__(sim)  # type: ignore[method-assign]
        with KioskThread(kiosk_settings(tmp_path, sim.url)) as k:
            events = kiosk_events(k)
            k.press()
            k.wait_state(c.LISTENING)
            wait_for(lambda: k.kiosk.stats.bad_frames >= 1, 5, "the garbled frame to be skipped")
            time.sleep(0.5)
            assert len(sim.sessions) == 1 and not any(e == "reconnecting" for e, _ in events), events


def test_a_second_onready_naming_a_badge_holders_session_is_refused(tmp_path: Path, sim_thread: SimulatorThread) -> None:
    """A server naming, in a second `onready`, the id the kiosk holds for a badge holder's slot:
    the kiosk took it, and the next anonymous press continued the badge holder's private
    conversation (its row kept the badge's slot, its memory filed it under the default one)."""
    sim = sim_thread.sim
    with KioskThread(kiosk_settings(tmp_path, sim.url)) as k:
        events = kiosk_events(k)
        k.send(c.Press(origin="badge", slot="b-alice"))
        k.wait_state(c.LISTENING)
        alice = k.on_loop(lambda: k.kiosk.conversation.session_id)
        k.press()
        wait_for(lambda: k.state == c.IDLE, 10, "idle")
        k.press()  # an anonymous visitor, the default slot
        k.wait_state(c.LISTENING)
        anonymous = k.on_loop(lambda: k.kiosk.conversation.session_id)
        sim_thread.call(sim.send_raw(json.dumps({"method": "onready", "payload": {"session_id": alice}})), timeout_s=5)
        wait_for(lambda: any(f.get("code") == "agent_renames" for e, f in events if e == "error"), 5, "the rename to be refused")
        assert k.on_loop(lambda: k.kiosk.conversation.session_id) == anonymous
        k.press()
        wait_for(lambda: k.state == c.IDLE, 10, "idle")
        k.press()  # the next anonymous visitor
        k.wait_state(c.LISTENING)
        assert sim.sessions[-1].initiate["data"].get("session_continuation") == {"session_id": anonymous}
    assert SessionStore(tmp_path / "state").get(alice).slot == "b-alice"  # type: ignore[union-attr]


@pytest.mark.parametrize("agent_id", [None, "agent-1"])
def test_a_button_naming_the_configured_agent_keeps_its_own_continued_session(tmp_path: Path, sim_thread: SimulatorThread, agent_id: str | None) -> None:
    """A start naming the configured agent by its own id (a `[[buttons]]` entry, an MQTT command):
    the store files its sessions under that agent, and a platform that answers the continuation
    with the same id had the conversation taken for another's (off the record: not stored, not
    continued again)."""
    sim = sim_thread.sim
    settings = kiosk_settings(tmp_path, sim.url)
    press = c.Press(origin="button", slot="staff", agent_id=agent_id)
    with KioskThread(settings) as k:
        events = kiosk_events(k)
        k.send(press)
        k.wait_state(c.LISTENING)
        first = k.on_loop(lambda: k.kiosk.conversation.session_id)
        k.send(press)
        wait_for(lambda: k.state == c.IDLE, 10, "idle")
        sim.bad_session_id = first  # the platform answers the continuation with the same id
        k.send(press)
        k.wait_state(c.LISTENING)
        assert sim.sessions[-1].initiate["data"]["session_continuation"] == {"session_id": first}
        assert not k.on_loop(lambda: k.kiosk.conversation.record.off_record)
        k.send(press)
        wait_for(lambda: k.state == c.IDLE, 10, "idle")
    assert not any(f.get("code") == "agent_session_of_another" for _, f in events), events
    assert SessionStore(tmp_path / "state").get(first).resumed_at is not None  # type: ignore[union-attr]


def test_one_garbled_frame_ahead_of_a_reconnects_onready_is_skipped_not_the_end(tmp_path: Path) -> None:
    """Only an onready without a usable id ends a link for good: a network drop mid-conversation,
    then one truncated frame ahead of the reconnect's onready (a transient garble) ended the
    visitor's conversation (found by an attacker)."""
    st = SimulatorThread()
    sim = st.sim
    with st:
        plain_send = AgentSimulator._send
        garble = {"left": 0}

        async def send(self: AgentSimulator, ws: Any, sess: Any, method: str, data: Any = None, payload: Any = None) -> None:
            if method == "onready" and garble["left"] > 0:
                garble["left"] -= 1
                await ws.send('{"method": "ontranscript", "data": "trunc')
            await plain_send(self, ws, sess, method, data, payload)

        sim._send = send.__get__(sim)  # type: ignore[method-assign]
        settings = kiosk_settings(tmp_path, sim.url, agent={})
        with KioskThread(settings) as k:
            seen = kiosk_events(k)
            k.press()
            k.wait_state(c.LISTENING)
            garble["left"] = 1  # the reconnect's first frame only
            st.call(sim.drop(), timeout_s=5)
            wait_for(lambda: any(e == "reconnected" for e, _ in seen), 10, f"the reconnect (state {k.state}, events {seen})")
            assert k.state == c.LISTENING and k.kiosk.stats.bad_frames == 1
