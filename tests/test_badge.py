"""Badge/QR readers: the scan parser as a pure function of evdev InputEvents, the reader fed
through a FIFO with the same parsing code, a kiosk starting that person's conversation, and a
uinput virtual keyboard where the kernel has one (not here: it skips with the reason)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import evdev
import pytest
from conftest import Broker, KioskThread, Observer, kiosk_events, kiosk_settings, wait_for
from evdev import InputEvent, ecodes
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core import conversation as c
from edge_agent.core.config import from_dict
from edge_agent.core.config_hardware import BadgeSettings
from edge_agent.core.slots import BadgeKeyer
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.hardware.badge import EVENT_SIZE, KEYMAP, BadgeReader, ScanParser, decode_records, event_records, typed

SECRET = b"fleet-secret-0123456789abcdef"


def _settings(**badge: Any) -> BadgeSettings:
    return from_dict({"badge": badge}).badge


def _feed(parser: ScanParser, events: list[tuple[float, int, int, int]]) -> list[str]:
    out = []
    for at, etype, code, value in events:
        sec = int(at)
        scan = parser.feed(InputEvent(sec, round((at - sec) * 1e6), etype, code, value))
        if scan is not None:
            out.append(scan)
    return out


def test_typed_ids_with_shift_become_scans() -> None:
    parser = ScanParser(_settings(charset="printable"))
    assert _feed(parser, typed("04A2:ff-Zz/q?", start_s=100.0)) == ["04A2:ff-Zz/q?"]
    assert _feed(ScanParser(_settings()), typed("Badge0042", start_s=5.0)) == ["Badge0042"]
    assert parser.counts["scans"] == 1


def test_a_hex_id_is_one_person_in_capitals_or_small_letters() -> None:
    """The same card through a reader typing capitals and one typing small letters (or with Caps
    Lock on) keyed as two people: two slots, the conversation not following the person."""
    parser = ScanParser(_settings(charset="hex"))
    assert _feed(parser, typed("04A3B2FF", start_s=1.0)) == _feed(parser, typed("04a3b2ff", start_s=2.0)) == ["04a3b2ff"]
    assert _feed(ScanParser(_settings(charset="alnum")), typed("Ab12", start_s=1.0)) == ["Ab12"]  # letters that are letters stay


def test_caps_lock_keypad_autorepeat_and_key_up_are_understood() -> None:
    parser = ScanParser(_settings())
    k = ecodes
    events = [(1.0, k.EV_KEY, k.KEY_CAPSLOCK, 1), (1.0, k.EV_KEY, k.KEY_A, 1), (1.0, k.EV_KEY, k.KEY_A, 2), (1.0, k.EV_KEY, k.KEY_A, 0)]
    events += [(1.01, k.EV_KEY, k.KEY_CAPSLOCK, 1), (1.02, k.EV_KEY, k.KEY_B, 1), (1.03, k.EV_KEY, k.KEY_KP7, 1), (1.04, k.EV_KEY, k.KEY_3, 1)]
    events += [(1.05, k.EV_MSC, k.MSC_SCAN, 458792), (1.05, k.EV_KEY, k.KEY_KPENTER, 1)]
    assert _feed(parser, events) == ["Ab73"]


@pytest.mark.parametrize("charset", ["digits", "alnum"])
def test_a_shift_or_caps_lock_left_by_a_torn_scan_does_not_type_later_badges(charset: str) -> None:
    """Shift went down and its key-up never came (the reader unplugged mid-scan, events dropped):
    every later badge was typed shifted, so with `digits` each was refused as bad_chars and with
    `alnum` each became another slot key, until the daemon restarted."""
    k = ecodes
    badge = "12345678" if charset == "digits" else "badge42"
    parser = ScanParser(_settings(charset=charset))
    _feed(parser, [(20.0, k.EV_KEY, k.KEY_LEFTSHIFT, 1), (20.0, k.EV_KEY, k.KEY_A, 1)])  # torn: no key-up, no Enter
    assert [_feed(parser, typed(badge, start_s=3600.0 + 10 * i)) for i in range(3)] == [[badge]] * 3
    # the kernel says it dropped events (SYN_DROPPED): what follows at once is the torn scan's rest
    # (dropped, test_badge_helper.py); the next scan, after a pause, is typed unshifted
    _feed(parser, [(4000.0, k.EV_KEY, k.KEY_RIGHTSHIFT, 1), (4000.0, k.EV_KEY, k.KEY_CAPSLOCK, 1), (4000.0, k.EV_SYN, k.SYN_DROPPED, 0)])
    assert _feed(parser, typed(badge, start_s=4000.5)) == [badge]
    # Caps Lock left on by one scan (its second press lost) does not carry into the next
    _feed(parser, [(5000.0, k.EV_KEY, k.KEY_CAPSLOCK, 1), *typed(badge, start_s=5000.001)])
    assert _feed(parser, typed(badge, start_s=5000.5)) == [badge]


def test_what_is_not_a_scan_is_dropped_and_counted() -> None:
    parser = ScanParser(_settings(charset="digits", min_length=4, max_length=8, key_gap_ms=50))
    assert _feed(parser, typed("12", start_s=1.0)) == []  # too short
    assert _feed(parser, typed("1234567890123", start_s=2.0)) == []  # too long
    assert _feed(parser, typed("12ab", start_s=3.0)) == []  # not digits
    slow = typed("1234", start_s=4.0, key_s=0.3)  # a person typing: every key starts afresh
    assert _feed(parser, slow) == []
    f5 = [(5.0, ecodes.EV_KEY, ecodes.KEY_1, 1), (5.0, ecodes.EV_KEY, ecodes.KEY_F5, 1), (5.0, ecodes.EV_KEY, ecodes.KEY_2, 1)]
    assert _feed(parser, [*f5, (5.0, ecodes.EV_KEY, ecodes.KEY_3, 1), (5.0, ecodes.EV_KEY, ecodes.KEY_4, 1), (5.0, ecodes.EV_KEY, ecodes.KEY_ENTER, 1)]) == []
    assert _feed(parser, [(6.0, ecodes.EV_KEY, ecodes.KEY_ENTER, 1)]) == []  # a stray Enter: nothing
    assert parser.counts == {"scans": 0, "too_short": 1, "too_long": 1, "bad_chars": 2, "timeouts": 4}
    assert _feed(parser, typed("5678", start_s=7.0)) == ["5678"]  # and it still reads the next one


def test_tab_terminator() -> None:
    parser = ScanParser(_settings(terminator="tab"))
    assert _feed(parser, typed("abcd", terminator=ecodes.KEY_ENTER)) == []
    assert _feed(parser, typed("wxyz", start_s=1.0, terminator=ecodes.KEY_TAB)) == ["wxyz"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 1, 1, 4]),
            st.one_of(st.sampled_from(sorted(KEYMAP)), st.integers(0, 0x2FF)),
            st.sampled_from([1, 1, 1, 0, 2, -3]),
            st.sampled_from([0.0, 0.001, 0.01, 0.01, 0.05, 0.5]),
        ),
        max_size=400,
    )
)
def test_hostile_event_streams_never_crash_and_stay_bounded(events: list[tuple[int, int, int, float]]) -> None:
    parser = ScanParser(_settings(charset="printable", max_length=16))
    at = 1_000.0
    for etype, code, value, step_s in events:  # mostly key events, often fast enough to be a scan
        at += step_s
        sec = int(at)
        scan = parser.feed(InputEvent(sec, int((at - sec) * 1e6), etype, code, value))
        assert scan is None or 4 <= len(scan) <= 16
        assert len(parser._chars) <= 16


def test_records_round_trip_in_any_chunking() -> None:
    raw = event_records(typed("Hello42", start_s=12.5))
    events, rest = decode_records(raw[:-7])
    assert len(rest) == EVENT_SIZE - 7
    more, rest = decode_records(rest + raw[-7:])
    assert rest == b""
    parser = ScanParser(_settings())
    assert [s for s in map(parser.feed, events + more) if s] == ["Hello42"]


class _Emitted:
    def __init__(self) -> None:
        self.events: list[c.Event] = []

    def __call__(self, ev: c.Event) -> None:
        self.events.append(ev)


def _fifo_reader(tmp_path: Path, **badge: Any) -> tuple[BadgeReader, Path, _Emitted]:
    fifo = tmp_path / "badge.fifo"
    os.mkfifo(fifo)
    settings = _settings(device=str(fifo), secret_file=str(_secret(tmp_path)), **badge)
    reader = BadgeReader(settings, BadgeKeyer(SECRET))
    emitted = _Emitted()
    reader.start(emitted, lambda: None)
    return reader, fifo, emitted


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "badge_secret"
    path.write_bytes(SECRET + b"\n")
    return path


def _write(fifo: Path, events: list[tuple[float, int, int, int]]) -> None:
    """A writer opening the FIFO, typing, and closing it again (a device plugged and pulled)."""
    with open(fifo, "wb") as out:
        out.write(event_records(events))


def test_reader_through_a_fifo_keys_scans_and_drops_repeats(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reader, fifo, emitted = _fifo_reader(tmp_path, repeat_ignore_s=30.0, min_interval_s=0.0)
    try:
        now = time.time()
        _write(fifo, typed("ALICE0042", start_s=now) + typed("ALICE0042", start_s=now + 1))  # the same badge twice
        wait_for(lambda: emitted.events, 20, "a scan")
        key = BadgeKeyer(SECRET).slot_for("ALICE0042")
        assert emitted.events == [c.Press(origin="badge", slot=key)]
        assert key.startswith("b-") and len(key) == 34
        wait_for(lambda: reader.counts["repeats"] == 1, 20, "the repeat dropped")
        _write(fifo, typed("BOB7", start_s=now + 2))  # another writer (the reader keeps the FIFO open)
        wait_for(lambda: len(emitted.events) == 2, 20, "the next scan")
        assert emitted.events[1] == c.Press(origin="badge", slot=BadgeKeyer(SECRET).slot_for("BOB7"))
    finally:
        reader.close()
    assert "ALICE0042" not in caplog.text and "BOB7" not in caplog.text  # raw ids are never logged


class _DeviceNamedByItsMaker:
    """What python-evdev's InputDevice gives for a character device (its events come through a
    pipe), with the name a USB reader's product string gave it: a forged second log line, terminal
    escape codes (clear the screen, set the window title), a right-to-left override, and length."""

    name = "\x1b[2J\x1b]0;pwned\x07Reader\u202e\n2026-12-02 03:00:00 edge_agent: forged" + "x" * 5000

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd, self.w = os.pipe()

    def grab(self) -> None:
        pass

    def read(self) -> list[InputEvent]:
        events, _ = decode_records(os.read(self.fd, 64 * EVENT_SIZE))
        return events

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.w)


def test_a_readers_name_is_logged_on_one_printable_bounded_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import evdev

    from edge_agent.hardware.badge import MAX_NAME_CHARS

    caplog.set_level(logging.DEBUG)
    devices: list[_DeviceNamedByItsMaker] = []
    monkeypatch.setattr(evdev, "InputDevice", lambda path: devices.append(_DeviceNamedByItsMaker(path)) or devices[-1])
    settings = _settings(device="/dev/null", secret_file=str(_secret(tmp_path)))  # a character device: read through evdev
    reader = BadgeReader(settings, BadgeKeyer(SECRET))
    emitted = _Emitted()
    reader.start(emitted, lambda: None)
    try:
        wait_for(lambda: devices, 10, "the device opened")
        os.write(devices[0].w, event_records(typed("CARD0001", start_s=time.time())))
        wait_for(lambda: emitted.events, 10, "a scan through the device")
    finally:
        reader.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("badge reader: /dev/null")]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.isprintable() and "?2026-12-02" in line and "?[2J" in line, line  # one line, the codes shown as `?`
    assert len(line) <= len("badge reader: /dev/null (), grabbed") + MAX_NAME_CHARS + 3, len(line)
    assert line.endswith("...), grabbed"), line


def test_reader_waits_for_a_missing_device_and_reads_a_capture_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edge_agent.hardware.badge.REOPEN_S", 0.2)
    path = tmp_path / "capture.events"
    settings = _settings(device=str(path), secret_file=str(_secret(tmp_path)))
    reader = BadgeReader(settings, BadgeKeyer(SECRET))
    emitted = _Emitted()
    reader.start(emitted, lambda: None)
    try:
        time.sleep(0.5)  # not there (unplugged): retried
        tmp = tmp_path / "partial"
        tmp.write_bytes(event_records(typed("LATE0001", start_s=time.time())))
        tmp.rename(path)  # plugged in
        wait_for(lambda: emitted.events, 20, "a scan once the device appeared")
        assert reader.counts["reopens"] >= 1
        assert emitted.events == [c.Press(origin="badge", slot=BadgeKeyer(SECRET).slot_for("LATE0001"))]
    finally:
        reader.close()


def test_reader_flood_is_bounded(tmp_path: Path) -> None:
    reader, fifo, emitted = _fifo_reader(tmp_path, min_interval_s=30.0, max_length=8)
    try:
        now = time.time()
        flood: list[tuple[float, int, int, int]] = []
        for i in range(300):
            flood += typed(f"ID{i:05d}", start_s=now + i * 0.001, key_s=0.0001)
        flood += [(now + 1, ecodes.EV_KEY, ecodes.KEY_9, 1)] * 5000 + [(now + 1, ecodes.EV_KEY, ecodes.KEY_ENTER, 1)]
        threading.Thread(target=_write, args=(fifo, flood), daemon=True).start()
        wait_for(lambda: reader.counts["flood"] == 299 and reader.counts["too_long"] == 1, 10, "the flood counted")
        assert len(emitted.events) == 1  # one visitor got through; the rest changed nothing
    finally:
        reader.close()


def test_a_badge_scan_starts_and_switches_conversations_and_never_stores_the_id(
    tmp_path: Path, sim: AgentSimulator, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fifo = tmp_path / "badge.fifo"
    os.mkfifo(fifo)
    # the first person's badge again within a second or two: no repeat window (a card left on the reader
    # is a repeat of its own last read, however many others came between: tests/test_badgefleet2_review.py)
    badge = {"device": str(fifo), "secret_file": str(_secret(tmp_path)), "min_interval_s": 0.0, "repeat_ignore_s": 0.0}
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": broker.port}
    settings = kiosk_settings(tmp_path, sim.url, badge=badge, session={"slot_metadata_key": "visitor"}, mqtt=mqtt)
    keyer = BadgeKeyer(SECRET)
    obs = Observer(broker.port)
    with KioskThread(settings) as k:
        now = time.time()
        _write(fifo, typed("CARD1111", start_s=now))
        k.wait_state(c.LISTENING)
        first = wait_for(lambda: sim.sessions and sim.sessions[-1], 20, "a session")
        assert first.initiate["data"]["metadata"] == {"visitor": keyer.slot_for("CARD1111")}
        assert k.kiosk.conversation.whose.slot == keyer.slot_for("CARD1111")
        # someone else badges in mid-conversation: the first ends, theirs starts
        _write(fifo, typed("CARD2222", start_s=now + 1))
        wait_for(lambda: len(sim.sessions) == 2 and k.state == c.LISTENING, 10, "the second person's conversation")
        assert k.kiosk.conversation.whose.slot == keyer.slot_for("CARD2222")
        # the first person again: their conversation continues
        _write(fifo, typed("CARD1111", start_s=now + 2))
        wait_for(lambda: len(sim.sessions) == 3 and k.state == c.LISTENING, 10, "the first person again")
        assert sim.sessions[2].continued_from == first.session_id
        rows = {s.id: s for s in k.on_loop(k.kiosk.store.recent)}  # the store's connection is the loop's
        assert rows[first.session_id].slot == keyer.slot_for("CARD1111")
        assert rows[sim.sessions[1].session_id].end_reason == "switched"
        started = obs.wait("edge-agent/test-kiosk/event", lambda p: b"conversation_started" in p and keyer.slot_for("CARD2222").encode() in p)
        assert json.loads(started)["slot"] == keyer.slot_for("CARD2222")
        obs.wait("edge-agent/test-kiosk/state", lambda p: json.loads(p)["slot"] == keyer.slot_for("CARD1111"))
    obs.close()
    data = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file())
    data += b"".join(p for _, p, _, _ in obs.messages) + caplog.text.encode() + json.dumps([s.initiate for s in sim.sessions]).encode()
    assert b"CARD1111" not in data and b"CARD2222" not in data  # not in the store, MQTT, logs or the agent


@pytest.mark.skipif(not os.path.exists("/dev/uinput"), reason="no /dev/uinput on this machine (the kernel has no uinput); the FIFO tests feed the same parser")
def test_reader_on_a_uinput_virtual_keyboard(tmp_path: Path) -> None:  # pragma: no cover - needs uinput
    from evdev import UInput

    keys = [code for _, _, code, _ in typed("UINPUT42")]
    with UInput({ecodes.EV_KEY: sorted(set(keys))}, name="edge-agent-test-reader") as ui:
        time.sleep(0.3)
        settings = _settings(device=ui.device.path, secret_file=str(_secret(tmp_path)))
        reader = BadgeReader(settings, BadgeKeyer(SECRET))
        emitted = _Emitted()
        reader.start(emitted, lambda: None)
        try:
            time.sleep(0.5)
            for _, etype, code, value in typed("UINPUT42"):
                ui.write(etype, code, value)
            ui.syn()
            wait_for(lambda: emitted.events, 5, "a scan from uinput")
            assert emitted.events[0] == c.Press(origin="badge", slot=BadgeKeyer(SECRET).slot_for("UINPUT42"))
        finally:
            reader.close()


# ----------------------------------------------------------------------------- a helper's attacks on the badge path (2026-12-06), each failed before its fix
def test_a_scan_the_start_limit_refuses_does_not_end_the_running_conversation(tmp_path: Path, sim: AgentSimulator) -> None:
    """The start rate limit spent (a busy queue of visitors), Alice in her conversation: Bob's
    scan ended Alice's ("switched") and then the limit refused Bob's start. Alice was cut off
    mid-sentence for a conversation that never started; the limit should refuse Bob's scan and
    leave Alice's alone, as it leaves the kiosk alone when idle."""
    fifo = tmp_path / "badge.fifo"
    os.mkfifo(fifo)
    badge = {"device": str(fifo), "secret_file": str(_secret(tmp_path)), "min_interval_s": 0.0}
    settings = kiosk_settings(tmp_path, sim.url, badge=badge, session={"start_burst": 1, "starts_per_minute": 0.1})
    alice = BadgeKeyer(SECRET).slot_for("ALICE001")
    with KioskThread(settings) as k:
        events = kiosk_events(k)
        now = time.time()
        _write(fifo, typed("ALICE001", start_s=now))
        wait_for(lambda: k.state == c.LISTENING and k.kiosk.conversation.whose.slot == alice, 20, "alice's conversation")
        _write(fifo, typed("BOB00002", start_s=now + 1))
        wait_for(lambda: k.kiosk.conversation.starts_refused == 1, 20, "bob's start refused")
        ended = [f for kind, f in events if kind == "conversation_ended"]
        assert ended == [] and k.state == c.LISTENING and k.kiosk.conversation.whose.slot == alice, (ended, k.state)


