"""The visitor's first words, through the real kiosk and the agent simulator: speech that starts
at the very instant of the press reaches a slow agent whole and in order (byte for byte), the
bound drops the oldest audio and counts it, and the kiosk's earcons never go up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, KioskThread, assert_leads_start_their_frames, kiosk_settings, read_wav, wait_for

from edge_agent.core import conversation as c
from edge_agent.devtools.faultproxy import FaultProxyThread
from edge_agent.devtools.simulator import SimSession, SimulatorThread
from edge_agent.devtools.visitor import VisitorMic, lost_ms

SPEECH = read_wav(DATA / "kiosk_dev_quiet.wav")[2 * int(2.2 * 16000) : 2 * int(4.2 * 16000)]
"""Two seconds of continuous speech (labelled 2.2-8.79 s in the quiet dev recording)."""


def kiosk(tmp_path: Path, url: str, mic: VisitorMic, **sections: dict[str, Any]) -> KioskThread:
    return KioskThread(kiosk_settings(tmp_path, url, **sections), source=mic)


def press_and_speak(k: KioskThread, mic: VisitorMic, speech: bytes = SPEECH) -> None:
    time.sleep(1.0)  # a kiosk hears its room long before a visitor comes: the gate knows its noise
    mic.speak(speech, time.monotonic())
    k.press()


def session(sim_thread: SimulatorThread) -> SimSession:
    return wait_for(lambda: sim_thread.sim.sessions[-1] if sim_thread.sim.sessions else None, 10, "a session")  # type: ignore[no-any-return]


def test_speech_from_the_press_reaches_a_slow_agent_whole_and_in_order(tmp_path: Path) -> None:
    # a 50 ms round trip, and a server that takes 0.8 s to say onready: ~0.9 s of speech is said
    # before there is a session to send it to
    with SimulatorThread(onready_delay_s=0.8) as sim, FaultProxyThread("127.0.0.1", sim.port) as proxy:
        proxy.delay_s = 0.025
        mic = VisitorMic()
        with kiosk(tmp_path, proxy.url(), mic) as k:
            press_and_speak(k, mic)
            k.wait_state(c.LISTENING, 10)
            sess = sim.sessions[-1]
            wait_for(lambda: len(sess.uplink) > len(SPEECH) + 32000, 15, "the speech and a second more")
            uplink = bytes(sess.uplink)
            assert lost_ms(SPEECH, uplink) == 0
            assert SPEECH in uplink  # byte-exact and in order, nothing inserted or lost in between
            metrics = k.kiosk.metrics()
            assert metrics["held_dropped"] == 0
            assert k.kiosk.backlog.held * 30 >= 800  # it really was held: no session for 0.8 s
            # the ready earcon still told the visitor the agent listens
            earcons = k.kiosk.earcons
            assert k.kiosk.sink.buffer.played_bytes >= len(earcons.get("press")) + len(earcons.get("ready"))


def test_the_bound_drops_the_oldest_audio_and_counts_it(tmp_path: Path) -> None:
    with SimulatorThread(onready_delay_s=1.5) as sim:
        mic = VisitorMic()
        with kiosk(tmp_path, sim.url, mic, audio={"backlog_ms": 600}) as k:
            press_and_speak(k, mic)
            k.wait_state(c.LISTENING, 10)
            sess = sim.sessions[-1]
            wait_for(lambda: len(sess.uplink) > 32000 * 2, 15, "two seconds of uplink")
            uplink = bytes(sess.uplink)
            dropped = k.kiosk.metrics()["held_dropped"]
            assert dropped >= (1500 - 600) // 30 - 4  # what did not fit in 600 ms, give or take a period
            assert SPEECH[:8000] not in uplink  # the oldest went
            assert SPEECH[-32000:] in uplink  # the newest 600 ms and everything live after it, in order
            assert 600 <= lost_ms(SPEECH, uplink) <= dropped * 30


def test_earcons_never_go_up_even_when_the_microphone_hears_them(tmp_path: Path) -> None:
    """The room feeds the speaker into the microphone (no echo cancellation): loud earcons at the
    press and at onready. Nobody speaks: the agent must receive silence only. Then the visitor
    speaks, and the gate lets their words through as usual."""
    with SimulatorThread(onready_delay_s=0.3) as sim:
        mic = VisitorMic()
        with kiosk(tmp_path, sim.url, mic, audio={"earcon_volume": 1.0}) as k:
            mic.listen_to(k.kiosk.sink.buffer)
            time.sleep(1.0)  # the gate learns the room first
            k.press()
            k.wait_state(c.LISTENING, 10)
            sess = sim.sessions[-1]
            wait_for(lambda: len(sess.uplink) >= 32000 * 1.5, 10, "1.5 s of uplink")
            assert not bytes(sess.uplink).strip(b"\0"), "an earcon went up to the agent"
            mic.speak(SPEECH, time.monotonic())
            wait_for(lambda: SPEECH in bytes(sess.uplink), 10, "the visitor's speech")


def test_the_gate_never_opens_on_a_cue_yet_keeps_a_word_said_under_one() -> None:
    from edge_agent.audio.gate import VadGate
    from edge_agent.core.config_audio import VadSettings
    from edge_agent.devtools.visitor import room_tone

    fb = 960
    room, speech = room_tone(2.0), SPEECH
    frames = [room[i : i + fb] for i in range(0, len(room) - fb + 1, fb)]
    gate = VadGate(VadSettings("edge", 2, 300, 600, 90), 30)
    for f in frames:
        gate.push(f)
    loud = [speech[i : i + fb] for i in range(0, len(speech) - fb + 1, fb)]
    for f in loud[:20]:  # 600 ms of loud sound, all of it under a cue: never opens
        assert gate.push(f, cue=True) == (gate.silence,)
        assert not gate.is_open
    gate = VadGate(VadSettings("edge", 2, 300, 600, 90), 30)
    for f in frames:
        gate.push(f)
    sent: list[bytes] = []
    for i, f in enumerate(loud):  # a word starts under 300 ms of cues (press + ready earcons)
        sent += gate.push(f, cue=i < 10)
    assert b"".join(loud[:20]) in b"".join(sent)  # its start is in the burst, beyond preroll_ms


def test_words_said_while_a_dropped_link_reconnects_reach_the_continued_session(tmp_path: Path) -> None:
    with SimulatorThread() as sim:
        network = FaultProxyThread("127.0.0.1", sim.port)
        mic = VisitorMic()
        with network as proxy, kiosk(tmp_path, proxy.url(), mic) as k:
            k.press()
            k.wait_state(c.LISTENING, 10)
            first = sim.sessions[-1]
            time.sleep(1.0)
            sim.onready_delay_s = 0.8  # the server takes its time to resume the session
            mic.speak(SPEECH, time.monotonic())  # the visitor talks on, just as the network drops
            network.cut()
            wait_for(lambda: len(sim.sessions) > 1 and sim.sessions[-1].continued_from == first.session_id, 15, "the continued session")
            resumed = sim.sessions[-1]
            wait_for(lambda: not mic.speaking, 10, "the end of the speech")
            # what went into the dying socket is gone with it (a frame or two); the rest, said
            # while there was no link for a second, reaches the continued session in order (the
            # uplink only grows: waited for, not slept on)
            wait_for(lambda: SPEECH[4000:] in bytes(resumed.uplink), 15, "the speech in the continued session")
            assert lost_ms(SPEECH, bytes(resumed.uplink)) <= 120


def watch_gate(k: KioskThread, mic: VisitorMic) -> list[tuple[bool, bool]]:
    """Per frame the gate is given from now on: (it carries the visitor's speech, the gate is open after it)."""
    gate, push = k.kiosk.gate, k.kiosk.gate.push
    heard: list[tuple[bool, bool]] = []

    def watched_push(frame: bytes, cue: bool = False) -> tuple[bytes, ...]:
        out = push(frame, cue)
        heard.append((frame in mic.speech_frames, gate.is_open))
        return out

    gate.push = watched_push  # type: ignore[method-assign]
    return heard


def frames_to_open(heard: list[tuple[bool, bool]]) -> int:
    """Frames from the first one with speech until the gate is open (on the audio's own clock)."""
    first_speech = next(i for i, (speech, _) in enumerate(heard) if speech)
    return next(i for i, (_, is_open) in enumerate(heard) if is_open) - first_speech


def test_a_softer_visitor_after_a_loud_one_is_heard_from_their_press(tmp_path: Path) -> None:
    """The gate used to carry the previous visitor's voice level into the next conversation: a
    visitor 15 dB softer than the one before counted as a talker in the background until a loud
    syllable, 20 frames into their speech here. Each press now starts a new visitor (the room
    model is kept): the gate opens as for the first visitor of the day (6 frames in the pure gate)."""
    import numpy as np

    loud = np.clip(np.frombuffer(SPEECH, dtype="<i2").astype(np.float64) * 6.0, -32768, 32767).astype("<i2").tobytes()
    with SimulatorThread() as sim:
        mic = VisitorMic()
        # the press prior (60 ms instead of 90 open the gate for press_prior_ms after a press) held
        # long enough that a loaded test thread speaking late still speaks under it, as a visitor does
        with kiosk(tmp_path, sim.url, mic, audio={"earcons": False}, vad={"press_prior_ms": 3000}) as k:
            heard = watch_gate(k, mic)
            press_and_speak(k, mic, loud)
            k.wait_state(c.LISTENING, 10)
            wait_for(lambda: not mic.speaking and not k.kiosk.gate.is_open, 10, "the loud visitor done")
            k.press()
            k.wait_state(c.IDLE, 10)
            start = len(heard)
            k.press()  # taken by the kiosk before they speak: a loaded loop would take it late,
            wait_for(lambda: k.state != c.IDLE, 10, "the press")  # and count its delay as the gate's
            mic.speak(SPEECH, time.monotonic())
            wait_for(lambda: not mic.speaking, 10, "the softer visitor done")
            # 6-8 frames in an unloaded run, 9 seen under load (most likely the speech starting in the last ms
            # of its first frame: the instant is wall-clock, so the alignment varies; not traced); the old
            # carried-over level took 20
            assert frames_to_open(heard[start:]) <= 10


def watch_capture(k: KioskThread) -> list[tuple[float, bool]]:
    """Per frame the microphone path hears from now on: (its capture time on the audio's own
    clock, time.monotonic(); the gate is open after it)."""
    mic_path, hear = k.kiosk.mic, k.kiosk.mic.hear
    heard: list[tuple[float, bool]] = []

    def watched_hear(frame: bytes, captured_at: float) -> tuple[tuple[bytes, ...], bool]:
        out = hear(frame, captured_at)
        heard.append((captured_at, mic_path.gate.is_open))
        return out

    mic_path.hear = watched_hear  # type: ignore[method-assign]
    return heard


def test_a_visitor_talking_over_the_earcons_the_microphone_hears_is_heard_at_once(tmp_path: Path) -> None:
    """The microphone hears the press and ready earcons (loud, at once) while the visitor talks from
    the press: the earcons are taken out of the frames and the gate decides on the words. It used
    to withhold every frame the earcons played in, opening only after the ready earcon (~15 frames).

    Counted on the audio's own clock, from the first frame with 10 ms of speech or more: counted
    from a point on the test thread's clock (before `speak`) it took in the frames captured before
    the speech began and still queued, and failed CI four times under load (10 for 9). Where the
    speech starts in its frame moves the opening by up to five frames (this utterance's soft onset
    read by the VAD in other slices): 3-8 frames in a sweep of that start over a frame in 3 ms
    steps, 20 of 20 runs in one process passed, 3-5 with both cores busy; 28 without the removal."""
    with SimulatorThread() as sim:
        mic = VisitorMic()
        with kiosk(tmp_path, sim.url, mic) as k:
            mic.listen_to(k.kiosk.sink.buffer)
            heard = watch_capture(k)
            time.sleep(1.0)  # the gate learns the room
            speech_at = time.monotonic()
            mic.speak(SPEECH, speech_at)
            k.press()
            k.wait_state(c.LISTENING, 10)
            wait_for(lambda: not mic.speaking, 10, "the visitor done")
            first = next(i for i, (at, _) in enumerate(heard) if at >= speech_at + 0.010)
            assert not any(is_open for _, is_open in heard[:first])  # nothing opened it before the words
            opened = next(i for i, (_, is_open) in enumerate(heard) if is_open)
            assert opened - first <= 9
            assert k.kiosk.sink.buffer.played_bytes >= len(k.kiosk.earcons.get("ready"))  # the earcons did play


@pytest.mark.parametrize("block_ms", [0, 10])
def test_a_press_that_opens_the_gate_sends_the_room_for_a_moment_but_never_the_earcon(tmp_path: Path, block_ms: int) -> None:
    """`vad.press_opens_ms`: the gate opens at the press, before any evidence. Nobody speaks, and
    the microphone hears the press and ready earcons (loud, at once): the agent gets the room for
    at most 300 ms, with the earcons taken out of it, then silence (a visitor who talks confirms
    the opening with 60 ms of speech-like frames). With a 10 ms device block the start of each
    frame goes ahead of it (`audio.capture_block_ms`), the press earcon already playing in it."""
    import numpy as np

    with SimulatorThread() as sim:
        mic = VisitorMic(block_ms=block_ms)
        with kiosk(tmp_path, sim.url, mic, audio={"earcon_volume": 1.0, "capture_block_ms": block_ms}, vad={"press_opens_ms": 300}) as k:
            mic.listen_to(k.kiosk.sink.buffer)
            heard = watch_gate(k, mic)
            time.sleep(1.0)  # the gate learns the room
            start = len(heard)
            k.press()
            k.wait_state(c.LISTENING, 10)
            sess = sim.sessions[-1]
            wait_for(lambda: len(sess.uplink) >= 32000 * 1.5, 10, "1.5 s of uplink")
            assert not any(is_open for _, is_open in heard[:start]) and any(is_open for _, is_open in heard[start:])  # the press opened it
            up = np.frombuffer(bytes(sess.uplink)[: 32000 * 3 // 2], dtype="<i2").astype(np.float64).reshape(-1, 480)
            sent = up[np.abs(up).max(axis=1) > 0]
            # the room, for at most 300 ms (the frame of the press too); none of it when the press
            # earcon is already heard in the first frame after the press (its frame and those after
            # it are then held, and go as silence when nobody talks): on a loaded machine the
            # earcon can start before that frame's capture ends (the stop's CI, once)
            assert len(sent) <= 11, len(sent)
            # the earcons kept out (their frames go as silence, what is left of them taken out):
            # full scale is RMS 23 000; on an idle machine this is room noise (RMS ~60), under
            # load an earcon's edge can land outside the frames marked as the kiosk's own (RMS
            # 1 191, 26 dB under, seen once in five runs); earcons sent would be 10 dB under or louder
            # (no frame of room at all, as above, has no earcon in it either: the mean of nothing
            # is no RMS; the final CI of 2026-12-03 failed on that nan once)
            assert len(sent) == 0 or np.sqrt(np.square(sent).mean()) < 0.1 * 23170
            assert (k.kiosk.source.leads > 0) == (block_ms > 0)  # type: ignore[attr-defined]


def test_a_short_device_block_sends_the_first_syllable_before_its_frame_is_complete(tmp_path: Path) -> None:
    """`audio.capture_block_ms = 10` with `vad.press_opens_ms`: the frame holding the press goes
    up in parts as the microphone hands them over, not at the end of the frame and its period.
    The first bytes of speech on the socket are such a part (shorter than a frame), and what the
    agent receives is still the speech byte for byte, once, in order: each frame's rest follows
    its parts, nothing sent twice, and the stream stays whole frames long."""
    with SimulatorThread() as sim:
        mic = VisitorMic(block_ms=10)
        with kiosk(tmp_path, sim.url, mic, audio={"capture_block_ms": 10}, vad={"press_opens_ms": 300}) as k:
            chunks: list[bytes] = []
            k.kiosk.stats.uplink_tap = lambda chunk, _at: chunks.append(chunk)
            time.sleep(1.0)  # the gate learns the room
            k.press()
            # the visitor starts once the kiosk has the press (how long a press takes to reach it
            # is not what this is about: a frame that ended before it goes whole)
            wait_for(lambda: k.kiosk.source.leads > 0, 5, "the microphone hurried")  # type: ignore[attr-defined]
            mic.speak(SPEECH, time.monotonic())
            k.wait_state(c.LISTENING, 10)
            sess = sim.sessions[-1]
            wait_for(lambda: len(sess.uplink) > len(SPEECH) + 16000, 15, "the speech and half a second more")
            uplink = bytes(sess.uplink)
            first = next(chunk for chunk in chunks if mic.has_speech(chunk))
            assert 0 < len(first) < 960 and first in mic.speech_leads
            assert SPEECH in uplink and uplink.count(SPEECH[:3200]) == 1
            k.press()
            k.wait_state(c.IDLE, 10)
            assert len(bytes(sess.uplink)) % 960 == 0


def test_no_part_of_a_frame_with_an_earcon_in_it_goes_ahead_and_the_parts_that_go_are_its_start(tmp_path: Path) -> None:
    """With a 10 ms device block, loud earcons heard by the microphone and nobody speaking: while
    the press alone holds the gate open, a frame the press earcon is heard in goes as silence.
    A part of such a frame must not go ahead of it as what the remover leaves of the tone (the
    onset's leftover judged the visitor's in 10 ms went at RMS 1 500-2 300, 25 times the room):
    a part with an earcon in it waits for its frame. What goes ahead is the microphone's audio as
    captured, and always the start of its frame: once a part waits for its frame, so do the
    parts after it (the frame's rest would send them a second time and leave the waiting part
    out)."""
    with SimulatorThread(onready_delay_s=0.3) as sim:  # the ready earcon well after the press earcon
        mic = VisitorMic(block_ms=10)
        with kiosk(tmp_path, sim.url, mic, audio={"earcon_volume": 1.0, "capture_block_ms": 10}, vad={"press_opens_ms": 300}) as k:
            mic.listen_to(k.kiosk.sink.buffer)
            path = k.kiosk.mic
            events: list[tuple[str, bytes]] = []  # on the kiosk's loop, in order
            offered: list[bytes] = []
            lead, hear = path.lead, path.hear

            def leading(pcm: bytes, at: float) -> bytes:
                went = lead(pcm, at)
                offered.append(pcm)
                if went:
                    events.append(("lead", went))
                return went

            def hearing(frame: bytes, at: float) -> tuple[tuple[bytes, ...], bool]:
                events.append(("frame", frame))
                return hear(frame, at)

            path.lead, path.hear = leading, hearing  # type: ignore[method-assign]
            time.sleep(1.0)  # the gate learns the room
            k.press()
            k.wait_state(c.LISTENING, 10)
            time.sleep(0.5)
            leads = k.on_loop(lambda: list(events))
    assert offered  # the microphone was hurried (whether the room before the earcon went ahead depends on where in its frame the press fell)
    assert_leads_start_their_frames(leads)


@pytest.mark.parametrize("earcon_heard", [False, True])
def test_a_frame_whose_start_went_ahead_is_whole_on_the_wire_when_the_gate_closes_on_it_owing_pre_roll(tmp_path: Path, earcon_heard: bool) -> None:
    """The stream owes pre-roll (`debt`: closed frames go as nothing) when the press opens the
    gate for 30 ms (a press no longer inherits the debt of an opening before it, a review's find,
    tests/test_capture_review.py; the `listening` frame of a warm link that is ready at once is
    owed like this, and set here with the press). The frame
    holding the press goes ahead in parts, then closes the gate: its rest must still go, or the
    stream runs ahead by the parts that went and is no longer whole frames. The same when the
    microphone hears the press earcon in that frame and the press opens the gate for 60 ms: the
    gate holds the frame back, then closes, its silence and the next frame's paying the debt."""
    with SimulatorThread(onready_delay_s=0.3) as sim:
        mic = VisitorMic(block_ms=10)
        audio = {"capture_block_ms": 10, "earcon_volume": 1.0 if earcon_heard else 0.3}
        with kiosk(tmp_path, sim.url, mic, audio=audio, vad={"press_opens_ms": 60 if earcon_heard else 30}) as k:
            if earcon_heard:
                mic.listen_to(k.kiosk.sink.buffer)
            gate = k.kiosk.gate
            time.sleep(1.0)  # the gate learns the room

            def press_owing() -> None:
                k.kiosk.dispatch(c.Press())
                gate.debt = 8

            k.on_loop(press_owing)
            k.wait_state(c.LISTENING, 10)
            assert k.kiosk.source.leads > 0  # type: ignore[attr-defined]
            sess = sim.sessions[-1]
            wait_for(lambda: len(sess.uplink) > 16000, 10, "half a second of uplink")
            k.press()
            k.wait_state(c.IDLE, 10)
            assert len(bytes(sess.uplink)) % 960 == 0


@pytest.mark.parametrize("how", ["stall", "restart"])
def test_the_visitor_mic_hands_over_the_frame_whose_start_went_ahead_before_its_grid_starts_again(how: str) -> None:
    """The simulated microphone starts its frame grid again after a loop stall of over a second,
    or a restart (the daemon's AudioWatch: stop, start). A frame whose start went to on_lead
    must come next all the same: the daemon sends only its rest, and trimming another frame
    instead loses that one's start and this one's rest."""
    import asyncio

    mic = VisitorMic(block_ms=10)
    events: list[tuple[str, bytes]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        on_frame = lambda f, _at: events.append(("frame", f))  # noqa: E731
        mic.start(loop, on_frame)
        await asyncio.sleep(0.2)
        while True:  # hurried in the first block of a frame: its start goes ahead 10 ms later
            await asyncio.sleep(0.001)
            into = (loop.time() - mic._grid0) % mic.frame_s
            if 0.002 < into < 0.008:
                break
        mic.hurry(time.monotonic() + 60.0, lambda pcm, _at: events.append(("lead", pcm)))
        await asyncio.sleep(0.015)
        assert events[-1][0] == "lead"
        if how == "stall":
            time.sleep(1.2)
        else:
            mic.stop()
            mic.start(loop, on_frame)
        await asyncio.sleep(0.2)
        mic.stop()

    asyncio.run(main())
    assert_leads_start_their_frames(events)


def test_parts_that_went_ahead_into_audio_then_dropped_do_not_cut_the_next_conversation_s_first_frame(tmp_path: Path) -> None:
    """A conversation ends (and its held audio is dropped) while the frame being filled has
    already sent its start ahead into that held audio, and the next one starts at once (a
    command, another slot's button). The frame's start went with the dropped audio: the next
    conversation gets that frame whole, not its rest alone (the stream would no longer be whole
    frames, its first syllable cut)."""
    with SimulatorThread(onready_delay_s=0.3) as sim:
        mic = VisitorMic(block_ms=10)
        with kiosk(tmp_path, sim.url, mic, audio={"capture_block_ms": 10}, vad={"press_opens_ms": 300}, session={"start_burst": 10}) as k:
            time.sleep(1.0)  # the gate learns the room
            k.press()

            def end_and_start() -> bool:  # on the loop, right after a part of a frame went ahead
                if not k.kiosk.capture.led_bytes:
                    return False
                k.kiosk.dispatch(c.End())
                k.kiosk.dispatch(c.Start())
                return True

            wait_for(lambda: k.on_loop(end_and_start), 5, "a part of a frame held")
            k.wait_state(c.LISTENING, 10)  # the second conversation: the first ended before its onready
            sess = sim.sessions[-1]
            wait_for(lambda: len(sess.uplink) > 16000, 10, "half a second of uplink")
            k.press()
            k.wait_state(c.IDLE, 10)
            assert len(bytes(sess.uplink)) % 960 == 0


def test_no_part_of_a_frame_goes_ahead_of_an_opening_the_echo_hold_keeps_back() -> None:
    """The echo hold (audio/mic_path.py `EchoHold`) keeps back an opening of the gate that began on
    the agent's echo while the canceller was still converging, for as long as the far end plays
    (an earcon counts). A press then must not send parts of its frames ahead, or they would go
    up while the frames themselves are held back. The canceller is a stand-in with the flags of
    that moment; the path, the gate, the hold and the remover are the daemon's."""
    from dataclasses import dataclass

    from edge_agent.audio.earcons import EarconRemover
    from edge_agent.audio.gate import VadGate
    from edge_agent.audio.mic_path import MicPath
    from edge_agent.core import config

    @dataclass
    class Canceller:
        far_active: bool = True
        residual_echo: bool = False
        in_cue: bool = False
        agent_audible: bool = False
        holding: bool = True
        agent_resting: bool = False

        def process(self, frame: bytes, captured_at: float) -> bytes:
            return frame

        def play_cue(self, from_t: float, until_t: float) -> None:
            pass

    echo = Canceller()
    gate = VadGate(config.from_dict({"vad": {"press_opens_ms": 300}}).vad, 30)
    path = MicPath(echo, EarconRemover(), gate, lambda speaking: None)
    room = read_wav(DATA / "kiosk_dev_quiet.wav")[: 32000 * 2]
    gate.new_visitor()  # the gate opens (here by a press; on the agent's echo in the field) ...
    path.hear(room[:960], 0.03)  # ... while the canceller holds: an opening that began on echo
    assert gate.is_open and path.echo_hold.opened_on_echo
    echo.holding, echo.agent_resting = False, True  # converged since, the agent quiet for its idle time
    assert path.lead(room[960:1600], 0.05) == b""
    gate.new_visitor()
    assert path.lead(room[960:1600], 0.05) == b""  # a press that finds the gate open changes nothing


@pytest.mark.parametrize("block_ms", [0, 10])
@pytest.mark.parametrize("onready_s", [0.0, 0.5])
def test_words_said_under_the_earcons_reach_the_agent_through_a_gate_the_press_opened(tmp_path: Path, block_ms: int, onready_s: float) -> None:
    """`vad.press_opens_ms`: the visitor talks from the press and the microphone hears the press
    and ready earcons (loud, at once) over their first words. The frames the earcons are heard
    in (the earcons taken out of them) used to go as silence while the press alone held the gate
    open. With a slow `onready` the visitor's words confirm the press after the press earcon;
    with a quick one the two earcons fill most of the press's 300 ms, the gate closes unconfirmed
    and opens again on the words, and its pre-roll held none of the frames before: ~300 ms of
    the first word went as silence. Each frame an earcon is heard in now reaches the agent, in
    order, and the stream stays whole frames. With a 10 ms device block, the start of the frame
    holding the press may go ahead of it (before the earcon): that start goes once, followed by
    the rest of its frame (or by silence: the gate closed on it), never again with its frame."""
    with SimulatorThread(onready_delay_s=onready_s) as sim:
        mic = VisitorMic(block_ms=block_ms)
        with kiosk(tmp_path, sim.url, mic, audio={"earcon_volume": 1.0, "capture_block_ms": block_ms}, vad={"press_opens_ms": 300}) as k:
            mic.listen_to(k.kiosk.sink.buffer)
            # in order: ("lead", what went ahead) and ("frame", what the gate got, cue, whether it
            # then held frames back, whether it was open); ("ended", ...) once the press has ended
            # the conversation: the frames after it (the "ended" earcon's) are not the visitor's
            events: list[tuple[str, bytes, bool, bool, bool]] = []
            gate, lead, conversation = k.kiosk.gate, k.kiosk.mic.lead, k.kiosk.conversation
            push = gate.push
            began = [False]

            def watched(frame: bytes, cue: bool = False) -> tuple[bytes, ...]:
                out = push(frame, cue)
                idle = conversation.state in (c.ENDING, c.IDLE)
                began[0] = began[0] or not idle
                events.append(("ended" if began[0] and idle else "frame", frame, cue, gate.held_frames > 0, gate.is_open))
                return out

            def leading(pcm: bytes, at: float) -> bytes:
                went = lead(pcm, at)
                events.append(("lead", went, False, False, False))
                return went

            k.kiosk.gate.push = watched  # type: ignore[method-assign]
            k.kiosk.mic.lead = leading  # type: ignore[method-assign]
            press_and_speak(k, mic)
            k.wait_state(c.LISTENING, 10)
            sess = sim.sessions[-1]
            wait_for(lambda: not mic.speaking, 10, "the visitor done")
            k.press()
            k.wait_state(c.IDLE, 10)
            time.sleep(0.3)  # the "ended" earcon is heard (a loaded machine may close the link this slowly)
            uplink = bytes(sess.uplink)
    events = events[: next((i for i, e in enumerate(events) if e[0] == "ended"), len(events))]
    under = [e[1] for e in events if e[0] == "frame" and e[2]]  # each carries the visitor's words (they talk throughout)
    assert len(under) >= 4
    at = 0
    for n, frame in enumerate(under):  # its end (its start may have gone ahead as captured, before the earcon)
        at = uplink.find(frame[-320:], at)
        assert at >= 0, f"frame {n} of {len(under)} with an earcon in it did not reach the agent"
    assert len(uplink) % 960 == 0
    ahead = b""
    for i, (kind, pcm, _, _, _) in enumerate(events):
        if kind == "lead":
            ahead += pcm
            continue
        if ahead:  # its rest follows at once (sent, or held until the visitor confirmed the press), or silence (the gate closed on it)
            sent_open = next(e[4] for e in events[i:] if e[0] == "frame" and not e[3])
            at = uplink.index(ahead) + len(ahead)
            assert uplink.count(ahead) == 1 and uplink[at : at + 320] == (pcm[len(ahead) : len(ahead) + 320] if sent_open else bytes(320))
            assert pcm.startswith(ahead) or pcm[: len(ahead)] not in uplink  # not again, as captured or cleaned
        ahead = b""
