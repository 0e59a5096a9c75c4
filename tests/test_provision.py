"""A locked-down broker: `edge-agent provision` credentials and `edge-agent broker-acl` on a real
mosquitto with TLS. One kiosk can neither command nor read another; Home Assistant's buttons work."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import REPO, Broker, Observer, make_certs, toml_dump, wait_for

from edge_agent.core import config
from edge_agent.fleet.commands import Command
from edge_agent.fleet.discovery import discovery_messages
from edge_agent.fleet.mqttclient import make_client
from edge_agent.fleet.provision import mosquitto_hash
from edge_agent.fleet.status import StatusReporter


def edge_agent(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_hash_is_mosquitto_passwd_format() -> None:
    salt = bytes(range(12))
    assert mosquitto_hash("s3cret", salt) == mosquitto_hash("s3cret", salt)
    kind, iterations, salt_b64, digest_b64 = mosquitto_hash("s3cret", salt).split("$")[1:]
    assert (kind, iterations, salt_b64, len(digest_b64)) == ("7", "101", "AAECAwQFBgcICQoL", 88)


@pytest.fixture
def locked_broker(tmp_path: Path) -> Any:
    secrets_dir = tmp_path / "secrets"
    passwd = tmp_path / "passwd"
    for name in ("kiosk-a", "kiosk-b", "ha", "ops"):
        edge_agent("provision", name, "--dir", str(secrets_dir), "--passwd", str(passwd))
    assert (secrets_dir / "kiosk-a.mqtt_password").stat().st_mode & 0o777 == 0o600
    assert [line.split(":")[0] for line in passwd.read_text().splitlines()] == ["kiosk-a", "kiosk-b", "ha", "ops"]
    passwd.chmod(0o640)  # as the README sets it for the broker's group; a re-provision keeps that
    old_b = (secrets_dir / "kiosk-b.mqtt_password").read_text()
    edge_agent("provision", "kiosk-b", "--dir", str(secrets_dir), "--passwd", str(passwd), "--rotate")
    assert (secrets_dir / "kiosk-b.mqtt_password").read_text() != old_b and passwd.stat().st_mode & 0o777 == 0o640
    assert [line.split(":")[0] for line in passwd.read_text().splitlines()] == ["kiosk-a", "ha", "ops", "kiosk-b"]
    acl = tmp_path / "acl"
    acl.write_text(edge_agent("broker-acl", "--admin", "ops", "--ha-user", "ha"))
    certs = make_certs(tmp_path)
    b = Broker(tmp_path, extra=f"password_file {passwd}\nacl_file {acl}\ncafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n")
    b.conf.write_text(b.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    b.start()
    yield b, secrets_dir, certs["ca.crt"]
    b.kill()


def accepted(port: int, ca: Path, name: str | None, password: str | None) -> bool:
    """Whether the broker accepts this login (the CONNACK's answer)."""
    answers: list[bool] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"login-{time.monotonic_ns()}")
    if name:
        c.username_pw_set(name, password)
    c.tls_set(ca_certs=str(ca))
    c.on_connect = lambda cl, u, f, reason, p: answers.append(not reason.is_failure)
    c.connect("127.0.0.1", port, keepalive=5)
    try:
        wait_for(lambda: answers or c.loop(0.1) != mqtt.MQTT_ERR_SUCCESS, 10, "the broker's answer")
    finally:
        c.disconnect()
    return bool(answers and answers[0])


def kiosk_settings(port: int, name: str, secrets_dir: Path, ca: Path) -> config.MqttSettings:
    mqtt_cfg = {"enabled": True, "host": "127.0.0.1", "port": port, "username": name, "password_file": str(secrets_dir / f"{name}.mqtt_password"), "tls": True, "ca_file": str(ca)}
    return config.from_dict({"device": {"id": name}, "mqtt": mqtt_cfg}).mqtt


