"""Running as a systemd service: notify protocol, watchdog, SIGTERM, SIGHUP, journald, the unit file."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, DaemonProcess, KioskThread, daemon_config, kiosk_settings, wait_for

from edge_agent.devtools.simulator import AgentSimulator

UNIT = REPO / "systemd" / "edge-agent.service"


class NotifySocket:
    """The datagram socket systemd would own; collects every notify message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def lines(self, prefix: str, since: float = 0.0) -> list[float]:
        return [t for t, m in self.messages if m.startswith(prefix) and t >= since]

    def close(self) -> None:
        self._stop = True
        self._thread.join(1)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


def _config(tmp_path: Path, sim: AgentSimulator, clip_s: float = 12.0, silent: bool = False, **sections: dict) -> Path:
    return daemon_config(tmp_path, sim.url, clip_s, silent, **sections)


def test_ready_after_setup_and_watchdog_pings(tmp_path: Path, sim: AgentSimulator, notify: NotifySocket, daemons: list[DaemonProcess]) -> None:
    d = DaemonProcess(_config(tmp_path, sim), env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "600000"})
    daemons.append(d)
    wait_for(lambda: notify.lines("READY=1"), 20, "READY=1")
    ready_at = notify.lines("READY=1")[0]
    assert d.wait_log("ready: device svc")
    # every WATCHDOG_USEC / 3 (0.2 s): five pings, on average 0.4 s apart at most, well inside the
    # 0.6 s systemd allows (timed by their own spacing, not counted in a fixed window)
    pings = wait_for(lambda: (p := notify.lines("WATCHDOG=1", since=ready_at))[4:] and p, 20, "five watchdog pings")
    assert (pings[4] - pings[0]) / 4 < 0.4, pings
    mark = d.press()
    d.wait_log("state: listening", after=mark)
    wait_for(lambda: any("STATUS=listening" in m for _, m in notify.messages), 20, "STATUS=listening")
    assert d.stop() == 0
    assert any(m == "STOPPING=1" for _, m in notify.messages)


def test_watchdog_stops_when_capture_stalls_and_resumes_after(tmp_path: Path, sim: AgentSimulator, notify: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    with KioskThread(kiosk_settings(tmp_path, sim.url), wait_ready=False) as k:
        events: list[str] = []
        k.kiosk.reporter.event = lambda kind, fields: events.append(fields.get("code", kind))  # type: ignore[method-assign]
        wait_for(lambda: notify.lines("READY=1"), 20)
        time.sleep(0.5)
        k.kiosk.source.stalled = True  # type: ignore[attr-defined]
        stalled_at = time.monotonic()
        wait_for(lambda: "audio_stalled" in events, 20, "an audio_stalled error event")
        # the pings stop in the tick that reports the stall; a ping of an earlier tick may still be
        # on its way through the reader thread: 0.3 s for it (pings come every 0.1 s while alive)
        quiet_from = time.monotonic() + 0.3
        time.sleep(1.8)
        assert notify.lines("WATCHDOG=1", since=quiet_from) == []
        # AUDIO_STALL_S (2 s) without a frame, then the tick: not the 5 s of a retry
        assert quiet_from - 0.3 - stalled_at < 4.0
        k.kiosk.source.stalled = False  # type: ignore[attr-defined]
        wait_for(lambda: notify.lines("WATCHDOG=1", since=quiet_from), 8, "pings again after the device came back")
        assert "audio_recovered" in events


@pytest.mark.parametrize("echo_cancel", [False, True], ids=["plain", "echo-cancel"])
def test_sigterm_mid_conversation_exits_0_fast_with_the_session_stored(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess], echo_cancel: bool) -> None:
    cfg = _config(tmp_path, sim, audio={"echo_cancel": echo_cancel})
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log("ready: device")
    mark = d.press()
    d.wait_log("state: listening", after=mark)
    time.sleep(0.5)
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM, timeout_s=3) == 0
    assert time.monotonic() - t0 < 3.0
    wait_for(lambda: sim.sessions[0].closed, 10, "the agent socket to be closed")
    out = subprocess.run([sys.executable, "-m", "edge_agent", "sessions", "--json", "-c", str(cfg)], capture_output=True, text=True, cwd=REPO, check=True).stdout
    (row,) = json.loads(out)
    assert row["id"] == sim.sessions[0].session_id and row["end_reason"] == "shutdown" and row["ended_at"]


