"""The echo canceller's grade of the room kept in the state dir across restarts (service/roomgrade.py):
a hall's first replies after a reboot stay off the uplink; the file is untrusted (the SD card's)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from conftest import KioskThread, kiosk_settings, wait_for

from edge_agent.audio.echograde import KEPT_REPLIES, MIN_GRADED_FRAMES, EchoGrade
from edge_agent.core import config
from edge_agent.core.statefiles import ECHO_GRADE_FILE, LEDGER_FILE
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.fleet.discovery_sync import DiscoveryLedger, Owner
from edge_agent.service.doctor import Doctor
from edge_agent.service.roomgrade import MAX_FILE_BYTES, RoomGradeFile, hardware_of

HW = "in=hw:1 out=hw:2 delay_ms=0"


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def graded(*erle_db: float) -> EchoGrade:
    """A grade that heard these replies (each long enough, the room's noise on both sides)."""
    grade = EchoGrade()
    for db in erle_db:
        for _ in range(MIN_GRADED_FRAMES):
            grade.frame(10.0 ** (db / 10.0) + 1.0, 2.0, 1.0)
        grade.reply_ended()
    return grade


def test_a_poor_room_is_poor_again_at_once_after_a_restart(tmp_path: Path) -> None:
    hall = graded(11.3, 10.6)
    assert hall.poor
    kept = RoomGradeFile(tmp_path, HW, hall)
    kept.keep()
    assert _mode(tmp_path / ECHO_GRADE_FILE) == 0o600 and kept.fault is None
    after_reboot = EchoGrade()
    RoomGradeFile(tmp_path, HW, after_reboot)
    assert after_reboot.poor and list(after_reboot.replies) == pytest.approx([11.3, 10.6], abs=0.01)
    # one reply the canceller copes with clears it, as before a restart
    after_reboot.restore([*after_reboot.replies, 41.0])
    assert not after_reboot.poor


def test_keep_writes_only_when_a_reply_was_graded(tmp_path: Path) -> None:
    grade = graded(40.0)
    kept = RoomGradeFile(tmp_path, HW, grade)
    kept.keep()
    assert len(json.loads((tmp_path / ECHO_GRADE_FILE).read_text())["replies_erle_db"]) == 1
    (tmp_path / ECHO_GRADE_FILE).write_text("overwritten by hand")
    kept.keep()  # nothing new graded: not written again
    assert (tmp_path / ECHO_GRADE_FILE).read_text() == "overwritten by hand"
    for _ in range(MIN_GRADED_FRAMES):
        grade.frame(11.0, 2.0, 1.0)
    grade.reply_ended()
    kept.keep()
    assert len(json.loads((tmp_path / ECHO_GRADE_FILE).read_text())["replies_erle_db"]) == 2


def test_other_audio_devices_start_a_fresh_grade(tmp_path: Path) -> None:
    RoomGradeFile(tmp_path, HW, graded(11.0, 12.0)).keep()
    audio = config.from_dict({"audio": {"input": "hw:3", "output": "hw:2"}}).audio
    moved = EchoGrade()
    RoomGradeFile(tmp_path, hardware_of(audio), moved)
    assert not moved.poor and not moved.replies


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": [11.0, 1',  # a torn write
        b'{"version": 1, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": [NaN, 10.0]}',
        b'{"version": 1, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": [-1e308, 10.0]}',
        b'{"version": 1, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": [true, false]}',
        b'{"version": 1, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": ["11", "10"]}',
        b'{"version": 1, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": [' + b"10.0, " * KEPT_REPLIES + b"10.0]}",
        b'{"version": 2, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": [11.0, 10.0]}',
        b'{"version": 1, "hardware": null, "replies_erle_db": [11.0, 10.0]}',
        b"[11.0, 10.0]",
        b"\xff\xfe not text",
        b'{"version": 1, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": [11.0, 10.0]}' + b" " * MAX_FILE_BYTES,
    ],
    ids=["torn", "nan", "huge-number", "bools", "strings", "too-many", "version", "no-hardware", "not-an-object", "not-utf8", "huge-file"],
)
def test_a_file_that_is_not_a_valid_grade_is_ignored_with_one_warning(tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / ECHO_GRADE_FILE).write_bytes(content)
    grade = EchoGrade()
    with caplog.at_level(logging.INFO):
        RoomGradeFile(tmp_path, HW, grade)
    assert not grade.poor and not grade.replies
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert "grading the room afresh" in caplog.text


