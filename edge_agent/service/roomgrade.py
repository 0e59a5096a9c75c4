"""RoomGradeFile: the echo canceller's grade of the kiosk's room, kept across restarts.

The canceller learns from the agent's replies whether it copes with the room (audio/echograde.py);
in a hall it does not, and until two replies are graded the agent's own voice reaches the gate and
the agent answers itself. Learned again after every reboot, a hall's first two replies after each
power cut or update would leak. So the grades of the latest replies are kept in
`<state_dir>/echo-grade.json`, for the microphone and speaker they were measured with (as the
config names them: `default` stays `default` when a USB device is swapped): other devices (or
another echo delay) start a fresh grade. A kiosk carried to another room with the
same devices keeps its old grades until the new room's replies replace them: one reply the
canceller copes with clears a poor grade; a room that turned poor takes the kept replies.

The file is the SD card's, so untrusted: anything but a short list of grades within range (a
torn write, another program's file, a huge one) is ignored with one warning and a fresh grade.
A write that fails (full or read-only card) is logged once per reason; the kiosk carries on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from edge_agent.audio.echograde import GRADED_REPLIES, KEPT_REPLIES, MAX_ERLE_DB, POOR_ERLE_DB, EchoGrade
from edge_agent.core.config_audio import AudioSettings
from edge_agent.core.statefiles import ECHO_GRADE_FILE, read_small_file, write_private

log = logging.getLogger(__name__)

VERSION = 1
MAX_FILE_BYTES = 4096
"""Larger than any file this module writes: a bigger one is not ours and is not parsed."""


class RoomGradeFile:
    """Loads and saves the latest replies' grades (ERLE in dB, oldest first) for `hardware`, a
    string naming the devices and echo settings they were measured with. Given the canceller's
    `grade`, restores it from the file at once and `keep` writes its new grades back."""

    def __init__(self, state_dir: Path, hardware: str, grade: EchoGrade | None = None) -> None:
        self.path = Path(state_dir) / ECHO_GRADE_FILE
        self.hardware = hardware
        self.fault: str | None = None
        """Why the last save failed (None: saved, or nothing saved yet)."""
        self.grade = grade
        self._kept = 0  # grade.graded when last written (or tried)
        if grade is not None and (kept := self.load()):
            grade.restore(kept)
            log.info("echo grade kept from before: %s", grade_summary(kept))

    def keep(self) -> None:
        """Writes the grade if a reply was graded since the last write (called while the kiosk is
        idle, and on stop: a write never lands in the middle of a reply). A failed write is not
        tried again until the next graded reply."""
        if self.grade is not None and self.grade.graded != self._kept:
            self._kept = self.grade.graded
            self.save(self.grade.replies)

    def forget(self) -> str | None:
        """The kiosk was moved to another room (MQTT `forget_echo_grade`): the grade in memory and
        the file go, and the room is graded afresh from the next replies. Why the file could not
        be deleted, if it could not (the grade in memory is gone either way)."""
        if self.grade is not None:
            self.grade.restore([])
            self._kept = self.grade.graded
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            return f"cannot delete {self.path}: {exc.strerror or exc}"
        log.info("echo grade forgotten: the room is graded afresh")
        return None

    def read(self) -> tuple[list[float], str | None]:
        """The kept grades, and why there are none when a file was there but is not used (other
        devices, unreadable, or not a valid grade file); changes nothing."""
        try:
            hardware, grades = _parse(json.loads(read_small_file(self.path, MAX_FILE_BYTES).decode("utf-8")))
        except FileNotFoundError:
            return [], None
        except OSError as exc:
            return [], f"cannot read {self.path} ({exc.strerror or exc})"
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError; RecursionError: nested [[[...
            return [], f"ignoring {self.path} ({exc})"
        if hardware != self.hardware:
            return [], f"{self.path} was measured with other audio devices ({_clip(repr(hardware), 120)})"
        return grades, None

    def load(self) -> list[float]:
        """`read`, saying in the log why a file there is not used (the room is then graded afresh)."""
        grades, problem = self.read()
        if problem:
            log.warning("echo grade: %s; grading the room afresh", problem)
        return grades

    def save(self, replies_erle_db: Iterable[float]) -> bool:
        """Replaces the file with these grades (durable on return); False if it could not."""
        grades = [round(float(g), 2) for g in replies_erle_db][-KEPT_REPLIES:]
        text = json.dumps({"version": VERSION, "hardware": self.hardware, "replies_erle_db": grades})
        try:
            write_private(self.path, text)
        except OSError as exc:
            fault = f"{exc.strerror or exc}"
            if fault != self.fault:
                log.warning("echo grade: cannot write %s (%s); a restart goes on from the last grade written", self.path, fault)
            self.fault = fault
            return False
        self.fault = None
        return True


def _parse(data: object) -> tuple[str, list[float]]:
    """(hardware, grades) of a file's JSON; ValueError naming what is wrong."""
    if not isinstance(data, dict) or type(data.get("version")) is not int or data["version"] != VERSION:
        raise ValueError(f"not a version {VERSION} echo grade")
    hardware, grades = data.get("hardware"), data.get("replies_erle_db")
    if not isinstance(hardware, str):
        raise ValueError("no hardware named")
    if not isinstance(grades, list) or len(grades) > KEPT_REPLIES:
        raise ValueError(f"replies_erle_db must be a list of at most {KEPT_REPLIES} grades")
    for g in grades:
        # type() rather than isinstance: a bool is no grade; compared before isfinite, which an
        # int of 400 digits overflows
        if type(g) not in (int, float) or not -MAX_ERLE_DB <= g <= MAX_ERLE_DB:
            raise ValueError(f"a grade must be a number of dB within +-{MAX_ERLE_DB:g}, got {_clip(repr(g))}")
    return hardware, [float(g) for g in grades]


