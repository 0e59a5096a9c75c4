"""The seeded test rooms (devtools/rooms.py) and the gate's figures in them: a subset of bench's matrix.

`script/bench --gate` runs the whole matrix (3 tuning seeds, SNR 5/10/20, and the held-out rooms)
for every engine; here one seed at SNR 5 dB (and 10 dB for the crowd), both visitor levels. Cells
that meet the targets must keep meeting them; the cells that miss (README, gate table) are held
to what they reach today so they cannot get worse unnoticed.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from gate_rooms import GATE, RATE, bank, gated
from gate_rooms import sent as _sent  # a test below names what it sends `sent`

from edge_agent.audio.cues import CueClassifier
from edge_agent.audio.decay import DecayRun
from edge_agent.audio.gate import NOISE, SPEECH, VadGate
from edge_agent.audio.gatescore import GateScore, Labels, far_from_speech, score
from edge_agent.audio.tonalroom import TonalRoom
from edge_agent.devtools import noises, rooms
from edge_agent.devtools.rooms import KINDS, Room

KNOWN_MISSES = {
    # cell: (worst recall, worst onsets, worst idle) reached today; see README's gate table
    "music 5 dB": (1.0, 1.0, 0.14),  # 0.90 before the tonal-room cue; 0.129 -> 0.136 with the look-back's longer reach
    "music 5 dB, visitor -18 dB": (1.0, 1.0, 0.09),  # 0.94 before it; 0.122 -> 0.131 with the longer reach; 0.084 since a hold the visitor no longer carries lets go
    "tv 5 dB": (1.0, 1.0, 0.96),
    "tv 5 dB, visitor -18 dB": (1.0, 1.0, 1.0),
    "babble 10 dB": (1.0, 1.0, 0.63),  # 0.96 before a crowd room asked for the visitor's swing (crowd.py)
    "babble 10 dB, visitor -18 dB": (1.0, 1.0, 0.44),  # 0.985 before a hold the visitor no longer carries let go; 0.93 before crowd.py
    "traffic 5 dB, visitor -18 dB": (1.0, 1.0, 0.07),
    "hall 5 dB": (0.994, 1.0, 0.01),
}
"""("knocks 5 dB" met since a ring holds still (decay.py `DecayRun.rings`): idle 0.066 -> 0.050 on
seed 1; "knocks 5 dB, visitor -18 dB" had met on seed 1 before it (0.048), and is held to it now.
"white 5 dB" met since the look-back follows the stretch of sound from its first SPEECH frame:
its 42.41 s word, decided 430 ms late, kept only 47 ms of its lead before. "pink 5 dB, visitor -18
dB", "fan 5 dB, visitor -18 dB" and "hall 5 dB, visitor -18 dB" met since the look-back reaches
240 ms beyond the pre-roll and 210 ms before a stretch's first SPEECH frame: each lost the lead of
one weak word decided on ~580 ms after it began, 80 ms kept of 100.)"""


@cache
def matrix() -> dict[str, dict[str, float | bool | None]]:
    subset = [r for r in rooms.tuning_rooms(seeds=(1,), snrs=(5.0,)) if r.kind != "babble"]
    subset += [Room("babble", 10.0, v, 1) for v in (0.0, -18.0)]
    rows = rooms.gate_rooms(bank(), subset, {"ours": lambda: VadGate(GATE, 30)})["ours"]
    return rooms.worst_by_cell(rows)


def _power_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x))))


def _speech_db(x: np.ndarray, labels: Labels) -> float:
    return _power_db(np.concatenate([x[int(a * RATE) : int(b * RATE)] for a, b in labels.speech]))


def test_rooms_are_seeded() -> None:
    a, lab_a = rooms.make_room(bank(), Room("fan", 10.0, 0.0, 7))
    b, lab_b = rooms.make_room(bank(), Room("fan", 10.0, 0.0, 7))
    c, _ = rooms.make_room(bank(), Room("fan", 10.0, 0.0, 8))
    assert np.array_equal(a, b) and lab_a == lab_b
    assert len(a) != len(c) or not np.array_equal(a, c)


@pytest.mark.parametrize("kind", ["white", "pink", "hum", "fan", "traffic", "music", "tv", "babble", "hall"])
def test_snr_is_what_the_room_says(kind: str) -> None:
    mix = rooms.mix_room(bank(), Room(kind, 5.0, 0.0, 3))
    assert _speech_db(mix.visitor, mix.labels) - _power_db(mix.noise) == pytest.approx(5.0, abs=0.05)


def test_the_quiet_visitor_is_18_db_quieter() -> None:
    usual = rooms.mix_room(bank(), Room("pink", 10.0, 0.0, 3))
    quiet = rooms.mix_room(bank(), Room("pink", 10.0, -18.0, 3))
    expected_db = 10 * np.log10(rooms.VISITOR_POWER)
    assert _speech_db(usual.visitor, usual.labels) == pytest.approx(expected_db, abs=rooms.VISITOR_SPREAD_DB)
    assert _speech_db(quiet.visitor, quiet.labels) == pytest.approx(expected_db - 18, abs=rooms.VISITOR_SPREAD_DB)


def test_knocks_stand_over_the_visitor() -> None:
    """SNR 5 in a knocking room: events peak 5 dB over the visitor's speech peaks."""
    mix = rooms.mix_room(bank(), Room("knocks", 5.0, 0.0, 3))
    peak_ratio_db = 20 * np.log10(np.abs(mix.noise).max() / np.percentile(np.abs(mix.visitor), 99.9))
    assert peak_ratio_db == pytest.approx(5.0, abs=0.5)


