"""The echo canceller's grade of the room kept in the state dir across restarts (service/roomgrade.py):
a hall's first replies after a reboot stay off the uplink; the file is untrusted (the SD card's)."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, KioskThread, Observer, kiosk_settings, wait_for

from edge_agent.audio.echograde import KEPT_REPLIES, MAX_ERLE_DB, MIN_GRADED_FRAMES, EchoGrade
from edge_agent.core import config
from edge_agent.core.statefiles import ECHO_GRADE_FILE, LEDGER_FILE
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.fleet.discovery_sync import DiscoveryLedger, Owner
from edge_agent.fleet.view import FleetView
from edge_agent.service.doctor import Doctor
from edge_agent.service.roomgrade import MAX_FILE_BYTES, RoomGradeFile, grade_summary, hardware_of, room_verdict

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


@pytest.mark.parametrize(
    ("replies_erle_db", "verdict", "said"),
    [
        ([], None, "no grade kept yet"),
        ([41.0], "copes", "the echo canceller copes with this room (one reply took 41.0 dB off)"),
        ([12.0], None, "not judged yet (one reply took 12.0 dB off; 2 replies needed)"),
        ([12.0, 14.0], "poor", "a room the echo canceller does not cope with"),
        ([12.0, 41.0], "copes", "the echo canceller copes with this room"),
        # the grade's ceiling is no figure: it said "took 60.0 dB off" as if measured
        ([12.0, 60.0], "copes", "the echo canceller copes with this room (the best of the last 2 replies took 60 dB or more off, the echo left under the room's noise)"),
    ],
)
def test_what_is_said_of_a_kept_grade_is_what_the_daemon_does_with_it(replies_erle_db: list[float], verdict: str | None, said: str) -> None:
    """The doctor's and the installer's line (`grade_summary`) and the JSON verdict (`room_verdict`)
    say what the daemon does: one reply over the line clears the room at once (it said "not
    judged yet" there, while the daemon and `room` said it copes)."""
    restored = EchoGrade()
    restored.restore(replies_erle_db)
    assert room_verdict(replies_erle_db) == verdict
    assert restored.poor == (verdict == "poor")
    assert grade_summary(replies_erle_db).startswith(said), grade_summary(replies_erle_db)


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
        b'{"version": 1, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": [1' + b"0" * 400 + b', 10.0]}',
        b"[" * 1500 + b"]" * 1500,
        b'{"version": true, "hardware": "in=hw:1 out=hw:2 delay_ms=0", "replies_erle_db": [11.0, 10.0]}',
    ],
    ids=["torn", "nan", "huge-number", "bools", "strings", "too-many", "version", "no-hardware", "not-an-object", "not-utf8", "huge-file", "huge-int", "nested", "version-true"],
)
def test_a_file_that_is_not_a_valid_grade_is_ignored_with_one_warning(tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / ECHO_GRADE_FILE).write_bytes(content)
    grade = EchoGrade()
    with caplog.at_level(logging.INFO):
        RoomGradeFile(tmp_path, HW, grade)
    assert not grade.poor and not grade.replies
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert "grading the room afresh" in caplog.text


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_path_that_is_no_regular_file_neither_blocks_nor_stops_the_start(tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """A FIFO at the path blocked the daemon's start (and the doctor) until something wrote to it."""
    path = tmp_path / ECHO_GRADE_FILE
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    grade = EchoGrade()
    with caplog.at_level(logging.WARNING):
        start = threading.Thread(target=RoomGradeFile, args=(tmp_path, HW, grade), daemon=True)
        start.start()
        start.join(5.0)
    assert not start.is_alive(), "blocked on the path"
    assert not grade.replies and "grading the room afresh" in caplog.text


def test_a_link_or_a_leftover_beside_the_file_is_neither_followed_nor_kept(tmp_path: Path) -> None:
    """The temporary file had a fixed name, opened without O_EXCL: a link there had the write
    truncate and overwrite its target (and, as root, chown it to the state dir's owner); a
    leftover 0644 one made the grade file 0644. Temporary files a power cut left go at the next
    write (a link among them: the link, not its target)."""
    victim = tmp_path / "victim"
    victim.write_text("not the kiosk's")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / f"{ECHO_GRADE_FILE}.tmp").symlink_to(victim)
    assert RoomGradeFile(state, HW).save([11.0])
    assert victim.read_text() == "not the kiosk's" and not (state / f"{ECHO_GRADE_FILE}.tmp").is_symlink()
    (state / f"{ECHO_GRADE_FILE}.tmp").write_text("left over")
    (state / f"{ECHO_GRADE_FILE}.tmp").chmod(0o644)
    assert RoomGradeFile(state, HW).save([12.0])
    assert _mode(state / ECHO_GRADE_FILE) == 0o600
    (state / f"{ECHO_GRADE_FILE}.tmpk3x9q1").write_text("a power cut mid-write")
    assert RoomGradeFile(state, HW).save([13.0])
    assert sorted(p.name for p in state.iterdir()) == [ECHO_GRADE_FILE]  # leftovers go at the next write
    assert victim.read_text() == "not the kiosk's"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a file root writes in a service user's state dir")
