"""A ring holds still: a dropped tray's partials beating for most of a second do not open the gate,
nor hold it open after the visitor's last word (decay.py, `DecayRun.rings`; docs/gate-notes.md:
"A ring holds still", "A ring from its first steady block", "A ring in the hang-over")."""

from __future__ import annotations

import numpy as np
import pytest
from gate_rooms import RATE, gated_figures, sent, struck_after_words

from edge_agent.audio import decay
from edge_agent.audio.decay import DecayRun
from edge_agent.audio.gatescore import score
from edge_agent.devtools import noises, rooms
from edge_agent.devtools.rooms import Room


def _ring(run: DecayRun, steadiness: list[float], rise_db: float = -0.5) -> None:
    for s in steadiness:
        run.step(rise_db, s)


def test_a_struck_bang_rings_while_its_spectrum_holds_still() -> None:
    run = DecayRun()
    _ring(run, [0.1, 0.8, 0.8])
    assert not run.rings(0.5)  # no bang yet
    _ring(run, [0.0] * 8 + [0.1], rise_db=0.0)  # the room's bed, then the strike's block
    run.bang(struck=True)
    assert not run.rings(0.5)  # the strike's own block: not steady
    _ring(run, [0.3])
    assert not run.rings(0.5)  # one steady block is not a ring
    _ring(run, [0.7, 0.8])
    assert run.rings(0.5)
    assert not run.rings(decay.RING_FLUX_DB)  # the spectrum moves: a voice under the ring
    _ring(run, [0.2])
    assert not run.rings(0.5)


def test_a_ring_counts_from_its_first_steady_block_after_the_click() -> None:
    """The strike's attack may spill into the next block (its click, not steady): the block after
    that rings on its own steadiness. Later on, one steady block after an unsteady one does not."""
    run = DecayRun()
    _ring(run, [0.0] * 8)
    run.bang(struck=True)
    _ring(run, [0.2])  # the attack across the block edge
    _ring(run, [0.8])
    assert run.rings(0.5)
    _ring(run, [0.2, 0.8])
    assert not run.rings(0.5)


def test_only_a_struck_bang_rings_and_not_past_a_rise_or_a_second() -> None:
    run = DecayRun()
    run.bang(struck=False)  # not out of quiet: a syllable after a syllable
    _ring(run, [0.8, 0.8, 0.8])
    assert not run.rings(0.5)
    _ring(run, [0.0] * 8)
    run.bang(struck=True)
    _ring(run, [0.8], rise_db=4.0)  # the strike's attack across the block edge may rise
    _ring(run, [0.8])
    assert run.rings(0.5)
    _ring(run, [0.8], rise_db=decay.RING_RISE_DB)  # something new: maybe the visitor
    assert not run.rings(0.5)
    _ring(run, [0.0] * 8)
    run.bang(struck=True)
    _ring(run, [0.8] * decay.RING_BLOCKS)
    assert run.rings(0.5)
    _ring(run, [0.8])
    assert not run.rings(0.5)  # rung out


def test_a_bang_out_of_quiet_in_an_open_gate_may_ring_without_being_struck() -> None:
    """A tray dropped in the hang-over: CueClassifier passes `ring` (out of the room's quiet) with
    the gate open, where a bang is not `struck` unless it is unvoiced and steps down (footsteps)."""
    run = DecayRun()
    _ring(run, [0.0] * 8)
    run.bang(struck=False, ring=True)
    _ring(run, [0.2, 0.8, 0.8])
    assert run.rings(0.5) and not run.struck


def test_a_strike_in_a_room_already_steady_is_not_a_ring() -> None:
    """Music or a TV: the steadiness was the room's before the strike, and a voice over it reads
    as steady too."""
    run = DecayRun()
    _ring(run, [0.6] * 8)
    run.bang(struck=True, room_steadiness=0.6)  # TonalRoom.tonal after those blocks
    _ring(run, [0.8, 0.8])
    assert not run.rings(0.5)


def _trays_sent(seeds: range) -> list[float]:
    """Per seed: the share of 30 s sent, ten trays (peak 20 000) 2.8 s apart over a quiet bed."""
    shares = []
    for seed in seeds:
        starts = [int((1.5 + 2.8 * k) * RATE) for k in range(10)]
        pcm = noises.struck_in_quiet(np.random.default_rng(seed), 30 * RATE, noises.tray, starts, 20000.0)
        shares.append(sum(b - a for a, b in sent(pcm)) / 30.0)
    return shares


def test_trays_dropped_in_a_quiet_room_open_the_gate_less() -> None:
    """Ten trays in 30 s over a quiet bed, no one talking, 8 seeds: each peaks ~50 dB over the bed
    and rings for most of a second, its level beating up and down (so the tail is not dying) and
    voiced by chance: sent 0.19-0.32 of the time, 0.240 on average. Held back while they ring with
    their spectrum still: 0.016 on average (two seeds 0.06, a ring that opened on its strike);
    0.008 since a ring counts from its first steady block after the click (one seed 0.06)."""
    shares = _trays_sent(range(1, 9))
    assert sum(shares) / len(shares) <= 0.05, shares


