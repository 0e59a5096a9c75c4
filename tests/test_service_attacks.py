"""Attacks on the service lifecycle (2026-12-06, a helper's): SIGTERM while the network hangs
(the unit's TimeoutStopSec=5), a notify socket nobody reads, sessions kept in memory through a
store fault. Each failed before its fix, through the real daemon in a process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, DaemonProcess, daemon_config, wait_for

from edge_agent.core.store import SessionStore
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.service.statecheck import StateDirProblem, check_state_dir

UNIT_STOP_S = 5.0  # systemd/edge-agent.service: TimeoutStopSec=5, then SIGKILL


def _fill_notify_queue(path: Path, datagram: bytes) -> None:
    """Fills the notify socket's queue at `path` (net.unix.max_dgram_qlen datagrams), as PID 1
    falling behind leaves it: the next datagram finds no room."""
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    try:
        while True:
            filler.sendto(datagram, str(path))
    except BlockingIOError:
        pass
    finally:
        filler.close()


# A resolver that does not answer (the Wi-Fi associated, the uplink dead: glibc waits
# timeout:5 x attempts:2 per name server). Only the names ending in .slow-dns.test are slowed;
# they then resolve to the loopback.
SLOW_DNS = '''
import socket, time
_real = socket.getaddrinfo

def getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".slow-dns.test"):
        time.sleep(10)  # glibc: timeout:5 x attempts:2
        host = "127.0.0.1"
    return _real(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
'''


def _slow_dns_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SLOW_DNS)
    return {"PYTHONPATH": f"{site}:{REPO}"}


def _config(tmp_path: Path, endpoint: str, **sections: dict) -> Path:
    return daemon_config(tmp_path, endpoint, **sections)


def _stop_time(d: DaemonProcess) -> tuple[int | None, float]:
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc: int | None = d.proc.wait(UNIT_STOP_S + 10)
    except Exception:
        rc = None
    return rc, time.monotonic() - t0


def test_sigterm_while_connecting_through_a_dead_resolver_exits_within_timeout_stop_sec(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """A press while the resolver does not answer, then `systemctl stop`: the link task is
    cancelled at once, but the resolution runs on asyncio's default executor, and asyncio.run
    waits for that executor at exit (no timeout on 3.11): the process outlives TimeoutStopSec."""
    port = sim.url.rsplit(":", 1)[1]
    cfg = _config(tmp_path, f"ws://agent.slow-dns.test:{port}")
    d = DaemonProcess(cfg, env=_slow_dns_env(tmp_path))
    daemons.append(d)
    d.wait_log("ready: device svc")
    mark = d.press()
    d.wait_log("state: connecting", after=mark)
    time.sleep(0.5)
    rc, took = _stop_time(d)
    d._reader.join(2)
    assert "edge-agent stopped" in d.log  # the kiosk's own shutdown finished at once...
    assert rc == 0 and took < UNIT_STOP_S, f"exit {rc} after {took:.1f} s (systemd SIGKILLs at {UNIT_STOP_S} s)\n{d.log[-1500:]}"


def test_sigterm_while_mqtt_resolves_its_broker_through_a_dead_resolver_exits_within_timeout_stop_sec(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """MQTT on, the broker's name not answering (the kiosk idle, no press): paho's network
    thread sits in getaddrinfo, and the reporter's close joins it with loop_stop(), no timeout."""
    cfg = _config(tmp_path, sim.url, mqtt={"enabled": True, "host": "broker.slow-dns.test", "port": 1883})
    d = DaemonProcess(cfg, env=_slow_dns_env(tmp_path))
    daemons.append(d)
    d.wait_log("ready: device svc")
    time.sleep(1.0)
    rc, took = _stop_time(d)
    d._reader.join(2)
    assert rc == 0 and took < UNIT_STOP_S, f"exit {rc} after {took:.1f} s (systemd SIGKILLs at {UNIT_STOP_S} s)\n{d.log[-1500:]}"


def test_a_notify_socket_nobody_reads_neither_freezes_the_kiosk_nor_makes_it_deaf_to_sigterm(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """PID 1 not draining its notify socket (busy in a daemon-reload, hung, or a NOTIFY_SOCKET
    some other process bound and never reads): notify.py means to drop what does not go ("the
    socket is full: nothing useful to do"), but its socket blocks, so the sendto of the next
    WATCHDOG=1 / STATUS= blocks the event loop: no press is answered, and SIGTERM (handled on
    the loop) is never acted on: systemd has to SIGKILL it."""
    path = tmp_path / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))  # never read: the queue fills after net.unix.max_dgram_qlen datagrams
    try:
        cfg = _config(tmp_path, sim.url)
        d = DaemonProcess(cfg, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "150000"})
        daemons.append(d)
        d.wait_log("ready: device svc")
        _fill_notify_queue(path, b"STATUS=x")  # others' datagrams (or ours) fill what PID 1 does not read: net.unix.max_dgram_qlen
        time.sleep(1.0)  # the next tick's WATCHDOG=1 (every 50 ms asked, every tick sent)
        mark = d.press()
        d.wait_log("state: listening", after=mark, timeout_s=10)
        rc, took = _stop_time(d)
        assert rc == 0 and took < UNIT_STOP_S, f"exit {rc} after {took:.1f} s"
    finally:
        sink.close()