def user(port: int, name: str, secrets_dir: Path, ca: Path, topics: str) -> Observer:
    return Observer(port, topics, username=name, password=(secrets_dir / f"{name}.mqtt_password").read_text().strip(), ca_file=str(ca))


def test_kiosks_are_locked_to_their_own_topics_and_home_assistant_still_drives_them(tmp_path: Path, locked_broker: Any) -> None:
    broker, secrets_dir, ca = locked_broker
    got: dict[str, list[Command]] = {"kiosk-a": [], "kiosk-b": []}
    reporters = [StatusReporter(kiosk_settings(broker.port, k, secrets_dir, ca), k, lambda c, r, k=k: got[k].append(c), state_dir=tmp_path / k) for k in got]
    ops = user(broker.port, "ops", secrets_dir, ca, "#")
    ha = user(broker.port, "ha", secrets_dir, ca, "homeassistant/#")
    # kiosk a's own credentials, used by an attacker who took kiosk a
    rogue_settings = kiosk_settings(broker.port, "kiosk-a", secrets_dir, ca)
    rogue = make_client(rogue_settings, "rogue-kiosk-a")
    seen_by_rogue: list[str] = []
    rogue.on_message = lambda c, u, m: seen_by_rogue.append(m.topic)
    try:
        for r in reporters:
            r.start()
            wait_for(r.discovery.synced.is_set, 15, "the kiosk's connect and discovery pass")
        # each kiosk could write its state and its discovery configs: operators and HA see them
        wait_for(lambda: all(ops.find(f"edge-agent/{k}/state") for k in got), 10, "both kiosks' state")
        per_kiosk = len(discovery_messages(reporters[0].settings, "kiosk-a"))
        wait_for(lambda: len({t for t, p, _, _ in ha.messages if t.endswith("/config") and p}) == 2 * per_kiosk, 10, f"{2 * per_kiosk} discovery configs")
        # Home Assistant presses kiosk a's Resume button exactly as discovery told it to
        button = json.loads(ha.find("homeassistant/button/edge_agent_kiosk-a/resume/config")[0])
        ha.client.publish(button["command_topic"], button["payload_press"], qos=button["qos"]).wait_for_publish(5)
        wait_for(lambda: got["kiosk-a"], 10, "kiosk a to get HA's press")
        assert got["kiosk-a"] == [Command("resume")]

        rogue.connect("127.0.0.1", broker.port, keepalive=10)
        rogue.loop_start()
        wait_for(rogue.is_connected, 10, "the rogue client to connect with kiosk a's password")
        rogue.subscribe([("edge-agent/#", 1), ("homeassistant/#", 1)])
        for topic, payload, retain in (
            ("edge-agent/kiosk-b/cmd", '{"action": "end", "id": "from-a"}', False),
            ("edge-agent/kiosk-b/availability", "offline", True),
            ("homeassistant/button/edge_agent_kiosk-b/end/config", "", True),
            ("homeassistant/status", "offline", False),
        ):
            rogue.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
        # a later command from HA arrives, the rogue one never did
        ha.client.publish("edge-agent/kiosk-b/cmd", '{"action": "ping", "id": "ha-1"}', qos=1).wait_for_publish(5)
        wait_for(lambda: got["kiosk-b"], 10, "kiosk b to get HA's command")
        # a command for kiosk a (which the rogue may read: it holds a's credentials) marks the end of its retained flood
        ha.client.publish("edge-agent/kiosk-a/cmd", '{"action": "ping", "id": "mark"}', qos=1).wait_for_publish(5)
        wait_for(lambda: "edge-agent/kiosk-a/cmd" in seen_by_rogue, 10, "the rogue to read its own cmd")
        time.sleep(0.3)
        assert got["kiosk-b"] == [Command("ping", "ha-1")]
        assert not [t for t in seen_by_rogue if "kiosk-b" in t], seen_by_rogue  # nothing of kiosk b readable
        assert set(seen_by_rogue) <= {"edge-agent/kiosk-a/cmd"} | {t for t in seen_by_rogue if "/edge_agent_kiosk-a/" in t}
        late = user(broker.port, "ops", secrets_dir, ca, "#")
        try:
            wait_for(lambda: late.find("homeassistant/button/edge_agent_kiosk-b/end/config"), 10, "kiosk b's discovery, still there")
            assert late.find("edge-agent/kiosk-b/availability") == [b"online"]
        finally:
            late.close()
        # no password, or another kiosk's user name with a's password: refused
        a_password = (secrets_dir / "kiosk-a.mqtt_password").read_text().strip()
        assert accepted(broker.port, ca, "kiosk-a", a_password)
        assert not accepted(broker.port, ca, None, None) and not accepted(broker.port, ca, "kiosk-b", a_password)
    finally:
        rogue.loop_stop()
        rogue.disconnect()
        for r in reporters:
            r.close()
        ops.close()
        ha.close()