def test_a_grade_written_as_root_goes_to_the_state_dirs_owner(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    assert RoomGradeFile(state, HW).save([11.0])
    assert (state / ECHO_GRADE_FILE).stat().st_uid == 65534


def test_a_reply_graded_far_under_its_echo_is_clamped_within_the_files_range() -> None:
    """A grade is kept within +-MAX_ERLE_DB, the range the file accepts back."""
    grade = EchoGrade()
    for _ in range(MIN_GRADED_FRAMES):
        grade.frame(2.0, 1e9, 1.0)  # the canceller's output far louder than its input
    grade.reply_ended()
    assert list(grade.replies) == [-MAX_ERLE_DB]


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


@pytest.mark.slow
def test_doctor_warns_of_a_room_the_canceller_does_not_cope_with(tmp_path: Path, sim: AgentSimulator) -> None:
    settings = kiosk_settings(tmp_path, sim.url, audio={"echo_cancel": True})
    state = settings.device.state_dir

    def doctor(kind: str = "WARN  echo room") -> list[str]:
        lines: list[str] = []
        Doctor(settings, meter_s=0.1, out=lines.append, service_active=lambda: False).run()
        return [line for line in lines if line.startswith(kind)]

    assert doctor() == [] and doctor("PASS  echo room") == ["PASS  echo room: no grade kept yet (the canceller grades the room on the agent's first replies)"]
    state.mkdir(parents=True, exist_ok=True)
    RoomGradeFile(state, hardware_of(settings.audio)).save([41.0, 12.0])
    assert doctor() == []  # one reply reached the line: the canceller copes
    assert doctor("PASS  echo room") == ["PASS  echo room: the echo canceller copes with this room (the best of the last 2 replies took 41.0 dB off)"]
    RoomGradeFile(state, hardware_of(settings.audio)).save([11.3, 10.6])
    warned = doctor()
    assert len(warned) == 1 and warned[0].startswith("WARN  echo room: a room the echo canceller does not cope with") and "11.3 dB off" in warned[0], warned
    assert f"forget_echo_grade, or stop the service, delete {state / ECHO_GRADE_FILE}, start it" in warned[0]
    (state / ECHO_GRADE_FILE).write_text("{")
    warned = doctor()
    assert len(warned) == 1 and f"ignoring {state / ECHO_GRADE_FILE}" in warned[0] and "grades the room afresh at its next start" in warned[0], warned
    assert sorted(p.name for p in state.iterdir()) == [ECHO_GRADE_FILE]  # the doctor changed nothing
    off = kiosk_settings(tmp_path, sim.url, audio={"echo_cancel": False})
    lines: list[str] = []
    Doctor(off, meter_s=0.1, out=lines.append, service_active=lambda: False).run()
    assert not [line for line in lines if line.startswith("WARN  echo")]  # no canceller: no grade to speak of


def test_with_echo_cancellation_off_a_kept_grade_is_neither_used_nor_reported(tmp_path: Path, sim: AgentSimulator) -> None:
    """Turned off in a hall, the kiosk restored the hall's grade and reported a poor room for good
    (nothing grades it again), while the doctor said nothing."""
    settings = kiosk_settings(tmp_path, sim.url, audio={"echo_cancel": False})
    state = settings.device.state_dir
    state.mkdir(parents=True)
    RoomGradeFile(state, hardware_of(settings.audio), graded(11.3, 10.6)).keep()
    with KioskThread(settings) as k:
        metrics = k.on_loop(k.kiosk.metrics)
        assert metrics["echo_poor_room"] is None and metrics["echo_reply_erle_db"] is None  # no canceller: unknown, not "copes"
    assert json.loads((state / ECHO_GRADE_FILE).read_text())["replies_erle_db"] == [11.3, 10.6]  # kept for when it is on again


def test_a_reply_graded_in_a_conversation_is_kept_when_it_ends_or_the_kiosk_stops(tmp_path: Path, sim: AgentSimulator) -> None:
    """No write in the middle of a conversation (an SD card's write stalls the loop the audio
    runs on); once idle, or when the service stops mid-conversation, the grade goes to the file."""
    settings = kiosk_settings(tmp_path, sim.url, audio={"echo_cancel": True})
    state = settings.device.state_dir
    path = state / ECHO_GRADE_FILE

    def grades() -> list[float]:
        return json.loads(path.read_text())["replies_erle_db"] if path.exists() else []  # type: ignore[no-any-return]

    with KioskThread(settings) as k:
        grade = k.kiosk.echo.grade

        def reply(erle_db: float) -> None:
            for _ in range(MIN_GRADED_FRAMES):
                grade.frame(10.0 ** (erle_db / 10.0) + 1.0, 2.0, 1.0)
            grade.reply_ended()

        k.press()
        k.wait_state("listening")
        k.on_loop(lambda: reply(41.0))
        time.sleep(1.0)  # four ticks
        assert grades() == []  # not mid-conversation
        k.press()  # ends it
        k.wait_state("idle")
        wait_for(lambda: grades() == [41.0], 5, "the grade kept once idle")
        k.press()
        k.wait_state("listening")
        k.on_loop(lambda: reply(12.0))
    assert grades() == [41.0, 12.0]  # kept on stop, the conversation still running


def test_a_fifo_at_the_discovery_ledger_does_not_block_the_reporter(tmp_path: Path) -> None:
    """The ledger was read with a plain open: a FIFO there blocked MQTT discovery's start."""
    os.mkfifo(tmp_path / LEDGER_FILE)
    found: list[list[Owner]] = []
    reader = threading.Thread(target=lambda: found.append(DiscoveryLedger(tmp_path).load()), daemon=True)
    reader.start()
    reader.join(5.0)
    assert not reader.is_alive() and found == [[]]


def test_a_fleet_admin_forgets_the_grade_of_a_moved_kiosk_over_mqtt(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """Deleting the file under a running kiosk did not reset it (the grade in memory went back to
    the file at the next graded reply); `forget_echo_grade` drops both, and says when it cannot."""
    settings = kiosk_settings(tmp_path, sim.url, audio={"echo_cancel": True}, mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port, "discovery": False})
    state = settings.device.state_dir
    state.mkdir(parents=True)
    RoomGradeFile(state, hardware_of(settings.audio), graded(11.3, 10.6)).keep()
    obs = Observer(broker.port, "edge-agent/test-kiosk/#")
    try:
        with KioskThread(settings) as k:
            assert k.kiosk.echo.grade.poor
            obs.wait("edge-agent/test-kiosk/availability", lambda p: p == b"online")
            time.sleep(0.3)  # the kiosk's subscription is in place once it has said online

            def command(cid: str) -> dict[str, Any]:
                mark = len(obs.messages)
                obs.client.publish("edge-agent/test-kiosk/cmd", json.dumps({"action": "forget_echo_grade", "id": cid}), qos=1)
                return json.loads(obs.wait("edge-agent/test-kiosk/cmd/result", lambda p: json.loads(p).get("id") == cid, since=mark))  # type: ignore[no-any-return]

            assert command("g1")["ok"] is True
            assert not k.kiosk.echo.grade.poor and not k.kiosk.echo.grade.replies and not (state / ECHO_GRADE_FILE).exists()
            assert k.on_loop(k.kiosk.metrics)["echo_poor_room"] is False
            (state / ECHO_GRADE_FILE).mkdir()  # a file that cannot be deleted
            failed = command("g2")
            assert failed["ok"] is False and failed["error"].startswith(f"cannot delete {state / ECHO_GRADE_FILE}"), failed
    finally:
        obs.close()


def test_the_fleet_view_shows_which_kiosks_stand_in_a_room_the_canceller_does_not_cope_with() -> None:
    view = FleetView("edge-agent")
    view.apply("edge-agent/hall/metrics", json.dumps({"echo_poor_room": True}).encode(), now=100.0)
    view.apply("edge-agent/desk/metrics", json.dumps({"echo_poor_room": False}).encode(), now=100.0)
    view.apply("edge-agent/plain/metrics", json.dumps({"echo_poor_room": None}).encode(), now=100.0)
    view.apply("edge-agent/odd/metrics", json.dumps({"echo_poor_room": "yes"}).encode(), now=100.0)  # anyone's message
    rows = {r["id"]: r["echo_poor_room"] for r in view.snapshot()}
    assert rows == {"hall": True, "desk": False, "plain": None, "odd": None}
    lines = view.render(now=101.0).splitlines()
    echo = lines[0].index(" echo") + 1
    assert {line.split()[0]: line[echo : echo + 5].strip() for line in lines[2:]} == {"desk": "ok", "hall": "POOR", "odd": "-", "plain": "-"}
