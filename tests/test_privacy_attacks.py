"""What leaves the device, attacked (a helper's hostile review, 2026-12-06; each failed before its fix):
audio heard while the microphone was closed to the conversation (half duplex, push-to-talk up)
must not go up in the next opening's pre-roll; a late "drained" from an earcon must not unmute
half duplex mid-reply; a microphone reopened after a stall hands over nothing from before it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from conftest import DATA, KioskThread, kiosk_settings, read_wav, wait_for

from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator

FRAME = 960  # 30 ms at 16 kHz, int16


def _markers(n: int, seed: int = 7) -> list[bytes]:
    """Quiet, distinct noise frames (no speech: the gate stays closed on them)."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 40, FRAME // 2)).astype("<i2").tobytes() for _ in range(n)]


def _speech(n: int) -> list[bytes]:
    rec = read_wav(DATA / "kiosk_dev_quiet.wav")
    start = int(2.3 * 32000) // FRAME * FRAME
    return [rec[start + i * FRAME : start + (i + 1) * FRAME] for i in range(n)]


def _feed(k: KioskThread, frames: list[bytes]) -> None:
    """Frames handed over as the microphone does: a capture period (two frames) per loop callback."""
    for i in range(0, len(frames), 2):
        k.on_loop(lambda part=frames[i : i + 2]: [k.kiosk.capture.frame(f, time.monotonic()) for f in part])


def _leaked(uplink: bytes, frames: list[bytes]) -> int:
    return sum(f in uplink for f in frames)


def _visitor_talks(k: KioskThread, sim: AgentSimulator) -> bytes:
    """The visitor talks as the microphone opens: returns the session's uplink once it went up."""
    speech = _speech(40)
    _feed(k, speech)
    sent = lambda: bytes(sim.sessions[0].uplink)  # noqa: E731
    wait_for(lambda: _leaked(sent(), speech) >= 30, 10, "the visitor's speech to reach the agent")
    assert k.kiosk.stats.frames_dropped == 0
    return sent()


def _kiosk(tmp_path: Path, sim: AgentSimulator, **audio: object) -> KioskThread:
    # a one-frame recording: after it the microphone hands over only what the test feeds
    settings = kiosk_settings(tmp_path, sim.url, bytes(FRAME), audio={"earcons": False, **audio})
    return KioskThread(settings)


def test_half_duplex_mute_audio_does_not_go_up_in_the_next_pre_roll(tmp_path: Path, sim: AgentSimulator) -> None:
    """Under half duplex the microphone is muted while the agent speaks and for duplex_tail_ms
    after: silence goes instead. The gate still runs on the muted frames and keeps them in its
    pre-roll, so when the visitor starts talking right after the mute, the pre-roll burst sends
    up to preroll_ms of what the microphone heard while muted (the agent's own voice in the
    room, or whatever was said meanwhile)."""
    muted = _markers(30)
    with _kiosk(tmp_path, sim, duplex="half") as k:
        k.press()
        k.wait_state(c.LISTENING)
        wait_for(lambda: sim.sessions, 10, "the session")
        k.kiosk.source.stalled = True  # from here the test is the microphone: a continuous stream

        def agent_speaks_and_mic_hears_the_room() -> str:
            kiosk = k.kiosk
            kiosk.dispatch(c.AgentAudio(kiosk.conversation.link_id, bytes(3200)))
            state = kiosk.conversation.state
            for f in muted[:20]:  # heard while the agent speaks: muted
                kiosk.capture.frame(f, time.monotonic())
            kiosk.dispatch(c.PlaybackDrained())  # its voice stopped: the tail's mute begins
            for f in muted[20:]:  # heard in the tail (its echo in the room): muted
                kiosk.capture.frame(f, time.monotonic())
            assert not kiosk.conversation.mic_open(kiosk.clock())
            return state

        assert k.on_loop(agent_speaks_and_mic_hears_the_room) == c.SPEAKING
        # the tail ends and the visitor talks from that instant (no frame captured in between)
        wait_for(lambda: k.on_loop(lambda: k.kiosk.conversation.mic_open(k.kiosk.clock())), 5, "the mute to end")
        sent = _visitor_talks(k, sim)
        assert _leaked(sent, muted) == 0, "audio heard while the microphone was muted went up"