def test_kiosks_share_session_pointers_through_the_locked_broker(tmp_path: Path, locked_broker: Any) -> None:
    """[session] share under the ACL: a pointer kiosk a publishes (retained) reaches kiosk b, also
    one that connects later, and an empty retained one (forget) clears it for both."""
    broker, secrets_dir, ca = locked_broker
    topic = "edge-agent/_sessions/agent-1/visitor-7"
    pointer = b'{"v": 1, "session_id": "s-1", "continued_from": null, "started_at": 100.0, "ended_at": null, "kiosk": "kiosk-a"}'
    seen: dict[str, list[tuple[str, bytes]]] = {"kiosk-a": [], "kiosk-b": []}
    reporters: list[StatusReporter] = []
    try:
        for k in seen:
            r = StatusReporter(kiosk_settings(broker.port, k, secrets_dir, ca), k, lambda c, reply: None, state_dir=tmp_path / k)
            r.follow("edge-agent/_sessions/agent-1/+", lambda t, p, r, k=k: seen[k].append((t, p)))
            reporters.append(r)
            r.start()
            wait_for(r.discovery.synced.is_set, 15, "the kiosk's connect and discovery pass")
        assert reporters[0].send(topic, pointer, retain=True)
        wait_for(lambda: (topic, pointer) in seen["kiosk-b"], 10, "kiosk b to get kiosk a's pointer")
        reporters[1].close()  # b offline; it catches up from the retained pointer when it comes back
        late = StatusReporter(kiosk_settings(broker.port, "kiosk-b", secrets_dir, ca), "kiosk-b", lambda c, reply: None, state_dir=tmp_path / "kiosk-b")
        caught: list[tuple[str, bytes]] = []
        late.follow("edge-agent/_sessions/agent-1/+", lambda t, p, r: caught.append((t, p)))
        reporters[1] = late
        late.start()
        wait_for(lambda: (topic, pointer) in caught, 10, "kiosk b's catch-up from the retained pointer")
        assert late.send(topic, b"", retain=True)  # forget, from the other kiosk
        wait_for(lambda: (topic, b"") in seen["kiosk-a"], 10, "kiosk a to see the forget")
    finally:
        for r in reporters:
            r.close()


def test_provision_refuses_bad_names_and_silent_overwrites(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, cwd=REPO, timeout=30)

    bad = run("provision", "küche-1", "--dir", str(tmp_path))  # a bad argument (exit 2), not a config error (78: a newcomer's)
    rule = "1-63 ASCII letters, digits, - and _, starting and ending with a letter or digit"
    assert bad.returncode == 2 and bad.stderr == f"edge-agent provision: NAME: use a valid device id ({rule}), got 'küche-1'\n", bad.stderr
    assert run("provision", "kiosk-1", "--dir", str(tmp_path)).returncode == 0
    again = run("provision", "kiosk-1", "--dir", str(tmp_path))
    assert again.returncode == 1 and "--rotate" in again.stderr and again.stderr.count("\n") == 1
    assert run("broker-acl", "--admin", "a b").returncode == 2