def test_a_write_that_fails_is_logged_once_and_leaves_the_kiosk_running(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / ECHO_GRADE_FILE).mkdir()  # stands in for a full or read-only card: the rename fails (as root too)
    grade = graded(11.0, 12.0)
    kept = RoomGradeFile(tmp_path, HW, grade)
    with caplog.at_level(logging.WARNING):
        kept.keep()
        assert kept.fault is not None
        grade.restore([13.0])
        assert not kept.save(grade.replies)
    assert caplog.text.count("cannot write") == 1
    assert grade.poor is False  # restore([13.0]): one reply is not a poor room
    (tmp_path / ECHO_GRADE_FILE).rmdir()
    assert kept.save([11.0, 12.0]) and kept.fault is None


def test_the_state_dir_is_made_private_with_all_the_kiosks_own_files_in_it(tmp_path: Path) -> None:
    """The store tightens a state dir made by hand (0755) only when it holds nothing but the
    kiosk's files: with the discovery ledger or the echo grade in it, it was left 0755."""
    old = os.umask(0o022)
    try:
        state = tmp_path / "state"
        state.mkdir(mode=0o755)
        DiscoveryLedger(state).save([Owner("homeassistant", "kiosk-1")])
        RoomGradeFile(state, HW).save([11.0])
        assert _mode(state / LEDGER_FILE) == 0o600 and _mode(state / ECHO_GRADE_FILE) == 0o600
        SessionStore(state).close()
        assert _mode(state) == 0o700 and _mode(state / DB_NAME) == 0o600
    finally:
        os.umask(old)


def test_the_daemon_starts_with_the_kept_grade_and_keeps_a_new_one(tmp_path: Path, sim: AgentSimulator) -> None:
    """The daemon's canceller starts from the file (poor at once, before any reply) and a reply it
    grades goes back to the file while the kiosk is idle. The reply is fed to the canceller's own
    grade on the loop, as its audio path does (a whole hall's replies are test_echo's)."""
    settings = kiosk_settings(tmp_path, sim.url, audio={"echo_cancel": True})
    state = settings.device.state_dir
    state.mkdir(parents=True)
    RoomGradeFile(state, hardware_of(settings.audio), graded(11.3, 10.6)).keep()
    with KioskThread(settings) as k:
        grade = k.kiosk.echo.grade
        assert grade.poor and k.on_loop(k.kiosk.metrics)["echo_poor_room"] is True

        def a_reply_the_canceller_coped_with() -> None:
            for _ in range(MIN_GRADED_FRAMES):
                grade.frame(10.0**4.1 + 1.0, 2.0, 1.0)
            grade.reply_ended()

        k.on_loop(a_reply_the_canceller_coped_with)
        assert not grade.poor
        kept = wait_for(lambda: json.loads((state / ECHO_GRADE_FILE).read_text())["replies_erle_db"][2:], 5, "the new grade kept")
        assert kept == [pytest.approx(41.0, abs=0.1)]
    after_reboot = EchoGrade()
    RoomGradeFile(state, hardware_of(settings.audio), after_reboot)
    assert not after_reboot.poor and len(after_reboot.replies) == 3


def test_doctor_warns_of_a_room_the_canceller_does_not_cope_with(tmp_path: Path) -> None:
    settings = kiosk_settings(tmp_path, "wss://agent.example:443/millis", audio={"echo_cancel": True})
    lines: list[str] = []
    doctor = Doctor(settings, out=lines.append, service_active=lambda: False)
    doctor.echo_room()
    assert lines == []  # nothing kept yet: nothing to say
    settings.device.state_dir.mkdir(parents=True)
    RoomGradeFile(settings.device.state_dir, hardware_of(settings.audio)).save([41.0, 12.0])
    doctor.echo_room()
    assert lines == []  # one reply reached the line: the canceller copes
    RoomGradeFile(settings.device.state_dir, hardware_of(settings.audio)).save([11.3, 10.6])
    doctor.echo_room()
    assert len(lines) == 1 and lines[0].startswith("WARN  echo: the echo canceller does not cope with this room") and "11.3 dB" in lines[0]
    assert doctor.failed == 0 and list(settings.device.state_dir.iterdir()) == [settings.device.state_dir / ECHO_GRADE_FILE]
