"""A hostile review of the kiosk as a service (2026-12-06, NAME=service); each test failed before its fix.

- `sudo edge-agent doctor` judged every file `run` reads for the service user, but the config
  itself, which the service's `run` reads first: a config only root may read (what
  `chmod o-r`, the exposure WARN's own hint, makes of a root:root file) passed, and the service
  then exited 78, down for good (RestartPreventExitStatus=78).
- It judged those files by their permission bits alone: a key file under /tmp, /var/tmp (the
  unit's PrivateTmp=yes gives the service a /tmp of its own) or /home, /root, /run/user
  (ProtectHome=yes hides them) passed, and the service's `run` did not find it: exit 78.
- `script/uninstall --purge-config` left the operator's drop-ins (`systemctl edit edge-agent`,
  the README's badge-reader `DeviceAllow=char-input r`; `systemctl set-property`'s) behind: a
  purged kiosk installed again ran with the old one's keyboard access.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from test_newcomer import ea
from test_operator_access import _run_refuses_as, kiosk_with_key

NOBODY = "nobody"
"""Stands in for the service user `edge-agent` (EDGE_AGENT_SERVICE_USER, as in test_operator_access)."""


def _open_dir(under: str) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ea-svc-", dir=under))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def visible_dir() -> Iterator[Path]:
    """A dir every user may enter that the shipped unit's sandbox leaves visible (/run: not /tmp,
    which PrivateTmp= replaces, nor /home, which ProtectHome= hides)."""
    yield from _open_dir("/run")


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    """A dir every user may enter under /tmp (the host's, which the service does not see)."""
    yield from _open_dir("/tmp")


def _key(path: Path, mode: int) -> Path:
    path.write_text("the-key\n")
    path.chmod(mode)
    return path


def _fails(stdout: str, word: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("FAIL") and word in line]


@pytest.mark.skipif(os.geteuid() != 0, reason="the doctor judges for the service user only when run as root")
def test_the_doctor_as_root_fails_a_config_the_service_user_cannot_read(visible_dir: Path) -> None:
    pwd.getpwnam(NOBODY)
    cfg = kiosk_with_key(visible_dir, _key(visible_dir / "public_key", 0o644))
    assert _run_refuses_as(NOBODY, cfg) == "accepted"
    out = ea("doctor", "-c", str(cfg), "--meter-s", "0.3", env={"EDGE_AGENT_SERVICE_USER": NOBODY})
    assert not _fails(out.stdout, "config"), out.stdout
    cfg.chmod(0o640)  # root:root: what `chmod o-r`, the exposure WARN's hint, makes of a file root made
    refused = _run_refuses_as(NOBODY, cfg)
    assert "cannot read config file" in refused, refused  # the service cannot start: the premise
    out = ea("doctor", "-c", str(cfg), "--meter-s", "0.3", env={"EDGE_AGENT_SERVICE_USER": NOBODY})
    assert "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
    fails = _fails(out.stdout, str(cfg))
    assert fails and NOBODY in fails[0], out.stdout
    assert out.returncode == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the doctor judges for the service user only when run as root")
def test_the_doctor_as_root_fails_a_key_file_the_units_sandbox_hides_from_the_service(visible_dir: Path, tmp_dir: Path) -> None:
    pwd.getpwnam(NOBODY)
    cfg = kiosk_with_key(visible_dir, _key(tmp_dir / "public_key", 0o644))  # readable by all, but in the host's /tmp
    out = ea("doctor", "-c", str(cfg), "--meter-s", "0.3", env={"EDGE_AGENT_SERVICE_USER": NOBODY})
    fails = _fails(out.stdout, "agent.public_key_file")
    assert fails and "PrivateTmp" in out.stdout, out.stdout
    # the same file where the unit lets the service see it passes
    cfg.write_text(cfg.read_text().replace(str(tmp_dir / "public_key"), str(_key(visible_dir / "public_key", 0o644))))
    out = ea("doctor", "-c", str(cfg), "--meter-s", "0.3", env={"EDGE_AGENT_SERVICE_USER": NOBODY})
    assert not _fails(out.stdout, "public_key_file"), out.stdout


def _run(script: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / "script" / script), *args], capture_output=True, text=True, env={**os.environ, "DESTDIR": str(root)}, check=True, timeout=60)


def test_uninstall_purge_config_leaves_no_drop_in_behind(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _run("install", root)
    drop_ins = [root / "etc/systemd/system/edge-agent.service.d", root / "etc/systemd/system.control/edge-agent.service.d"]
    for d in drop_ins:  # `systemctl edit edge-agent` (the README's badge reader), `systemctl set-property`
        d.mkdir(parents=True)
        (d / "override.conf").write_text("[Service]\nDeviceAllow=char-input r\nSupplementaryGroups=audio gpio input\n")
    _run("uninstall", root)
    assert all((d / "override.conf").exists() for d in drop_ins)  # config kept: the operator's too
    assert not (root / "etc/systemd/system/edge-agent.service").exists()
    _run("uninstall", root, "--purge-config")
    left = [str(d) for d in drop_ins if d.exists()]
    assert not left, left
    assert not (root / "etc/edge-agent").exists()
