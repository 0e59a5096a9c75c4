"""Configs that attack the reader (core/config.py) and its SIGHUP reload: integers beyond TOML's 64
bits, dotted keys that grow tomllib's memory with their square, an empty STATE_DIRECTORY (a
helper's hostile review, 2026-12-06: each failed before its fix)."""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, KioskThread, kiosk_settings, wait_for, write_wav

from edge_agent.core import config
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.errors import ConfigError

HUGE_HEX = "0x" + "f" * 5000
"""An integer tomllib reads (hex has no digit limit) that Python cannot turn into decimal text
(its 4300-digit limit): every message or JSON that shows it raised ValueError."""
HUGE_DECIMAL = "9" * 5000
"""An integer tomllib itself fails on with a plain ValueError (not a TOMLDecodeError)."""


def _gate(tmp_path: Path, toml: str, limit_as: int | None = None) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    rec = write_wav(tmp_path / "rec.wav", bytes(32000))

    def limited() -> None:
        if limit_as is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    return subprocess.run([sys.executable, "-m", "edge_agent", "gate", str(rec), "--json", "-c", str(cfg)], cwd=REPO, capture_output=True, text=True, timeout=30, env=env, preexec_fn=limited)


@pytest.mark.parametrize(
    "toml",
    [
        f"[audio]\nframe_ms = {HUGE_DECIMAL}\n",  # tomllib's own ValueError
        f"[audio]\nframe_ms = {HUGE_HEX}\n",  # the range message
        f"[agent]\nping_interval_s = {HUGE_HEX}\n",  # a number's range message
    ],
    ids=["decimal", "hex-integer", "hex-number"],
)
def test_an_integer_beyond_64_bits_is_a_config_error_not_an_unexpected_one(tmp_path: Path, toml: str) -> None:
    """TOML's integers are 64-bit. One of 5000 digits ended `run`, `doctor` and `gate` as
    "unexpected error: ValueError ... report it" (exit 70: systemd restarts a kiosk whose config
    is wrong, the one exit code RestartPreventExitStatus=78 is meant to stop)."""
    out = _gate(tmp_path, toml)
    assert out.returncode == 78, out.stderr[-600:]
    assert "config error" in out.stderr and "Traceback" not in out.stderr and "unexpected" not in out.stderr, out.stderr[-600:]


def test_an_integer_beyond_64_bits_in_the_agents_metadata_is_refused_at_load(tmp_path: Path) -> None:
    """[agent.metadata] goes to the agent as JSON at every `initiate`: a huge integer passed the
    config (`json_table` checks dates, nan, inf, depth) and json.dumps raised ValueError at each
    press, a kiosk that reports ready and never talks."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[agent.metadata]\nbig = {HUGE_HEX}\n")
    with pytest.raises(ConfigError) as caught:
        settings = config.load(cfg)
        json.dumps(settings.agent.metadata)  # what `initiate` does with it
    assert "agent.metadata.big" in caught.value.every()


def test_a_reload_to_a_config_with_a_huge_integer_is_rejected_with_one_clear_line(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """The SIGHUP path (`ConfigReload.reload_from`, as cli.py's `_reloaded` calls it) catches only
    EdgeAgentError: a config gone bad this way escaped it as a ValueError traceback ("Exception in
    callback") instead of "config reload rejected, keeping the running config"."""
    settings = kiosk_settings(tmp_path, sim.url)
    cfg = tmp_path / "reload.toml"
    cfg.write_text(f"[session]\nidle_timeout_s = {HUGE_HEX}\n")
    with KioskThread(settings) as k:
        caplog.set_level(logging.INFO)
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: config.load(cfg)))
        wait_for(lambda: "config reload rejected" in caplog.text, 5, "the rejection")
        assert "session.idle_timeout_s" in caplog.text
        assert k.kiosk.settings.session.idle_timeout_s == settings.session.idle_timeout_s


def test_a_rejected_reload_says_a_deferred_one_still_applies(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """A valid reload during a conversation waits for its end; a second, bad one is rejected,
    "keeping the running config", and then the first one changed it all the same at the end of
    the conversation, against what the log had just said (a helper's note, 2026-12-06). The
    deferred one still applies (the operator asked for it), and the rejection says so."""
    from edge_agent.core import conversation as c
    from edge_agent.core.config import from_dict

    settings = kiosk_settings(tmp_path, sim.url)
    bad = tmp_path / "reload.toml"
    bad.write_text("[session]\nidle_timeout_s = -1\n")
    with KioskThread(settings) as k:
        caplog.set_level(logging.INFO)
        k.press()
        k.wait_state(c.LISTENING, 10)
        wanted = settings.session.idle_timeout_s + 7
        agent = {"endpoint": sim.url, "agent_id": settings.agent.agent_id, "public_key": "pk"}
        good = from_dict({"device": {"state_dir": str(settings.device.state_dir)}, "agent": agent, "session": {"idle_timeout_s": wanted}})
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: good))
        k.on_loop(lambda: k.kiosk.reloads.reload_from(lambda: config.load(bad)))
        wait_for(lambda: "config reload rejected" in caplog.text, 5, "the rejection")
        assert "deferred earlier" in caplog.text, caplog.text[-1000:]
        k.press()  # the conversation ends: the deferred reload applies
        k.wait_state(c.IDLE, 10)
        wait_for(lambda: k.kiosk.settings.session.idle_timeout_s == wanted, 5, "the deferred reload")


def test_a_long_dotted_key_is_refused_before_it_takes_the_machines_memory(tmp_path: Path) -> None:
    """tomllib keeps every prefix of a dotted key (a.b.c...) as its own tuple: memory grows with
    the square of its parts. A 120 kB config (well under CONFIG_MAX_BYTES) of one 60000-part key
    took 13 GB and over a minute; at `run` (or a SIGHUP reload, on the kiosk's event loop) a Pi
    is out of memory. Run here under a 1 GiB address-space limit: it must be one config error."""
    key = ".".join(["a"] * 60000)
    out = _gate(tmp_path, f"[agent.metadata]\n{key} = 1\n", limit_as=1 << 30)
    assert out.returncode == 78, out.stderr[-600:]
    assert "config error" in out.stderr and "dotted key" in out.stderr, out.stderr[-600:]


def test_dotted_keys_a_real_config_uses_still_load(tmp_path: Path) -> None:
    """The guard against long dotted keys leaves what configs do alone: nested metadata up to the
    JSON depth the agent takes, URLs and dotted strings in values, floats."""
    deep = ".".join(f"k{i}" for i in range(60))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[agent]\nendpoint = "wss://api-west.millis.ai:8080/millis"\n'
        f'[agent.metadata]\n{deep} = 1\nsite = "lobby.floor.2.example.com"\nweights = [{", ".join(["1.5"] * 5000)}]\n'
        "[agent.config]\n\"a.b\".c = 'x'\n"
    )
    settings = config.load(cfg)
    assert settings.agent.metadata["site"] == "lobby.floor.2.example.com"
    assert settings.agent.config == {"a.b": {"c": "x"}}


def test_an_empty_state_directory_variable_falls_back_to_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """STATE_DIRECTORY set but empty (`export STATE_DIRECTORY=` in a shell, an EnvironmentFile
    line without a value) with no device.state_dir in the config: every command that reads the
    config, `gate` and `sessions` too, exited 78 with "device.state_dir: must name a directory,
    got an empty string (leave the key out for the default '')", about a key the file never set."""
    monkeypatch.setenv("STATE_DIRECTORY", "")
    assert config.from_dict({}).device.state_dir == Path("/var/lib/edge-agent")
