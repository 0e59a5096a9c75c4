"""Privacy: forget is total, secrets stay private (file modes, warnings, config errors, the
fleet command's password), and doctor says what is exposed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Broker, KioskThread, Observer, kiosk_settings, toml_dump, wait_for, write_wav
from test_store_faults import Recorder, Tmpfs, conversation

from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.core.exposure import exposure_warnings
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.errors import ConfigError
from edge_agent.service.doctor import Doctor


# ----------------------------------------------------------------------------- forget
def test_forget_during_a_live_conversation_leaves_nothing_to_continue(tmp_path: Path, sim: AgentSimulator) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / f"{DB_NAME}.corrupt-20260101T000000").write_bytes(b"an old copy with old ids")
    rec = Recorder()
    with KioskThread(kiosk_settings(tmp_path, sim.url), reporter=rec) as k:
        earlier = conversation(k, sim)
        k.press()
        k.wait_state(c.LISTENING)
        wait_for(lambda: len(sim.sessions) == 2, 20, "the live session")
        live = sim.sessions[1]
        assert live.initiate["data"]["session_continuation"] == {"session_id": earlier.session_id}
        before = k.on_loop(lambda: len(rec.states))
        k.loop.call_soon_threadsafe(k.kiosk.forget_sessions)
        wait_for(lambda: "sessions_forgotten" in rec.codes(), 20, "the forget")
        mark = k.on_loop(lambda: len(rec.states))  # after whatever the forget published
        # the state the forget published (retained) names neither the live session nor the one it
        # continued, which the forget wiped (it named both: found by a newcomer)
        forgot = rec.states[before:mark]
        assert forgot and all(s[1:] == (None, None) for s in forgot), forgot
        k.press()  # the visitor ends the conversation after the wipe
        k.wait_state(c.IDLE)
        # the state flips in the conversation, its publication follows as the actions run
        wait_for(lambda: any(s[0] == c.IDLE for s in rec.states[mark:]), 20, "the idle state published")
        # the state published (retained) once it ended names neither session
        ended = [s for s in rec.states[mark:] if s[0] in (c.ENDING, c.IDLE)]
        assert ended and all(s[1:] == (None, None) for s in ended), ended
        k.press()
        k.wait_state(c.LISTENING)
        wait_for(lambda: len(sim.sessions) == 3, 20, "the next session")
        assert "session_continuation" not in sim.sessions[2].initiate["data"]  # continued the live one before
    assert list(state.glob(f"{DB_NAME}.corrupt-*")) == []
    ids = [s.id for s in SessionStore(state).recent()]
    assert ids == [sim.sessions[2].session_id]
    blob = b"".join(p.read_bytes() for p in state.iterdir() if p.is_file())
    assert live.session_id.encode() not in blob and earlier.session_id.encode() not in blob


def test_forget_while_idle_clears_the_retained_state(tmp_path: Path, sim: AgentSimulator) -> None:
    rec = Recorder()
    with KioskThread(kiosk_settings(tmp_path, sim.url), reporter=rec) as k:
        first = conversation(k, sim)
        assert k.on_loop(lambda: rec.states[-1])[1] == first.session_id  # idle, naming the last session
        k.loop.call_soon_threadsafe(k.kiosk.forget_sessions)
        wait_for(lambda: "sessions_forgotten" in rec.codes(), 20, "the forget")
        # read on the loop, once the callback that reported the forget has published its state too
        assert k.on_loop(lambda: rec.states[-1]) == (c.IDLE, None, None)


def test_a_flood_of_forgets_wipes_a_few_times_and_refuses_the_rest(tmp_path: Path) -> None:
    """Every `forget_sessions` deleted, checkpointed and VACUUMed, synced, on the daemon's loop,
    without limit: 1 000 of them held the loop (audio, the watchdog's ping) for 3-12 s. Now a few
    wipe at once, then one per FORGET_EVERY_S; the rest are refused and wipe nothing."""
    from edge_agent.core.timing import Timing
    from edge_agent.fleet.commands import Command
    from edge_agent.service.records import FORGET_EVERY_S, FORGETS_BURST, SessionRecords
    from edge_agent.service.remote_control import carry_out

    now = [100.0]
    store = SessionStore(tmp_path, 10)
    records = SessionRecords(store, None, lambda code, fields: None, lambda: None, clock=lambda: now[0])
    conv = c.Conversation(Timing())
    forget = Command("forget_sessions", "f")
    wiped = []
    for _ in range(FORGETS_BURST + 5):
        store.record_start("s", "a", "default", None, 1.0)
        wiped.append(carry_out(forget, conv, lambda e: None, records.forget, now[0]))
    assert [r["ok"] for r in wiped] == [True] * FORGETS_BURST + [False] * 5
    assert all("rate limited" in r["error"] for r in wiped[FORGETS_BURST:]), wiped
    assert store.newest("a", "default") is not None  # a refused forget wiped nothing: it says so
    now[0] += FORGET_EVERY_S
    again = carry_out(forget, conv, lambda e: None, records.forget, now[0])
    assert again["ok"] and again["forgotten"] == 1 and store.newest("a", "default") is None
    store.close()


# ----------------------------------------------------------------------------- exposure
def _settings(tmp_path: Path, **sections: dict[str, object]) -> config.Settings:
    data = {"device": {"id": "k", "state_dir": str(tmp_path / "state")}, "agent": {"agent_id": "a"}}
    for name, table in sections.items():
        data.setdefault(name, {}).update(table)  # type: ignore[attr-defined]
    path = tmp_path / "c.toml"
    path.write_text(toml_dump(data))  # type: ignore[arg-type]
    return config.load(path)


def test_exposure_warnings_name_each_leak_and_spare_loopback(tmp_path: Path) -> None:
    key = tmp_path / "public_key"
    key.write_text("pk-secret\n")
    key.chmod(0o644)
    pw = tmp_path / "mqtt_password"
    pw.write_text("hunter2\n")
    pw.chmod(0o640)  # group-readable: the installer's root:edge-agent scheme, not a leak
    badge = tmp_path / "badge_secret"
    badge.write_text("fleet-secret-0123456789abcdef\n")
    badge.chmod(0o644)  # the fleet's badge secret: anyone who reads it can make every kiosk's badge keys
    s = _settings(
        tmp_path,
        agent={"public_key_file": str(key), "endpoint": "ws://agent.example.net:8080/millis"},
        mqtt={"enabled": True, "host": "broker.example.net", "username": "kiosk", "password_file": str(pw)},
        badge={"device": "/dev/input/by-id/reader", "secret_file": str(badge)},
    )
    found = "\n".join(exposure_warnings(s))
    assert "agent.public_key_file" in found and "ws:// to agent.example.net" in found
    assert f"badge.secret_file {badge} is readable by every user" in found
    assert "without TLS" in found and "mqtt.password_file" not in found
    assert "pk-secret" not in found and "hunter2" not in found and "fleet-secret" not in found
    (tmp_path / "c.toml").chmod(0o644)
    inline = _settings(tmp_path, agent={"public_key": "pk-inline", "endpoint": "ws://127.0.0.1:8765"}, mqtt={"enabled": True, "host": "localhost", "username": "kiosk", "password": "x"})
    (tmp_path / "c.toml").chmod(0o644)
    warnings = exposure_warnings(inline)
    assert len(warnings) == 1 and "agent.public_key, mqtt.password" in warnings[0] and "pk-inline" not in warnings[0]
    (tmp_path / "c.toml").chmod(0o600)
    assert exposure_warnings(inline) == []
    tls = _settings(tmp_path, agent={"endpoint": "wss://api-west.millis.ai:8080/millis"}, mqtt={"enabled": True, "host": "broker.example.net", "username": "kiosk", "password": "x", "tls": True})
    assert exposure_warnings(tls) == []


def test_the_daemon_logs_exposures_at_start(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    key = tmp_path / "public_key"
    key.write_text("pk-secret\n")
    key.chmod(0o604)
    settings = kiosk_settings(tmp_path, sim.url, agent={"public_key_file": str(key)})
    with caplog.at_level(logging.WARNING), KioskThread(settings):
        pass
    assert any("exposure: agent.public_key_file" in r.getMessage() for r in caplog.records)
    assert "pk-secret" not in caplog.text


@pytest.mark.parametrize(("key", "toml"), [("agent.public_key", "[agent]\npublic_key = 987654321\n"), ("mqtt.password", '[mqtt]\npassword = ["hunter2"]\n')])
def test_a_wrongly_typed_secret_is_not_echoed(tmp_path: Path, key: str, toml: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert err.value.key == key and "987654321" not in str(err.value) and "hunter2" not in str(err.value)
    assert "secret" in str(err.value)


def test_doctor_fails_on_a_read_only_state_dir_and_warns_on_exposures(tmp_path: Path, sim: AgentSimulator) -> None:
    fs = Tmpfs(tmp_path / "ro")
    try:
        SessionStore(fs.path).close()
        fs.path.chmod(0o755)
        fs.readonly(True)
        mic = write_wav(tmp_path / "mic.wav", bytes(32000))
        s = _settings(
            tmp_path,
            device={"state_dir": str(fs.path)},
            agent={"endpoint": "ws://192.0.2.1:9/millis", "connect_timeout_s": 0.5},
            audio={"input": f"file:{mic}", "output": "null"},
            button={"source": "none"},
        )
        lines: list[str] = []
        assert Doctor(s, meter_s=0.2, out=lines.append).run() == 1
        text = "\n".join(lines)
        assert any(line.startswith("FAIL  state dir writable") and "Read-only" in line for line in lines), text
        assert "WARN  exposure: agent.endpoint is plain ws:// to 192.0.2.1" in text
    finally:
        fs.umount()


def test_doctor_warns_about_a_section_it_does_not_know(tmp_path: Path) -> None:
    """A typo'd section name (`[vda]`) leaves that whole section at its defaults: `run` reads past
    it with a log line (a newer version's config may hold sections this one does not know), and
    the doctor, which printed `PASS  config`, now says so in a WARN line with the section meant."""
    mic = write_wav(tmp_path / "mic.wav", bytes(32000))
    data = {"vda": {"aggressiveness": 3}, "audio": {"input": f"file:{mic}", "output": "null"}, "button": {"source": "none"}}
    data["device"] = {"state_dir": str(tmp_path / "state")}
    s = config.from_dict(data)
    assert s.ignored_sections == ("ignoring section [vda]: not known to this edge-agent version (did you mean [vad]?)",)
    lines: list[str] = []
    Doctor(s, meter_s=0.2, out=lines.append).run()
    assert "WARN  config: ignoring section [vda]: not known to this edge-agent version (did you mean [vad]?)" in lines, lines


def test_doctor_says_an_unknown_section_once(tmp_path: Path) -> None:
    """The doctor's WARN line is the whole report of an unknown section: the loader's log line
    came first and the same words twice read as two problems."""
    mic = write_wav(tmp_path / "mic.wav", bytes(32000))
    data = {"vda": {"aggressiveness": 3}, "audio": {"input": f"file:{mic}", "output": "null"}, "button": {"source": "none"}}
    data["device"] = {"state_dir": str(tmp_path / "state")}
    data["agent"] = {"agent_id": "a", "public_key": "k", "endpoint": "ws://127.0.0.1:9/millis"}
    path = tmp_path / "c.toml"
    path.write_text(toml_dump(data))
    out = subprocess.run([sys.executable, "-m", "edge_agent", "doctor", "-c", str(path), "--meter-s", "0.2"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert (out.stdout + out.stderr).count("ignoring section [vda]") == 1, out.stdout + out.stderr


# ----------------------------------------------------------------------------- fleet password
def test_fleet_reads_the_password_from_a_file_or_the_environment_never_argv(tmp_path: Path) -> None:
    b = Broker.with_password(tmp_path, "admin", "s3cret")
    try:
        pub = Observer(b.port, username="admin", password="s3cret")
        wait_for(pub.client.is_connected, 10, "the publisher connected")
        pub.client.publish("edge-agent/kiosk-9/availability", b"online", qos=1, retain=True).wait_for_publish(5)
        pub.close()
        (tmp_path / "pw").write_text("s3cret\n")
        base = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(b.port), "--username", "admin", "--json", "--wait-s", "1"]
        env = {k: v for k, v in os.environ.items() if k != "EDGE_AGENT_MQTT_PASSWORD"}

        def kiosks(extra: list[str], **more_env: str) -> tuple[list[str], str]:
            out = subprocess.run(base + extra, capture_output=True, text=True, cwd=REPO, timeout=30, env={**env, **more_env})
            assert out.returncode == 0, out.stderr
            return [k["id"] for k in json.loads(out.stdout)["kiosks"]], out.stderr

        assert kiosks(["--password-file", str(tmp_path / "pw")]) == (["kiosk-9"], "")
        assert kiosks([], EDGE_AGENT_MQTT_PASSWORD="s3cret") == (["kiosk-9"], "")
        ids, err = kiosks(["--password", "s3cret"])
        assert ids == ["kiosk-9"] and "process list" in err
        # --ask-password with no terminal: Python's getpass warning, then EOFError, exit 70
        out = subprocess.run([*base, "--ask-password"], capture_output=True, text=True, cwd=REPO, timeout=30, env=env, stdin=subprocess.DEVNULL)
        said = "edge-agent fleet: --ask-password needs a terminal to type into: use --password-file or EDGE_AGENT_MQTT_PASSWORD"
        assert out.returncode == 2 and out.stderr.strip().splitlines() == [said], out.stderr
        # a refused login: an empty fleet and exit 0 before, which a monitoring script read as "no kiosks"
        for extra, more_env in (([], {}), (["--password", "wrong"], {})):
            out = subprocess.run(base + extra, capture_output=True, text=True, cwd=REPO, timeout=30, env={**env, **more_env})
            assert out.returncode == 1 and out.stdout == "", (out.returncode, out.stdout)
            assert f"127.0.0.1:{b.port} did not let this client in" in out.stderr, out.stderr
    finally:
        b.kill()


# ----------------------------------------------------------------------------- the clock
def test_a_session_stored_under_a_clock_that_ran_ahead_is_not_continued(tmp_path: Path, sim: AgentSimulator) -> None:
    """A kiosk without a battery clock stored a session while its time was two days ahead (a bad
    time server), then the clock was put right. Its age came out negative, always within
    `resume_within_s`, so every press continued that old visitor's conversation, and it stayed the
    slot's newest until the clock caught up. Such a session's age cannot be told: not continued."""
    import time

    state = tmp_path / "state"
    SessionStore(state).record_start("from-the-future", "agent-1", "default", None, started_at=time.time() + 2 * 86400)
    with KioskThread(kiosk_settings(tmp_path, sim.url, session={"resume_within_s": 3600.0})) as k:
        k.press()
        k.wait_state(c.LISTENING)
        wait_for(lambda: len(sim.sessions) == 1, 20, "the session")
        assert "session_continuation" not in sim.sessions[0].initiate["data"], sim.sessions[0].initiate


def test_after_a_reboot_with_the_clock_behind_the_newest_conversation_is_continued() -> None:
    """A Pi without a battery clock came back from a power cut an hour behind. Its newest stored
    session X looked an hour ahead, so the next visitor's conversation Z started fresh, as it must;
    but the store ranks by wall clock, X stayed its newest, and Z was never continued; once NTP
    put the clock right, the next press continued X, the earlier visitor's conversation. The
    session this process ran itself (aged on the monotonic clock) now beats an older one, or one
    of no known age; a newer one another kiosk shared still wins."""
    from edge_agent.core.resume import ResumeMemory

    x_at = 100_000.0
    wall = [x_at + 600.0 - 3600.0]  # ten minutes after X, the clock an hour behind
    memory = ResumeMemory("X", wall[0] - x_at, "default", lambda agent, slot: ("X", wall[0] - x_at))
    assert memory.candidate(0.0, 86400.0, None, "default") is None  # X's age cannot be told: fresh
    memory.remember("Z", None, "default", 30.0)
    wall[0] += 60.0
    assert memory.candidate(60.0, 86400.0, None, "default") == "Z"  # the clock still behind
    wall[0] += 3600.0  # NTP: X is an hour and 11 minutes old again, Z 40 s
    assert memory.candidate(70.0, 86400.0, None, "default") == "Z"
    memory.recall = lambda agent, slot: ("K", 5.0)  # another kiosk's, newer than Z
    assert memory.candidate(80.0, 86400.0, None, "default") == "K"

