"""`edge-agent echo`: the daemon's echo canceller over a recorded microphone track and the speaker
track played meanwhile, an installer's check of a kiosk's hardware (README, "Checking a kiosk's
hardware").

It prints `{"erle_db": ..., "delay_ms": ..., "room": ..., "room_grades_db": [...]}` (`--json`) or
a line saying the same; null is "could not be measured", and then one line on stderr says why (a
silent speaker track: the wrong playback device, or the files swapped). Recordings from arecord and aplay never stop on the same sample: a
difference under MAX_LENGTH_GAP_S is trimmed off the longer track's end, with a note; a larger
one is refused, as are an output that would overwrite one of the inputs and one file given as
both tracks (the canceller would find a perfect "echo" at 0 ms).

`room` is the daemon's own verdict on the room (audio/echograde.py), the take graded in REPLY_S
pieces as the daemon grades the agent's replies: "copes", or "poor" (a hall: only a visitor
louder than the agent's echo gets through while it speaks), or null (not judged; stderr says why). A kiosk
learns that from its first replies, and until then a hall's leak to the agent; `--keep-grade`
hands it the installer's take instead, in its state dir, so it starts knowing the room.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.echo import EchoCanceller, make_backend
from edge_agent.audio.echotrack import cancel_tracks, erle_db
from edge_agent.audio.wavfile import read_wav_16k_mono, write_wav_16k_mono
from edge_agent.core import config
from edge_agent.core.logs import setup_logging
from edge_agent.core.statefiles import same_file
from edge_agent.errors import EdgeAgentError, UsageError
from edge_agent.service.roomgrade import RoomGradeFile, grade_summary, hardware_of, room_verdict

MAX_LENGTH_GAP_S = 1.0
"""Tracks whose lengths differ by less than this are trimmed to the shorter; more is refused
(not the same take, or one stopped early: the figures would mean nothing)."""
ERLE_SKIP_S = 2.0
"""ERLE leaves out the first seconds, while the canceller converges (`erle_db`'s `skip_s`)."""
DELAY_NEEDS_S = 4.0
"""About how much speaker audio the mic must hear before the delay is known: two estimates that
agree, one per 2 s of far-end audio (`EchoCanceller`'s `estimate_every_s`)."""
MIN_JUDGED_ERLE_DB = 3.0
"""The room is judged only where the canceller found the speaker's echo (`delay_ms`, not before
the speaker track) and took at least this much off it: a take whose tracks do not line up (a
wrong `--speaker-from`, an echo path beyond AEC3's reach) graded an ordinary room poor, and a
mic that never heard this speaker 60 dB, "copes", which would hide a hall for six replies."""
REPLY_S = 12.0
"""The take is graded in pieces this long, each as one of the agent's replies (the bench grades
12 s replies): the bundled 26 s recording gives two, what the daemon needs to judge a room."""


def cmd_echo(args: argparse.Namespace) -> int:
    """The daemon's echo canceller over `args.mic` and `args.speaker`, the cleaned track to `args.output`."""
    settings = config.load(args.config)
    setup_logging(args.log_level or settings.log.level)
    mic, ref = read_wav_16k_mono(args.mic), read_wav_16k_mono(args.speaker)
    ref = bytes(2 * round(args.speaker_from * SAMPLE_RATE_HZ)) + ref  # the room alone first: its noise, for the grade
    refuse_overwriting_an_input(args.output, {"mic": args.mic, "speaker": args.speaker})
    if same_file(args.mic, args.speaker):  # a slip on the command line, not a recording to check
        raise UsageError(f"{args.mic} is given as both the mic and the speaker track: pass what the microphone recorded and what the speaker played")
    speaker_name = f"{args.speaker} (after {args.speaker_from:g} s of --speaker-from)" if args.speaker_from else args.speaker
    for name, track in ((args.mic, mic), (args.speaker, ref)):  # before the lengths are compared: an empty mic "stopped before the speaker"
        if len(track) < 2 * SAMPLE_RATE_HZ:
            raise EdgeAgentError(f"{name}: need at least 1 s of audio, got {len(track) / 2 / SAMPLE_RATE_HZ:.2f} s")
    mic, ref = same_length(args.mic, mic, speaker_name, ref)
    created = not os.path.lexists(args.output)  # only a file this run made is removed on a failure
    try:  # fail before the work, and before `wave` half-opens the file; "a": an existing one is
        Path(args.output).open("ab").close()  # kept until the cleaned track is ready (Ctrl-C mid-run emptied it)
    except OSError as exc:
        raise EdgeAgentError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    try:
        cleaned, far, canceller = _cancel(settings, mic, ref)
        write_wav_16k_mono(args.output, cleaned + mic[len(cleaned) :])
    except BaseException as exc:  # Ctrl-C or a failure: no empty or half file of this run's left behind
        if created:  # not what was there before: as root `-o /dev/full` removed the device node
            with contextlib.suppress(OSError):
                Path(args.output).unlink()
        if isinstance(exc, OSError):  # a full card: exit 70 and a 0-byte file before
            raise EdgeAgentError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        raise
    frame_ms = settings.audio.frame_ms
    mic_silent = silent(mic)  # nothing to take the echo off: a ratio of two silences is no figure
    erle = None if mic_silent else erle_db(mic, cleaned, far, frame_ms, ERLE_SKIP_S)
    delay = None if mic_silent else canceller.delay_ms
    unjudged = why_unjudged(delay, erle, heard_room=canceller.grade.noise_ms < math.inf, speaker_from_s=args.speaker_from)
    grades = [round(g, 1) for g in canceller.grade.replies] if unjudged is None else []
    result: dict[str, Any] = {"erle_db": erle, "delay_ms": delay, "room": room_verdict(grades)}
    why = not_measured(result, far, frame_ms, grades, unjudged, mic_silent)
    result["room_grades_db"] = grades
    if args.json:
        print(json.dumps(result))
        if why:
            print(f"edge-agent echo: {_reasons(why, {key: key for key in why})}", file=sys.stderr)
    else:
        print(f"{args.output}: {_said(result, why)}")
    if args.keep_grade:  # after the figures: they are printed whether or not the grade can be kept
        print(f"edge-agent echo: {keep_grade(settings, grades, result['room'])}", file=sys.stderr)
    return 0


def _cancel(settings: config.Settings, mic: bytes, ref: bytes) -> tuple[bytes, list[bool], EchoCanceller]:
    """The daemon's canceller over the two tracks: the cleaned mic, per frame whether the far end
    was audible, and the canceller (closed), whose delay and room grade the figures read."""
    canceller = EchoCanceller(make_backend(True), delay_ms=settings.audio.echo_delay_ms)
    try:
        cleaned, far, *_ = cancel_tracks(mic, ref, canceller, settings.audio.frame_ms, reply_s=REPLY_S)
    finally:
        canceller.close()
    return cleaned, far, canceller


def keep_grade(settings: config.Settings, grades: list[float], room: str | None) -> str:
    """Writes the take's grades to the kiosk's state dir as the daemon keeps its own (for its
    devices, by the config's names), so it starts knowing the room; what was done.
    EdgeAgentError when the room was not judged (nothing written) or the write failed."""
    if room is None:
        raise EdgeAgentError("--keep-grade: nothing kept: the take did not judge the room (said above why)")
    if not settings.audio.echo_cancel:
        raise EdgeAgentError("--keep-grade: nothing kept: the config has audio.echo_cancel off, and the kiosk uses a kept grade only with it on (-c the kiosk's config?)")
    state_dir = settings.device.state_dir
    if not state_dir.exists():
        raise EdgeAgentError(f"--keep-grade: no state dir {state_dir} yet: start the service once (it makes it), stop it, and keep the grade then")
    if not state_dir.is_dir():
        raise EdgeAgentError(f"--keep-grade: device.state_dir {state_dir} is not a directory")
    from edge_agent.service.instance import held_by

    if (holder := held_by(state_dir)) is not None:  # it keeps its own grade, and would write over this one
        raise EdgeAgentError(f"--keep-grade: nothing kept: an edge-agent ({holder}) runs with {state_dir} and writes its own grade there; stop it first (sudo systemctl stop edge-agent)")
    kept = RoomGradeFile(settings.device.state_dir, hardware_of(settings.audio))
    if not kept.save(grades):
        raise EdgeAgentError(f"--keep-grade: cannot write {kept.path} ({kept.fault}): run as the service's user or root, with the service stopped")
    return f"kept in {kept.path} for the kiosk's next start: {grade_summary(grades)}"


def _said(result: dict[str, Any], why: dict[str, str]) -> str:
    """The text form of `result`: each figure measured, then why the others were not."""
    measured = []
    if "erle_db" not in why:
        measured.append(f"echo return loss enhancement {result['erle_db']} dB over the far-end stretches after the first {ERLE_SKIP_S:.0f} s")
    if "delay_ms" not in why:
        measured.append(f"echo delay {result['delay_ms']} ms")
    if "room" not in why:
        measured.append(f"the room, the take graded as {REPLY_S:.0f} s replies: {grade_summary(result['room_grades_db'])}")
    if why:
        measured.append(_reasons(why, {"erle_db": "echo return loss enhancement", "delay_ms": "echo delay", "room": "the room"}))
    return "; ".join(measured)


def _reasons(why: dict[str, str], names: dict[str, str]) -> str:
    """"A and B not measured: reason" for the figures in `why`, one clause per reason."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in why.items():
        by_reason.setdefault(reason, []).append(names[key])
    return "; ".join(f"{_listed(keys)} not measured: {reason}" for reason, keys in by_reason.items())


def _listed(names: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def refuse_overwriting_an_input(output: str, inputs: dict[str, str]) -> None:
    """UsageError when `output` is one of `inputs` (by name -> path): the same path, or the same
    file through another name (a link, `./`)."""
    for role, name in inputs.items():
        if same_file(output, name):
            raise UsageError(f"-o {output} is the {role} track {name}: write the cleaned track to another file")


def same_length(mic_name: str, mic: bytes, ref_name: str, ref: bytes) -> tuple[bytes, bytes]:
    """Both tracks trimmed to the shorter (a note on stderr says by how much) when they differ by
    less than MAX_LENGTH_GAP_S. A mic track longer by more is the room heard after the speaker
    stopped (`arecord -d 30` for 28 s played, refused before): the speaker track is padded with
    silence to it. EdgeAgentError for a speaker track longer by more (its echo not recorded)."""
    if len(mic) == len(ref):
        return mic, ref
    bytes_per_s = 2 * SAMPLE_RATE_HZ
    gap_s = abs(len(mic) - len(ref)) / bytes_per_s
    if gap_s >= MAX_LENGTH_GAP_S and len(mic) > len(ref):
        print(f"edge-agent echo: note: {mic_name} is {gap_s:.2f} s longer: the speaker taken as silent after its track ends", file=sys.stderr)
        return mic, ref + bytes(len(mic) - len(ref))
    if gap_s >= MAX_LENGTH_GAP_S:
        raise EdgeAgentError(
            f"the speaker track {ref_name} is longer than the mic track {mic_name} ({len(ref) / bytes_per_s:.2f} s vs {len(mic) / bytes_per_s:.2f} s): the mic stopped before the speaker;"
            " record the mic from before the speaker starts to after it stops (or the two are swapped: the mic's recording comes first)"
        )
    n = min(len(mic), len(ref))
    longer = mic_name if len(mic) > len(ref) else ref_name
    print(f"edge-agent echo: note: {longer} is {gap_s * 1000:.0f} ms longer: its end trimmed, both tracks {n / bytes_per_s:.2f} s", file=sys.stderr)
    return mic[:n], ref[:n]


SILENT_PEAK = 32
"""A track that stays under this (about -60 dBFS) is silence: a mic unplugged, the wrong capture
device, a muted input. Its ERLE came out as a number (-48 dB), not as null."""
SILENT_MAX_SAMPLES = 800
"""Samples (50 ms at 16 kHz) a silent track may have at or above SILENT_PEAK: a click as the
cable is touched, a pop as the device opens. One sample above it made a silent track count as
sound, and its ERLE a figure again."""


def silent(pcm: bytes) -> bool:
    """The 16-bit track under SILENT_PEAK but for clicks (SILENT_MAX_SAMPLES at most above it), around
    its DC offset: a mic stuck at one value (a dead ADC) is silent, not an ERLE of 84.6 dB."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    offset = int(np.median(samples)) if len(samples) else 0
    return int(np.count_nonzero(np.abs(samples - offset) >= SILENT_PEAK)) <= SILENT_MAX_SAMPLES


def not_measured(result: dict[str, Any], far: list[bool], frame_ms: int, grades: list[float], unjudged: str | None = None, mic_silent: bool = False) -> dict[str, str]:
    """Why each null figure of `result` is null (only those), from the canceller's own account of
    when it heard the speaker (`far`: per frame, the far end audible), its room grades and why
    the take could not judge the room (`why_unjudged`; None: it could), or a silent mic track."""
    if mic_silent:
        quiet = "the mic track is silent (nothing above about -60 dBFS): the microphone unplugged, muted, or the wrong capture device?"
        return {key: quiet for key, value in result.items() if value is None}
    if not any(far):
        silent = "the speaker track is silent (nothing above about -60 dBFS): the wrong playback device, or the two files swapped?"
        return {key: silent for key, value in result.items() if value is None}
    why: dict[str, str] = {}
    if result["erle_db"] is None:
        why["erle_db"] = f"the speaker track is audible only in the first {ERLE_SKIP_S:.0f} s, which ERLE leaves out (the canceller converging)"
    if result["delay_ms"] is None:
        heard_s = sum(far) * frame_ms / 1000
        why["delay_ms"] = f"no echo of the speaker track found in the mic track over {heard_s:.1f} s of speaker audio (it takes about {DELAY_NEEDS_S:.0f} s the mic hears)"
    if result["room"] is None:
        graded = grade_summary(grades) if grades else f"no {REPLY_S:.0f} s piece of the take was graded"
        why["room"] = unjudged or f"{graded}: a piece is graded when the speaker is loud for 3 s of it after the canceller's first 3 s; record a longer take"
    return why


def why_unjudged(delay_ms: float | None, erle_db: float | None, heard_room: bool, speaker_from_s: float = 0.0) -> str | None:
    """Why the take cannot judge the room, or None when it can: the canceller found the speaker's
    echo (not before the speaker track) and took MIN_JUDGED_ERLE_DB off it, and the room's own
    noise was heard (the grade takes it out)."""
    if delay_ms is None:
        return "no echo of the speaker track found in the mic track, so the room cannot be judged"
    if delay_ms < 0 and not speaker_from_s:  # no --speaker-from to make smaller: the order, most likely
        return (
            f"the echo came {-delay_ms:g} ms before the speaker track, so the room is not judged: "
            "are the two files the other way round? the microphone's recording comes first, then what the speaker played"
        )
    if delay_ms < 0:
        return (
            f"the echo came {-delay_ms:g} ms before the speaker track, so the room is not judged: "
            "the speaker started earlier in the mic recording than --speaker-from says (a smaller value, 1.9 for the README's sleep 2)"
        )
    if erle_db is None or erle_db < MIN_JUDGED_ERLE_DB:
        return (
            f"the canceller took under {MIN_JUDGED_ERLE_DB:g} dB off the speaker's echo, so the room is not judged: the tracks may not line up "
            "(--speaker-from: when the speaker started in the mic recording) or the echo path is beyond the canceller's reach"
        )
    if not heard_room:
        return "the speaker never paused, so the room's own noise was not heard (the grade takes it out): record 2 s of the room alone first and give --speaker-from (1.9: README)"
    return None
