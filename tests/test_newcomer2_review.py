"""A second newcomer's findings (2026-12-07), trying the README's quick start from a fresh clone.

`PYTHON=python3.12 script/demo` where `python3.12` is not a Python that runs here (a typo, or a
pyenv shim of a version not installed, as on this machine) beside a working `.venv`: bootstrap
said "PYTHON=python3.12 is not a Python found here, but .venv was made earlier with Python 3.11:
rm -rf .venv and run again to switch". Doing so deletes the working venv, and the run after it
fails anyway ("edge-agent needs Python 3.11-3.13; python3.12 is ..."): the advice must be to
name a Python that is there, and the venv is kept.

script/bootstrap runs in a scratch copy with stand-ins (as in tests/test_newcomer_bootstrap.py):
a `dpkg-query` that says every apt package is installed, a `.venv/bin/python` that reports 3.11
and installs nothing, so nothing is installed and no network is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/bin/sh
# reports Python {version} when asked for its version; anything else (pip, depcheck) succeeds
for a in "$@"; do
  case "$a" in
    *version_info*) echo {version}; exit 0 ;;
  esac
done
exit 0
"""

BROKEN_SHIM = """#!/bin/sh
# a pyenv shim of a version that is not installed: found on the PATH, runs nothing
echo "pyenv: python3.12: command not found" >&2
exit 127
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _scratch(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "script").mkdir(parents=True)
    shutil.copy2(REPO / "script" / "bootstrap", root / "script" / "bootstrap")
    (root / "requirements").mkdir()
    (root / "requirements" / "runtime-py3.11.txt").write_text("")
    (root / "pyproject.toml").write_text("")
    (root / ".venv" / "bin").mkdir(parents=True)
    _executable(root / ".venv" / "bin" / "python", FAKE_PYTHON.format(version="3.11"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "dpkg-query", "#!/bin/sh\necho 'install ok installed'\n")
    _executable(bin_dir / "python3.12", BROKEN_SHIM)
    return root


def _bootstrap(root: Path, python: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["PATH"] = f"{root.parent / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHON"] = python
    return subprocess.run(["bash", "script/bootstrap", "--runtime"], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def test_a_PYTHON_that_does_not_run_is_not_answered_with_rm_rf_venv(tmp_path: Path) -> None:
    root = _scratch(tmp_path)
    for python in ("python3.12", "python3.99-no-such"):
        done = _bootstrap(root, python)
        assert done.returncode != 0, done.stderr
        assert python in done.stderr, done.stderr
        assert "rm -rf .venv" not in done.stderr, done.stderr  # it would delete a working venv for nothing
        assert "3.11" in done.stderr, done.stderr  # the venv's Python, kept by leaving PYTHON unset
        assert (root / ".venv" / "bin" / "python").exists()