def test_sessions_kept_in_memory_through_a_store_fault_are_written_back_at_sigterm_once_the_disk_is_back(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """The store went to memory (another writer held the database: a full card, a read-only
    remount and an operator's sqlite3 look the same to the kiosk); the disk is usable again, and
    the operator runs `systemctl restart edge-agent` before the next retry (every
    store_retry_s, 60 s, while idle): the shutdown closes the in-memory store without one more
    try, so the conversation held there is gone and the next press cannot continue it."""
    import json
    import sqlite3
    import subprocess
    import sys

    from edge_agent.core.store import DB_NAME, SessionStore

    state = tmp_path / "state"
    SessionStore(state).close()
    other = sqlite3.connect(state / DB_NAME, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    cfg = _config(tmp_path, sim.url)
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log("store_unavailable")
    d.wait_log("ready: device svc")
    mark = d.press()
    d.wait_log("state: listening", after=mark)
    wait_for(lambda: sim.sessions and sim.sessions[0].session_id, 20, "the session")
    time.sleep(0.5)
    mark = d.press()
    d.wait_log("state: idle", after=mark)
    other.rollback()
    other.close()  # the disk is usable again
    assert d.stop(signal.SIGTERM) == 0
    out = subprocess.run([sys.executable, "-m", "edge_agent", "sessions", "--json", "-c", str(cfg)], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert [row["id"] for row in json.loads(out)] == [sim.sessions[0].session_id], d.log[-2000:]


def test_sigterm_while_mqtt_connects_to_a_broker_that_drops_syns_exits_within_timeout_stop_sec(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """A broker host whose firewall drops the SYNs (or a host that is off, on a LAN that does not
    answer): paho's network thread sits in connect() for its 5 s connect_timeout, again and
    again, and the reporter's close joins that thread (loop_stop(), no timeout). A listener
    whose accept queue is full stands for it: the kernel drops further SYNs."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue (never accepted)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.2)
    try:
        cfg = _config(tmp_path, sim.url, mqtt={"enabled": True, "host": "127.0.0.1", "port": port})
        d = DaemonProcess(cfg)
        daemons.append(d)
        d.wait_log("ready: device svc")
        time.sleep(0.3)
        rc, took = _stop_time(d)
        d._reader.join(2)
        assert rc == 0 and took < 3.0, f"exit {rc} after {took:.1f} s (README: within 3 s; systemd SIGKILLs at {UNIT_STOP_S} s)\n{d.log[-1500:]}"
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_the_resolver_threads_hand_back_results_and_errors_and_refuse_past_their_limit() -> None:
    """The loop's executor (agent/resolver.py): a lookup's answer or exception reaches its caller;
    past MAX_IN_FLIGHT stuck lookups a new one fails at once (retried as an unreachable network);
    shutdown waits for nothing."""
    import threading

    from edge_agent.agent.resolver import MAX_IN_FLIGHT, ResolverThreads

    pool = ResolverThreads()
    assert pool.submit(lambda a, b: a + b, 2, b=3).result(5) == 5
    with pytest.raises(socket.gaierror):
        pool.submit(lambda: (_ for _ in ()).throw(socket.gaierror(-2, "Name or service not known"))).result(5)
    release = threading.Event()
    stuck = [pool.submit(release.wait, 30) for _ in range(MAX_IN_FLIGHT)]
    with pytest.raises(OSError, match="already waiting"):
        pool.submit(lambda: 1).result(1)
    t0 = time.monotonic()
    pool.shutdown(wait=True)
    assert time.monotonic() - t0 < 0.5 and not any(f.done() for f in stuck)
    release.set()
    assert all(f.result(5) is True for f in stuck)
    assert pool.submit(lambda: "again").result(5) == "again"  # the slots came back


# ----------------------------------------------------------------------------- a helper's attacks on the service (2026-12-06), each failed before its fix
def test_ready_is_not_lost_when_the_notify_queue_is_full_at_that_moment(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """PID 1 busy (a daemon-reload at boot) while the kiosk sets up: its notify queue is full when
    READY=1 goes out. notify.py drops what does not fit, which is right for WATCHDOG=1 (another
    follows) but READY=1 is sent once: systemd never hears it, the start job runs into
    TimeoutStartSec=60, and the unit is killed and restarted, again and again while PID 1 lags."""
    path = tmp_path / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    _fill_notify_queue(path, b"STATUS=x")  # the queue full before the kiosk starts: net.unix.max_dgram_qlen datagrams
    try:
        d = DaemonProcess(daemon_config(tmp_path, sim.url), env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"})
        daemons.append(d)
        d.wait_log("ready: device svc")  # READY=1 was sent into the full queue
        sink.settimeout(0.2)
        got: list[str] = []

        def ready_heard() -> bool:  # PID 1 catches up: reads its queue, and what comes after
            try:
                got.extend(sink.recv(4096).decode().splitlines())
            except TimeoutError:
                pass
            return "READY=1" in got

        wait_for(ready_heard, 10, "READY=1 once the queue drains")
        assert d.stop() == 0
    finally:
        sink.close()


def test_the_doctor_fails_a_state_dir_that_is_a_dangling_link(tmp_path: Path) -> None:
    """/var/lib/edge-agent linked to a USB stick or a second partition that is not mounted: the
    link points nowhere. The doctor says "does not exist yet: it is created on the first run",
    but the kiosk cannot make it (mkdir on the link: File exists) and runs without its store, no
    resume after a restart; the doctor passed the one thing that was wrong."""
    state = tmp_path / "state"
    state.symlink_to(tmp_path / "usb-not-mounted" / "edge-agent")
    store = SessionStore(state)
    try:
        assert store.fault is not None  # what the kiosk then runs with: sessions in memory only
    finally:
        store.close()
    with pytest.raises(StateDirProblem, match="link"):
        print(check_state_dir(state))


def test_a_reload_keeps_the_log_level_given_on_the_command_line(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """`edge-agent run --log-level debug` (how an operator chases a fault, README "Commands": the
    flag over `log.level`): a `kill -HUP` to try an edit set the level back to the config's info,
    and the debug lines the operator was waiting for stopped without a word."""
    cfg = daemon_config(tmp_path, sim.url)
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log("ready: device svc")
    mark = d.press()
    d.wait_log(r"DEBUG edge_agent: (visitor|agent):", after=mark)  # what was said: DEBUG without log.transcripts
    d.press()
    d.wait_log(r"conversation ended", after=mark)
    cfg.write_text(cfg.read_text() + "\n[session]\nidle_timeout_s = 30.0\n")
    mark = len(d.lines)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reloaded", after=mark)
    mark = d.press()
    d.wait_log("state: listening", after=mark)
    d.wait_log(r"DEBUG edge_agent: (visitor|agent):", after=mark)
    assert d.stop() == 0


def test_a_reload_during_the_stop_neither_kills_the_daemon_nor_loses_the_session(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """`systemctl reload` from a config tool racing a `systemctl stop` (or `kill -HUP` by hand): a
    SIGHUP after the loop closed met SIGHUP's default action, the process died of it, and systemd
    reported the stop as failed (`status=1/HUP`); one still on the loop reloaded the config after
    "edge-agent stopped"."""
    cfg = daemon_config(tmp_path, sim.url)
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log("ready: device svc")
    mark = d.press()
    d.wait_log("state: listening", after=mark)
    d.proc.send_signal(signal.SIGTERM)
    while d.proc.poll() is None:  # reloads all through the stop, until the process is gone
        try:
            d.proc.send_signal(signal.SIGHUP)
        except ProcessLookupError:
            break
        time.sleep(0.005)
    assert d.proc.wait(5) == 0, d.log[-1500:]
    stopped = d.lines.index(next(line for line in d.lines if "edge-agent stopped" in line))
    assert not [line for line in d.lines[stopped:] if "config reload" in line]
    out = subprocess.run([sys.executable, "-m", "edge_agent", "sessions", "--json", "-c", str(cfg)], capture_output=True, text=True, cwd=REPO, check=True).stdout
    (row,) = json.loads(out)
    assert row["end_reason"] == "shutdown" and row["ended_at"]


def test_systemctl_status_does_not_keep_a_state_long_gone_after_the_notify_queue_was_full(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """PID 1 busy for a moment while a conversation ends: the STATUS=idle that said so was
    dropped with the full queue, and nothing sends it again: `systemctl status edge-agent` went on
    showing "listening session ..." on an idle kiosk until the next visitor, and an operator
    checking on it from afar read a kiosk stuck in a conversation."""
    path = tmp_path / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    sink.settimeout(0.2)
    got: list[str] = []

    def read() -> None:
        try:
            got.extend(sink.recv(4096).decode().splitlines())
        except TimeoutError:
            pass

    try:
        d = DaemonProcess(daemon_config(tmp_path, sim.url, silent=True), env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"})
        daemons.append(d)
        d.wait_log("ready: device svc")
        mark = d.press()
        d.wait_log("state: listening", after=mark)
        wait_for(lambda: read() or "STATUS=listening" in " ".join(got), 10, "STATUS=listening")
        _fill_notify_queue(path, b"X=1")  # PID 1 falls behind: its queue full
        mark = d.press()  # ends the conversation while nothing fits
        d.wait_log(r"state: idle", after=mark)

        def last_status() -> str | None:  # PID 1 catches up and reads all
            read()
            statuses = [line for line in got if line.startswith("STATUS=")]
            return statuses[-1] if statuses else None

        wait_for(lambda: (last_status() or "").startswith("STATUS=idle"), 10, f"STATUS=idle once the queue drains (last: {last_status()})")
        assert d.stop() == 0
    finally:
        sink.close()