class _UnpluggableDevice:
    """What python-evdev's InputDevice gives for a character device, its events through a pipe;
    `unplug()` makes the next read fail as a pulled USB reader's does (ENODEV)."""

    name = "Badge Reader"

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd, self.w = os.pipe()
        self.gone = False

    def grab(self) -> None:
        pass

    def unplug(self) -> None:
        self.gone = True
        os.write(self.w, b"x")

    def read(self) -> list[InputEvent]:
        if self.gone:
            raise OSError(19, "No such device")
        events, _ = decode_records(os.read(self.fd, 64 * EVENT_SIZE))
        return events

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.w)


def test_every_unplug_of_the_reader_is_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The reader works, is unplugged (logged), comes back (logged), and is unplugged again: the
    second time nothing was logged (the `failing` flag of the first was never cleared by the
    reopen that worked), so the journal said the reader was there while badges did nothing."""
    monkeypatch.setattr("edge_agent.hardware.badge.REOPEN_S", 0.1)
    caplog.set_level(logging.DEBUG)
    devices: list[_UnpluggableDevice] = []
    monkeypatch.setattr(evdev, "InputDevice", lambda path: devices.append(_UnpluggableDevice(path)) or devices[-1])
    reader = BadgeReader(_settings(device="/dev/null", secret_file=str(_secret(tmp_path))), BadgeKeyer(SECRET))
    reader.start(lambda ev: None, lambda: None)
    try:
        for i in range(2):
            wait_for(lambda i=i: len(devices) == i + 1, 10, f"open {i + 1}")
            devices[i].unplug()
        wait_for(lambda: len(devices) == 3, 10, "the third open")
    finally:
        reader.close()
    unplugs = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(unplugs) == 2, unplugs


def test_the_tail_of_a_scan_torn_by_syn_dropped_is_no_scan(tmp_path: Path) -> None:
    """The kernel's buffer overflowed mid-scan (the reader thread starved): evdev empties the
    buffer and queues SYN_DROPPED followed by the newest event, and the rest of the scan follows
    at once. The parser started afresh at SYN_DROPPED and took that tail ("0042" of
    "alice0042") for a whole scan: a stranger's slot key, which switched Alice's own
    conversation away (ended `switched`) and opened a billed session nobody owns."""
    reader, fifo, emitted = _fifo_reader(tmp_path, min_interval_s=0.0, repeat_ignore_s=0.0)
    try:
        now = time.time()
        scan = typed("alice0042", start_s=now, key_s=0.005)
        key_downs = [i for i, (_, t, _, v) in enumerate(scan) if t == ecodes.EV_KEY and v == 1]
        cut = key_downs[5]  # "alice" typed; the events of "0" onwards come after the overflow
        at = scan[cut][0]
        torn = [*scan[:2], (at, ecodes.EV_SYN, ecodes.SYN_DROPPED, 0), *scan[cut:]]
        _write(fifo, torn + typed("BOB00002", start_s=now + 5))  # and a whole scan later on
        # bob's scan comes after the tail in the same stream: once it is read, so is the tail
        wait_for(lambda: any(e == c.Press(origin="badge", slot=BadgeKeyer(SECRET).slot_for("BOB00002")) for e in emitted.events), 20, "bob's scan")
    finally:
        reader.close()
    tail = BadgeKeyer(SECRET).slot_for("0042")
    assert [e.slot for e in emitted.events if isinstance(e, c.Press)] == [BadgeKeyer(SECRET).slot_for("BOB00002")], (
        "the torn tail became a scan" if any(isinstance(e, c.Press) and e.slot == tail for e in emitted.events) else emitted.events
    )
