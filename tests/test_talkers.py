"""Where other people talk (a TV, a crowd), the gate vets each opening on the visitor's own level
(audio/talkers.py, VadGate's VET_MS): the seeded TV room, and the vetting itself with a scripted
classifier (what goes, in which order, and that the uplink keeps real time)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from gate_rooms import bank

from edge_agent.audio.cues import CueClassifier
from edge_agent.audio.frames import NOISE, SPEECH
from edge_agent.audio.gate import VET_MS, VadGate
from edge_agent.audio.gatefile import gate_file_intervals
from edge_agent.audio.gatescore import score
from edge_agent.audio.talkers import TALKER_ROOM_S, TalkerRoom
from edge_agent.core.config_audio import VadSettings
from edge_agent.devtools import rooms

SETTINGS = VadSettings(engine="cues", aggressiveness=2, preroll_ms=300, hangover_ms=600, min_speech_ms=90)
WINDOW_BLOCKS = round(TALKER_ROOM_S * 1000 / 30)


@pytest.mark.parametrize(("visitor_db", "idle_before", "idle_most"), [(0.0, 0.635, 0.32), (-18.0, 0.726, 0.42)])
def test_a_tv_far_under_the_visitor_no_longer_opens_the_gate_between_their_words(visitor_db: float, idle_before: float, idle_most: float) -> None:
    """A TV 20 dB under the visitor: its talk is speech, and the gate opened on it between the
    visitor's words, each opening sending its pre-roll and hang-over (idle sent `idle_before`).
    Its openings never come near the visitor's level: the room is taken for a talker room and
    its openings are vetted. Every word of the visitor still goes, with its lead."""
    pcm, labels = rooms.make_room(bank(), rooms.Room("tv", 20.0, visitor_db, 1))
    classifier = CueClassifier(2)
    got = score(gate_file_intervals(VadGate(replace(SETTINGS, preroll_ms=500), 30, classifier), pcm.tobytes()), labels)
    assert got.speech_recall == 1.0 and got.onset_ok == 1.0, got
    assert got.idle_share <= idle_most < idle_before, got
    assert classifier.talker_room


def test_a_stray_opening_makes_a_talker_room_for_a_minute() -> None:
    """Stray: an opening that closed with the visitor never heard near their level, once their
    level is known; the room forgets it TALKER_ROOM_S later."""
    room = TalkerRoom(30)
    room.watch(0, True, False)
    room.watch(10, False, False)  # no visitor level yet: nothing to be near
    assert not room.active(10)
    room.watch(20, True, True)
    room.heard_visitor()
    room.watch(30, False, True)  # the visitor's own opening
    assert not room.active(30)
    room.watch(40, True, True)
    room.watch(50, False, True)  # a stray one
    assert room.active(50) and room.active(50 + WINDOW_BLOCKS - 1)
    assert not room.active(50 + WINDOW_BLOCKS)


class Scripted:
    """Levels and nearness in turn: "s" SPEECH far under the visitor, "S" SPEECH near their level,
    "n" NOISE; a talker room or not; NOISE after the script. `frames_a_block`: frames per 30 ms
    analysis block (3 at 10 ms): a block's nearness is counted once, as CueClassifier counts it."""

    def __init__(self, script: str, talker_room: bool = True, frames_a_block: int = 1) -> None:
        self.script = list(script)
        self.talker_room = talker_room
        self.near_visitor = False
        self.near_blocks = 0
        self.gate_open = self.far_end = False
        self.onset_blocks = 0
        self.frames_a_block, self._frames = frames_a_block, 0

    def classify(self, frame: bytes) -> int:
        c = self.script.pop(0) if self.script else "n"
        if self._frames % self.frames_a_block == 0:  # a new block analysed
            self.near_visitor = c == "S"
            self.near_blocks += self.near_visitor
        self._frames += 1
        return NOISE if c == "n" else SPEECH


def _frame(i: int, gate: VadGate) -> bytes:
    return i.to_bytes(4, "little") + b"\x01" * (gate.frame_bytes - 4)


def _run(gate: VadGate, n: int) -> list[tuple[bytes, ...]]:
    return [gate.push(_frame(i, gate)) for i in range(n)]


def _index(frame: bytes) -> int:
    return int.from_bytes(frame[:4], "little")


def test_a_vetted_opening_sends_its_pre_roll_and_held_frames_once_the_visitor_is_near() -> None:
    classifier = Scripted("n" * 40 + "sss" + "ss" + "SSS")
    gate = VadGate(SETTINGS, 30, classifier)
    out = _run(gate, 60)
    # frames 40-44: the opening on talk far under the visitor, held (the caller sees a closed gate)
    assert all(o == () for o in out[42:47]) and not any(o == () for o in out[:42])
    burst = out[47]  # the third frame near the visitor's level: confirmed
    assert [_index(f) for f in burst] == list(range(47 - len(burst) + 1, 48)), "pre-roll and held frames, in order"
    assert len(burst) == 10 + 5 + 1  # 300 ms of pre-roll (frames 32-41) + the held 42-46 + this one
    assert gate.is_open and gate.held_frames == 0 and gate.openings_held_back == 0
    # the uplink keeps real time: the pre-roll went as silence once, so as many frames are skipped later
    assert sum(len(o) for o in out) - gate.debt == 60 and gate.debt == 10


