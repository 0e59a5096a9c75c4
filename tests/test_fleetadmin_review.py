"""A fleet admin's tools under review. `edge-agent fleet` on a broker where someone forged kiosks: the
count of messages that were no kiosk's reaches a script (`--json`), and a retained forgery is one
message however often the broker sends it again (a real mosquitto, the command run as a
subprocess). `edge-agent provision --dir` makes a directory only its user can list. A broker password
in the environment with no username is said, as one in the config is. The discovery ledger is not
written over after a read that failed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Broker
from test_fleetview_review import _retain
from test_newcomer import ea

from edge_agent.fleet.view import FleetView

REPO = Path(__file__).resolve().parent.parent


def test_a_json_snapshot_says_how_many_messages_were_no_kiosks(broker: Broker) -> None:
    """The live view said how many messages it left out as no kiosk's; `--json`, what a monitoring
    script reads, did not: a broker full of forged kiosks read as one quiet kiosk. The count is a
    key of its own (the kiosks list and exit 0 as before), and said on stderr."""
    _retain(
        broker.port,
        {
            "edge-agent/lobby-1/availability": b"online",
            "edge-agent/not a kiosk!/state": b'{"state": "idle"}',
            "edge-agent/lobby-2/state": b"[1, 2]",
            "edge-agent/lobby-1/metrics": b'{"rtt_ms": 1}',
        },
    )
    r = subprocess.run([sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--json", "--wait-s", "1"], capture_output=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert [k["id"] for k in snap["kiosks"]] == ["lobby-1"]
    assert snap.get("ignored") == 3, snap
    assert b"messages left out as no kiosk's: 3 under edge-agent/" in r.stderr, r.stderr


def test_a_retained_forgery_counts_once_however_often_the_broker_sends_it() -> None:
    """The broker sends every retained message again at each reconnect: the view counted the same
    forged messages again each time, an admin watching a flaky link saw forgeries multiply. Live
    messages count each time they come."""
    view = FleetView("edge-agent")
    for _ in range(3):  # three connects, the broker's retained copies each time
        view.apply("edge-agent/bad id!/state", b'{"state": "idle"}', now=100.0, retained=True)
        view.apply("edge-agent/kiosk-1/metrics", b'{"rtt_ms": 1}', now=100.0, retained=True)
    assert view.ignored == 2
    view.apply("edge-agent/bad id!/state", b'{"state": "idle"}', now=101.0)
    view.apply("edge-agent/bad id!/state", b'{"state": "idle"}', now=102.0)
    assert view.ignored == 4
    assert "messages left out as no kiosk's: 4 under edge-agent/" in view.render(now=103.0)


def test_a_directory_provision_makes_for_passwords_is_its_users_alone(tmp_path: Path) -> None:
    """`provision NAME --dir DIR` made a missing DIR 0755 (under the umask): every user on the machine
    could list which kiosks had passwords there. The password file itself is 0600 as before."""
    out = ea("provision", "kiosk-7", "--dir", str(tmp_path / "secrets"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "secrets" / "kiosk-7.mqtt_password").stat().st_mode & 0o777 == 0o600


def test_a_broker_password_in_the_environment_without_a_username_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`EDGE_AGENT_MQTT_PASSWORD` (the service's Environment=) with `[mqtt]` on and no username: MQTT
    sends a password only with a user name, so it was left out without a word, as the config's own
    `password` was until it was said at load. Said the same way; with a username, nothing."""
    from edge_agent.core import config

    monkeypatch.setenv("EDGE_AGENT_MQTT_PASSWORD", "s3cret")
    data = {"device": {"state_dir": str(tmp_path / "state")}, "mqtt": {"enabled": True}}
    said = config.from_dict(data).ignored_sections
    assert any("ignoring EDGE_AGENT_MQTT_PASSWORD" in line and "mqtt.username is not set" in line for line in said), said
    assert config.from_dict({**data, "mqtt": {"enabled": True, "username": "kiosk-1"}}).ignored_sections == ()


def test_a_discovery_ledger_that_could_not_be_read_is_not_written_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mqtt-discovery.json` names the discovery owners a renamed kiosk must clean up in Home
    Assistant. A read that failed (an I/O error on the card, not a damaged file) was taken for "no
    file", and the next save wrote only the current owner over it: the old configs stayed in Home
    Assistant for good. Kept as it is; read again, the old owners are there; a damaged file is
    still replaced."""
    import errno

    from edge_agent.core import statefiles
    from edge_agent.fleet import discovery_sync
    from edge_agent.fleet.discovery_sync import DiscoveryLedger, Owner

    ledger = DiscoveryLedger(tmp_path)
    old, current = Owner("homeassistant", "kiosk-old"), Owner("homeassistant", "kiosk-new")
    ledger.save([current, old])
    assert ledger.load() == [current, old]

    def failing(path: Path, max_bytes: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(discovery_sync, "read_small_file", failing)
    assert ledger.load() == []
    ledger.save([current])
    monkeypatch.setattr(discovery_sync, "read_small_file", statefiles.read_small_file)
    assert ledger.load() == [current, old]
    ledger.path.write_text("{not json")  # type: ignore[union-attr]
    ledger.save([current])
    assert ledger.load() == [current]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("provision", "kiosk-8", "--passwd", ""), "--passwd"),
        (("provision", "kiosk-8", "--dir", " "), "--dir"),
        (("gate", "tests/data/kiosk_dev_quiet.wav", "--labels", ""), "--labels"),
        (("fleet", "--password-file", "", "--json", "--wait-s", "0"), "--password-file"),
        (("sessions", "-c", ""), "--config"),
    ],
)
def test_an_empty_file_option_is_refused_not_taken_for_the_option_left_out(args: tuple[str, ...], option: str, tmp_path: Path) -> None:
    """`--passwd "$PASSWD"` with the variable unset: `provision` printed the line, updated no
    password file and exited 0 (the broker never learned the password); `gate --labels ""` scored
    nothing; `fleet --password-file ""` logged in without a password. One line naming the option,
    exit 2, and no password file written."""
    from test_newcomer import one_line_error

    extra = ("--dir", str(tmp_path)) if args[:3] == ("provision", "kiosk-8", "--passwd") else ()
    line = one_line_error(ea(*args, *extra), 2)
    assert f"{option}: empty" in line, line
    assert list(tmp_path.iterdir()) == [] and not (REPO / "kiosk-8.mqtt_password").exists()


def test_a_discovery_ledger_it_may_not_read_is_written_over_so_that_it_heals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a passing read error keeps the ledger: one the service may never read (a file of
    root's from an older version, EACCES) was written over before and so healed; kept, every
    connect would log it and a renamed kiosk's old configs would never be cleaned up."""
    import errno

    from edge_agent.fleet import discovery_sync
    from edge_agent.fleet.discovery_sync import DiscoveryLedger, Owner

    ledger = DiscoveryLedger(tmp_path)
    current = Owner("homeassistant", "kiosk-new")
    ledger.save([current, Owner("homeassistant", "kiosk-old")])

    def denied(path: Path, max_bytes: int) -> bytes:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(discovery_sync, "read_small_file", denied)
    ledger.save([current])
    monkeypatch.undo()
    assert DiscoveryLedger(tmp_path).load() == [current]
