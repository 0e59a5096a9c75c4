"""What an operator meets from a fresh clone, through the real command line as subprocesses: the
doctor checks the state dir without creating or chowning anything in it (as root too); only the
commands that talk to the agent read its key file; a recording that is not there, or a
`--state-dir` that is no directory, is one line naming what to fix; the doctor warns first
when the running service holds the devices it checks."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA, DaemonProcess, read_wav, toml_dump, write_wav
from test_newcomer import ea, one_line_error

from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.simulator import AgentSimulator

QUIET = DATA / "kiosk_dev_quiet.wav"
NOBODY = 65534
"""A uid that is not root, standing in for the service user `edge-agent`."""


def _config(tmp_path: Path, state_dir: Path, name: str = "c.toml", **sections: dict[str, object]) -> Path:
    """A kiosk that needs no hardware: a recording for a microphone, no speaker, no button."""
    mic = write_wav(tmp_path / "mic.wav", read_wav(QUIET)[: 32000 * 2])
    data: dict[str, dict[str, object]] = {
        "device": {"id": "op", "state_dir": str(state_dir)},
        "agent": {"endpoint": "ws://127.0.0.1:9/millis", "agent_id": "a"},
        "audio": {"input": f"file:{mic}", "output": "null"},
        "button": {"source": "none"},
    }
    for name, table in sections.items():
        data.setdefault(name, {}).update(table)
    cfg = tmp_path / name
    cfg.write_text(toml_dump(data))
    return cfg


def _doctor(cfg: Path, service_user: str = "") -> str:
    """The doctor's state dir line (the agent endpoint on port 9 fails: exit 1, not 78);
    `service_user`: the user the service runs as (none: `edge-agent`, not on this machine)."""
    out = ea("doctor", "-c", str(cfg), "--meter-s", "0.3", env={"EDGE_AGENT_PUBLIC_KEY": "k", "EDGE_AGENT_SERVICE_USER": service_user})
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    found = [i for i, line in enumerate(lines) if "state dir writable" in line]
    assert len(found) == 1, out.stdout
    return "\n".join(lines[found[0] : found[0] + 2])  # with its hint, if any


def _files(d: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_uid, p.stat().st_size) for p in d.iterdir()}


# ----------------------------------------------------------------------------- doctor
def test_sessions_and_the_doctor_read_a_wal_that_lost_its_shm(tmp_path: Path) -> None:
    """A store copied off a kiosk while it ran (a backup tool, `cp` of the state dir) or whose
    -shm was cleaned away: the -wal holds the latest sessions, not yet checkpointed. Read-only,
    SQLite cannot rebuild the -shm, so the store was opened `immutable` and the WAL left out:
    `sessions` listed none of the sessions in it and the doctor counted none. They are read from
    a private copy of the database and its WAL now, and nothing in the state dir changes."""
    live, state = tmp_path / "live", tmp_path / "state"
    store = SessionStore(live)
    store.record_start("s-one", "a", "default", None)
    store.record_start("s-two", "a", "room-4", "s-one")
    state.mkdir(mode=0o700)
    for name in (DB_NAME, f"{DB_NAME}-wal"):  # the kiosk still running: its WAL not checkpointed
        shutil.copyfile(live / name, state / name)
    store.close()
    before = _files(state)
    out = ea("sessions", "--state-dir", str(state))
    assert out.returncode == 0 and "s-two continues s-one" in out.stdout, out.stdout + out.stderr
    assert _files(state) == before
    line = _doctor(_config(tmp_path, state))
    assert line.startswith(f"PASS  state dir writable: {state} (2 sessions stored"), line
    assert _files(state) == before

    (state / f"{DB_NAME}-wal").unlink()  # a WAL that is no file (a device linked there) is not copied
    (state / f"{DB_NAME}-wal").symlink_to("/dev/zero")
    out = ea("sessions", "--state-dir", str(state))
    assert out.returncode == 0 and "no sessions stored" in out.stdout, out.stdout + out.stderr


def test_doctor_checks_the_state_dir_without_creating_the_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    cfg = _config(tmp_path, state)
    line = _doctor(cfg)
    assert list(state.iterdir()) == []  # a doctor as root made a root-owned database here
    assert line.startswith(f"PASS  state dir writable: {state} (no sessions stored yet"), line

    absent = tmp_path / "absent"
    line = _doctor(_config(tmp_path, absent, "absent.toml"))
    assert line.startswith("PASS") and "does not exist yet" in line and not absent.exists(), line

    store = SessionStore(state)
    store.record_start("s-one", "a", "default", None)
    store.close()
    before = _files(state)
    line = _doctor(cfg)
    assert line.startswith(f"PASS  state dir writable: {state} (1 session stored"), line
    assert "PrivateTmp=yes" in line and "use /var/lib/edge-agent" in line, line  # the unit's own /tmp: thrown away
    assert _files(state) == before  # read-only: no -wal or -shm left behind, nothing rewritten

    (state / DB_NAME).write_bytes(b"not a database, and not moved aside by a check")
    line = _doctor(cfg)
    assert line.startswith("FAIL") and "corrupt" in line and "hint:" in line, line
    assert [p.name for p in state.iterdir()] == [DB_NAME]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A dir any user may enter, for a state dir judged for another user (tmp_path lies under
    root's 0700 /tmp/pytest-of-root, which no other user may enter)."""
    d = Path(tempfile.mkdtemp(prefix="edge-agent-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: judges a state dir owned by another user, as `sudo edge-agent doctor` does")
def test_doctor_as_root_judges_for_the_state_dirs_owner_and_leaves_no_root_file(tmp_path: Path, open_dir: Path) -> None:
    state = open_dir / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    cfg = _config(tmp_path, state)
    try:
        owner = pwd.getpwuid(NOBODY).pw_name
    except KeyError:
        owner = f"uid {NOBODY}"
    line = _doctor(cfg)
    assert list(state.iterdir()) == []  # not even one owned by the service user
    assert line.startswith("PASS") and f"writable by {owner}" in line, line

    store = SessionStore(state)
    store.record_start("s-one", "a", "default", None)
    store.close()
    for p in (state, *state.iterdir()):
        os.chown(p, NOBODY, NOBODY)
    before = _files(state)
    assert "1 session stored" in _doctor(cfg) and _files(state) == before
    assert all(uid == NOBODY for uid, _ in _files(state).values())

    os.chown(state / DB_NAME, 0, 0)  # what `sudo edge-agent doctor` used to leave
    line = _doctor(cfg)
    assert line.startswith("FAIL") and str(state / DB_NAME) in line and f"chown {owner}:" in line, line
    state.chmod(0o500)
    line = _doctor(cfg)
    assert line.startswith("FAIL") and f"not writable by {owner}" in line, line


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: judges a state dir as `sudo edge-agent doctor` does")
def test_doctor_as_root_judges_for_the_service_user_where_there_is_one(tmp_path: Path, open_dir: Path) -> None:
    """A custom state dir made by root (`sudo mkdir`), 0700: judged for its owner it passed as
    "writable by root", and the service, running as its own user, then kept no sessions. So did
    a state dir of its own under a parent it may not enter."""
    state = open_dir / "state"
    state.mkdir(mode=0o700)
    cfg = _config(tmp_path, state)
    service = pwd.getpwuid(NOBODY).pw_name
    line = _doctor(cfg, service_user=service)
    assert line.startswith("FAIL") and f"not writable by {service}" in line, line
    os.chown(state, NOBODY, NOBODY)
    line = _doctor(cfg, service_user=service)
    assert line.startswith("PASS") and f"writable by {service}" in line, line
    os.chown(state, 0, 0)
    state.chmod(0o770)
    os.chown(state, 0, NOBODY)  # the service user's group may write: so may it
    line = _doctor(cfg, service_user=service)
    assert line.startswith("PASS"), line
    hidden = tmp_path / "hidden-state"  # tmp_path's parent is root's 0700 /tmp/pytest-of-root
    hidden.mkdir(mode=0o700)
    os.chown(hidden, NOBODY, NOBODY)
    line = _doctor(_config(tmp_path, hidden, "hidden.toml"), service_user=service)
    assert line.startswith("FAIL") and f"does not let {service} reach {hidden}" in line, line
    private = open_dir / "private"  # root's 0700 dir, and in it a link to a dir anyone may enter
    private.mkdir(mode=0o700)
    (open_dir / "public").mkdir(mode=0o755)
    (private / "link").symlink_to(open_dir / "public")
    through = private / "link" / "state"
    through.mkdir(mode=0o700)
    os.chown(through, NOBODY, NOBODY)
    line = _doctor(_config(tmp_path, through, "through.toml"), service_user=service)
    assert line.startswith("FAIL") and f"does not let {service} reach {through}" in line, line  # only where it led was checked


# ----------------------------------------------------------------------------- sessions: reading changes nothing
def test_listing_sessions_changes_nothing_in_the_state_dir(tmp_path: Path) -> None:
    """`sudo edge-agent sessions` opened the store for writing: a corrupt database was moved aside
    and a fresh one made, owned by root (the service user could then not keep sessions: no resume
    until someone chowned it), and the listing said 'no sessions stored', exit 0. Listing now
    reads without writing: a corrupt store is one line (exit 1) and stays where the kiosk's next
    start deals with it; a healthy one (here also one written by an older edge-agent) is listed
    with every file as it was."""
    state = tmp_path / "state"
    store = SessionStore(state)
    store.record_start("s-one", "a", "default", None)
    store.record_start("s-two", "a", "room-4", "s-one")
    store.close()
    as_service = os.geteuid() == 0  # as root, the files belong to another user, as on a kiosk
    for path in (state, *state.iterdir()):
        if as_service:
            os.chown(path, NOBODY, NOBODY)
    before = _files(state)
    out = ea("sessions", "--state-dir", str(state))
    assert out.returncode == 0 and "s-two continues s-one" in out.stdout and "s-one" in out.stdout, out.stdout + out.stderr
    assert _files(state) == before

    import sqlite3

    db = sqlite3.connect(state / DB_NAME)  # a store written before resumed_at existed
    db.executescript("DROP INDEX sessions_last_start; ALTER TABLE sessions DROP COLUMN resumed_at; VACUUM;")
    db.close()
    if as_service:
        os.chown(state / DB_NAME, NOBODY, NOBODY)
    before = _files(state)
    out = ea("sessions", "--state-dir", str(state), "--json")
    assert out.returncode == 0 and '"s-two"' in out.stdout, out.stdout + out.stderr
    assert _files(state) == before

    (state / DB_NAME).write_bytes(b"not a database " * 1000)
    before = _files(state)
    line = one_line_error(ea("sessions", "--state-dir", str(state)), 1)
    assert "corrupt" in line and str(state / DB_NAME) in line, line
    assert _files(state) == before  # not moved aside, no fresh database (root's, under sudo)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a store owned by another user, as `sudo edge-agent sessions --forget` meets it")
def test_forget_as_root_leaves_the_store_to_its_owner(tmp_path: Path) -> None:
    """`sudo edge-agent sessions --forget` on a corrupt store moved it aside (then deleted it) and
    made a fresh database owned by root in the service's state dir: the kiosk could no longer keep
    sessions. A database the store makes takes the state dir's owner (SQLite gives -wal and -shm
    the database's)."""
    state = tmp_path / "state"
    store = SessionStore(state)
    store.record_start("s-one", "a", "default", None)
    store.close()
    (state / DB_NAME).write_bytes(b"not a database " * 1000)
    for path in (state, *state.iterdir()):
        os.chown(path, NOBODY, NOBODY)
    out = ea("sessions", "--state-dir", str(state), "--forget")
    assert out.returncode == 0 and "forgot 0 sessions" in out.stdout, out.stdout + out.stderr
    files = _files(state)
    assert DB_NAME in files and not any(".corrupt-" in name for name in files), files
    assert all(uid == NOBODY for uid, _ in files.values()), files


# ----------------------------------------------------------------------------- the agent's key
def test_only_what_talks_to_the_agent_reads_its_key_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    missing_key = tmp_path / "no-such-key"
    cfg = _config(tmp_path, state, agent={"public_key_file": str(missing_key)})
    gate = ea("gate", "-c", str(cfg), str(QUIET), "--json")
    assert gate.returncode == 0 and '"sent"' in gate.stdout, gate.stderr
    sessions = ea("sessions", "-c", str(cfg))
    assert sessions.returncode == 0 and "no sessions stored" in sessions.stdout, sessions.stderr
    speaker = write_wav(tmp_path / "speaker.wav", bytes(32000 * 2))
    echo = ea("echo", "-c", str(cfg), str(tmp_path / "mic.wav"), str(speaker), "-o", str(tmp_path / "clean.wav"), "--json")
    assert echo.returncode == 0 and "erle_db" in echo.stdout, echo.stderr

    line = one_line_error(ea("run", "-c", str(cfg), timeout_s=30), 78)
    assert "agent.public_key_file" in line and str(missing_key) in line, line
    doctor = ea("doctor", "-c", str(cfg), timeout_s=30)
    assert doctor.returncode == 78 and doctor.stdout.startswith("FAIL  config: agent.public_key_file"), doctor.stdout
    assert not state.exists()  # refused before the store is opened


# ----------------------------------------------------------------------------- run: a recording that is not there
@pytest.mark.parametrize(("key", "spec"), [("audio.input", "file:{missing}"), ("audio.input", "loop:{missing}"), ("audio.output", "file:{tmp}/no-dir/out.wav")])
def test_run_with_an_audio_file_it_cannot_open_names_the_key(tmp_path: Path, key: str, spec: str) -> None:
    missing = tmp_path / "missing.wav"
    value = spec.format(missing=missing, tmp=tmp_path)
    section, name = key.split(".")
    cfg = _config(tmp_path, tmp_path / "state", **{section: {name: value}})
    line = one_line_error(ea("run", "-c", str(cfg), env={"EDGE_AGENT_PUBLIC_KEY": "k"}, timeout_s=30), 78)
    assert line.startswith(f"edge-agent: config error: {key}: ") and value.split(":", 1)[1] in line, line


# ----------------------------------------------------------------------------- sessions --state-dir
def test_sessions_state_dir_that_is_no_directory_is_a_usage_error(tmp_path: Path) -> None:
    absent, a_file, empty = tmp_path / "absent", tmp_path / DB_NAME, tmp_path / "empty"
    a_file.write_bytes(b"")
    empty.mkdir()
    for extra in ((), ("--forget",), ("--json",)):
        line = one_line_error(ea("sessions", "--state-dir", str(absent), *extra), 2)
        assert line == f"edge-agent sessions: --state-dir {absent}: does not exist", line
        line = one_line_error(ea("sessions", "--state-dir", str(a_file), *extra), 2)
        assert f"--state-dir {a_file}: not a directory" in line, line
    assert not absent.exists()
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml_dump({"device": {"state_dir": str(a_file)}}))
    line = one_line_error(ea("sessions", "-c", str(cfg)), 78)
    assert "config error: device.state_dir" in line and "not a directory" in line, line

    out = ea("sessions", "--state-dir", str(empty))
    assert out.returncode == 0 and out.stdout.strip() == f"no sessions stored in {empty}" and list(empty.iterdir()) == []