def test_sighup_reloads_config_when_idle_and_rejects_a_bad_one(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    cfg = _config(tmp_path, sim, silent=True)
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log("ready: device")
    cfg.write_text(cfg.read_text() + "\n[session]\nidle_timeout_s = 3.0\n")
    mark = len(d.lines)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reloaded", after=mark)
    mark = d.press()
    d.wait_log("state: listening", after=mark)
    d.wait_log(r"conversation ended \(idle\)", timeout_s=10, after=mark)  # the new idle timeout
    cfg.write_text(cfg.read_text() + "\n[vad]\naggressiveness = 9\n[log]\nlevel = \"loud\"\n")
    mark = len(d.lines)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log(r"config reload rejected.*vad\.aggressiveness.*; log\.level", after=mark)  # every bad section on the line
    assert d.proc.poll() is None


def test_a_reload_during_a_conversation_is_taken_when_it_ends_and_says_what_waits_for_a_restart(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """`systemctl reload` during a conversation logged "deferred" and was then forgotten: the new
    idle timeout never came. Now it is taken when the conversation ends; a section opened at
    start ([vad] here) is named as waiting for a restart, not silently kept or half applied."""
    cfg = _config(tmp_path, sim, silent=True)
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log("ready: device")
    mark = d.press()
    d.wait_log("state: listening", after=mark)
    cfg.write_text(cfg.read_text() + "\n[session]\nidle_timeout_s = 3.0\n[vad]\npreroll_ms = 300\n")
    mark = len(d.lines)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reload deferred until the conversation ends", after=mark)
    mark = d.press()  # ends it
    d.wait_log(r"config reloaded; changes to \[vad\] take effect at the next restart", after=mark)
    mark = d.press()
    d.wait_log("state: listening", after=mark)
    d.wait_log(r"conversation ended \(idle\)", timeout_s=10, after=mark)  # the new idle timeout


def test_a_deferred_reload_that_no_longer_holds_is_one_error_not_one_a_tick(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """The settings a SIGHUP left for the end of a conversation are checked again when taken; if
    they no longer hold, that is one error line and the running config stays (kept pending, they
    failed again at every 50 ms tick)."""
    from dataclasses import replace

    from edge_agent.core.config import EXAMPLE_AGENT_ID

    settings = kiosk_settings(tmp_path, sim.url)
    with KioskThread(settings) as k:
        k.on_loop(lambda: setattr(k.kiosk.reloads, "pending", replace(settings, agent=replace(settings.agent, agent_id=EXAMPLE_AGENT_ID))))
        wait_for(lambda: "config reload rejected" in caplog.text, 10, "the rejection")
        time.sleep(0.5)
        assert caplog.text.count("config reload rejected") == 1 and "tick failed" not in caplog.text, caplog.text[-2000:]
        assert k.kiosk.settings.agent.agent_id == settings.agent.agent_id


def test_bad_config_exits_78_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[audio]\nduplex = 'sometimes'\n")
    out = subprocess.run([sys.executable, "-m", "edge_agent", "run", "-c", str(cfg)], capture_output=True, text=True, cwd=REPO, env={**os.environ, "EDGE_AGENT_PUBLIC_KEY": "k"})
    assert out.returncode == 78
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "audio.duplex" in lines[0]


def test_journald_logs_have_no_own_timestamps(tmp_path: Path, sim: AgentSimulator) -> None:
    env = {**os.environ, "EDGE_AGENT_PUBLIC_KEY": "k", "JOURNAL_STREAM": "8:12345"}
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(_config(tmp_path, sim))], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    assert proc.stderr is not None
    first = proc.stderr.readline()
    proc.terminate()
    proc.wait(5)
    # journald reads the syslog priority off the line's start (every line was filed at info)
    assert re.match(r"<6>INFO |<4>WARNING |<3>ERROR ", first) and not re.search(r"\d{4}-\d\d-\d\d", first), first


def _unit_keys() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


def test_unit_file_carries_the_required_keys() -> None:
    k = _unit_keys()
    assert k["Type"] == ["notify"] and k["Restart"] == ["on-failure"] and k["RestartPreventExitStatus"] == ["78"]
    assert k["WatchdogSec"] and "network-online.target" in k["After"][0] and "sound.target" in k["After"][0]
    assert "network-online.target" in k["Wants"][0]
    assert k["User"] == ["edge-agent"] and set(k["SupplementaryGroups"][0].split()) == {"audio", "gpio"}
    assert k["StateDirectory"] == ["edge-agent"] and k["ConfigurationDirectory"] == ["edge-agent"]
    # lgpio (a Pi 5's pin factory) makes a FIFO in the working directory at import: / is read-only
    assert k["RuntimeDirectory"] == ["edge-agent"] and k["WorkingDirectory"] == ["/run/edge-agent"]
    for key in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "RestrictAddressFamilies", "DeviceAllow", "DevicePolicy", "SystemCallFilter", "CapabilityBoundingSet"):
        assert key in k, key
    assert k["ProtectSystem"] == ["strict"]
    assert any("alsa" in v for v in k["DeviceAllow"]) and any("gpiochip" in v for v in k["DeviceAllow"])
    assert k["ExecStart"][0].endswith("edge-agent run -c /etc/edge-agent/config.toml")
    assert k["MemoryMax"] == ["192M"] and "`MemoryMax=192M`" in (REPO / "README.md").read_text()  # a bound on what anyone can make the kiosk buffer


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_file_verifies_and_its_exposure_is_in_the_readme(tmp_path: Path) -> None:
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge-agent/venv/bin/edge-agent", str(Path(sys.executable).parent / "edge-agent")))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0 and "edge-agent.service" not in out.stderr, out.stderr
    sec = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for edge-agent.service: ([\d.]+)", sec.stdout)
    assert m, sec.stdout[-500:]
    assert float(m.group(1)) <= 2.5
    assert f"exposure level {m.group(1)}" in (REPO / "README.md").read_text()


def test_a_second_daemon_on_the_same_state_dir_is_refused_and_nothing_stale_stays(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """An operator's `sudo edge-agent run` beside the running service: both ran, fighting over the
    microphone, the broker's client id and the store. The second is refused in one line naming
    the first; a first killed with SIGKILL leaves nothing that refuses the next start."""
    cfg = _config(tmp_path, sim, silent=True)
    first = DaemonProcess(cfg)
    daemons.append(first)
    first.wait_log(r"ready: device svc")
    second = DaemonProcess(cfg)
    daemons.append(second)
    assert second.proc.wait(20) == 1
    second._reader.join(2)
    refusal = [line for line in second.lines if "another edge-agent" in line]
    assert len(refusal) == 1 and f"(pid {first.proc.pid})" in refusal[0] and str(tmp_path / "state") in refusal[0], second.log
    assert "Traceback" not in second.log and "ready: device" not in second.log
    assert first.proc.poll() is None  # the running one goes on
    lock = tmp_path / "state" / "edge-agent.lock"  # only the dir's user (and root) can hold it: no
    assert lock.stat().st_mode & 0o777 == 0o600 and lock.parent.stat().st_mode & 0o777 == 0o700  # squatter
    # another state dir is another kiosk: not refused
    (tmp_path / "other").mkdir()
    other = DaemonProcess(_config(tmp_path / "other", sim, silent=True))
    daemons.append(other)
    other.wait_log(r"ready: device svc")
    other.stop()
    first.proc.kill()
    first.proc.wait(5)
    third = DaemonProcess(cfg)
    daemons.append(third)
    third.wait_log(r"ready: device svc")
    assert third.stop() == 0


def _service_waiting_for_a_run_by_hand(tmp_path: Path, sim: AgentSimulator, notify: NotifySocket, daemons: list[DaemonProcess]) -> tuple[Path, DaemonProcess, DaemonProcess]:
    """(config, a daemon run by hand holding the state dir, the service waiting for it: READY=1 sent)."""
    cfg = _config(tmp_path, sim, silent=True)
    by_hand = DaemonProcess(cfg)
    daemons.append(by_hand)
    by_hand.wait_log(r"ready: device svc")
    service = DaemonProcess(cfg, env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "900000"})
    daemons.append(service)
    wait_for(lambda: notify.lines("READY=1"), 20, "READY=1 while waiting")
    return cfg, by_hand, service


def test_the_service_waits_for_a_daemon_run_by_hand_and_takes_over_when_it_ends(tmp_path: Path, sim: AgentSimulator, notify: NotifySocket, daemons: list[DaemonProcess]) -> None:
    """An operator stops the service, runs `sudo edge-agent run` to watch the log, and the
    service is started again meanwhile (a restart, an upgrade). It was refused like a second
    daemon by hand, restarted every RestartSec into its start limit and stayed down after the
    hand run ended. Started by systemd (NOTIFY_SOCKET) it waits instead: up for systemd, a STATUS
    line naming the holder, the watchdog fed, a reload not ending it; the kiosk once the hand
    run is gone."""
    _cfg, by_hand, service = _service_waiting_for_a_run_by_hand(tmp_path, sim, notify, daemons)
    waiting = [m for _, m in notify.messages if m.startswith("STATUS=waiting for")]
    assert waiting and f"(pid {by_hand.proc.pid})" in waiting[0] and str(tmp_path / "state") in waiting[0], notify.messages
    ready_at = notify.lines("READY=1")[0]
    service.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: notify.lines("WATCHDOG=1", since=ready_at)[3:], 20, "watchdog pings while waiting")
    assert service.proc.poll() is None, service.log
    assert "ready: device svc" not in service.log  # the hand run has the microphone and the store
    assert by_hand.stop() == 0
    service.wait_log(r"ready: device svc")
    assert service.stop() == 0
    assert "Traceback" not in service.log


