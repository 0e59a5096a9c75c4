"""Who may read what on an installed kiosk (a helper's hostile review of the service set-up,
2026-12-06; each failed before its fix): the installer makes /etc/edge-agent with the unit's
ConfigurationDirectoryMode (it was 0755, open to all), `sudo edge-agent doctor` fails a key file
the service user cannot read (it passed it, and `run` then exited 78 for good), and `doctor`
without -c by a user outside the service's group is one config error, not a traceback."""

from __future__ import annotations

import encodings.utf_8_sig  # noqa: F401 - the child below, its uid dropped, may not read the stdlib to import it
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import DATA, REPO, toml_dump
from test_newcomer import ea

from edge_agent.core import config
from edge_agent.errors import ConfigError

UNIT = REPO / "systemd" / "edge-agent.service"


def _unit_value(key: str) -> str:
    values = [line.split("=", 1)[1].strip() for line in UNIT.read_text().splitlines() if line.startswith(f"{key}=")]
    assert len(values) == 1, (key, values)
    return values[0]


def test_the_installer_makes_the_config_dir_with_the_units_configuration_directory_mode(tmp_path: Path) -> None:
    """script/install made /etc/edge-agent with `mkdir -p` (0755 under root's umask 022), the unit
    says ConfigurationDirectoryMode=0750. systemd does not change an existing configuration
    directory's mode: it logs "ConfigurationDirectory 'edge-agent' already exists but the mode is
    different" at every start, and the dir stays open to every user, so a key file an operator
    makes there with the default umask (`sudo nano /etc/edge-agent/public_key`, the example's
    public_key_file) is readable by anyone."""
    root = tmp_path / "root"
    subprocess.run(["bash", str(REPO / "script" / "install")], check=True, capture_output=True, text=True, env={**os.environ, "DESTDIR": str(root)}, timeout=60)
    etc = root / "etc" / "edge-agent"
    want = int(_unit_value("ConfigurationDirectoryMode"), 8)
    assert etc.stat().st_mode & 0o777 == want, f"{oct(etc.stat().st_mode & 0o777)} != {oct(want)}"
    # an upgrade over an install that made it 0755 puts it right too
    etc.chmod(0o755)
    subprocess.run(["bash", str(REPO / "script" / "install")], check=True, capture_output=True, text=True, env={**os.environ, "DESTDIR": str(root)}, timeout=60)
    assert etc.stat().st_mode & 0o777 == want, oct(etc.stat().st_mode & 0o777)