@pytest.mark.parametrize("key", ["mqtt.password_file", "badge.secret_file"])
def test_only_what_uses_a_secret_reads_its_file(tmp_path: Path, key: str) -> None:
    """An operator without read access to mqtt.password_file or badge.secret_file (root:edge-agent
    0640 on a kiosk) can still list sessions or gate a recording; run and doctor (and fleet, which
    logs in to the broker) say which file they could not read, in one line."""
    state = tmp_path / "state"
    missing = tmp_path / "no-such-secret"
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": 9, "username": "kiosk"}
    if key == "mqtt.password_file":
        cfg = _config(tmp_path, state, mqtt={**mqtt, "password_file": str(missing)})
    else:
        cfg = _config(tmp_path, state, badge={"device": "/dev/input/by-id/reader", "secret_file": str(missing)})
    gate = ea("gate", "-c", str(cfg), str(QUIET), "--json")
    assert gate.returncode == 0 and '"sent"' in gate.stdout, gate.stderr
    sessions = ea("sessions", "-c", str(cfg))
    assert sessions.returncode == 0 and "no sessions stored" in sessions.stdout, sessions.stderr

    line = one_line_error(ea("run", "-c", str(cfg), env={"EDGE_AGENT_PUBLIC_KEY": "k"}, timeout_s=30), 78)
    assert key in line and str(missing) in line, line
    doctor = ea("doctor", "-c", str(cfg), env={"EDGE_AGENT_PUBLIC_KEY": "k"}, timeout_s=30)
    assert doctor.returncode == 78 and doctor.stdout.startswith(f"FAIL  config: {key}"), doctor.stdout
    if key == "mqtt.password_file":
        line = one_line_error(ea("fleet", "-c", str(cfg), "--json", timeout_s=30), 78)
        assert key in line and str(missing) in line, line
    assert not state.exists()