def _clip(text: str, most: int = 24) -> str:
    return text if len(text) <= most else f"{text[: most - 12]}... ({len(text)} characters)"


def hardware_of(audio: AudioSettings) -> str:
    """What a grade was measured with: the microphone, the speaker and the configured echo delay."""
    return f"in={audio.input} out={audio.output} delay_ms={audio.echo_delay_ms}"


def _judged(replies_erle_db: list[float]) -> EchoGrade:
    """A grade that heard these replies, judged as the canceller judges its own."""
    grade = EchoGrade()
    grade.restore(replies_erle_db)
    return grade


def grade_summary(replies_erle_db: list[float]) -> str:
    """One line on kept grades: none yet, not judged yet, the canceller copes, or a poor room."""
    grade = _judged(replies_erle_db)
    best_db = grade.best_db
    if best_db is None:
        return "no grade kept yet (the canceller grades the room on the agent's first replies)"
    n = len(grade.replies)
    # a grade at the ceiling is no measurement: the echo left was lost in the room's noise
    took = f"took {MAX_ERLE_DB:.0f} dB or more off, the echo left under the room's noise" if best_db >= MAX_ERLE_DB else f"took {best_db:.1f} dB off"
    best = f"the best of the last {n} replies {took}" if n > 1 else f"one reply {took}"
    verdict = _verdict(grade)
    if verdict == "poor":
        return f"a room the echo canceller does not cope with ({best})"
    if verdict is None:
        return f"not judged yet ({best}; {GRADED_REPLIES} replies needed)"
    return f"the echo canceller copes with this room ({best})"


def room_verdict(replies_erle_db: list[float]) -> str | None:
    """"poor" (a room the canceller does not cope with), "copes" (a reply reached POOR_ERLE_DB),
    or None (not judged: fewer than GRADED_REPLIES grades, none good), as the daemon judges."""
    return _verdict(_judged(replies_erle_db))


def _verdict(grade: EchoGrade) -> str | None:
    """The daemon's verdict on a grade: "poor", "copes" (one reply over the line clears the room),
    or None."""
    if grade.poor:
        return "poor"
    return "copes" if grade.best_db is not None and grade.best_db >= POOR_ERLE_DB else None


def poor_room_warning(replies_erle_db: list[float], path: Path) -> str | None:
    """What `doctor` says of kept grades that make the room poor (None: it is not, or not yet known)."""
    if not _judged(replies_erle_db).poor:
        return None
    return (
        f"{grade_summary(replies_erle_db)}, under {POOR_ERLE_DB:g} (or visitors talked over all of them): a visitor is heard over the agent "
        "only when louder than its echo. A speaker nearer the microphone or fewer hard walls may help, or duplex = \"half\" with "
        f"echo_cancel = false. After moving the kiosk: the MQTT command forget_echo_grade, or stop the service, delete {path}, start it"
    )