def test_the_hall_reverberates() -> None:
    dry = rooms.mix_room(bank(), Room("pink", 40.0, 0.0, 3))
    hall = rooms.mix_room(bank(), Room("pink", 40.0, 0.0, 3, rt60_s=0.7))
    end = dry.labels.speech[-1][1]
    tail = slice(int((end + 0.55) * RATE), int((end + 0.65) * RATE))  # past the recording's own margin
    assert _power_db(hall.visitor[tail] + 1e-3) > _power_db(dry.visitor[tail] + 1e-3) + 20


def test_idle_is_counted_strictly() -> None:
    """Idle: more than 0.5 s before an utterance or more than 1.0 s after one."""
    lab = Labels(10.0, [(2.0, 3.0), (6.0, 7.0)])
    assert far_from_speech(lab, 0.5, 1.0) == [(0.0, 1.5), (4.0, 5.5), (8.0, 10.0)]


def test_every_kind_is_in_the_matrix() -> None:
    assert {r.kind for r in rooms.tuning_rooms()} == set(KINDS)
    assert {r.kind for r in rooms.held_out_rooms()} == set(KINDS)
    assert not {(r.seed, r.voice) for r in rooms.held_out_rooms()} & {(r.seed, r.voice) for r in rooms.tuning_rooms()}


def test_fresh_seeds_are_neither_tuning_nor_held_out_seeds() -> None:
    fresh = rooms.fresh_rooms()
    assert {r.kind for r in fresh} == set(KINDS)
    assert not {r.seed for r in fresh} & {r.seed for r in rooms.tuning_rooms() + rooms.held_out_rooms()}
    assert len(fresh) == len(rooms.tuning_rooms(rooms.FRESH_SEEDS)) + len(rooms.held_out_rooms(tuple(s + 100 for s in rooms.FRESH_SEEDS)))


@pytest.mark.parametrize(
    ("mic", "f_hz", "gain_db"),
    [("flat", 3000.0, 0.0), ("dull", 200.0, 0.0), ("dull", 3000.0, -12.3), ("dull", 6000.0, -24.1), ("cheap", 100.0, -16.0), ("cheap", 1000.0, 0.0), ("cheap", 2500.0, 5.8), ("cheap", 6000.0, -17.8)],
)
def test_a_microphone_has_the_response_it_names(mic: str, f_hz: float, gain_db: float) -> None:
    """Measured on a tone through `noises.microphone`, not read off the formula."""
    t = np.arange(4 * RATE) / RATE
    tone = np.sin(2 * np.pi * f_hz * t)
    assert _power_db(noises.microphone(tone, mic)) - _power_db(tone) == pytest.approx(gain_db, abs=0.2)


def test_a_microphone_hears_the_same_room() -> None:
    """Through another microphone a room is the flat room's mix, visitor and noise each shaped by
    the response: the microphone's effect alone, labels and seeded mix unchanged."""
    flat = rooms.mix_room(bank(), Room("fan", 10.0, -18.0, 2))
    dull = rooms.mix_room(bank(), Room("fan", 10.0, -18.0, 2, mic="dull"))
    assert dull.labels == flat.labels
    assert np.allclose(dull.visitor, noises.microphone(flat.visitor, "dull"))
    assert np.allclose(dull.noise, noises.microphone(flat.noise, "dull"))
    assert not np.allclose(dull.visitor, flat.visitor)
    with pytest.raises(ValueError, match="unknown microphone"):
        rooms.mix_room(bank(), Room("fan", 10.0, 0.0, 2, mic="tin"))


def test_the_microphone_rooms_are_the_tuning_rooms_through_each_microphone() -> None:
    mic_rooms = rooms.microphone_rooms()
    flat = rooms.tuning_rooms(rooms.MICROPHONE_SEEDS)
    assert {r.mic for r in mic_rooms} == {"dull", "cheap"}
    assert sorted(r.name for r in mic_rooms if r.mic == "dull") == sorted(r.name.replace(" seed", " dull mic seed") for r in flat)
    flat_cells = {rooms.cell(r) for r in flat}
    assert {rooms.cell(r) for r in mic_rooms if r.mic == "cheap"} == {f"{c}, cheap mic" for c in flat_cells}


