"""The gate at the start of a conversation: what it carries from one visitor to the next (the
room, not the previous visitor's voice), and the press and ready earcons heard by the microphone
(taken out of the frames, so the gate decides on words said over them)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import DATA, read_wav

from edge_agent.audio.earcons import REMOVAL_BLOCK, EarconRemover, Earcons, orthonormal_columns
from edge_agent.audio.gate import NOISE, WEAK, VadGate
from edge_agent.audio.gate import SPEECH as SPEECH_LIKE
from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools.echoroom import EchoPath
from edge_agent.devtools.echoscore import earcon_press
from edge_agent.devtools.visitor import room_tone

SETTINGS = VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90)
FB = 960
SPEECH = read_wav(DATA / "kiosk_dev_quiet.wav")[2 * int(2.2 * 16000) : 2 * int(3.2 * 16000)]
"""One second of continuous speech, starting on a word (the benchmark's press -> speech clip)."""


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FB] for i in range(0, len(pcm) - FB + 1, FB)]


def louder(pcm: bytes, gain: float) -> bytes:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) * gain
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def frames_to_open(gate: VadGate, speech: bytes) -> int | None:
    """Frames of `speech` (in room tone) pushed until the gate opens; None: it never did."""
    for i, f in enumerate(frames(speech + room_tone(1.0, seed=3))):
        gate.push(f)
        if gate.is_open:
            return i + 1
    return None


def test_a_new_conversation_forgets_the_previous_visitors_voice_but_not_the_room() -> None:
    """A loud visitor, then (a press later) a softer one: the gate used to hold the second one's
    first syllables under the first one's level (12 dB under it counts as a background talker),
    which made press -> speech ~300 ms longer in one press out of five with earcons off."""
    fresh = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)):
        fresh.push(f)
    fresh.new_visitor()  # the first visitor of the day presses
    baseline = frames_to_open(fresh, SPEECH)
    assert baseline is not None

    gate = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)) + frames(louder(SPEECH, 6.0)) + frames(room_tone(1.5, seed=5)):
        gate.push(f)
    assert not gate.is_open
    noise_shape = list(gate.classifier._noise_shape)  # type: ignore[attr-defined]
    gate.new_visitor()
    assert frames_to_open(gate, SPEECH) == baseline
    assert noise_shape and gate.classifier._noise_shape != []  # type: ignore[attr-defined]


def test_a_press_while_the_gate_is_open_forgets_the_loudest_syllable_of_that_opening_too() -> None:
    """The visitor's first level stands at most 12 dB under the loudest syllable of the opening
    that confirms it (cues.py `_follow_visitor`). A new visitor who presses while the gate is still
    open on the previous, louder one (18 dB) begins their conversation inside that opening: their
    first level was taken from the previous visitor's syllable (120.6 dB against their own 106.9),
    and their softer words would count as a background talker. It is their own now."""
    fresh = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)) + frames(SPEECH):
        fresh.push(f)
    gate = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)) + frames(louder(SPEECH, 8.0)):
        gate.push(f)
    assert gate.is_open
    gate.new_visitor()  # the next visitor presses and talks at once
    for f in frames(SPEECH):
        gate.push(f)
    level_db = gate.classifier.visitor_db  # type: ignore[attr-defined]
    assert abs(level_db - fresh.classifier.visitor_db) <= 1.0, (level_db, fresh.classifier.visitor_db)  # type: ignore[attr-defined]


def test_without_a_new_conversation_the_previous_voice_holds_the_next_visitor_back() -> None:
    """The same two visitors in one conversation: the louder voice is the visitor, and the softer
    one counts as a talker in the background (the behaviour `new_visitor` scopes to a conversation)."""
    gate = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)) + frames(louder(SPEECH, 6.0)) + frames(room_tone(1.5, seed=5)):
        gate.push(f)
    fresh = VadGate(SETTINGS, 30)
    for f in frames(room_tone(1.0)):
        fresh.push(f)
    baseline = frames_to_open(fresh, SPEECH)
    later = frames_to_open(gate, SPEECH)
    assert baseline is not None and (later is None or later > baseline)


# ----------------------------------------------------------------------------- earcons in the room
ROOMS = [EchoPath(delay_ms=45, rt60_s=0.25, gain=0.5, seed=1), EchoPath(delay_ms=150, rt60_s=0.6, gain=0.9, reverb=0.2, seed=2)]
"""A speaker close to the mic in an ordinary room; a loud one in a hall, its echo 150 ms later
than the timestamps say."""


