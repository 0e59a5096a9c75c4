"""A helper's attack on untrusted-input and fault paths (attack11): what held is in its report;
what did not, here."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import Broker
from test_cli_attacks import cli as run
from test_store_faults import conversation, kiosk_on

from edge_agent.cli import main
from edge_agent.core import config
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.errors import ConfigError


@pytest.mark.parametrize("forget", [False, True])
def test_a_sessions_state_dir_that_cannot_be_looked_at_is_one_line_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str], forget: bool) -> None:
    """`sessions --state-dir` checked its dir with `Path.exists`/`is_dir` outside any `except
    OSError`: on Python 3.11 they raise for all but a missing path, so a dir under one this user may
    not search (an operator's `--state-dir /var/lib/edge-agent/...`, EACCES) or a name too long
    (ENAMETOOLONG, real here: root searches everywhere) ended in `unexpected error: ... report
    it`, exit 70, listing or forgetting."""
    too_long = tmp_path / ("x" * 300)
    assert main(["sessions", "--state-dir", str(too_long), *(["--forget"] if forget else [])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edge-agent sessions: --state-dir {too_long}: cannot look at it"), err


def test_provision_passwd_that_cannot_be_looked_at_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`provision --passwd` (fleet/provision.py `password_lines`) looked at the password file with
    `Path.exists` outside any `except OSError`: `--passwd /etc/mosquitto/passwd` without sudo (a dir
    0750 root:mosquitto: EACCES) or a name too long (real here) was `unexpected error: ... report
    it`, exit 70. Now one line naming the file, and no password file made for the kiosk."""
    passwd = tmp_path / ("x" * 300)
    assert main(["provision", "kiosk-1", "--dir", str(tmp_path), "--passwd", str(passwd)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edge-agent: cannot update {passwd}: "), err
    assert not (tmp_path / "kiosk-1.mqtt_password").exists()


@pytest.mark.parametrize("gone", ["state dir", "store file"])
def test_a_store_removed_while_open_is_a_fault_and_its_sessions_come_back_to_disk(tmp_path: Path, gone: str) -> None:
    """The state dir (or the store in it) removed while the kiosk runs: SQLite wrote on into the
    deleted file without an error, `fault` stayed None (no `store_unavailable`, no LED), and every
    session recorded since was gone at the next start. Now the store goes to memory with all it
    held, and the next retry makes the dir and a new file and writes them back."""
    state = tmp_path / "state"
    store = SessionStore(state, retry_s=60.0)
    store.record_start("s-1", "agent", "default", None, started_at=1000.0)
    if gone == "state dir":
        shutil.rmtree(state)
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.path}{suffix}").unlink(missing_ok=True)
    store.record_start("s-2", "agent", "default", "s-1", started_at=2000.0)
    assert store.fault is not None and "removed or replaced" in store.fault
    assert store.retry()  # at once: nothing to wait for
    store.close()
    reopened = SessionStore(state)
    try:
        newest = reopened.newest("agent")
        assert reopened.fault is None and newest is not None and newest.id == "s-2" and newest.continued_from == "s-1"
        assert reopened.get("s-1") is not None
    finally:
        reopened.close()


def test_fleet_wait_s_beyond_what_a_sleep_takes_is_a_usage_error(tmp_path: Path) -> None:
    """`fleet --json --wait-s 1e19` (finite, so past the check that refused inf) connected to the
    broker, then `time.sleep` raised OverflowError: "unexpected error ... report it", exit 70."""
    broker = Broker(tmp_path).start()
    try:
        r = run("fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--json", "--wait-s", "1e19")
    finally:
        broker.kill()
    assert "unexpected error" not in r.stderr, r.stderr
    assert r.returncode == 2 and "--wait-s" in r.stderr, r.stderr


def test_a_state_dir_in_the_home_of_a_user_there_is_none_of_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`device.state_dir = "~edge_agent/state"` (a user name mistyped): `Path.expanduser` raised
    RuntimeError, and `run`, `doctor` and `sessions` ended in `unexpected error`, exit 70, which
    systemd restarts again and again, where a config error (78) stops it with the key named."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('[device]\nstate_dir = "~no-such-user-here/state"\n')
    with pytest.raises(ConfigError, match=r"device\.state_dir"):
        config.load(cfg)
    assert main(["sessions", "-c", str(cfg)]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device.state_dir" in err[0], err


def test_a_sessions_state_dir_in_the_home_of_a_user_there_is_none_of_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`sessions --state-dir '~nosuchuser'` (quoted, so the shell leaves it): exit 70 the same way."""
    assert main(["sessions", "--state-dir", "~no-such-user-here"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--state-dir ~no-such-user-here" in err[0], err


def test_a_stored_id_no_agent_gives_is_not_continued_nor_logged_raw(tmp_path: Path, sim: AgentSimulator, caplog: pytest.LogCaptureFixture) -> None:
    """The store is a file anyone with the service's rights (or a card copied off another kiosk)
    can fill, and its newest id went unchecked into the press: `press: continue <id>` and
    `ready (continuing <id>)` put its newline and escape codes in the journal raw (a forged
    line), the MQTT state carried it as `continued_from`, and it went to the server. Ids the kiosk
    takes from an agent or the fleet are checked (`SESSION_ID_CHARS`); a stored one is now too:
    such a row is nothing to continue, and the press starts fresh."""
    state = tmp_path / "state"
    SessionStore(state).close()
    with contextlib.closing(sqlite3.connect(state / DB_NAME, isolation_level=None)) as db:
        db.execute("INSERT INTO sessions (id, agent, slot, started_at) VALUES (?, 'agent-1', 'default', ?)", ("s1\nWARNING forged line\x1b[2J", time.time()))
    caplog.set_level(logging.INFO, logger="edge_agent")
    k, rec = kiosk_on(tmp_path, sim, state)
    with k:
        first = conversation(k, sim)
    assert "session_continuation" not in first.initiate["data"], first.initiate
    assert "forged" not in caplog.text and "\x1b" not in caplog.text
    assert not [s for s in rec.states if s[2] is not None and "forged" in s[2]], rec.states


def test_an_empty_sessions_state_dir_is_refused_not_taken_for_the_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`sessions --forget --state-dir "$DIR"` with DIR unset in a script: the empty option read as
    no option, and the config's state dir (the service's) was wiped instead of DIR's."""
    state = tmp_path / "service-state"
    store = SessionStore(state)
    store.record_start("kept-1", "agent", "default", None, started_at=1000.0)
    store.close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[device]\nstate_dir = "{state}"\n')
    assert main(["sessions", "-c", str(cfg), "--forget", "--state-dir", ""]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--state-dir" in err[0], err
    reopened = SessionStore(state)
    try:
        assert reopened.get("kept-1") is not None
    finally:
        reopened.close()