NOT_UTF8 = bytes(range(0x80, 0xA0))
"""32 bytes that are no UTF-8 text (as `head -c 32 /dev/urandom` nearly always is)."""


@pytest.mark.parametrize(("key", "content", "says"), [
    ("agent.public_key_file", NOT_UTF8, "is not UTF-8 text"),
    ("mqtt.password_file", NOT_UTF8, "is not UTF-8 text"),
    ("mqtt.password_file", b"p" * (64 * 1024 + 1), "is larger than 64 KiB"),
], ids=["key-not-utf8", "password-not-utf8", "password-too-large"])  # fmt: skip
def test_a_secret_file_that_is_no_secret_text_is_one_line_naming_the_key(tmp_path: Path, key: str, content: bytes, says: str) -> None:
    """A key or password file that is not UTF-8 text was an 'unexpected error' (exit 70: systemd
    restarts the service over and over) and the doctor crashed; one read far too large for a
    secret (a path mistyped to a log or a disk image) was taken whole as the password. Both are
    config errors naming the key and the file (78), never its content."""
    state, secret = tmp_path / "state", tmp_path / "secret"
    secret.write_bytes(content)
    if key == "agent.public_key_file":
        cfg, env = _config(tmp_path, state, agent={"public_key_file": str(secret)}), None
    else:
        cfg = _config(tmp_path, state, mqtt={"enabled": True, "host": "127.0.0.1", "port": 9, "username": "kiosk", "password_file": str(secret)})
        env = {"EDGE_AGENT_PUBLIC_KEY": "k"}
    line = one_line_error(ea("run", "-c", str(cfg), env=env, timeout_s=30), 78)
    assert line.startswith(f"edge-agent: config error: {key}: {secret} {says}"), line
    doctor = ea("doctor", "-c", str(cfg), env=env, timeout_s=30)
    assert doctor.returncode == 78 and doctor.stdout.startswith(f"FAIL  config: {key}: {secret} {says}"), doctor.stdout + doctor.stderr
    assert not state.exists()