def test_provision_with_a_password_file_it_cannot_update_writes_nothing(tmp_path: Path) -> None:
    """`--passwd` in a directory that does not exist wrote NAME.mqtt_password first and then failed,
    so the corrected run said `exists: pass --rotate`."""

    def provision(passwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edge_agent", "provision", "k4", "--dir", str(tmp_path / "prov"), "--passwd", str(passwd)], capture_output=True, text=True, cwd=REPO, timeout=30)

    (tmp_path / "a-dir").mkdir()
    for passwd, says in ((tmp_path / "nodir" / "passwd", f"no directory {tmp_path / 'nodir'}"), (tmp_path / "a-dir", "not a file")):
        out = provision(passwd)
        assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
        assert not (tmp_path / "prov" / "k4.mqtt_password").exists()
        assert f"cannot update {passwd}: {says}" in out.stderr, out.stderr
    fixed = provision(tmp_path / "passwd")
    assert fixed.returncode == 0, fixed.stderr
    assert (tmp_path / "prov" / "k4.mqtt_password").exists() and (tmp_path / "passwd").read_text().startswith("k4:$7$")


def test_fleet_with_a_kiosks_own_login_on_the_locked_broker_is_no_empty_fleet(tmp_path: Path, locked_broker: Any) -> None:
    """`edge-agent fleet -c /etc/edge-agent/config.toml` on a kiosk logs in as that kiosk: the ACL
    lets it read only its own commands, mosquitto grants the subscriptions all the same and
    delivers nothing, and the fleet printed `{"kiosks": []}`, exit 0, with kiosks online (found by
    a newcomer). It says why and exits 1; an operator's login sees the kiosk."""
    broker, secrets_dir, ca = locked_broker
    reporter = StatusReporter(kiosk_settings(broker.port, "kiosk-b", secrets_dir, ca), "kiosk-b", lambda c, r: None, state_dir=tmp_path / "kiosk-b")
    reporter.start()
    try:
        wait_for(reporter.discovery.synced.is_set, 15, "kiosk-b online")
        cfg = tmp_path / "kiosk-a.toml"
        mqtt_cfg = {"enabled": True, "host": "127.0.0.1", "port": broker.port, "username": "kiosk-a", "password_file": str(secrets_dir / "kiosk-a.mqtt_password"), "tls": True, "ca_file": str(ca)}
        cfg.write_text(toml_dump({"device": {"id": "kiosk-a"}, "mqtt": mqtt_cfg}))
        fleet = [sys.executable, "-m", "edge_agent", "fleet", "-c", str(cfg), "--json", "--wait-s", "1"]
        out = subprocess.run(fleet, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert out.returncode == 1 and json.loads(out.stdout)["kiosks"] == [], (out.stdout, out.stderr)
        assert "logged in as the kiosk 'kiosk-a'" in out.stderr and "provision ops" in out.stderr, out.stderr
        ops = [*fleet, "--username", "ops", "--password-file", str(secrets_dir / "ops.mqtt_password")]
        out = subprocess.run(ops, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert out.returncode == 0 and [k["id"] for k in json.loads(out.stdout)["kiosks"]] == ["kiosk-b"], (out.stdout, out.stderr)
        assert "no kiosk seen" not in out.stderr, out.stderr
        # the kiosk's login typed in without its config (an admin's laptop): the same empty fleet,
        # exit 0 as ever (it may be an empty fleet), said nothing of the login (found by a helper)
        by_hand = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--ca-file", str(ca)]
        by_hand += ["--username", "kiosk-a", "--password-file", str(secrets_dir / "kiosk-a.mqtt_password"), "--json", "--wait-s", "1"]
        out = subprocess.run(by_hand, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert out.returncode == 0 and json.loads(out.stdout)["kiosks"] == [], (out.stdout, out.stderr)
        assert "no kiosk seen as 'kiosk-a'" in out.stderr and "provision ops" in out.stderr, out.stderr
    finally:
        reporter.close()