NOBODY = "nobody"
"""Stands in for the service user `edge-agent` (EDGE_AGENT_SERVICE_USER, as the doctor's state dir check)."""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A dir every user may enter (pytest's tmp_path is under a 0700 dir of root's), where the
    shipped unit lets the service see it (/tmp is its own: PrivateTmp=yes)."""
    d = Path(tempfile.mkdtemp(prefix="ea-ops-", dir="/run"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _kiosk(d: Path, key_mode: int) -> Path:
    key = d / "public_key"
    key.write_text("the-key\n")
    key.chmod(key_mode)
    return kiosk_with_key(d, key)


def kiosk_with_key(d: Path, key: Path) -> Path:
    """A kiosk config in `d` (a file mic, no speaker or button, a state dir `nobody` owns) whose
    agent key is read from `key`."""
    mic = d / "mic.wav"
    shutil.copyfile(DATA / "kiosk_dev_quiet.wav", mic)
    mic.chmod(0o644)
    state = d / "state"
    state.mkdir(mode=0o700)
    os.chown(state, pwd.getpwnam(NOBODY).pw_uid, -1)
    cfg = d / "c.toml"
    cfg.write_text(
        toml_dump(
            {
                "device": {"id": "ops", "state_dir": str(state)},
                "agent": {"endpoint": "ws://127.0.0.1:9/millis", "agent_id": "a", "public_key_file": str(key)},
                "audio": {"input": f"file:{mic}", "output": "null"},
                "button": {"source": "none"},
            }
        )
    )
    cfg.chmod(0o644)
    return cfg


def _run_refuses_as(user: str, cfg: Path) -> str:
    """What `run`'s config check (config.load + validate_for_run, before anything opens) says as
    `user`: a forked child of this process, its uid dropped (the venv may be closed to that user)."""

    def check() -> str:
        try:
            config.validate_for_run(config.load(str(cfg), warn=False))
        except ConfigError as exc:
            return "; ".join(str(p) for p in exc.all())
        return "accepted"

    said = _in_child_as(user, check)
    return said.removeprefix("returned ").strip("'\"")


@pytest.mark.skipif(os.geteuid() != 0, reason="the doctor judges for the service user only when run as root")
def test_the_doctor_as_root_fails_a_key_file_the_service_user_cannot_read(open_dir: Path) -> None:
    """`sudo edge-agent doctor` (the doctor's state dir check is written for it: root, judged for
    the service user) read agent.public_key_file as root and said `PASS  config` for a key file
    only root may read (0600 root:root, what `sudo nano` makes after the exposure WARN's own hint
    `chmod o-r`): the service's `run` then refuses it (exit 78, RestartPreventExitStatus: down for
    good) while the doctor passed the config."""
    pwd.getpwnam(NOBODY)
    cfg = _kiosk(open_dir, 0o600)
    refused = _run_refuses_as(NOBODY, cfg)
    assert "agent.public_key_file" in refused, refused  # the kiosk cannot start: the premise
    out = ea("doctor", "-c", str(cfg), "--meter-s", "0.3", env={"EDGE_AGENT_SERVICE_USER": NOBODY})
    assert "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL") and "agent.public_key_file" in line]
    assert fails and NOBODY in fails[0], out.stdout
    # a key file the service user may read (its group's, 0640) is no FAIL
    (open_dir / "public_key").chmod(0o640)
    os.chown(open_dir / "public_key", -1, pwd.getpwnam(NOBODY).pw_gid)
    assert _run_refuses_as(NOBODY, cfg) == "accepted"
    out = ea("doctor", "-c", str(cfg), "--meter-s", "0.3", env={"EDGE_AGENT_SERVICE_USER": NOBODY})
    assert not [line for line in out.stdout.splitlines() if line.startswith("FAIL") and "public_key_file" in line], out.stdout


def _in_child_as(user: str, fn: Callable[[], object]) -> str:
    """`fn()`'s result (or the exception it raised) in a forked child of this process running as `user`."""
    entry = pwd.getpwnam(user)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            os.setgroups([])
            os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
            os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
            try:
                said = f"returned {fn()!r}"
            except BaseException as exc:  # reported to the parent
                said = f"raised {type(exc).__name__}: {exc}"
            os.write(w, said.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode()
    os.waitpid(pid, 0)
    return said


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a user to become")
def test_doctor_without_c_by_a_user_outside_the_services_group_is_one_config_error_not_a_traceback(open_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/etc/edge-agent as the unit's ConfigurationDirectoryMode=0750 makes it (root:edge-agent):
    an operator not in the group running `edge-agent doctor` (or `run`) without -c got a Python
    traceback (PermissionError from Path.exists in installed_or_none, outside the CLI's error
    handling), not the one config line naming the file that the README promises."""
    import edge_agent.service.doctor  # noqa: F401 - imported before the child drops its uid
    from edge_agent import cli

    etc = open_dir / "etc-edge-agent"
    etc.mkdir(mode=0o750)
    (etc / "config.toml").write_text("[agent]\nagent_id = 'a'\n")
    monkeypatch.setattr(config, "INSTALLED_CONFIG", etc / "config.toml")
    said = _in_child_as(NOBODY, lambda: cli.main(["doctor", "--meter-s", "0.1"]))
    assert said == f"returned {78!r}", said