@pytest.mark.parametrize("key", ["agent.public_key_file", "mqtt.password_file", "badge.secret_file"])
def test_a_secret_path_that_is_a_fifo_is_one_line_at_once(tmp_path: Path, key: str) -> None:
    """A secret path that is a FIFO (mistyped, or a secret meant to be piped in) blocked `run` at
    open until something wrote to it: the service hung in `activating` with nothing in the
    journal. Now a config error naming the key and the path, at once (78), as is a device."""
    state, fifo = tmp_path / "state", tmp_path / "secret.fifo"
    os.mkfifo(fifo)
    sections: dict[str, dict[str, object]] = {
        "agent.public_key_file": {"agent": {"public_key_file": str(fifo)}},
        "mqtt.password_file": {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": 9, "username": "kiosk", "password_file": str(fifo)}},
        "badge.secret_file": {"badge": {"device": str(tmp_path / "no-reader"), "secret_file": str(fifo)}},
    }
    cfg = _config(tmp_path, state, **sections[key])
    env = None if key == "agent.public_key_file" else {"EDGE_AGENT_PUBLIC_KEY": "k"}
    line = one_line_error(ea("run", "-c", str(cfg), env=env, timeout_s=30), 78)
    assert line.startswith(f"edge-agent: config error: {key}: {fifo} is not a regular file"), line
    from edge_agent.core.tomlsection import secret_bytes_from_file
    from edge_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="is not a regular file"):
        secret_bytes_from_file("badge.secret_file", "/dev/zero")


