"""Output that cannot be written, where argparse or `provision` hid it.

argparse drops an OSError from its own prints, so `edge-agent --help > /dev/full` printed nothing
and exited 0; `provision NAME >> /etc/mosquitto/passwd` on a full card kept the new password while
its Mosquitto line was lost, and running it again needed `--rotate`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def _to(stdout: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *argv], cwd=REPO, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["gate", "--help"], ["provision", "--help"]])
def test_help_and_version_to_a_full_card_say_so(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        r = _to(full.fileno(), *argv)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.strip() == "edge-agent: cannot write: No space left on device", r.stderr


def test_help_to_a_reader_gone_ends_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = _to(write_end, "--help")
    finally:
        os.close(write_end)
    assert r.returncode == 141, (r.returncode, r.stderr)
    assert r.stderr == "", r.stderr


def test_help_still_prints(tmp_path: Path) -> None:
    r = _to(subprocess.PIPE, "--help")
    assert r.returncode == 0 and "usage: edge-agent" in str(r.stdout), r


def test_provision_whose_line_is_lost_leaves_no_password_behind(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        r = _to(full.fileno(), "provision", "kiosk-7", "--dir", str(tmp_path))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "cannot write" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "kiosk-7.mqtt_password").exists(), "a password kept whose broker line went nowhere"
    again = _to(subprocess.PIPE, "provision", "kiosk-7", "--dir", str(tmp_path))  # no --rotate needed
    assert again.returncode == 0, again.stderr
    password = (tmp_path / "kiosk-7.mqtt_password").read_text().strip()
    assert str(again.stdout).startswith("kiosk-7:$7$") and password, again.stdout