def test_the_service_that_waited_takes_over_with_the_config_on_disk_and_survives_a_reload(tmp_path: Path, sim: AgentSimulator, notify: NotifySocket, daemons: list[DaemonProcess]) -> None:
    """The operator runs by hand to try config edits, edits the file and stops the hand run: the
    service took over with the config read before the wait (and the next hand run was refused);
    and a reload (systemd, told READY=1, sends one at any time) right after the wait killed it
    while it set up, SIGHUP's default action back before its loop handled it (found by an
    attacker)."""
    cfg, by_hand, service = _service_waiting_for_a_run_by_hand(tmp_path, sim, notify, daemons)
    cfg.write_text(cfg.read_text().replace('id = "svc"', 'id = "svc-edited"'))  # the operator's edit
    assert by_hand.stop() == 0
    wait_for(lambda: notify.lines("STATUS=starting"), 20, "STATUS=starting")
    service.proc.send_signal(signal.SIGHUP)  # systemctl reload, while it sets up
    assert service.wait_log(r"ready: device (\S+)").group(1) == "svc-edited"
    time.sleep(0.5)
    assert service.proc.poll() is None, service.log[-600:]
    assert service.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or not Path("/usr/bin/python3").exists(), reason="needs root, setpriv, /usr/bin/python3: another user holds it")