def test_push_to_talk_sends_nothing_heard_while_the_button_was_up(tmp_path: Path, sim: AgentSimulator) -> None:
    """Push-to-talk (`button.mode = "hold"`): the visitor is heard only while the button is held.
    What the microphone hears while it is up (people near the kiosk) went into the gate's
    pre-roll all the same, and the next hold's first words sent up to preroll_ms of it ahead of
    them."""
    settings = kiosk_settings(tmp_path, sim.url, bytes(FRAME), audio={"earcons": False}, button={"mode": "hold"})
    bystanders = _markers(20, seed=11)
    with KioskThread(settings) as k:
        k.send(c.Talk(held=True))
        k.wait_state(c.LISTENING)
        wait_for(lambda: sim.sessions, 10, "the session")
        k.kiosk.source.stalled = True  # from here the test is the microphone
        k.send(c.Talk(held=False))  # a short hold: the conversation goes on, the microphone is closed
        wait_for(lambda: k.on_loop(lambda: not k.kiosk.conversation.mic_open(k.kiosk.clock())), 5, "the button up")
        _feed(k, bystanders)  # heard while the button is up
        k.send(c.Talk(held=True))  # the visitor holds it again and talks at once
        wait_for(lambda: k.on_loop(lambda: k.kiosk.conversation.mic_open(k.kiosk.clock())), 5, "the button held")
        sent = _visitor_talks(k, sim)
        assert k.kiosk.conversation.state in (c.LISTENING, c.SPEAKING)
        assert _leaked(sent, bystanders) == 0, "audio heard while the push-to-talk button was up went up"


def test_a_stale_drained_from_an_earcon_does_not_unmute_half_duplex_mid_reply(tmp_path: Path, sim: AgentSimulator) -> None:
    """The speaker tells the loop its queue ran dry (call_soon_threadsafe from its own thread)
    after any audio, an earcon too. When an earcon (the ready earcon) runs dry while the loop is
    handling the agent's first audio, that `drained` runs after the reply was queued: the
    conversation went back to listening with the whole reply still to play, and under half
    duplex the microphone opened duplex_tail_ms later, sending the agent's own voice up for the
    rest of its reply. Reproduced by running the two real callbacks in that order."""
    with _kiosk(tmp_path, sim, duplex="half") as k:
        k.press()
        k.wait_state(c.LISTENING)
        kiosk = k.kiosk

        def earcon_drained_while_the_reply_arrives() -> None:
            kiosk._loop.call_soon(kiosk.speaker_watch._drained)  # queued by the speaker's thread: the earcon ran dry
            kiosk.dispatch(c.AgentAudio(kiosk.conversation.link_id, bytes(32000 * 3)))  # 3 s of reply, handled meanwhile

        k.on_loop(earcon_drained_while_the_reply_arrives)
        time.sleep(kiosk.settings.audio.duplex_tail_ms / 1000 + 0.3)
        queued, state, mic_open = k.on_loop(lambda: (kiosk.sink.buffer.queued_bytes, kiosk.conversation.state, kiosk.conversation.mic_open(kiosk.clock())))
        assert queued > 0, "the reply should still be playing"
        assert (state, mic_open) == (c.SPEAKING, False), "the microphone opened under half duplex while the agent's reply plays"


def test_a_microphone_reopened_after_a_stall_hands_over_nothing_captured_before_it(alsa) -> None:  # type: ignore[no-untyped-def]
    """A microphone that stalls (unplugged, its sound server gone) is stopped and started again
    by the audio watch, maybe minutes later, in another visitor's conversation. What it had
    captured of the frame being filled (and the frames of a capture period not yet handed over)
    stayed in the source across the stop, and the first frames after the reopen carried that
    old audio: the last visitor's words in the next one's session. Real PyAudio on the ALSA
    file device: the device is stalled as tests/test_pyaudio.py does."""
    import asyncio

    from edge_agent.audio.microphone import PyAudioSource

    rng = np.random.default_rng(3)
    room = (rng.integers(1000, 3000, 16000 * 60) * rng.choice([-1, 1], 16000 * 60)).astype("<i2").tobytes()  # no zero sample
    alsa.mic(room)
    source = PyAudioSource("default", 30, 90, max_queued_frames=200_000, block_ms=20)
    before: list[bytes] = []
    after: list[bytes] = []

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        source.start(loop, lambda f, _at: before.append(f))
        deadline = time.monotonic() + 20
        while len(before) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for _ in range(20):  # the stall point is random: stall where a frame was being filled
            source._stream.stop_stream()  # the device stalls: PortAudio calls back no more
            await asyncio.sleep(0.1)
            left = len(source._pending), len(source._frames)  # what it holds of the room, not handed over
            if any(left):
                break
            source._stream.start_stream()
            await asyncio.sleep(0.013)
        source.stop()  # the audio watch's reopen: the device is back, in a silent room now
        alsa.mic(bytes(32000 * 60))
        source.start(loop, lambda f, _at: after.append(f))
        deadline = time.monotonic() + 20
        while len(after) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        source.stop()
        await asyncio.sleep(0.05)
        return left

    pending, queued = asyncio.run(main())
    assert len(before) >= 5 and len(after) >= 10
    assert pending or queued, "nothing was left in the source at the stall"
    stale = [i for i, f in enumerate(after) if f.strip(b"\0")]
    assert stale == [], f"frames {stale} after the reopen carried audio captured before it"