def test_a_tray_whose_attack_spills_into_the_next_block_does_not_open_the_gate() -> None:
    """The trays above on 16 seeds: on seeds 3 and 10, a tray's click reached into the block after
    its strike, so that block was not steady and the next one's ring did not count (the block
    before it had to be steady too): the gate opened on the ring's first three blocks (0.063 of
    the time sent on each). Counted from the first steady block after the click: nothing sent on
    either, 0.007 on average over the 16 seeds (0.015 before)."""
    shares = _trays_sent(range(1, 17))
    assert shares[2] == 0.0 and shares[9] == 0.0, shares
    assert sum(shares) / len(shares) <= 0.01, shares


def test_a_visitor_under_a_louder_ringing_tray_keeps_the_onset() -> None:
    """A fresh knocks room in a hall (5 dB, seed 105): a tray 8 dB over the visitor lands as they
    start a sentence and rings over its first half second. The ring holds its partials still, but
    the voice under it moves the sub-bands (flux 2.2-3.0 dB against the ring's 0.3-1.2): a block
    that moves like that is no ring (RING_FLUX_DB), the gate opens there and the pre-roll reaches
    back over the onset (0.8 of the onsets without that condition)."""
    recall, onsets, _ = gated_figures(Room("knocks", 5.0, 0.0, 105, 0.7, "talkers"))
    assert recall >= 0.995 and onsets == 1.0, (recall, onsets)


def test_a_quiet_visitor_over_a_tv_is_no_ring() -> None:
    """A fresh TV room (10 dB, the quiet visitor, seed 5): the TV's music is steady, and so is a
    quiet visitor's voice over it after a bang; counted as rings, a whole utterance was lost
    (recall 0.953). A room already steady before the strike (RING_ROOM_MAX) has no ring."""
    recall, onsets, _ = gated_figures(Room("tv", 10.0, -18.0, 5))
    assert recall >= 0.995 and onsets == 1.0, (recall, onsets)


TRAY_ROOMS = [
    Room("knocks", 20.0, 0.0, 1),  # idle 0.101 -> 0.008
    Room("knocks", 10.0, -18.0, 102),  # 0.055 -> 0.018 (held out)
    Room("knocks", 5.0, 0.0, 5),  # 0.072 -> 0.006 (fresh)
    Room("knocks", 10.0, 0.0, 106),  # 0.087 -> 0.007 (fresh)
    Room("knocks", 20.0, 0.0, 1, mic="dull"),  # 0.120 -> 0.040
    Room("knocks", 20.0, 0.0, 1, mic="cheap"),  # 0.091 -> 0.022
]


@pytest.mark.parametrize("peak_db", [-6.0, 0.0])
def test_a_tray_dropped_after_the_visitors_last_word_does_not_hold_the_gate_open(peak_db: float) -> None:
    """Four dev utterances over a quiet bed, a tray dropped 0.2-0.5 s after each one's last word,
    the next utterance ~3.5 s after the tray, 8 seeds: the ring's blocks were SPEECH to the open gate and
    restarted its hang-over for as long as the tray rang (idle sent 0.191 and 0.211 on average,
    tray 6 dB under the utterance's peak and as loud). Its ringing blocks no longer restart it:
    0.128 and 0.114 (the ring's WEAK blocks still slow the hang-over). Nothing of the speech lost."""
    results = []
    for seed in range(1, 9):
        pcm, labels = struck_after_words(seed, peak_db, noises.tray, 1, rest_s=3.0)
        results.append(score(sent(pcm), labels))
    idle = [r.idle_share for r in results]
    assert sum(idle) / len(idle) <= 0.14, idle
    assert min(r.speech_recall for r in results) == 1.0 and min(r.onset_ok for r in results) == 1.0


HANG_RING_ROOMS = [
    Room("knocks", 20.0, 0.0, 3),  # idle 0.060 -> 0.048
    Room("knocks", 10.0, 0.0, 8),  # 0.052 -> 0.029 (fresh)
    Room("knocks", 5.0, -18.0, 9),  # 0.0501 -> 0.031 (fresh)
]


CLICK_ROOMS = [
    Room("knocks", 20.0, -18.0, 2),  # idle 0.072 -> 0.031
    Room("knocks", 20.0, 0.0, 8),  # 0.073 -> 0.000 (fresh)
    Room("knocks", 5.0, 0.0, 7),  # 0.126 -> 0.027 (fresh)
    Room("knocks", 10.0, -18.0, 6),  # 0.071 -> 0.006 (fresh)
]


@pytest.mark.parametrize("room", TRAY_ROOMS + CLICK_ROOMS + HANG_RING_ROOMS, ids=lambda r: r.name)
def test_knocks_rooms_a_tray_held_open_now_meet_the_targets(room: Room) -> None:
    """Knocks rooms whose idle was mostly a tray's ring, of the 17 that now meet every target (the
    whole matrix: docs/gate-notes.md, "A ring holds still"); CLICK_ROOMS: 4 of the 5 that meet them since a ring
    counts from its first steady block after the click (docs/gate-notes.md, "A ring from its first steady
    block"); HANG_RING_ROOMS: since a ring in an open gate does not restart its hang-over (docs/gate-notes.md,
    "A ring in the hang-over")."""
    recall, onsets, idle = gated_figures(room)
    assert recall >= 0.995 and onsets == 1.0 and idle <= rooms.IDLE_TARGET, (recall, onsets, idle)