@pytest.mark.parametrize("volume", [0.3, 1.0])
@pytest.mark.parametrize("room", range(len(ROOMS)))
def test_earcons_heard_in_a_room_open_nothing_after_a_silent_press(room: int, volume: float) -> None:
    """The earcons' leftover after removal stays the kiosk's own sound (the gate does not decide on
    it); before, the daemon withheld only the frames the earcon played in by the timestamps, and
    its echo, later than that, opened the gate after every silent press of bench/earcon_rooms.py."""
    for ready_after_s in (0.08, 0.25):
        got = earcon_press(ROOMS[room], SETTINGS, volume, ready_after_s)
        assert got.frames_sent == 0, got
        assert earcon_press(ROOMS[room], SETTINGS, volume, ready_after_s, removal=False).frames_sent == 0


@pytest.mark.parametrize("room", range(len(ROOMS)))
def test_a_visitor_talking_over_the_earcons_is_heard_from_the_press(room: int) -> None:
    """With the earcons taken out, the gate decides on the words said over them: it opens within
    0.3 s of the press instead of after the ready earcon's echo (1 s), and nothing is lost."""
    speech = read_wav(DATA / "kiosk_dev_quiet.wav")[2 * int(2.2 * 16000) : 2 * int(4.2 * 16000)]
    got = earcon_press(ROOMS[room], SETTINGS, 0.3, 0.08, speech=speech)
    assert got.opened_s is not None and got.opened_s <= 0.3 and got.lost_ms == 0, got
    withheld = earcon_press(ROOMS[room], SETTINGS, 0.3, 0.08, removal=False, speech=speech)
    assert withheld.opened_s is not None and withheld.opened_s > 0.7 and withheld.lost_ms == 0, withheld


def test_a_frame_the_earcon_is_not_heard_in_goes_on_byte_for_byte() -> None:
    """Only a frame whose energy the earcon's tones dominate is cleaned: the visitor's own audio
    in an earcon's window (a microphone that does not hear the speaker) reaches the agent as
    captured, so `first_words_lost_ms` still finds it byte for byte."""
    remover = EarconRemover()
    remover.played("press", 10.0, 10.06)
    remover.played("ready", 10.1, 10.28)
    speech = read_wav(DATA / "kiosk_dev_quiet.wav")
    for i, f in enumerate(frames(speech)[:300]):
        at = 10.0 + 0.03 * (i % 20)
        assert remover.clean(f, at, 0.03) == (f, False)
    tone = Earcons(True, 0.3).get("ready")[FB : 2 * FB]  # past its fade-in
    cleaned, own_sound = remover.clean(tone, 10.13, 0.03)
    assert own_sound and np.abs(np.frombuffer(cleaned, "<i2")).max() < 0.01 * np.abs(np.frombuffer(tone, "<i2")).max()


def test_the_earcon_remover_projects_as_pinv_did_without_touching_lapack(monkeypatch: pytest.MonkeyPatch) -> None:
    """The remover's projection (I - Q Qᵀ) is the one `B pinv(B)` gave, built without LAPACK (which
    made ~1.1 MB of OpenBLAS resident in the daemon for one small matrix per set of earcons)."""

    def no_lapack(*args: object, **kwargs: object) -> None:
        raise AssertionError("LAPACK called")

    for name in ("pinv", "svd", "qr", "lstsq", "solve", "inv"):
        monkeypatch.setattr(np.linalg, name, no_lapack)
    remover = EarconRemover()
    remover.played("press", 10.0, 10.06)
    remover.played("ready", 10.1, 10.28)
    tone = Earcons(True, 0.3).get("ready")[FB : 2 * FB]
    cleaned, own_sound = remover.clean(tone, 10.13, 0.03)
    assert own_sound and np.abs(np.frombuffer(cleaned, "<i2")).max() < 0.01 * np.abs(np.frombuffer(tone, "<i2")).max()
    monkeypatch.undo()
    # against the pseudo-inverse, on a dependent basis too (a column repeated: rank 2 of 3)
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(160), rng.standard_normal(160)
    basis = np.stack([a, b, 2.0 * a], axis=1)
    q = orthonormal_columns(basis)
    assert q.shape == (160, 2)
    assert np.allclose(q @ q.T, basis @ np.linalg.pinv(basis), atol=1e-12)