def test_another_local_user_cannot_hold_the_claim_and_keep_the_service_from_starting(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """The first claim was an abstract unix socket named after the state dir's path: any local
    user could bind that name, and the service then refused to start ("another edge-agent runs"),
    restarted into its start limit and stayed down. The claim is a lock in the 0700 state dir."""
    cfg = _config(tmp_path, sim, silent=True)
    (tmp_path / "state").mkdir(mode=0o700)
    hold = (
        "import sys, time; from pathlib import Path; from edge_agent.service.instance import claim; "
        "print('held' if claim(Path(sys.argv[1])) is not None else 'not held', flush=True); time.sleep(60)"
    )
    import tempfile

    code = Path(tempfile.mkdtemp(prefix="edge-agent-squatter-"))  # the package where that user can read it
    code.chmod(0o755)
    shutil.copytree(REPO / "edge_agent", code / "edge_agent", ignore=shutil.ignore_patterns("__pycache__"))
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", hold, str(tmp_path / "state")]
    squatter = subprocess.Popen(as_nobody, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=code, env={"PYTHONPATH": str(code)})
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "not held"
        d = DaemonProcess(cfg)
        daemons.append(d)
        d.wait_log(r"ready: device svc")
        assert d.stop() == 0
    finally:
        squatter.kill()
        squatter.wait(5)
        shutil.rmtree(code, ignore_errors=True)