def test_a_badge_secret_of_random_bytes_is_the_secret_as_it_is(tmp_path: Path) -> None:
    """'A file with at least 16 random bytes': made with `head -c 32 /dev/urandom` it is no UTF-8
    text, and run and doctor ended in 'unexpected error: UnicodeDecodeError' (exit 70). Its bytes
    are the HMAC key as they are; a text secret is read as before (trailing newline, CRLF)."""
    from edge_agent.core import config

    state, secret = tmp_path / "state", tmp_path / "badge_secret"
    secret.write_bytes(NOT_UTF8)
    cfg = _config(tmp_path, state, badge={"device": str(tmp_path / "no-reader"), "secret_file": str(secret)})
    doctor = ea("doctor", "-c", str(cfg), "--meter-s", "0.3", env={"EDGE_AGENT_PUBLIC_KEY": "k"}, timeout_s=60)
    assert doctor.returncode == 1 and "FAIL  config" not in doctor.stdout and "unexpected error" not in doctor.stderr, doctor.stdout + doctor.stderr
    assert config.load(cfg).badge.with_secret().secret == NOT_UTF8
    for text in (b"0123456789abcdef0123\n", b"0123456789abcdef0123\r\n", b"  0123456789abcdef0123  "):
        secret.write_bytes(text)
        assert config.load(cfg).badge.with_secret().secret == b"0123456789abcdef0123"


