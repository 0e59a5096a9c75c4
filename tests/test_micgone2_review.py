"""A helper's review (micgone2): a press while the microphone is gone, the doctor on a config
outside /etc, a fleet forget's checkpoint on the loop. The whole daemon in process, its button on
gpiozero's MockFactory pins, the agent the loopback simulator."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import Broker, KioskThread, LateMic, Observer, kiosk_events, kiosk_settings, mock_pins, toml_dump, wait_for
from gpiozero.pins.mock import MockFactory
from test_newcomer import ea
from test_operator_access import NOBODY

from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator

BUTTON_PIN, LED_PIN = 17, 27


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    with mock_pins() as factory:
        yield factory


def test_a_press_while_the_microphone_is_gone_opens_no_session(pins: MockFactory, tmp_path: Path, sim: AgentSimulator) -> None:
    """The USB microphone is unplugged (its capture failed, the daemon retries it every 5 s): a
    visitor's press opened a session on the platform (billed, stored as the slot's newest, which
    the next visitor then continued) that nobody could talk in. The press is refused as a start
    beyond the rate limit is: no link, the error earcon, a `start_refused` event saying why; once
    the microphone is back a press starts a conversation as always."""
    settings = kiosk_settings(tmp_path, sim.url, button={"source": "gpio", "pin": BUTTON_PIN, "hold_s": 1.0, "bounce_s": 0.01}, led={"pin": LED_PIN})
    missing = tmp_path / "usb-mic.wav"
    settings = replace(settings, audio=replace(settings.audio, input=f"file:{missing}"))
    button = pins.pin(BUTTON_PIN)
    with KioskThread(settings, wait_ready=False, button=None, source=LateMic(missing)) as k:
        wait_for(lambda: k.kiosk.audio_watch.stalled_at is not None, 10, "the microphone reported gone")
        events = kiosk_events(k)
        played: list[str] = []
        get = k.kiosk.earcons.get
        k.kiosk.earcons.get = lambda name: (played.append(name), get(name))[1]  # type: ignore[method-assign]
        button.drive_low()
        time.sleep(0.1)
        button.drive_high()
        wait_for(lambda: any(kind == "button" for kind, _ in events), 5, "the press seen")
        time.sleep(1.5)
        assert sim.connections == 0 and not sim.sessions, "a press with no microphone opened a session on the platform"
        assert k.state == c.IDLE
        assert k.on_loop(lambda: k.kiosk.store.newest("agent-1", "default")) is None
        refused = [f for kind, f in events if kind == "start_refused"]
        assert refused and refused[0].get("reason") == "microphone_gone", events
        assert played == ["error"], played
        # the microphone is back: a press starts a conversation
        (tmp_path / "mic.wav").replace(missing)
        wait_for(lambda: k.kiosk.audio_watch.stalled_at is None, 15, "the microphone back")
        button.drive_low()
        time.sleep(0.1)
        button.drive_high()
        k.wait_state(c.LISTENING, 15)
        assert len(sim.sessions) == 1



def test_an_mqtt_press_while_the_microphone_is_gone_is_refused_with_the_reason(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """Home Assistant's or a script's `press` while the USB microphone is gone: answered `ok`, and a
    session opened nobody could talk in. The reply says why nothing started."""
    settings = kiosk_settings(tmp_path, sim.url, mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port, "discovery": False, "keepalive_s": 5})
    missing = tmp_path / "usb-mic.wav"
    settings = replace(settings, audio=replace(settings.audio, input=f"file:{missing}"))
    obs = Observer(broker.port, "test-kiosk-never")
    try:
        with KioskThread(settings, wait_ready=False, source=LateMic(missing)) as k:
            wait_for(k.kiosk.reporter.connected.is_set, 20, "the kiosk to connect")  # type: ignore[attr-defined]
            wait_for(lambda: k.kiosk.audio_watch.stalled_at is not None, 10, "the microphone reported gone")
            obs.client.subscribe("edge-agent/test-kiosk/cmd/result", qos=1)
            time.sleep(0.3)
            obs.client.publish("edge-agent/test-kiosk/cmd", json.dumps({"action": "press", "id": "p1"}), qos=1)
            reply = json.loads(obs.wait("edge-agent/test-kiosk/cmd/result", lambda p: json.loads(p).get("id") == "p1"))
            time.sleep(1.0)
            assert sim.connections == 0, "an MQTT press with no microphone opened a session"
            assert reply["ok"] is False and "microphone" in reply["error"], reply
            assert k.state == c.IDLE
    finally:
        obs.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="the doctor judges for the service user only when run as root")
def test_the_doctor_as_root_on_a_config_in_a_home_does_not_fail_the_home_dir(tmp_path: Path) -> None:
    """`sudo edge-agent doctor -c ~/kiosk.toml` (root trying a config before installing it): the
    doctor walked the dirs on the way to it for the service user and failed on the 0700 home dir,
    "the service's `run` refuses to start: exit 78", with the hint `chmod o+x /root`. The shipped
    unit reads /etc/edge-agent/config.toml whatever `-c` says, and a config where its sandbox hides
    everything (ProtectHome=, PrivateTmp=) cannot be the service's: judged for its own bits only.
    Here the home is a 0700 dir of root's under /tmp (pytest's), the same branch as /root or /home."""
    pwd.getpwnam(NOBODY)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    state = Path(tempfile.mkdtemp(prefix="ea-mg2-", dir="/run"))
    try:
        state.chmod(0o700)
        os.chown(state, pwd.getpwnam(NOBODY).pw_uid, -1)
        cfg = home / "kiosk.toml"
        data = {
            "device": {"id": "ops", "state_dir": str(state)},
            "agent": {"endpoint": "ws://127.0.0.1:9/millis", "agent_id": "a", "public_key": "k"},
            "audio": {"input": "null", "output": "null"},
            "button": {"source": "none"},
        }
        cfg.write_text(toml_dump(data))
        cfg.chmod(0o644)
        out = ea("doctor", "-c", str(cfg), "--meter-s", "0.1", env={"EDGE_AGENT_SERVICE_USER": NOBODY})
        assert "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
        line = [x for x in out.stdout.splitlines() if "service user reads its files" in x]
        assert line and line[0].startswith("PASS"), out.stdout
        # where the unit does see it (not its config path: a drop-in may name it), a closed dir on the way still fails
        closed = state / "closed"
        closed.mkdir(mode=0o700)
        (closed / "kiosk.toml").write_text(toml_dump(data))
        (closed / "kiosk.toml").chmod(0o644)
        out = ea("doctor", "-c", str(closed / "kiosk.toml"), "--meter-s", "0.1", env={"EDGE_AGENT_SERVICE_USER": NOBODY})
        line = [x for x in out.stdout.splitlines() if "service user reads its files" in x]
        assert line and line[0].startswith("FAIL") and str(closed) in line[0], out.stdout
    finally:
        shutil.rmtree(state, ignore_errors=True)
