"""Fleet status and control against a real mosquitto started by the tests."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, REPO, Broker, DaemonProcess, Observer, make_certs, read_wav, toml_dump, wait_for, write_wav

from edge_agent.core import config
from edge_agent.devtools.mosquitto import free_port
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.fleet.status import StatusReporter

KEEPALIVE_S = 5


def _config(tmp_path: Path, sim: AgentSimulator, port: int, clip_s: float = 12.0, **mqtt_extra: Any) -> Path:
    clip = write_wav(tmp_path / "clip.wav", read_wav(DATA / "kiosk_dev_quiet.wav")[: int(clip_s * 32000)])
    cfg = tmp_path / "edge-agent.toml"
    cfg.write_text(
        toml_dump(
            {
                "device": {"id": "kiosk-7", "state_dir": str(tmp_path / "state")},
                "agent": {"endpoint": sim.url, "agent_id": "agent-1"},
                "session": {"idle_timeout_s": 120.0},
                "audio": {"input": f"file:{clip}", "output": "null"},
                "button": {"source": "keyboard"},
                "mqtt": {"enabled": True, "host": "127.0.0.1", "port": port, "keepalive_s": KEEPALIVE_S, "metrics_interval_s": 1.0, **mqtt_extra},
            }
        )
    )
    return cfg


def _states(obs: Observer, since: int = 0) -> list[str]:
    return [m["state"] for m in obs.json("edge-agent/kiosk-7/state", since)]


def _collapse(seq: list[str]) -> list[str]:
    return [s for i, s in enumerate(seq) if i == 0 or seq[i - 1] != s]


@pytest.fixture
def observer(broker: Broker) -> Any:
    obs = Observer(broker.port)
    yield obs
    obs.close()


def test_availability_state_discovery_and_last_will(tmp_path: Path, sim: AgentSimulator, broker: Broker, observer: Observer, daemons: list[DaemonProcess]) -> None:
    d = DaemonProcess(_config(tmp_path, sim, broker.port))
    daemons.append(d)
    observer.wait("edge-agent/kiosk-7/availability", lambda p: p == b"online")
    observer.wait("homeassistant/button/edge_agent_kiosk-7/end/config")  # discovery goes out after its clean-up pass
    # a subscriber arriving later sees the retained availability, state and discovery
    late = Observer(broker.port)
    try:
        late.settle()  # every retained message is in (they come in a burst, the state need not be last)
        retained = {t: (p, r) for t, p, r, _ in late.received()}
        assert retained["edge-agent/kiosk-7/availability"] == (b"online", True)
        state = json.loads(retained["edge-agent/kiosk-7/state"][0])
        assert state["state"] == "idle" and set(state) == {"state", "session_id", "continued_from", "slot", "since", "version"}
        disco = {t: json.loads(p) for t, (p, r) in retained.items() if t.startswith("homeassistant/") and r}
        assert "homeassistant/sensor/edge_agent_kiosk-7/state/config" in disco
        online = disco["homeassistant/binary_sensor/edge_agent_kiosk-7/online/config"]
        assert online["device_class"] == "connectivity" and online["state_topic"] == "edge-agent/kiosk-7/availability"
        for action in ("resume", "new", "end"):
            button = disco[f"homeassistant/button/edge_agent_kiosk-7/{action}/config"]
            assert json.loads(button["payload_press"]) == {"action": action} and button["command_topic"] == "edge-agent/kiosk-7/cmd"
        assert len({json.dumps(v["device"]) for v in disco.values()}) == 1  # one device
    finally:
        late.close()
    # Home Assistant restarting asks for discovery again
    mark = len(observer.messages)
    observer.client.publish("homeassistant/status", "online")
    observer.wait("homeassistant/sensor/edge_agent_kiosk-7/state/config", since=mark)
    # kill -9: the broker sends the will within 1.5 x keepalive of the kiosk's last packet (a
    # metrics message at most a second before the kill), noticed on the broker's next keepalive
    # check (about once a second): within 2 x keepalive of the kill, far under the 30 s default
    mark = len(observer.messages)
    d.proc.send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    observer.wait("edge-agent/kiosk-7/availability", lambda p: p == b"offline", timeout_s=4 * KEEPALIVE_S, since=mark)
    assert time.monotonic() - t0 <= 2 * KEEPALIVE_S


def test_state_sequence_events_and_metrics_of_a_conversation(tmp_path: Path, sim: AgentSimulator, broker: Broker, observer: Observer, daemons: list[DaemonProcess]) -> None:
    d = DaemonProcess(_config(tmp_path, sim, broker.port))
    daemons.append(d)
    observer.wait("edge-agent/kiosk-7/availability", lambda p: p == b"online")
    # the first state (idle) is a different topic and may arrive after `online`: mark after it
    observer.wait("edge-agent/kiosk-7/state", lambda p: json.loads(p)["state"] == "idle")
    mark = len(observer.messages)
    d.press()
    wait_for(lambda: sim.sessions and sim.sessions[0].turns >= 1, 20, "a reply")
    wait_for(lambda: _collapse(_states(observer, mark))[-1:] == ["listening"] and "speaking" in _states(observer, mark), 10, "the reply to end")
    d.press()
    wait_for(lambda: _states(observer, mark)[-1:] == ["idle"], 20)
    idle_mark = len(observer.messages)
    assert _collapse(_states(observer, mark)) == ["connecting", "listening", "speaking", "listening", "ending", "idle"]
    sid = sim.sessions[0].session_id
    listening = next(m for m in observer.json("edge-agent/kiosk-7/state", mark) if m["state"] == "listening")
    assert listening["session_id"] == sid and listening["continued_from"] is None
    # events and states are different topics: the end event need not come before the idle state
    wanted_kinds = {"button", "conversation_started", "conversation_ended", "response_latency"}
    wait_for(lambda: wanted_kinds <= {e["event"] for e in observer.json("edge-agent/kiosk-7/event", mark)}, 20, f"the events {wanted_kinds}")
    events = observer.json("edge-agent/kiosk-7/event", mark)
    kinds = [e["event"] for e in events]
    ended = next(e for e in events if e["event"] == "conversation_ended")
    assert ended["reason"] == "button" and ended["duration_s"] > 5 and ended["session_id"] == sid
    assert "transcript" not in kinds and "response_text" not in kinds  # what people said stays local
    # a publication after the conversation ended (one a second): it counts all of it
    observer.wait("edge-agent/kiosk-7/metrics", since=idle_mark)
    metrics = observer.json("edge-agent/kiosk-7/metrics", idle_mark)[-1]
    wanted = ("uptime_s", "frames_captured", "frames_sent", "frames_gated", "uplink_bytes", "downlink_bytes", "overruns", "underruns")
    wanted += ("gate_talker_room", "gate_openings_held_back", "gate_strikes_held_back")
    wanted += ("rtt_ms", "response_latency_ms", "reconnects", "cpu_percent", "rss_mb", "temperature_c")
    wanted += ("speaker_underflows", "speaker_errors", "speaker_drops", "speaker_drop_failures", "speaker_drop_on")  # null: a file speaker has none
    for key in wanted:
        assert key in metrics, key
    assert metrics["frames_sent"] > 100 and metrics["downlink_bytes"] > 32000 and metrics["rtt_ms"] is not None
    assert isinstance(metrics["gate_talker_room"], bool) and metrics["gate_openings_held_back"] >= 0 and metrics["gate_strikes_held_back"] >= 0
    # a clean stop says offline itself (retained)
    mark = len(observer.messages)
    assert d.stop() == 0
    observer.wait("edge-agent/kiosk-7/availability", lambda p: p == b"offline", since=mark)
    d.wait_log("edge-agent stopped")
    assert not [line for line in d.lines if "WARNING" in line and "mqtt" in line], d.log[-2000:]  # a clean stop is quiet


def _cmd(obs: Observer, payload: Any, cid: str | None = None, timeout_s: float = 20.0) -> dict[str, Any]:
    mark = len(obs.messages)
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    obs.client.publish("edge-agent/kiosk-7/cmd", body, qos=1)
    raw = obs.wait("edge-agent/kiosk-7/cmd/result", (lambda p: json.loads(p).get("id") == cid) if cid else None, timeout_s, since=mark)
    return json.loads(raw)  # type: ignore[no-any-return]


def test_every_command_and_its_result(tmp_path: Path, sim: AgentSimulator, broker: Broker, observer: Observer, daemons: list[DaemonProcess]) -> None:
    d = DaemonProcess(_config(tmp_path, sim, broker.port))
    daemons.append(d)
    observer.wait("edge-agent/kiosk-7/availability", lambda p: p == b"online")
    time.sleep(0.3)  # the kiosk's subscription is in place once it has said online
    r = _cmd(observer, {"action": "ping", "id": "p1"}, "p1")
    assert r["ok"] is True and r["pong"] is True and r["state"] == "idle"
    # each conversation is let reach "listening" (its session id known and stored) before the
    # command that ends it, and "idle" before the next: a command racing the agent's handshake
    # would end a conversation the store never heard of
    mark = len(d.lines)
    assert _cmd(observer, {"action": "resume", "id": "r1"}, "r1")["ok"] is True
    wait_for(lambda: len(sim.sessions) == 1, 20)
    first = sim.sessions[0].session_id
    d.wait_log("state: listening", after=mark)
    busy = _cmd(observer, {"action": "new", "id": "n0"}, "n0")
    assert busy["ok"] is False and "busy" in busy["error"]
    mark = len(d.lines)
    assert _cmd(observer, {"action": "end", "id": "e1"}, "e1")["ok"] is True
    wait_for(lambda: sim.sessions[0].closed, 20)
    d.wait_log("state: idle", after=mark)
    nothing = _cmd(observer, {"action": "end", "id": "e2"}, "e2")
    assert nothing["ok"] is False and "no conversation" in nothing["error"]
    mark = len(d.lines)
    assert _cmd(observer, {"action": "resume", "id": 7}, None)["id"] == 7
    wait_for(lambda: len(sim.sessions) == 2, 20)
    assert sim.sessions[1].initiate["data"]["session_continuation"] == {"session_id": first}
    d.wait_log("state: listening", after=mark)
    mark = len(d.lines)
    assert _cmd(observer, {"action": "press", "id": "x1"}, "x1")["ok"] is True  # a press ends it
    wait_for(lambda: sim.sessions[1].closed, 20)
    d.wait_log("state: idle", after=mark)
    mark = len(d.lines)
    assert _cmd(observer, {"action": "new", "id": "n1"}, "n1")["ok"] is True
    wait_for(lambda: len(sim.sessions) == 3, 20)
    assert "session_continuation" not in sim.sessions[2].initiate["data"]
    d.wait_log("state: listening", after=mark)
    mark = len(d.lines)
    assert _cmd(observer, {"action": "end", "id": "e3"}, "e3")["ok"] is True
    wait_for(lambda: sim.sessions[2].closed, 20)
    d.wait_log("state: idle", after=mark)
    mark = len(d.lines)
    assert _cmd(observer, {"action": "long_press", "id": "l1"}, "l1")["ok"] is True
    wait_for(lambda: len(sim.sessions) == 4, 20)
    assert "session_continuation" not in sim.sessions[3].initiate["data"]
    d.wait_log("state: listening", after=mark)
    mark = len(d.lines)
    _cmd(observer, {"action": "end", "id": "e4"}, "e4")
    wait_for(lambda: sim.sessions[3].closed, 20)
    d.wait_log("state: idle", after=mark)
    forgot = _cmd(observer, {"action": "forget_sessions", "id": "f1"}, "f1")
    assert forgot["ok"] is True and forgot["forgotten"] == 4
    mark = len(d.lines)
    assert _cmd(observer, {"action": "resume", "id": "r2"}, "r2")["ok"] is True
    wait_for(lambda: len(sim.sessions) == 5, 20)
    assert "session_continuation" not in sim.sessions[4].initiate["data"]  # nothing left to continue
    d.wait_log("state: listening", after=mark)
    _cmd(observer, {"action": "end", "id": "e5"}, "e5")
    out = subprocess.run([sys.executable, "-m", "edge_agent", "sessions", "-c", str(tmp_path / "edge-agent.toml")], capture_output=True, text=True, cwd=REPO).stdout
    assert sim.sessions[4].session_id in out and first not in out


@pytest.mark.parametrize(
    ("payload", "error_part"),
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "JSON object"),
        (b'{"id": "b1"}', "missing 'action'"),
        (b'{"action": "reboot", "id": "b2"}', "unknown action"),
        (b'{"action": "ping", "id": {"x": 1}}', "id must be"),
        (b'{"action": "ping", "id": "b3", "shell": "rm -rf /"}', "unknown field"),
        (b"\xff\xfe", "not JSON"),
        (b"{" * 5000, "larger than"),
    ],
)
def test_malformed_commands_get_an_error_and_change_nothing(
    tmp_path: Path, sim: AgentSimulator, broker: Broker, observer: Observer, daemons: list[DaemonProcess], payload: bytes, error_part: str
) -> None:
    d = DaemonProcess(_config(tmp_path, sim, broker.port))
    daemons.append(d)
    observer.wait("edge-agent/kiosk-7/availability", lambda p: p == b"online")
    time.sleep(0.3)
    r = _cmd(observer, payload)
    assert r["ok"] is False and error_part in r["error"]
    assert _cmd(observer, {"action": "ping", "id": "after"}, "after")["state"] == "idle"
    assert sim.sessions == [] and d.proc.poll() is None


def test_broker_killed_and_restarted_mid_conversation(tmp_path: Path, sim: AgentSimulator, broker: Broker, daemons: list[DaemonProcess]) -> None:
    d = DaemonProcess(_config(tmp_path, sim, broker.port, clip_s=30.0))
    daemons.append(d)
    obs = Observer(broker.port)
    try:
        obs.wait("edge-agent/kiosk-7/availability", lambda p: p == b"online")
        d.press()
        d.wait_log("state: listening")
        session = sim.sessions[0]
        broker.kill()
        uplink_before = len(session.uplink)
        time.sleep(3)
        assert not session.closed and len(session.uplink) > uplink_before + 32000  # audio kept flowing
        assert d.proc.poll() is None
        obs.close()
        broker.start()
        t0 = time.monotonic()
        obs = Observer(broker.port)
        obs.wait("edge-agent/kiosk-7/availability", lambda p: p == b"online", timeout_s=5)
        state = json.loads(obs.wait("edge-agent/kiosk-7/state", timeout_s=5))
        assert time.monotonic() - t0 <= 5.0
        assert state["state"] in ("listening", "speaking") and state["session_id"] == session.session_id
        assert not session.closed and len(sim.sessions) == 1  # the conversation never noticed
    finally:
        obs.close()


def test_username_password_and_tls(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    certs = make_certs(tmp_path)
    b = Broker.with_password(tmp_path, "kiosk", "s3cret", extra=f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n")
    try:
        (tmp_path / "mqtt_password").write_text("s3cret\n")
        cfg = _config(tmp_path, sim, b.port, username="kiosk", password_file=str(tmp_path / "mqtt_password"), tls=True, ca_file=str(certs["ca.crt"]))
        d = DaemonProcess(cfg)
        daemons.append(d)
        obs = Observer(b.port, username="kiosk", password="s3cret", ca_file=str(certs["ca.crt"]))
        try:
            obs.wait("edge-agent/kiosk-7/availability", lambda p: p == b"online", timeout_s=10)
        finally:
            obs.close()
        d.stop()
        # wrong password: refused, logged, and the kiosk still runs conversations
        (tmp_path / "mqtt_password").write_text("wrong\n")
        d2 = DaemonProcess(cfg)
        daemons.append(d2)
        d2.wait_log("refused", timeout_s=10)
        mark = d2.press()
        d2.wait_log("state: listening", after=mark)
        assert "s3cret" not in d2.log and "wrong" not in d2.log
    finally:
        b.kill()


def test_fleet_json_snapshot(tmp_path: Path, sim: AgentSimulator, broker: Broker, observer: Observer, daemons: list[DaemonProcess]) -> None:
    d = DaemonProcess(_config(tmp_path, sim, broker.port))
    daemons.append(d)
    observer.wait("edge-agent/kiosk-7/metrics", timeout_s=10)
    cmd = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--json", "--wait-s", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=30)
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    (row,) = snap["kiosks"]
    assert row["id"] == "kiosk-7" and row["online"] is True and row["state"] == "idle" and row["cpu_percent"] is not None
    assert row["echo_poor_room"] is None  # echo cancellation off: unknown, not "copes"


# ----------------------------------------------------------------------------- an unreachable broker, logged
def _reporter(port: int, host: str = "127.0.0.1", **mqtt_extra: Any) -> StatusReporter:
    settings = config.from_dict({"device": {"id": "kiosk-7"}, "mqtt": {"enabled": True, "host": host, "port": port, **mqtt_extra}})
    return StatusReporter(settings.mqtt, "kiosk-7", lambda cmd, reply: None)


def _logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in list(caplog.records) if r.name == "edge_agent.fleet.status" and r.levelno == level]


def test_a_closed_port_is_a_warning_at_once_then_bounded_and_the_broker_coming_back_is_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """paho's connect_async reports a refused TCP connection only to on_connect_fail (without the
    reason): `edge-agent run` logged nothing about MQTT for as long as the broker was away."""
    caplog.set_level(logging.DEBUG, logger="edge_agent.fleet.status")
    port = free_port()  # nobody listens there
    reporter = _reporter(port)
    broker: Broker | None = None
    reporter.start()
    try:
        wait_for(lambda: _logged(caplog, logging.WARNING), 10, "a warning")
        wait_for(lambda: reporter.connect_failures.failures >= 3, 15, "three failed attempts")
        warned = _logged(caplog, logging.WARNING)
        assert len(warned) == 1, warned  # paho retries every 1-3 s; the log hears of it once a minute
        assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in warned[0], warned
        reporter.connect_failures.every_s = 0.0  # every failure reported from here: the later line
        wait_for(lambda: len(_logged(caplog, logging.WARNING)) >= 2, 10, "the next warning")
        later = _logged(caplog, logging.WARNING)[1]
        assert f"still cannot connect to 127.0.0.1:{port}: Connection refused" in later and "attempts failed over" in later, later
        broker = Broker(tmp_path, port=port).start()
        wait_for(reporter.connected.is_set, 10, "the connection")
        back = [m for m in _logged(caplog, logging.INFO) if f"connected to 127.0.0.1:{port}" in m]
        assert len(back) == 1 and "failed attempts over" in back[0], back
        reporter.connect_failures.every_s = 60.0
        broker.kill()
        wait_for(lambda: any("cannot connect" in m for m in _logged(caplog, logging.WARNING)[2:]), 10, "a new streak's first warning")
        assert any("disconnected" in m for m in _logged(caplog, logging.WARNING)[2:])
    finally:
        reporter.close()
        if broker is not None:
            broker.kill()


def test_a_broker_name_that_does_not_resolve_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.fleet.status")
    reporter = _reporter(1883, host="kiosk-broker.invalid")  # .invalid never resolves (RFC 6761)
    reporter.start()
    try:
        warned = wait_for(lambda: _logged(caplog, logging.WARNING), 15, "a warning")
        assert len(warned) == 1 and "cannot connect to kiosk-broker.invalid:1883: " in warned[0], warned
    finally:
        reporter.close()


def test_a_refused_login_is_one_warning_not_one_per_attempt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.fleet.status")
    broker = Broker.with_password(tmp_path, "kiosk-7", "right")
    (tmp_path / "wrong").write_text("wrong\n")
    reporter = _reporter(broker.port, username="kiosk-7", password_file=str(tmp_path / "wrong"))
    reporter.start()
    try:
        wait_for(lambda: broker.log.read_text().count("not authorised") >= 3, 15, "three refused logins")
        time.sleep(0.2)  # the third refusal's callbacks, on paho's thread
        warned = _logged(caplog, logging.WARNING)
        assert len(warned) == 1 and f"cannot connect to 127.0.0.1:{broker.port}: the broker refused the connection" in warned[0], warned
    finally:
        reporter.close()
        broker.kill()


def test_two_kiosks_with_one_id_say_why_they_flap_once_not_every_second(tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    """Two kiosks with one device id (one client id) take the broker connection from each other,
    about once a second each (so does a kiosk whose ACL refuses its topics): each drop was a
    `disconnected (Unspecified error)` warning and each reconnect an info line, naming no cause."""
    caplog.set_level(logging.INFO, logger="edge_agent.fleet.status")
    one, two = _reporter(broker.port), _reporter(broker.port)
    one.start()
    two.start()
    try:
        wait_for(lambda: one.connects + two.connects >= 10, 30, "the two to take the connection from each other")
        warned = _logged(caplog, logging.WARNING)
        said = [m for m in warned if "dropped the connection right after it was made" in m]
        assert said and "two kiosks with one id?" in said[0] and "ACL" in said[0], warned
        assert len(warned) <= 4, warned  # per kiosk: the first drop, then the streak with its causes
        assert len([m for m in _logged(caplog, logging.INFO) if "connected to" in m]) <= 4
    finally:
        one.close()
        two.close()


def test_a_missing_tls_key_file_is_named_as_such(tmp_path: Path) -> None:
    """A client certificate whose key file is missing was reported as `mqtt.ca_file: TLS setup
    failed`: the operator looked at the one file that was right."""
    from edge_agent.errors import ConfigError
    from edge_agent.fleet.mqttclient import make_client

    certs = make_certs(tmp_path)
    mqtt = {"enabled": True, "tls": True, "ca_file": str(certs["ca.crt"]), "cert_file": str(certs["server.crt"]), "key_file": str(tmp_path / "gone.key")}
    settings = config.from_dict({"mqtt": mqtt}).mqtt
    with pytest.raises(ConfigError, match=r"^mqtt\.key_file: TLS setup failed"):
        make_client(settings, "k")
    make_client(config.from_dict({"mqtt": {**mqtt, "key_file": str(certs["server.key"])}}).mqtt, "k")  # all there: no error


def test_fleet_reads_a_tls_broker_with_flags_alone(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """A fleet admin's laptop has no kiosk config: TLS was only to be had through `-c` with
    `[mqtt] tls = true`, so `edge-agent fleet` could not watch a fleet behind a TLS broker."""
    certs = make_certs(tmp_path)
    b = Broker(tmp_path, extra=f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n").start()
    try:
        d = DaemonProcess(_config(tmp_path, sim, b.port, tls=True, ca_file=str(certs["ca.crt"])))
        daemons.append(d)
        d.wait_log("mqtt connected|MQTT connected|connected to", timeout_s=15)
        fleet = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(b.port), "--json", "--wait-s", "1.5"]
        out = subprocess.run([*fleet, "--ca-file", str(certs["ca.crt"])], capture_output=True, text=True, cwd=REPO, timeout=30)
        assert out.returncode == 0, out.stderr
        (row,) = json.loads(out.stdout)["kiosks"]
        assert row["id"] == "kiosk-7" and row["online"] is True
        plain = subprocess.run(fleet, capture_output=True, text=True, cwd=REPO, timeout=30)
        assert plain.returncode == 1 and "--tls" in plain.stderr, plain.stderr
        missing = subprocess.run([*fleet, "--ca-file", str(tmp_path / "none.crt")], capture_output=True, text=True, cwd=REPO, timeout=30)
        assert missing.returncode != 0 and "--ca-file" in missing.stderr and "Traceback" not in missing.stderr, missing.stderr
    finally:
        b.kill()


def test_fleet_last_seen_is_when_the_kiosk_spoke_not_when_the_broker_replayed_it() -> None:
    """`seen` was the arrival of any message: a kiosk offline for an hour showed "3s", its
    retained availability and state just delivered (found by a newcomer). A retained message
    counts by the time it carries (the state's `since`, an event's `at`), a live one by arrival;
    a retained availability says nothing of when."""
    from edge_agent.fleet.view import FleetView

    view = FleetView("edge-agent")
    now = 1_800_000_000.0
    hour_ago = datetime.fromtimestamp(now - 3600, UTC).isoformat()
    view.apply("edge-agent/k1/availability", b"offline", now=now, retained=True)
    assert view.kiosks["k1"].last_seen is None
    view.apply("edge-agent/k1/state", json.dumps({"state": "idle", "since": hour_ago}).encode(), now=now, retained=True)
    assert view.kiosks["k1"].last_seen == pytest.approx(now - 3600)
    assert "3600s" in view.render(now=now)
    view.apply("edge-agent/k1/state", json.dumps({"state": "idle", "since": "not a time"}).encode(), now=now, retained=True)
    assert view.kiosks["k1"].last_seen == pytest.approx(now - 3600)
    future = datetime.fromtimestamp(now + 9999, UTC).isoformat()  # a kiosk's clock ahead
    view.apply("edge-agent/k1/event", json.dumps({"event": "x", "at": future}).encode(), now=now, retained=True)
    assert view.kiosks["k1"].last_seen == now
    view.apply("edge-agent/k2/metrics", b"{}", now=now + 5)  # live
    assert view.kiosks["k2"].last_seen == now + 5


def test_fleet_an_online_idle_kiosk_is_seen_now_not_when_it_went_idle() -> None:
    """The broker holds a retained `online` only while the kiosk is connected (its last will
    replaces it): a kiosk idle since yesterday, connected this second, showed as seen a day ago
    (its state's `since`; found by an attacker)."""
    from edge_agent.fleet.view import FleetView

    view = FleetView("edge-agent")
    now = 1_800_000_000.0
    day_ago = datetime.fromtimestamp(now - 86400, UTC).isoformat()
    view.apply("edge-agent/k1/availability", b"online", now=now, retained=True)
    view.apply("edge-agent/k1/state", json.dumps({"state": "idle", "since": day_ago}).encode(), now=now, retained=True)
    assert view.kiosks["k1"].last_seen == now
    view.apply("edge-agent/k2/state", json.dumps({"state": "idle", "since": day_ago}).encode(), now=now, retained=True)
    view.apply("edge-agent/k2/availability", b"online", now=now, retained=True)  # in either order
    assert view.kiosks["k2"].last_seen == now