def test_doctor_warns_first_when_the_service_holds_the_devices(tmp_path: Path) -> None:
    """On a Pi the sound card and the GPIO pins serve one process: doctor run beside the running
    service would fail on them with nothing saying why. It says so first (and only then)."""
    from edge_agent.core import config
    from edge_agent.service.doctor import Doctor, service_running

    settings = config.load(_config(tmp_path, tmp_path / "state", agent={"endpoint": "ws://127.0.0.1:9/millis", "connect_timeout_s": 0.5}))
    for running in (True, False):
        lines: list[str] = []
        Doctor(settings, meter_s=0.2, out=lines.append, service_active=lambda running=running: running).run()
        warned = [line for line in lines if "edge-agent.service is running" in line]
        assert warned == ([lines[0]] if running else []), lines
        if running:
            assert lines[0].startswith("WARN  ") and "systemctl stop edge-agent" in lines[0]
    assert service_running("edge-agent-no-such-unit.service") is False  # no unit (or no systemd): no warning


def test_doctor_warns_first_when_a_daemon_run_by_hand_holds_the_devices(tmp_path: Path) -> None:
    """The service's warning came from systemctl: an `edge-agent run` started by hand (the usual
    set-up session) holds the same devices and went unsaid."""
    from edge_agent.core import config
    from edge_agent.service.doctor import Doctor
    from edge_agent.service.instance import claim

    settings = config.load(_config(tmp_path, tmp_path / "state", agent={"endpoint": "ws://127.0.0.1:9/millis", "connect_timeout_s": 0.5}))
    held = claim(tmp_path / "state")  # what `edge-agent run` holds while it runs
    assert held is not None
    try:
        lines: list[str] = []
        Doctor(settings, meter_s=0.2, out=lines.append, service_active=lambda: False).run()
    finally:
        os.close(held)
    assert lines[0].startswith(f"WARN  an edge-agent (pid {os.getpid()}) runs with {tmp_path / 'state'}"), lines
    lines = []
    Doctor(settings, meter_s=0.2, out=lines.append, service_active=lambda: False).run()
    assert not any("runs with" in line for line in lines), lines