def test_the_gate_meets_the_targets_in_the_rooms_it_holds() -> None:
    missed = {name: c for name, c in matrix().items() if not c["meets"] and name not in KNOWN_MISSES}
    assert not missed, missed
    assert len(matrix()) == 26


@pytest.mark.parametrize("name", sorted(KNOWN_MISSES))
def test_the_rooms_it_misses_get_no_worse(name: str) -> None:
    recall, onsets, idle = KNOWN_MISSES[name]
    c = matrix()[name]
    assert float(c["speech_recall"] or 0) >= recall - 0.002, c
    assert float(c["onset_ok"] or 0) >= onsets - 0.001, c
    assert float(c["idle_share"] or 0) <= idle + 0.05, c


@pytest.mark.parametrize("mic", ["dull", "cheap"])
def test_the_gate_holds_steady_rooms_through_other_microphones(mic: str) -> None:
    """Quiet, hum and traffic rooms at 10 dB, both visitor levels, seed 1, heard
    through a dull and a cheap microphone (rooms.microphone_rooms): every target met, as through a
    flat one. (Where they miss: README, "Through other microphones".)"""
    for kind in ("quiet", "hum", "traffic"):
        for visitor_db in (0.0, -18.0):
            sc = gated(Room(kind, 10.0, visitor_db, 1, mic=mic))
            assert sc.speech_recall >= 0.995 and sc.onset_ok == 1.0 and sc.idle_share <= rooms.IDLE_TARGET, (kind, visitor_db, sc)


@pytest.mark.parametrize("room", [Room("fan", 10.0, 0.0, 1, mic="dull"), Room("fan", 5.0, -18.0, 1, mic="cheap"), Room("knocks", 5.0, 0.0, 1)], ids=lambda r: r.name)
def test_a_word_whose_soft_start_shows_only_as_weak_keeps_its_lead(room: Room) -> None:
    """A word whose first sound shows only as WEAK frames for 150-200 ms before its vowel (a dull
    microphone takes an "s" or "f" under the fan), decided on late: the look-back reaches back
    over those WEAK frames (soundstretch.py, SOUND_WEAK_MS). Each of these rooms lost one onset's
    lead before (0.909: fan 10 dB seed 1 at 40.30 s kept 40 of its 100 ms)."""
    sc = gated(room)
    assert sc.onset_ok == 1.0 and sc.speech_recall >= 0.995, sc


@pytest.mark.parametrize("visitor_db", [0.0, -18.0])
def test_a_ringing_tray_does_not_open_the_gate(visitor_db: float) -> None:
    """Knocks at 10 dB, seed 2: a dropped tray's ring (fixed partials dying away) opened the gate
    for most of a second each time (idle 0.107 at the usual visitor, 0.052 at the quiet one); its
    pitch lag holding still as it dies away in the bang's tail now keeps it out (0.018, 0.001),
    and the visitor's speech and every onset still go."""
    sc = gated(Room("knocks", 10.0, visitor_db, 2))
    assert sc.speech_recall >= 0.995, sc
    assert sc.onset_ok == 1.0, sc
    assert sc.idle_share <= 0.05, sc


def test_music_does_not_hold_the_gate_between_the_visitors_words() -> None:
    """Music 20 dB under the visitor (seeds 4-9, outside the matrix): the gate, opened by the
    visitor, was held by the music's held notes after every utterance (idle 0.12-0.21); the
    tonal-room cue (tonalroom.py, TONAL_*) takes SPEECH as steady as the music for WEAK: 0.009-0.025
    in four rooms, 0.119 and 0.123 in two (seed 7: the music opened the gate in its first second,
    before a room can be told a tone from music, MOVING_ROOM_MIN, and held it for seven)."""
    scores = [gated(Room("music", 20.0, 0.0, seed)) for seed in range(4, 10)]
    assert all(sc.speech_recall >= 0.995 and sc.onset_ok == 1.0 for sc in scores), scores
    assert sum(sc.idle_share <= 0.05 for sc in scores) >= 4, scores
    assert max(sc.idle_share for sc in scores) <= 0.15, scores


@pytest.mark.parametrize("seed", [4, 7, 8])
def test_louder_music_leaks_less_and_the_visitor_still_goes(seed: int) -> None:
    """Music 10 dB under the visitor: idle 0.92-0.97 before the tonal-room cue, 0.11-0.25 with it
    (the goal of 0.05 is not met: docs/gate-notes.md, "Tonal rooms"); recall and onsets as before."""
    sc = gated(Room("music", 10.0, 0.0, seed))
    assert sc.speech_recall >= 0.995, sc
    assert sc.onset_ok == 1.0, sc
    assert sc.idle_share <= 0.4, sc


