"""A hostile look at the locked-down broker (`edge-agent provision`, `edge-agent broker-acl`) on a
real mosquitto loaded with the generated password file and ACL (plain MQTT on loopback: the TLS
set-up is tests/test_provision.py's)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import REPO, Broker, toml_dump, wait_for

from edge_agent.fleet.pointer import forgotten_topic, pointer_topic


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, cwd=REPO, timeout=30)


def ok(*args: str) -> str:
    out = run(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def locked(tmp_path: Path) -> Any:
    """A mosquitto with the provisioned users kiosk-a, kiosk-b, ha, ops and `broker-acl`'s ACL."""
    secrets_dir, passwd, acl = tmp_path / "secrets", tmp_path / "passwd", tmp_path / "acl"
    for name in ("kiosk-a", "kiosk-b", "ha", "ops"):
        ok("provision", name, "--dir", str(secrets_dir), "--passwd", str(passwd))
    acl.write_text(ok("broker-acl", "--admin", "ops", "--ha-user", "ha"))
    b = Broker(tmp_path, extra=f"password_file {passwd}\nacl_file {acl}\n")
    b.conf.write_text(b.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    b.start()
    yield b, secrets_dir, passwd
    b.kill()


def password(secrets_dir: Path, name: str) -> str:
    return (secrets_dir / f"{name}.mqtt_password").read_text().strip()


def login(port: int, name: str, pw: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{time.monotonic_ns()}")
    c.username_pw_set(name, pw)
    answers: list[bool] = []
    c.on_connect = lambda cl, u, f, reason, p: answers.append(not reason.is_failure)
    c.connect("127.0.0.1", port, keepalive=10)
    c.loop_start()
    wait_for(lambda: answers, 10, f"the broker's answer to {name}")
    if not answers[0]:
        c.loop_stop()
        raise PermissionError(f"{name} refused")
    return c


def close(c: mqtt.Client) -> None:
    c.disconnect()
    c.loop_stop()


def retained(port: int, name: str, pw: str, topic_filter: str) -> dict[str, bytes]:
    """Every retained message `name` may read under `topic_filter`: subscribed, then unsubscribed;
    the broker sends the retained ones before the UNSUBACK (as discovery_sync relies on)."""
    got: dict[str, bytes] = {}
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-look-{time.monotonic_ns()}")
    c.username_pw_set(name, pw)
    c.on_message = lambda cl, u, m: got.__setitem__(m.topic, bytes(m.payload)) if m.retain else None
    c.on_connect = lambda cl, u, f, reason, p: cl.subscribe(topic_filter, 0)
    c.on_subscribe = lambda cl, u, mid, reasons, p: cl.unsubscribe(topic_filter)
    c.on_unsubscribe = lambda cl, u, mid, reasons, p: done.set()
    c.connect("127.0.0.1", port, keepalive=10)
    c.loop_start()
    try:
        assert done.wait(10), "no UNSUBACK"
    finally:
        close(c)
    return got


def test_an_operator_can_clear_a_retired_kiosks_retained_availability_and_state(locked: Any) -> None:
    """README: a kiosk renamed or retired leaves its retained `availability` and `state`, where
    `fleet` shows it until they are cleared: `mosquitto_pub -r -n -t edge-agent/OLD/availability`
    (and `.../state`), as an operator. The ACL let operators write only `edge-agent/+/cmd`: the
    broker dropped the clearing without a word and the retired kiosk stayed in the fleet."""
    broker, secrets_dir, _ = locked
    old = login(broker.port, "kiosk-a", password(secrets_dir, "kiosk-a"))  # the kiosk, before it was retired
    for leaf, payload in (("availability", b"offline"), ("state", b'{"state": "idle", "since": 1}')):
        old.publish(f"edge-agent/kiosk-a/{leaf}", payload, qos=1, retain=True).wait_for_publish(5)
    close(old)
    ops_pw = password(secrets_dir, "ops")
    assert set(retained(broker.port, "ops", ops_pw, "edge-agent/kiosk-a/#")) == {"edge-agent/kiosk-a/availability", "edge-agent/kiosk-a/state"}
    ops = login(broker.port, "ops", ops_pw)
    for leaf in ("availability", "state"):
        ops.publish(f"edge-agent/kiosk-a/{leaf}", b"", qos=1, retain=True).wait_for_publish(5)
    close(ops)
    assert retained(broker.port, "ops", ops_pw, "edge-agent/kiosk-a/#") == {}


def test_a_kiosk_cannot_plant_a_phantom_kiosk_in_the_fleet_under_the_sessions_level(tmp_path: Path, locked: Any) -> None:
    """Every kiosk may write `edge-agent/_sessions/#` (the shared session pointers). That took in
    `edge-agent/_sessions/availability` and `.../state` too, which `edge-agent fleet` reads as a
    kiosk named `_sessions`: kiosk a's credentials retained an `online` kiosk that does not exist
    (an operator's fleet count, a monitoring script's, wrong until someone finds and clears it).
    Pointers and forgets, the only things under `_sessions`, still go through."""
    broker, secrets_dir, _ = locked
    a = login(broker.port, "kiosk-a", password(secrets_dir, "kiosk-a"))
    for leaf, payload in (("availability", b"online"), ("state", b'{"state": "listening", "since": 1}')):
        a.publish(f"edge-agent/_sessions/{leaf}", payload, qos=1, retain=True).wait_for_publish(5)
    pointer = b'{"v": 1, "session_id": "s-1", "continued_from": null, "started_at": 100.0, "ended_at": null, "kiosk": "kiosk-a"}'
    a.publish(pointer_topic("edge-agent", "agent-1", "visitor-7"), pointer, qos=1, retain=True).wait_for_publish(5)
    a.publish(forgotten_topic("edge-agent", "agent-1", "visitor-8"), b'{"v": 1}', qos=1, retain=True).wait_for_publish(5)
    close(a)
    seen_by_b = retained(broker.port, "kiosk-b", password(secrets_dir, "kiosk-b"), "edge-agent/_sessions/#")
    assert seen_by_b.get(pointer_topic("edge-agent", "agent-1", "visitor-7")) == pointer
    assert seen_by_b.get(forgotten_topic("edge-agent", "agent-1", "visitor-8")) == b'{"v": 1}'
    cfg = tmp_path / "ops.toml"
    cfg.write_text(toml_dump({"device": {"id": "laptop"}, "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port}}))
    fleet = run("fleet", "-c", str(cfg), "--json", "--wait-s", "1", "--username", "ops", "--password-file", str(secrets_dir / "ops.mqtt_password"))
    assert fleet.returncode == 0, fleet.stderr
    assert [k["id"] for k in json.loads(fleet.stdout)["kiosks"]] == [], fleet.stdout


def test_provision_without_rotate_does_not_replace_a_users_password_in_the_password_file(tmp_path: Path, locked: Any) -> None:
    """`--rotate` replaces an existing password: without it, a NAME.mqtt_password already in
    `--dir` is refused. The password file was not looked at: the same command run from another
    directory (`--dir` defaults to `.`), or with another `--dir`, replaced the user's line without
    a word, and the kiosk (here the operator) already using the old password was locked out."""
    broker, secrets_dir, passwd = locked
    before = passwd.read_text()
    out = run("provision", "ops", "--dir", str(tmp_path / "elsewhere"), "--passwd", str(passwd))
    assert out.returncode == 1 and "--rotate" in out.stderr, (out.returncode, out.stderr)
    assert passwd.read_text() == before and not (tmp_path / "elsewhere" / "ops.mqtt_password").exists()
    broker.kill()
    broker.start()  # as a `systemctl reload mosquitto` after it would
    close(login(broker.port, "ops", password(secrets_dir, "ops")))
    # with --rotate it is replaced, as before
    ok("provision", "ops", "--dir", str(tmp_path / "elsewhere"), "--passwd", str(passwd), "--rotate")
    assert passwd.read_text() != before


def test_provision_says_the_mode_the_password_file_has(tmp_path: Path) -> None:
    """`--rotate` keeps the mode of a NAME.mqtt_password already there (an operator's 0640 for the
    service's group stays readable), but the command said "(mode 0600)" all the same."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    first = run("provision", "kiosk-a", "--dir", str(secrets_dir))
    assert first.returncode == 0 and "(mode 0600)" in first.stderr, first.stderr
    (secrets_dir / "kiosk-a.mqtt_password").chmod(0o640)
    again = run("provision", "kiosk-a", "--dir", str(secrets_dir), "--rotate")
    assert again.returncode == 0 and "(mode 0640)" in again.stderr, again.stderr
    assert (secrets_dir / "kiosk-a.mqtt_password").stat().st_mode & 0o777 == 0o640