def test_doctor_prints_nothing_of_systemctl_where_systemd_does_not_run(tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """In a container (PID 1 not systemd) `systemctl is-active` writes 'System has not been booted
    with systemd as init system (PID 1). Can't operate.' to stderr: a newcomer's first doctor run
    showed it between the PASS lines. The answer is its exit code; what it says is not ours."""
    from edge_agent.service.doctor import service_running

    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'System has not been booted with systemd as init system (PID 1).' >&2\necho active\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    capfd.readouterr()
    assert service_running() is False
    out, err = capfd.readouterr()  # the file descriptors: what the child process wrote too
    assert out == "" and err == "", (out, err)


def test_run_and_doctor_refuse_a_state_dir_that_is_a_file(tmp_path: Path) -> None:
    """`run` started anyway, its sessions in memory, logging `File exists` at INFO (and the doctor
    FAILed with exit 1): a config error, 78, as `sessions -c` said already."""
    a_file = tmp_path / "state"
    a_file.write_text("")
    cfg = _config(tmp_path, a_file, button={"source": "gpio"})  # before: run got as far as GPIO (exit 1)
    env = {"EDGE_AGENT_PUBLIC_KEY": "k", "GPIOZERO_PIN_FACTORY": "no-such-factory"}
    line = one_line_error(ea("run", "-c", str(cfg), env=env, timeout_s=30), 78)
    assert line == f"edge-agent: config error: device.state_dir: {a_file} is a file, not a directory (the kiosk keeps its sessions database in it)", line
    out = ea("doctor", "-c", str(cfg), env=env, timeout_s=30)
    assert out.returncode == 78 and out.stdout.startswith(f"FAIL  config: device.state_dir: {a_file} is a file"), out.stdout


def test_doctor_fails_a_missing_state_dir_no_one_can_make(tmp_path: Path) -> None:
    """A missing state dir under a read-only file system passed as "created on the first run (by
    systemd's StateDirectory=)", which makes only /var/lib/edge-agent; `run` then had no store."""
    from test_store_faults import Tmpfs

    fs = Tmpfs(tmp_path / "ro")
    try:
        fs.readonly(True)
        line = _doctor(_config(tmp_path, fs.path / "state"))
        assert line.startswith("FAIL") and "not writable to create it" in line, line
    finally:
        fs.readonly(False)
        fs.umount()


def test_sessions_forget_beside_a_running_kiosk_is_refused_naming_it(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    """`edge-agent sessions --forget` beside the service wiped the database and said "forgot 1
    sessions", but the daemon kept the last session in memory and the next press continued it
    (found by an attacker). Refused now, naming the running kiosk and the two ways that work;
    nothing is wiped, and the kiosk's memory and store agree."""
    state = tmp_path / "state"
    cfg = tmp_path / "config.toml"
    clip = write_wav(tmp_path / "clip.wav", bytes(12 * 32000))
    audio = {"input": f"file:{clip}", "output": "null"}
    cfg.write_text(toml_dump({"device": {"id": "op", "state_dir": str(state)}, "agent": {"endpoint": sim.url, "agent_id": "a"}, "audio": audio, "button": {"source": "keyboard"}}))
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log(r"ready: device op")
    mark = d.press()
    sid = d.wait_log(r"session (\S+) ready", after=mark).group(1)
    mark = d.press()
    d.wait_log(r"conversation ended", after=mark)
    line = one_line_error(ea("sessions", "--forget", "--state-dir", str(state)))
    assert f"an edge-agent (pid {d.proc.pid})" in line and "forget_sessions" in line and "systemctl stop" in line, line
    mark = d.press()
    d.wait_log(rf"press: continue {sid}", after=mark)  # not forgotten, and not said to be
    d.wait_log(r"session \S+ ready", after=mark)  # stored: a stop before it (a loaded CI) left one session
    assert d.stop() == 0
    forgot = ea("sessions", "--forget", "--state-dir", str(state))
    assert forgot.returncode == 0 and "forgot 2 sessions" in forgot.stdout, forgot
