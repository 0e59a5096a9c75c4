"""A hostile review of the config reload (SIGHUP) and of config validation (a helper, 2026-12-06):
the real daemon in process (conftest's KioskThread) against the loopback simulator, each reload
read from a TOML file as `edge-agent run` reads it at a SIGHUP. Each test failed before its fix."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from conftest import KioskThread, kiosk_settings, toml_dump, wait_for

from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.errors import ConfigError


def _reload_file(tmp_path: Path, settings: config.Settings, sim: AgentSimulator, **agent: object) -> Path:
    """A config file as an operator would write it for this kiosk, with `agent` keys changed."""
    cfg = tmp_path / "reload.toml"
    cfg.write_text(
        toml_dump(
            {
                "device": {"id": settings.device.id, "state_dir": str(settings.device.state_dir)},
                "agent": {"endpoint": sim.url, "agent_id": settings.agent.agent_id, "public_key": "test-key", **agent},
                "audio": {"input": settings.audio.input, "output": settings.audio.output},
                "button": {"source": "none"},
            }
        )
    )
    return cfg


def test_a_dead_link_limit_within_the_ping_interval_is_refused_naming_the_key(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """`agent.dead_after_s` no longer than `agent.ping_interval_s` (each within its own range, so
    accepted): a healthy link is heard from only when it answers a ping, so every quiet moment of
    a conversation (the visitor thinking) ended the link as dead and reconnected into a new
    billed session, every dead_after_s, with "agent link ended: timeout" and nothing naming the
    config (ping 10 s, dead 2 s: 3 sessions in 6 s of silence against the simulator). A reload to
    such a config was taken the same way. It is one config error naming the key, at start and at
    a SIGHUP (the running config kept)."""
    bad = config.from_dict({"agent": {"agent_id": "a", "public_key": "k", "ping_interval_s": 10.0, "dead_after_s": 2.0}})
    with pytest.raises(ConfigError) as caught:
        config.validate_for_run(bad)  # what `run` and `doctor` check before anything opens
    assert "agent.dead_after_s" in caught.value.every()

    settings = kiosk_settings(tmp_path, sim.url, session={"idle_timeout_s": 60.0})
    cfg = _reload_file(tmp_path, settings, sim, ping_interval_s=10.0, dead_after_s=2.0)
    with KioskThread(settings) as k:
        caplog.set_level(logging.INFO)
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: config.load(cfg)))
        wait_for(lambda: "config reload rejected" in caplog.text, 5, "the rejection")
        assert "agent.dead_after_s" in caplog.text, caplog.text[-1500:]
        assert (k.kiosk.settings.agent.ping_interval_s, k.kiosk.settings.agent.dead_after_s) == (settings.agent.ping_interval_s, settings.agent.dead_after_s)
        k.press()  # and the running link timing still holds a quiet conversation up
        k.wait_state(c.LISTENING, 10)
        time.sleep(3.0)
        assert k.state == c.LISTENING and len(sim.sessions) == 1 and k.kiosk.counters["reconnects"] == 0


def test_a_reload_to_a_plain_ws_endpoint_on_the_network_is_warned_about(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """The exposure warnings ("the public key and the visitors' audio cross the network
    unencrypted") were logged at start only: an operator who moved `agent.endpoint` to a plain
    ws:// server elsewhere with `systemctl reload` (the README's way to change `[agent]`) sent the
    key and every visitor's voice in clear from the next press, and the log never said so until a
    restart. A reload now says what it newly exposes, once."""
    settings = kiosk_settings(tmp_path, sim.url)
    cfg = _reload_file(tmp_path, settings, sim, endpoint="ws://192.0.2.10:8080/millis")
    with KioskThread(settings) as k:
        caplog.set_level(logging.INFO)
        assert "exposure:" not in caplog.text  # loopback: nothing to say at start
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: config.load(cfg)))
        wait_for(lambda: "config reloaded" in caplog.text, 5, "the reload")
        assert k.kiosk.settings.agent.endpoint == "ws://192.0.2.10:8080/millis"
        assert "exposure: agent.endpoint is plain ws:// to 192.0.2.10" in caplog.text, caplog.text[-1500:]
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: config.load(cfg)))  # the same again: said once
        wait_for(lambda: caplog.text.count("config reloaded") == 2, 5, "the second reload")
        assert caplog.text.count("exposure: agent.endpoint") == 1, caplog.text[-1500:]


def test_a_reload_that_mends_the_endpoint_brings_the_warm_link_back_at_once(tmp_path: Path, sim: AgentSimulator) -> None:
    """A wrong endpoint with `agent.warm_link` on backs the standby off (5 s, 10 s, ... 60 s); the
    operator mends it with `systemctl reload`: the backoff of the wrong server was kept, and the
    warm link stayed away for up to a minute after the fix (presses connected cold meanwhile)."""
    settings = kiosk_settings(tmp_path, "ws://127.0.0.1:9/millis", agent={"warm_link": True})
    cfg = _reload_file(tmp_path, settings, sim, warm_link=True)
    with KioskThread(settings) as k:
        standby = k.kiosk.standby
        wait_for(lambda: standby._failures >= 2, 20, "two refused standbys (the next try 10 s later)")
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: config.load(cfg)))
        wait_for(lambda: standby.ready, 3, "a standby on the mended endpoint")