def test_the_earcon_remover_keeps_a_basis_and_cleans_as_the_dense_projection_did() -> None:
    """Per set of earcons the remover keeps Q (160 x k), not the dense 160 x 160 I - Q Qᵀ it used
    to (0.2 MB each in the daemon), and what it sends on is what that matrix gave, to rounding."""
    remover = EarconRemover()
    remover.played("press", 10.0, 10.06)
    remover.played("ready", 10.1, 10.28)
    rng = np.random.default_rng(7)
    tone = np.frombuffer(Earcons(True, 0.3).get("ready")[FB : 2 * FB], "<i2").astype(np.float64)
    frame = np.clip(np.rint(tone + rng.normal(0.0, 300.0, tone.size)), -32768, 32767).astype("<i2").tobytes()
    cleaned, _ = remover.clean(frame, 10.13, 0.03)
    (q,) = remover._bases.values()
    assert q.shape[0] == REMOVAL_BLOCK and q.shape[1] < REMOVAL_BLOCK // 4
    dense = np.eye(REMOVAL_BLOCK) - q @ q.T
    x = np.frombuffer(frame, "<i2").astype(np.float64).reshape(-1, REMOVAL_BLOCK)
    expected = np.clip(np.rint((x @ dense.T).ravel()), -32768, 32767)
    got = np.frombuffer(cleaned, "<i2").astype(np.float64)
    # equal but where a value within ~1e-12 of .5 rounds the other way
    assert np.abs(got - expected).max() <= 1.0 and np.count_nonzero(got != expected) <= 2


# ----------------------------------------------------------------------------- the press prior
class Scripted:
    """A classifier that says what it is told, frame by frame (then NOISE)."""

    def __init__(self, levels: str) -> None:
        self.levels = [{"S": SPEECH_LIKE, "W": WEAK, "N": NOISE}[c] for c in levels]

    def classify(self, frame: bytes) -> int:
        return self.levels.pop(0) if self.levels else NOISE


def opened_at(settings: VadSettings, levels: str, press_at: int | None = 0, far_end: bool = False) -> int | None:
    """Frame index at which the gate opens on `levels` (a press before frame `press_at`)."""
    gate = VadGate(settings, 30, classifier=Scripted(levels))
    gate.far_end(far_end)
    silence = bytes(FB)
    for i in range(len(levels)):
        if i == press_at:
            gate.new_visitor()
        gate.push(silence)
        if gate.is_open:
            return i
    return None


def test_after_a_press_less_speech_opens_the_gate_for_a_while() -> None:
    prior = replace(SETTINGS, press_prior_ms=300)
    assert opened_at(prior, "NSSNNN") == 2  # 60 ms of speech-like frames right after the press
    assert opened_at(replace(prior, press_prior_ms=0), "NSSNNN") is None  # without the prior: 90 ms
    assert opened_at(prior, "NSSSNN", press_at=None) == 3  # no press, no prior
    assert opened_at(prior, "NNNNNNNNNNNSSNNN") is None  # the prior is over after 300 ms
    assert opened_at(prior, "NSSNNN", far_end=True) is None  # the agent's echo is speech too


def test_a_press_may_open_the_gate_before_any_evidence_and_a_silent_one_closes_it() -> None:
    opens = replace(SETTINGS, press_opens_ms=300, press_prior_ms=0)
    gate = VadGate(opens, 30, classifier=Scripted("N" * 40))
    silence = bytes(FB)
    for _ in range(20):
        gate.push(silence)
    gate.new_visitor()
    assert gate.is_open
    sent = [gate.is_open for _ in range(20) if gate.push(silence) != (gate.silence,) or gate.is_open]
    assert sent.count(True) == 9 and not gate.is_open  # 300 ms, the last frame closes it
    gate = VadGate(opens, 30, classifier=Scripted("NNNSS" + "N" * 30))
    gate.new_visitor()
    for _ in range(25):  # speech came: the usual hang-over (600 ms) from the last speech frame
        gate.push(silence)
    assert gate.is_open
    for _ in range(3):
        gate.push(silence)
    assert not gate.is_open