@pytest.mark.parametrize(("room", "idle_at_most"), [(Room("music", 10.0, 0.0, 3), 0.24), (Room("tv", 20.0, 0.0, 3), 0.36), (Room("tv", 20.0, -18.0, 2), 0.6)])
def test_a_hold_the_visitor_no_longer_carries_lets_go(room: Room, idle_at_most: float) -> None:
    """Music 10 dB and a TV 20 dB under the visitor: their loudest blocks pass the
    `visitor_drop_db` line, and they held the gate on after the visitor's last word for as long
    as they played (idle 0.314, 0.457, 0.706). An open gate now lets go once no SPEECH block has
    come within NEAR_VISITOR_DB of the visitor's level for NEAR_VISITOR_S (0.202, 0.312, 0.557),
    and the visitor's speech and every onset still go."""
    sc = gated(room)
    assert (sc.speech_recall, sc.onset_ok) == (1.0, 1.0), sc
    assert sc.idle_share <= idle_at_most, sc


def _gated_without_the_tonal_cue(room: Room, monkeypatch: pytest.MonkeyPatch) -> GateScore:
    with monkeypatch.context() as patch:
        patch.setattr(TonalRoom, "TONAL_ROOM_MIN", float("inf"))
        return gated(room)


@pytest.mark.parametrize("visitor_db", [0.0, -18.0])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_steady_buzz_is_not_music(seed: int, visitor_db: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ballast's 120 Hz buzz 5 dB under the visitor (rooms.EXTRA_KINDS): as steady as music's
    held notes, and the visitor's voice over it nearly as steady, so the tonal-room cue first cut
    the voice (recall 0.81-0.88, onsets 0.73-0.91). A buzz recurs a second later as music does
    not, so it is no tonal room (MOVING_ROOM_MIN): recall and onsets as without the cue."""
    room = Room("buzz", 5.0, visitor_db, seed)
    sc, without = gated(room), _gated_without_the_tonal_cue(room, monkeypatch)
    assert (sc.speech_recall, sc.onset_ok) == (without.speech_recall, without.onset_ok), (sc, without)
    assert sc.speech_recall >= 0.985, sc


def test_a_whine_is_not_music(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 kHz whine 10 dB under the visitor (seed 1): the tonal-room cue first cut the voice
    (recall 0.949, onsets 0.91); not since MOVING_ROOM_MIN. Without the cue the steady room is not
    told either, and the whine holds the gate open as it did before SLOW_SHAPE_RATE (idle 0.92;
    0.48 since an open gate lets go of a hold the visitor no longer carries, NEAR_VISITOR_S)."""
    room = Room("whine", 10.0, 0.0, 1)
    sc, without = gated(room), _gated_without_the_tonal_cue(room, monkeypatch)
    assert (sc.speech_recall, sc.onset_ok) == (without.speech_recall, without.onset_ok) == (1.0, 1.0), (sc, without)
    assert without.idle_share > 0.4 > 0.05 >= sc.idle_share, (sc, without)


@pytest.mark.parametrize("snr_db", [5.0, 10.0])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kind", ["whine", "drone"])
def test_a_steady_tone_does_not_hold_the_gate_after_the_visitor(kind: str, seed: int, snr_db: float) -> None:
    """A 1 kHz whine or a drone (three steady tones) 5-10 dB under the visitor (rooms.EXTRA_KINDS):
    while the gate was open on the visitor, the noise's shape model learned the voice slowly,
    and after the visitor's last word the tone, far from a voice's shape, stood out from that
    model as speech does and held the gate open for good (idle 0.18-0.92 in these eight rooms).
    In a steady tonal room the model no longer learns while the gate is open
    (CueClassifier.SLOW_SHAPE_RATE; docs/gate-notes.md, "A steady tone after the visitor's last word")."""
    sc = gated(Room(kind, snr_db, 0.0, seed))
    assert sc.speech_recall >= 0.995, sc
    assert sc.idle_share <= 0.08, sc


@pytest.mark.parametrize("seed", [1, 2])
def test_a_knock_whose_attack_spans_two_blocks_stays_a_bang(seed: int) -> None:
    """Ten knocks over a quiet bed, no one talking: each strikes in the second half of one 30 ms
    block, peaks 2 dB higher in the next and dies away at 2.6 dB a block (RT60 0.7 s), as a knock
    in a hall does when it lands late in a block. The second block's rise (4-5 dB) used to end
    the bang as a syllable would, and the tail then counted as speech without any pitch: 0.36 and
    0.28 of the time sent. An unvoiced rise right after a bang's first block is now that bang's
    attack (0.09, 0.13: what is left is the tail's chance voicing, docs/gate-notes.md: knocks)."""
    rng = np.random.default_rng(seed)
    block = RATE * 30 // 1000
    pcm = noises.colored(rng, 30 * RATE, 1.0) * 60.0
    for k in range(10):
        env = np.zeros(30 * block)
        env[block // 2 : block] = 1.0
        env[block:] = 10 ** (2.0 / 20) * 10 ** (-2.6 / 20 * np.arange(29 * block) / block)
        at = (60 + 80 * k) * block
        pcm[at : at + len(env)] += noises.lowpass(rng.standard_normal(len(env)), 2500, 80) * env * 2000.0
    sent = _sent(pcm)
    assert sum(b - a for a, b in sent) / 30.0 <= 0.15, sent


def _knock(rng: np.random.Generator) -> np.ndarray:
    """Three raps on a door in a hall (RT60 0.7 s), peak 1.0."""
    raps = np.zeros(int(0.5 * RATE))
    for k in range(3):
        m = int(0.06 * RATE)
        burst = noises.lowpass(rng.standard_normal(m), 2500, 80) * np.exp(-np.arange(m) / (0.008 * RATE))
        raps[k * int(0.18 * RATE) : k * int(0.18 * RATE) + m] += burst / np.abs(burst).max()
    out = noises.convolve(np.concatenate([raps, np.zeros(RATE)]), noises.room_response(rng, 0.7, 0.0))
    return out / np.abs(out).max()


@pytest.mark.parametrize("visitor_db", [0.0, -18.0])
def test_a_visitor_talking_into_a_knock_keeps_every_onset(visitor_db: float) -> None:
    """Each dev utterance said 100 ms into the reverberant tail of a knock 5 dB louder than the
    visitor's peaks, over a quiet bed: the tail's falling blocks must be voiced themselves now,
    and the knock's attack may span two blocks, but the visitor's own voice still opens the gate
    in time for every onset with its 100 ms lead."""
    rng = np.random.default_rng(12)
    for u in bank().dev:
        gain = np.sqrt(rooms.VISITOR_POWER / rooms._speech_power(u.pcm, u.speech)) * 10 ** (visitor_db / 20)
        voice = u.pcm * gain
        at = 3 * RATE
        pcm = np.zeros(at + len(voice) + 2 * RATE)
        pcm[at : at + len(voice)] += voice
        pcm += noises.colored(rng, len(pcm), 1.0) * np.sqrt(rooms.VISITOR_POWER * 10 ** ((visitor_db - 30) / 10))
        knock = _knock(rng) * np.percentile(np.abs(voice), 99.9) * 10 ** (5 / 20)
        start = at + int(u.speech[0][0] * RATE) - int(0.1 * RATE)
        pcm[start : start + len(knock)] += knock[: len(pcm) - start]
        labels = Labels(len(pcm) / RATE, [(3.0 + a, 3.0 + b) for a, b in u.speech])
        sc = score(_sent(pcm), labels)
        assert sc.onset_ok == 1.0 and sc.speech_recall >= 0.995, (u.speech, sc)


def test_a_tail_is_dying_after_three_falls_with_nothing_rising_between() -> None:
    run = DecayRun()
    for rise_db in (-5.0, -5.0, -5.0):
        run.step(rise_db)
    assert not run.dying()  # no bang yet: nothing to die away
    run.bang()
    for rise_db in (-2.0, 0.4, -0.1, -1.0):  # a rise of 0.4 dB and a fall of 0.1 dB are the bed
        run.step(rise_db)
        assert not run.dying()
    run.step(-0.3)
    assert run.dying()
    run.step(3.0)  # something new in the tail: maybe the visitor
    assert not run.dying()
    for _ in range(3):
        run.step(-6.0)
    assert not run.dying()  # ...for the rest of that bang


def test_a_tail_whose_first_fall_is_a_strikes_step_is_dying_after_two() -> None:
    """A struck thing steps down from its strike's block to its ringing tail; a vowel after its
    burst falls a dB or two a block. A tail that began with such a step is dying from its second
    fall on; one that fell gently from the start only from its third."""
    run = DecayRun()
    run.bang()
    for rise_db in (-6.0, 0.2):  # the step, then a block of the bed
        run.step(rise_db)
        assert not run.dying()
    run.step(-2.0)
    assert run.dying()
    run.bang()
    for rise_db in (-1.5, -2.0):  # a vowel after a plosive's burst
        run.step(rise_db)
        assert not run.dying()
    run.step(-1.0)
    assert run.dying()  # three falls: dying however gently


def test_knocks_in_a_hall_that_only_die_away_open_the_gate_less() -> None:
    """Three raps on a door in a hall (RT60 0.7 s), ten times in 30 s, no one talking, 8 seeds:
    each tail falls from block to block for most of a second, voiced by chance (0.2-0.3) and
    moving, and opened the gate: 0.23-0.48 of the time sent, 0.359 on average. A tail that has
    only fallen since its bang (3 falls) no longer opens it: 0.16-0.37, 0.251 on average; and
    since a tail that steps down from its strike is dying from its second fall (decay.py,
    STRIKE_STEP_DB), 0.11-0.31, 0.198 on average (what is left opens on raps that rise again)."""
    shares = []
    for seed in range(1, 9):
        starts = [(60 + 80 * k) * RATE * 30 // 1000 for k in range(10)]
        pcm = noises.struck_in_quiet(np.random.default_rng(seed), 30 * RATE, _knock, starts, 20000.0)
        shares.append(sum(b - a for a, b in _sent(pcm)) / 30.0)
    assert sum(shares) / len(shares) <= 0.22, shares


@pytest.mark.parametrize(("room", "idle_at_most"), [(Room("knocks", 10.0, -18.0, 101, 0.7, "talkers"), 0.10), (Room("knocks", 5.0, -18.0, 101, 0.7, "talkers"), 0.20)])
def test_a_knock_in_a_hall_does_not_open_the_gate_on_its_strike_and_step(room: Room, idle_at_most: float) -> None:
    """Held-out knocks rooms (a hall, the rendered talkers as the quiet visitor): a knock's
    strike and the two blocks after it, voiced by chance, opened the gate before its tail had
    fallen three times. Its first fall is a step of 3-7 dB (the strike's direct sound gone), so
    it is dying from the second (STRIKE_STEP_DB): idle 0.188 -> 0.055 and 0.272 -> 0.166, the
    visitor's speech and every onset still sent."""
    sc = gated(room)
    assert (sc.speech_recall, sc.onset_ok) == (1.0, 1.0), sc
    assert sc.idle_share <= idle_at_most, sc


@pytest.mark.parametrize("room", [Room("white", 5.0, 0.0, 1), Room("pink", 5.0, 0.0, 3), Room("pink", 5.0, -18.0, 2), Room("fan", 20.0, 0.0, 3)])
def test_a_word_whose_start_falls_after_its_burst_keeps_its_onset(room: Room) -> None:
    """Rooms where a visitor's word starts with a burst (a bang to the cues) and its next blocks
    fall: ruling a tail dying after 2 falls, not 3, held these openings back past the look-back's
    reach (decay.py) and lost one onset's lead in each."""
    sc = gated(room)
    assert sc.onset_ok == 1.0 and sc.speech_recall >= 0.995, sc


@pytest.mark.parametrize(("room", "idle_at_most"), [(Room("music", 10.0, 0.0, 1), 0.05), (Room("music", 10.0, -18.0, 1), 0.08), (Room("music", 5.0, -18.0, 3), 0.22)])
def test_a_chords_attack_does_not_open_the_gate(room: Room, idle_at_most: float) -> None:
    """Music rooms of the matrix: a new chord struck at a bar's start (kick and melody note with
    it) stands 8-10 dB over the room's running level, and the tonal cue let such a block open the
    gate however steady it was, as it must a loud voice (TONAL_LOUD_DB); but the chord's partials
    hold from one block to the next as steadily as the music's (`tonal_room`), a voice's do not.
    Idle 0.097, 0.248, 0.348 before; 0.028, 0.052, 0.183 now, the visitor's speech and every
    onset sent."""
    sc = gated(room)
    assert (sc.speech_recall, sc.onset_ok) == (1.0, 1.0), sc
    assert sc.idle_share <= idle_at_most, sc


def test_one_far_talker_in_a_quiet_lobby_is_mostly_held_back() -> None:
    """A quiet room (the visitor at both levels) and one person 20 dB under the visitor talking now
    and then across it: idle sent 0.19-0.36 (mean 0.27). A rule that measured any sound after a
    second of quiet against lines 10 dB lower (for a visitor's softer later sentence; docs/gate-notes.md,
    "A softer utterance after a quiet pause", tried) sent 0.39-0.67 of it (mean 0.51)."""
    idle = []
    for visitor_db in (0.0, -18.0):
        for seed in (1, 2, 3, 4):
            mix = rooms.mix_room(bank(), Room("quiet", 10.0, visitor_db, seed))
            sc = score(_sent(rooms.with_far_talker(bank(), mix, 20.0, seed)), mix.labels)
            assert sc.speech_recall >= 0.995 and sc.onset_ok == 1.0
            idle.append(sc.idle_share)
    assert max(idle) <= 0.40 and float(np.mean(idle)) <= 0.32, [round(i, 3) for i in idle]


@pytest.mark.parametrize(("kind", "under_db", "worst", "mean"), [("babble", 10.0, 0.55, 0.45), ("music", 10.0, 0.75, 0.50), ("tv", 20.0, 0.25, 0.15)])
def test_a_source_that_arrives_in_a_quiet_room_is_let_go(kind: str, under_db: float, worst: float, mean: float) -> None:
    """A quiet room where a crowd, music or a TV starts 12-30 s in (`rooms.with_arriving`), both
    visitor levels, seeds 1-3: the room's level the gate learned (`ambient_db`, while closed) is
    the quiet one, and an open gate must still let go of the source as it does of one that was
    always there. Idle sent today: the crowd 0.40 by the mean (0.50 at worst), music 0.45 (0.72),
    the TV 0.11 (0.20). A rule that let a SPEECH block 20 dB over the learned level hold the gate
    (docs/gate-notes.md: "A softer sentence far over a quiet room", tried) sent 0.57 (0.77) of
    the crowd and 0.57 (0.72) of the music."""
    idle = []
    for visitor_db in (0.0, -18.0):
        for seed in (1, 2, 3):
            mix = rooms.mix_room(bank(), Room("quiet", 10.0, visitor_db, seed))
            sc = score(_sent(rooms.with_arriving(bank(), mix, kind, under_db, seed)), mix.labels)
            assert sc.speech_recall >= 0.995 and sc.onset_ok == 1.0, (visitor_db, seed, sc)
            idle.append(sc.idle_share)
    assert max(idle) <= worst and float(np.mean(idle)) <= mean, [round(i, 3) for i in idle]


def test_the_visitors_first_level_is_not_a_soft_words_tail() -> None:
    """A quiet visitor with a fan 20 dB under them (fresh seed 5): the first run of SPEECH that
    confirmed their speech was their first utterance's soft last word, ~25 dB under its loudest
    syllable, and a level taken there (74.5 dB against a syllable of 100.9) let the fan's swells
    hold the gate 2.1 s past the utterance (idle 0.051). The first level is now at most
    `visitor_drop_db` under the opening's loudest syllable: the gate closes within a second of the
    utterance's end, and the room sends none of its idle audio."""
    pcm, labels = rooms.make_room(bank(), Room("fan", 20.0, -18.0, 5))
    classifier = CueClassifier(GATE.aggressiveness)
    gate = VadGate(GATE, 30, classifier)
    first_end_s = labels.speech[0][1]
    loudest_db, closed_at_s = -np.inf, None
    for i in range(len(pcm) // 480):
        gate.push(pcm[i * 480 : (i + 1) * 480].tobytes())
        t_s = (i + 1) * 0.03
        if t_s <= first_end_s and gate.is_open:
            loudest_db = max(loudest_db, classifier.band_db)
        if t_s > first_end_s and not gate.is_open:
            closed_at_s = t_s
            break
    assert loudest_db > classifier.visitor_db > loudest_db - classifier.visitor_drop_db - 1.0, (loudest_db, classifier.visitor_db)
    assert closed_at_s is not None and closed_at_s <= first_end_s + 1.0, (first_end_s, closed_at_s)
    sc = gated(Room("fan", 20.0, -18.0, 5))
    assert (sc.speech_recall, sc.onset_ok) == (1.0, 1.0) and sc.idle_share <= 0.01, sc


@pytest.mark.parametrize("before", ["closed since", "the speaker played"])
def test_the_first_level_counts_only_the_confirming_openings_own_syllables(before: str) -> None:
    """The loudest syllable the first level starts from is this opening's, heard with the speaker
    silent: SPEECH blocks 20 dB louder in an opening that closed without confirming anyone, or
    while the kiosk's speaker played (its echo), do not raise it. Fed to the classifier's own
    bookkeeping block by block (levels in dB), as VadGate would after each block."""
    classifier = CueClassifier(GATE.aggressiveness)
    classifier.gate_open = True
    classifier.far_end = before == "the speaker played"
    for _ in range(3):  # too few in a row to confirm
        classifier._follow_visitor(SPEECH, 120.0)
    if before == "closed since":
        classifier.gate_open = False
        classifier._follow_visitor(NOISE, 60.0)
        classifier.gate_open = True
    classifier.far_end = False
    assert classifier.visitor_db == -np.inf
    for _ in range(classifier.CONFIRM_FRAMES):
        classifier._follow_visitor(SPEECH, 100.0)
    assert classifier.visitor_db == pytest.approx(100.0), classifier.visitor_db


@pytest.mark.parametrize("seed", [2, 3])
def test_music_under_a_quiet_visitor_no_longer_holds_on_a_level_taken_low(seed: int) -> None:
    """Music 20 dB under the quiet visitor (tuning seeds 2 and 3): the visitor's first level was
    taken low in the same way (above), and the music's notes then held the gate as the visitor
    near their level (idle 0.069 and 0.079); now 0.027 and 0.038, every word and onset kept."""
    sc = gated(Room("music", 20.0, -18.0, seed))
    assert (sc.speech_recall, sc.onset_ok) == (1.0, 1.0), sc
    assert sc.idle_share <= 0.05, sc


def _in_a_new_opening(visitor_db: float) -> CueClassifier:
    """A classifier whose visitor confirmed their level (`visitor_db`) in an opening that has since
    closed, and whose gate has opened again; fed to its own bookkeeping as `classify` does."""
    classifier = CueClassifier(GATE.aggressiveness)
    classifier.gate_open = True
    for _ in range(classifier.CONFIRM_FRAMES):
        classifier._follow_visitor(SPEECH, visitor_db)
    classifier.gate_open = False
    classifier._follow_visitor(NOISE, 60.0)
    classifier.gate_open = True
    return classifier


def test_every_level_after_the_first_stays_within_reach_of_the_openings_loudest_syllable() -> None:
    """A level a crowd has pulled down (70 dB) and a visitor who opens the gate at 96 dB: once
    six SPEECH blocks confirm them, their level is at most `visitor_drop_db` under that opening's
    loudest syllable (84 dB, less the envelope's sink on the block), not 70 dB rising 5 % of the
    way a block (the crowd's voices then held the gate as the visitor near their level). Fed to
    the classifier's own bookkeeping block by block (levels in dB), as `classify` does."""
    classifier = _in_a_new_opening(visitor_db=70.0)
    assert classifier.visitor_db == pytest.approx(70.0, abs=0.1)
    for band_db in [96.0] + [72.0] * (classifier.CONFIRM_FRAMES - 1):
        classifier._follow_visitor(SPEECH, band_db)
    assert classifier.visitor_db >= 96.0 - classifier.visitor_drop_db - 0.1, classifier.visitor_db


@pytest.mark.parametrize(
    ("room", "idle_max"),
    [(Room("babble", 10.0, 0.0, 1), 0.45), (Room("tv", 10.0, 0.0, 2, mic="dull"), 0.8)],
    ids=["crowd-10dB", "tv-10dB-dull-mic"],
)
def test_a_crowd_or_a_tv_no_longer_pulls_the_visitors_level_far_under_their_syllables(room: Room, idle_max: float) -> None:
    """A crowd 10 dB under the visitor (tuning seed 1: idle 0.634) and a TV 10 dB under them
    through a dull microphone (seed 2: 0.981): the other voices pulled the visitor's level down
    until they held the gate as the visitor near it. With every level at most `visitor_drop_db`
    under the loudest syllable of the opening it follows: 0.428 and 0.767, every word and onset
    kept. In the TV room the gate then let go 30 ms before the visitor's next word and opened
    again 630 ms later on its second syllable; the opening now reaches back to where the gate
    closed (VadGate, within the pre-roll and its look-back), so 150 ms of that word are no longer lost."""
    sc = gated(room)
    assert (sc.speech_recall, sc.onset_ok) == (1.0, 1.0), sc
    assert sc.idle_share <= idle_max, sc


def test_a_word_begun_as_the_gate_let_go_of_a_tv_is_sent_whole() -> None:
    """A TV 10 dB under the visitor (tuning seed 2): the gate let go of the TV at 46.53 s, inside
    the visitor's word that began at 46.35 s, and opened again on its later syllables; the
    pre-roll reached back to 46.65 s and the 120 ms between were never sent (speech 0.9945).
    An opening within the pre-roll and its look-back of the close now sends the gap (VadGate)."""
    sc = gated(Room("tv", 10.0, 0.0, 2))
    assert (sc.speech_recall, sc.onset_ok) == (1.0, 1.0), sc


@pytest.mark.parametrize("room", [Room("tv", 20.0, -18.0, 9), Room("knocks", 5.0, -18.0, 2)], ids=["fresh-tv-20dB-quiet", "knocks-5dB-quiet"])
def test_a_word_that_almost_opened_the_gate_keeps_its_start(room: Room) -> None:
    """A quiet visitor's word whose first syllable made two SPEECH blocks, one short of opening,
    then read as a knock's tail or the TV for ~600 ms before the gate opened: the look-back's cap
    (pre-roll + 240 ms) cut its start (fresh TV 20 dB seed 9, with every level floored: 60 ms of
    speech and its onset; tuning knocks 5 dB seed 2: speech 0.9975, onsets 0.909). A stretch with
    such a near-opening in it reaches up to 240 ms further (SoundStretch)."""
    sc = gated(room)
    assert (sc.speech_recall, sc.onset_ok) == (1.0, 1.0), sc


def test_a_footstep_in_a_later_opening_does_not_floor_the_visitors_level() -> None:
    """With every confirmed level floored at the opening's loudest SPEECH block less
    `visitor_drop_db`, a footstep's strike 28 dB over a known visitor (90 dB) that counts as
    SPEECH would pin their level at 106 dB for the rest of the opening, and their own speech would
    then no longer hold the gate. A block that starts a bang (`_track_bang`) does not raise the
    opening's loudest syllable once the visitor's level is known; before that (the first level) it
    still does: a syllable's onset out of quiet reads as a bang too (docs/gate-notes.md: "The
    visitor's first level"). Fed to the classifier's own bookkeeping block by block (levels in
    dB), as `classify` does."""
    classifier = _in_a_new_opening(visitor_db=90.0)
    classifier._follow_visitor(SPEECH, 118.0, True)
    for _ in range(200):
        classifier._follow_visitor(SPEECH, 90.0)
    assert classifier.visitor_db < 92.0, classifier.visitor_db
