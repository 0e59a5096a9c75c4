"""A hostile review of `edge-agent fleet` (fleet/view.py) as a fleet admin uses it: a real
mosquitto, kiosks faked by retained messages, the command run as a subprocess."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from conftest import Broker, interruptible
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.fleet.view import FleetView

REPO = Path(__file__).resolve().parent.parent


def _retain(port: int, messages: dict[str, bytes]) -> None:
    """Publish `messages` retained, as fake kiosks, and wait until the broker has them."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-kiosks-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for info in [client.publish(t, p, qos=1, retain=True) for t, p in messages.items()]:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


class LiveView:
    """`edge-agent fleet` (the live view) into a pipe: a plain snapshot a second."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(interruptible("fleet", "--host", "127.0.0.1", "--port", str(port)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        self.out = b""

    def read_for(self, seconds: float) -> None:
        assert self.proc.stdout is not None
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.proc.poll() is None:
            if select.select([self.proc.stdout], [], [], 0.2)[0]:
                self.out += self.proc.stdout.read1(1 << 20)

    def wait_for(self, needle: bytes, timeout_s: float = 20.0) -> None:
        end = time.monotonic() + timeout_s
        while needle not in self.last() and time.monotonic() < end and self.proc.poll() is None:
            self.read_for(0.3)
        assert needle in self.last(), self.out[-3000:]

    def last(self) -> bytes:
        """The last complete snapshot."""
        snaps = self.out.split(b"edge-agent fleet on")
        return snaps[-2] if len(snaps) > 2 else b""

    def row(self, kiosk: str) -> str:
        return next(line for line in self.last().decode().splitlines() if line.startswith(kiosk + " "))

    def stop(self) -> tuple[int, bytes]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, err


def test_the_live_view_says_so_when_it_has_lost_the_broker(tmp_path: Path) -> None:
    """With the broker gone (restarted, the network down) the live view went on showing every
    kiosk `online yes` in its last state, with nothing to say that it heard nothing any more:
    an admin watched a frozen, healthy-looking fleet while paho tried to reconnect unseen."""
    broker = Broker(tmp_path).start()
    _retain(broker.port, {"edge-agent/k1/availability": b"online", "edge-agent/k1/state": b'{"state": "idle"}'})
    view = LiveView(broker.port)
    try:
        view.wait_for(b"\nk1 ")
        assert view.row("k1").split()[1] == "yes"
        broker.kill()
        view.read_for(3.5)
        last = view.last().decode()
        assert "not connected" in last.lower(), last
        assert view.row("k1").split()[1] != "yes", last  # not known any more
    finally:
        rc, err = view.stop()
        broker.kill()
    assert rc == 0, err[-2000:]


def test_an_online_kiosk_is_seen_now_in_the_live_view(broker: Broker) -> None:
    """README: last seen is "now while its retained availability says `online`". The view took
    the time the retained `online` arrived and counted up from it: an idle kiosk, connected all
    along, looked quieter and quieter the longer the admin watched (`seen 600s` after ten minutes)."""
    _retain(broker.port, {"edge-agent/k1/availability": b"online", "edge-agent/k1/state": b'{"state": "idle", "since": "2026-01-01T00:00:00+00:00"}'})
    view = LiveView(broker.port)
    try:
        view.wait_for(b"\nk1 ")
        view.read_for(3.5)
        row = view.row("k1")
        assert row.split()[1] == "yes" and row.split()[-1] == "0s", row
    finally:
        rc, err = view.stop()
    assert rc == 0, err[-2000:]


def test_kiosks_whose_ids_share_their_first_18_characters_are_told_apart() -> None:
    """`device.id` is up to 63 characters and the table cut it to 18: `museum-floor2-kiosk-01` and
    `museum-floor2-kiosk-02` were two rows both called `museum-floor2-kios`, one online, one
    not, and the admin could not tell which kiosk to walk to."""
    view = FleetView("edge-agent")
    view.apply("edge-agent/museum-floor2-kiosk-01/availability", b"online", now=100.0, retained=True)
    view.apply("edge-agent/museum-floor2-kiosk-02/availability", b"offline", now=100.0, retained=True)
    long_id = "k" * 63  # the longest device.id there is
    view.apply(f"edge-agent/{long_id}/availability", b"offline", now=100.0, retained=True)
    lines = view.render(now=101.0).splitlines()
    names = [line.split()[0] for line in lines[2:]]
    assert names == [long_id, "museum-floor2-kiosk-01", "museum-floor2-kiosk-02"], lines
    online = lines[0].index(" online") + 1
    assert [line[online : online + 7].strip() for line in lines[2:]] == ["NO", "yes", "NO"], lines


def test_a_host_name_with_an_empty_or_too_long_label_is_one_line_not_an_unexpected_error(tmp_path: Path) -> None:
    """`--host broker..lan` (a typo) or a label over 63 characters ended in "unexpected error:
    UnicodeError ... report it" and exit 70, where any other name that does not resolve is
    "cannot reach" and exit 1."""
    for host in ("broker..lan", "a" * 64 + ".lan"):
        r = subprocess.run([sys.executable, "-m", "edge_agent", "fleet", "--host", host, "--port", "1883", "--json", "--wait-s", "0"], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert r.returncode == 1 and "unexpected" not in r.stderr and "cannot reach" in r.stderr, (host, r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_thousand_kiosks_and_hostile_neighbours_in_one_json_snapshot(broker: Broker) -> None:
    """1 000 fake kiosks plus retained garbage (non-UTF-8, escape codes in an id and a state): the
    snapshot is valid JSON, lists every kiosk with the README's fields, and prints no escape."""
    messages = {f"edge-agent/k{i:04d}/availability": b"online" for i in range(1000)}
    messages.update({f"edge-agent/k{i:04d}/state": b'{"state": "idle", "since": "2026-01-01T00:00:00+00:00"}' for i in range(1000)})
    messages["edge-agent/bad\x7f\u202eid/state"] = b'{"state": "\\u001b[2Jidle\\u0007"}'
    messages["edge-agent/nonutf8/state"] = b'{"state": "\xff\xfe"}'
    _retain(broker.port, messages)
    r = subprocess.run([sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--json", "--wait-s", "1"], capture_output=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert b"\x1b" not in r.stdout and b"\x07" not in r.stdout
    snap = json.loads(r.stdout)
    rows = {k["id"]: k for k in snap["kiosks"]}
    assert sum(1 for k in rows.values() if k["online"] is True and k["state"] == "idle") == 1000
    fields = {"id", "online", "state", "session_id", "last_event", "rtt_ms", "cpu_percent", "temperature_c", "echo_poor_room", "last_seen"}
    assert all(fields <= set(k) for k in rows.values())


def test_a_json_snapshot_from_a_broker_lost_during_the_wait_is_no_success(tmp_path: Path) -> None:
    """The broker went away during `--wait-s`: the snapshot (kiosks `online`, as they were) and exit 0,
    which a monitoring script took for the fleet's current state; the live view says it, this exits 1."""
    broker = Broker(tmp_path).start()
    _retain(broker.port, {"edge-agent/k1/availability": b"online"})
    cmd = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--json", "--wait-s", "6"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        time.sleep(3.0)  # connected (the interpreter starts in well under a second) and the retained delivered
        broker.kill()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.kill()
    assert [k["id"] for k in json.loads(out)["kiosks"]] == ["k1"], (out, err)
    assert proc.returncode == 1 and b"lost" in err, (proc.returncode, err)


def test_a_retired_kiosk_cleared_as_the_readme_says_leaves_the_live_view(broker: Broker) -> None:
    """README: a retired kiosk shows offline "until they are cleared: `mosquitto_pub -r -n -t
    edge-agent/OLD/availability` (and `.../state`)". The admin who cleared them with the live view
    open kept seeing it `NO` (the clear arrives as an empty message) until the view restarted."""
    _retain(broker.port, {"edge-agent/old/availability": b"offline", "edge-agent/old/state": b'{"state": "idle"}', "edge-agent/k1/availability": b"online"})
    view = LiveView(broker.port)
    try:
        view.wait_for(b"\nold ")
        assert view.row("old").split()[1] == "NO"
        for leaf in ("availability", "state"):
            subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-r", "-n", "-t", f"edge-agent/old/{leaf}"], check=True, timeout=10)
        view.read_for(2.5)
        assert b"\nold " not in view.last() and b"\nk1 " in view.last(), view.last()
    finally:
        rc, err = view.stop()
    assert rc == 0, err[-2000:]


def test_a_ca_file_that_is_no_certificate_is_named_as_the_flag_given(tmp_path: Path) -> None:
    """`fleet --ca-file ca.pem` on an admin's laptop, no kiosk config anywhere, with a file that is
    no CA certificate (a key, a directory): "config error: mqtt.ca_file: TLS setup failed", exit
    78, about a config the admin does not have and a key it never set."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    for ca in (bad, tmp_path):
        cmd = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", "1883", "--ca-file", str(ca), "--json", "--wait-s", "0"]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert r.returncode == 2 and "--ca-file" in r.stderr and "mqtt.ca_file" not in r.stderr, (ca, r.returncode, r.stderr)


def test_topics_no_kiosk_can_have_are_not_listed_as_kiosks(broker: Broker) -> None:
    """A kiosk's id is a `device.id` (the config checks it: 1-63 letters, digits, `-`, `_`).
    Anyone who may publish under the prefix (an open broker, a neighbour's script) put
    `edge-agent/not a kiosk!/state` and a 200-character id in the snapshot as kiosks of the fleet,
    the admin left looking for kiosks that cannot exist; the real kiosk beside them stays."""
    _retain(
        broker.port,
        {
            "edge-agent/lobby-1/availability": b"online",
            "edge-agent/not a kiosk!/state": b'{"state": "idle"}',
            "edge-agent/" + "k" * 200 + "/availability": b"online",
            "edge-agent/-dash/availability": b"online",
            "edge-agent/caf\u00e9/state": b'{"state": "idle"}',
        },
    )
    r = subprocess.run([sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--json", "--wait-s", "1"], capture_output=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [k["id"] for k in json.loads(r.stdout)["kiosks"]] == ["lobby-1"]


def test_the_view_holds_a_bounded_number_of_kiosks_and_says_when_it_is_full() -> None:
    """Each message may name a new kiosk: a flood of ids grew `edge-agent fleet` for as long as it
    ran. Past its bound the view takes no new kiosk (the ones it has still change) and says so."""
    view = FleetView("edge-agent", max_kiosks=3)
    for i in range(50):
        view.apply(f"edge-agent/k{i:02d}/availability", b"online", now=100.0, retained=True)
    view.apply("edge-agent/k00/availability", b"offline", now=101.0)
    assert sorted(view.kiosks) == ["k00", "k01", "k02"]
    assert view.kiosks["k00"].online is False
    assert view.full and "the rest are not shown" in view.render(now=102.0)


def test_only_a_kiosks_message_makes_a_row_and_only_a_kiosk_left_out_fills_the_view() -> None:
    """A state that is not a JSON object made a row for its id all the same (an empty kiosk in the
    list, and a place of the bounded view taken); a full view said kiosks were left out on a
    clearing of an unknown kiosk or a retained metrics message, where none was."""
    view = FleetView("edge-agent", max_kiosks=2)
    for payload in (b"not json", b"[1, 2]", b'"idle"'):
        view.apply("edge-agent/junk/state", payload, now=100.0, retained=True)
    assert view.kiosks == {}
    view.apply("edge-agent/k1/availability", b"online", now=100.0, retained=True)
    view.apply("edge-agent/k2/availability", b"online", now=100.0, retained=True)
    view.apply("edge-agent/k3/availability", b"", now=100.0, retained=True)  # an unknown kiosk cleared
    view.apply("edge-agent/k3/metrics", b'{"rtt_ms": 5}', now=100.0, retained=True)  # never a kiosk's own
    assert not view.full, "the view said kiosks were left out where none was"
    view.apply("edge-agent/k3/state", b'{"state": "idle"}', now=100.0, retained=True)
    assert view.full and sorted(view.kiosks) == ["k1", "k2"]


def test_the_view_says_how_many_messages_were_no_kiosks() -> None:
    """Someone who may publish under the prefix forges kiosks (ids no device.id can have, bodies that
    are not a kiosk's JSON, retained metrics): each was counted and never shown, and the admin saw a
    quiet, healthy fleet. One real kiosk is shown, the three others are said to be left out; a
    kiosk left out of a full view is said apart (FULL), not as someone else's."""
    view = FleetView("edge-agent")
    view.apply("edge-agent/kiosk-1/availability", b"online", now=100.0, retained=True)
    view.apply("edge-agent/bad id!/state", b'{"state": "idle"}', now=100.0)
    view.apply("edge-agent/kiosk-2/state", b"[1, 2]", now=100.0)
    view.apply("edge-agent/kiosk-1/metrics", b'{"rtt_ms": 1}', now=100.0, retained=True)
    text = view.render(now=101.0)
    assert "kiosk-1" in text and "kiosk-2" not in text
    assert "messages left out as no kiosk's: 3 under edge-agent/" in text, text
    full = FleetView("edge-agent", max_kiosks=1)
    full.apply("edge-agent/kiosk-1/availability", b"online", now=100.0)
    full.apply("edge-agent/kiosk-2/availability", b"online", now=100.0)
    assert "no kiosk's" not in full.render(now=101.0) and full.full