def test_an_opening_the_visitor_never_comes_near_sends_only_silence_and_keeps_its_frames_in_the_pre_roll() -> None:
    vet = VET_MS // 30
    classifier = Scripted("n" * 40 + "s" * (3 + vet))
    gate = VadGate(SETTINGS, 30, classifier)
    out = _run(gate, 40 + 3 + vet)
    sent = [f for o in out for f in o]
    assert all(f == gate.silence for f in sent) and not gate.is_open and gate.held_frames == 0
    assert len(sent) == len(out), "silence for every frame: the server's timeline stays continuous"
    assert gate.openings_held_back == 1 and gate.talker_room
    assert classifier.gate_open is False
    # the rejected frames joined the pre-roll: the visitor's opening right after reaches back into them
    classifier.script, classifier.talker_room = list("SSS"), False
    burst = [gate.push(_frame(i, gate)) for i in (1000, 1001, 1002)][-1]
    got = [_index(f) for f in burst]
    last = 40 + 3 + vet - 1
    assert got[-3:] == [1000, 1001, 1002] and got[:-3] == list(range(got[0], last + 1)) and got[0] <= last - 9, got


def test_no_vetting_outside_a_talker_room_nor_while_the_speaker_plays() -> None:
    for talker_room, far_end in ((False, False), (True, True)):
        gate = VadGate(SETTINGS, 30, Scripted("n" * 40 + "s" * 10, talker_room))
        gate.far_end(far_end)
        out = _run(gate, 50)
        opened = next(i for i, o in enumerate(out) if len(o) > 1)
        assert opened <= 44 and gate.is_open, (talker_room, far_end, opened)


def test_a_press_takes_over_an_opening_being_vetted() -> None:
    """With `press_opens_ms` a press opens the gate at once; frames being vetted are then held as
    the press holds its own, and go once speech-like frames confirm the press (near the visitor's
    level or not: the new visitor's level is not known), the opening dated from the first of them."""
    gate = VadGate(replace(SETTINGS, press_opens_ms=300), 30, Scripted("n" * 40 + "sss" + "s" * 10))
    _run(gate, 45)
    assert not gate.is_open and gate.held_frames == 3
    gate.new_visitor()
    assert gate.is_open and gate.open_since == 42
    out = [gate.push(_frame(i, gate)) for i in range(45, 60)]
    sent = [_index(f) for o in out for f in o if f != gate.silence]
    assert sent == list(range(42, 60)), sent
    assert gate.is_open and gate.openings_held_back == 0


def test_the_speaker_starting_ends_the_vetting_and_opens_the_gate() -> None:
    """No vetting while the kiosk's speaker plays (the canceller cuts a visitor talking over the
    agent far under their own level): one already going when the speaker starts opens at the next
    frame, its pre-roll and held frames with it, as without vetting. It went on before and lost
    480 ms of a visitor talking over the agent."""
    gate = VadGate(SETTINGS, 30, Scripted("n" * 40 + "s" * 20))
    out = _run(gate, 44)
    assert gate.held_frames == 2 and not gate.is_open
    gate.far_end(True)
    burst = gate.push(_frame(44, gate))
    assert gate.is_open and [_index(f) for f in burst] == list(range(32, 45)), [_index(f) for f in burst]
    assert sum(len(o) for o in out) + len(burst) - gate.debt == 45


def test_an_opening_on_a_frame_near_the_visitor_is_not_vetted() -> None:
    """Vetting those too cut a soft phrase of the visitor's in a TV room and in white noise."""
    gate = VadGate(SETTINGS, 30, Scripted("n" * 40 + "ssS"))
    out = _run(gate, 43)
    assert gate.is_open and len(out[42]) == 10 + 1 and gate.held_frames == 0, "the pre-roll and the frame, at once"


def test_earcon_frames_do_not_confirm_an_opening_being_vetted() -> None:
    """An earcon's frame is not classified: it says nothing of the visitor, whatever the block before said."""
    classifier = Scripted("n" * 40 + "sss" + "S" * 30)
    gate = VadGate(SETTINGS, 30, classifier)
    _run(gate, 43)
    assert gate.held_frames == 1
    classifier.near_visitor = True  # as a near block just before the earcon would leave it
    outs = [gate.push(_frame(i, gate), cue=True) for i in range(43, 43 + VET_MS // 30 + 2)]
    assert not gate.is_open and gate.openings_held_back == 1 and all(f == gate.silence for o in outs for f in o)


def test_an_opening_being_vetted_ends_when_its_hang_over_runs_out() -> None:
    gate = VadGate(replace(SETTINGS, hangover_ms=120), 30, Scripted("n" * 40 + "sss" + "n" * 10))
    out = _run(gate, 48)
    assert gate.openings_held_back == 1 and gate.held_frames == 0 and not gate.is_open
    assert [len(o) for o in out[42:48]] == [0, 0, 0, 0, 0, 6], "rejected at the fifth quiet frame, not after VET_MS"


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_vetting_wants_three_near_blocks_whatever_the_frame_size(frame_ms: int) -> None:
    """At 20 ms two near blocks confirmed an opening (a frame that analysed no new block repeated
    the one before's word, and frames were counted)."""
    per = {10: 3, 20: 3, 30: 1}[frame_ms]  # frames a script step lasts: whole 30 ms blocks
    settings = replace(SETTINGS, min_speech_ms=3 * frame_ms)
    for near, confirmed in ((2, False), (3, True)):
        script = "n" * (40 * per) + "s" * (3 * per) + "S" * (near * per) + "s" * (30 * per)
        gate = VadGate(settings, frame_ms, Scripted(script, frames_a_block=per))
        out = [gate.push(_frame(i, gate)) for i in range(len(script))]
        assert any(f != gate.silence for o in out for f in o) is confirmed, (frame_ms, near)


def test_a_quiet_room_is_not_near_the_visitor() -> None:
    """Only a block that is not NOISE counts as near the visitor's level (before their level is
    known, everything is "near" it)."""
    classifier = CueClassifier(2)
    for _ in range(200):
        classifier.classify(bytes(960))
    assert classifier.near_blocks == 0 and not classifier.near_visitor