def pressed_gate() -> VadGate:
    """A gate that opens at the press (`press_opens_ms` = 300), having learned the room, just pressed."""
    gate = VadGate(replace(SETTINGS, press_opens_ms=300, press_prior_ms=0), 30)
    for f in frames(room_tone(1.0)):
        gate.push(f)
    gate.new_visitor()
    return gate


def test_words_said_under_the_press_earcon_reach_the_agent_through_a_press_opened_gate() -> None:
    """`press_opens_ms`: the visitor talks from the press and the microphone hears the press
    earcon over their first word (the frames flagged `cue`, the earcon already taken out of
    them). Those frames used to go as silence while the press alone held the gate open, cutting
    up to three frames off the word (a closed gate keeps them in its pre-roll). They are held back
    until speech confirms the opening, then go in order: what leaves the gate from the press on
    is the microphone's audio itself, as long as it."""
    gate, said = pressed_gate(), frames(SPEECH)
    sent: list[bytes] = []
    for i, f in enumerate(said):
        sent += gate.push(f, cue=1 <= i <= 3)  # the earcon heard from the press's second frame for 90 ms
    assert b"".join(sent) == b"".join(said)
    assert gate.is_open and gate.held_frames == 0


def test_words_said_under_earcons_that_fill_the_press_opening_are_in_the_next_opening() -> None:
    """The press and ready earcons heard over most of the press's 300 ms (a quick `onready`): too
    few frames are left to confirm the visitor, and the gate closes. What it held goes into the
    pre-roll, as any closed frame, so the opening on the words that follow sends them: nothing of
    the word is lost, and the stream is the microphone's length (with the burst still to pay back)."""
    gate, said = pressed_gate(), frames(SPEECH)
    sent: list[bytes] = []
    opened_again = False
    for i, f in enumerate(said):
        sent += gate.push(f, cue=1 <= i <= 9)
        opened_again |= i > 9 and gate.is_open
    assert opened_again
    assert b"".join(said[1:]) in b"".join(sent)
    assert len(sent) - gate.debt == len(said)  # (the burst is paid back from later silence)


def test_a_silent_press_sends_nothing_of_what_the_gate_held() -> None:
    """The press earcon heard with nobody talking: the frames it is heard in (what the remover
    leaves of it, here the tone itself) never go; silence stands for them, and the stream keeps
    the microphone's length."""
    gate, room = pressed_gate(), frames(room_tone(1.0, seed=5))
    tone = louder(Earcons(True, 1.0).get("press")[:FB], 0.5)
    sent: list[bytes] = []
    for i, f in enumerate(room):
        sent += gate.push(tone if 1 <= i <= 3 else f, cue=1 <= i <= 3)
    assert not gate.is_open and len(sent) == len(room)
    assert tone not in sent and sent[1:4] == [gate.silence] * 3


@pytest.mark.parametrize("kind", ["pink", "fan", "traffic", "hvac", "knocks"])
def test_silent_presses_in_noisy_rooms_send_almost_nothing_more_with_the_prior(kind: str) -> None:
    """A press every 3 s in the room's noise alone (SNR 5, 10, 20 dB against a usual visitor): the
    prior adds almost nothing to what the gate sends anyway, but in the knocks room, where a knock
    in the 500 ms after a press may open it: about 6 frames a press here. (It was about 3 before
    the ring cue, cues.py `_rings`, which cut what the gate sends in this room without the prior
    from 517 to 315 frames but with it only from 703 to 667: a tray's bang and the block after it
    are the 60 ms the prior opens on, and a ring is told from its third block.)"""
    from edge_agent.devtools import rooms

    bank = rooms.SpeechBank(DATA)
    sent = {0: 0, 500: 0}
    presses = 0
    for snr in (5.0, 10.0, 20.0):
        noise = np.clip(np.round(rooms.mix_room(bank, rooms.Room(kind, snr, seed=7)).noise), -32768, 32767).astype("<i2").tobytes()
        for prior_ms in sent:
            gate = VadGate(replace(SETTINGS, press_prior_ms=prior_ms), 30)
            pressed = 0
            for i, f in enumerate(frames(noise)):
                if i >= 100 and i % 100 == 0:
                    gate.new_visitor()
                    pressed += 1
                gate.push(f)
                sent[prior_ms] += pressed > 0 and gate.is_open
        presses += pressed
    assert sent[500] <= sent[0] + (7 * presses if kind == "knocks" else presses // 4), (sent, presses)
