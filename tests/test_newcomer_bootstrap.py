"""A newcomer's findings (2026-12-06): `PYTHON=python3.X script/bootstrap` (or `script/demo`),
which the README says picks the Python, was ignored without a word once `.venv` existed (made by
an earlier `script/demo` with the default python3): the venv stayed on the old Python, exit 0.

script/bootstrap runs here in a scratch copy with stand-ins: a `dpkg-query` that says every apt
package is installed (no apt, no sudo), a `.venv/bin/python` that reports 3.11 and installs
nothing, and a `python3.X` that reports 3.X, so nothing is installed and no network is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A copy of script/bootstrap with a stand-in .venv (Python 3.11) and lock, and a bin dir of
    stand-ins first on the PATH."""
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
    _executable(bin_dir / "python3.12", FAKE_PYTHON.format(version="3.12"))
    _executable(bin_dir / "python3.11", FAKE_PYTHON.format(version="3.11"))
    return root


def _bootstrap(root: Path, python: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["PATH"] = f"{root.parent / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    if python is not None:
        env["PYTHON"] = python
    return subprocess.run(["bash", "script/bootstrap", "--runtime"], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def test_bootstrap_says_so_when_PYTHON_names_another_version_than_the_existing_venv(scratch: Path) -> None:
    done = _bootstrap(scratch, "python3.12")
    assert done.returncode != 0, done.stderr
    assert "python3.12" in done.stderr and "3.11" in done.stderr and "rm -rf .venv" in done.stderr
    assert not (scratch / ".venv" / ".edge-agent-deps-runtime").exists()  # nothing installed into the 3.11 venv


def test_bootstrap_names_a_PYTHON_that_is_not_there_beside_an_existing_venv(scratch: Path) -> None:
    done = _bootstrap(scratch, "python3.99-no-such")
    assert done.returncode != 0
    assert "python3.99-no-such" in done.stderr


def test_bootstrap_goes_on_when_PYTHON_matches_the_venv_or_is_unset(scratch: Path) -> None:
    for python in ("python3.11", None):
        done = _bootstrap(scratch, python)
        assert done.returncode == 0, done.stderr


def _wav(path: Path, seconds: float) -> None:
    import wave

    import numpy as np

    samples = (np.random.default_rng(1).normal(0, 3000, int(16000 * seconds))).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())


def test_echo_with_its_two_tracks_swapped_names_each_track_by_its_role(tmp_path: Path) -> None:
    """`edge-agent echo played.wav mic.wav` (the order swapped, the mic recording longer as the
    README's recipe makes it) said "mic.wav is longer than played.wav: the mic stopped before the
    speaker", naming the files by the wrong roles for the one who swapped them."""
    _wav(tmp_path / "mic.wav", 4.0)
    _wav(tmp_path / "played.wav", 2.0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "edge_agent", "echo", "played.wav", "mic.wav", "-o", "out.wav"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "the speaker track mic.wav is longer than the mic track played.wav" in done.stderr and "swapped" in done.stderr, done.stderr
    assert not (tmp_path / "out.wav").exists()


BROKEN_SHIM = """#!/bin/sh
# a pyenv shim of a version that is not installed: found on the PATH, runs nothing
echo "pyenv: python3.12: command not found" >&2
exit 127
"""


def test_a_PYTHON_that_does_not_run_is_not_answered_with_rm_rf_venv(scratch: Path) -> None:
    """A second newcomer (2026-12-07): `PYTHON=python3.12` where that is a typo or a pyenv shim of
    a version not installed, beside a working `.venv`, was answered "not a Python found here ...
    rm -rf .venv and run again": that deletes the working venv, and the run after it fails anyway.
    It is named now, and the venv kept."""
    _executable(scratch.parent / "bin" / "python3.12", BROKEN_SHIM)
    for python in ("python3.12", "python3.99-no-such"):
        done = _bootstrap(scratch, python)
        assert done.returncode != 0, done.stderr
        assert python in done.stderr, done.stderr
        assert "rm -rf .venv" not in done.stderr, done.stderr  # it would delete a working venv for nothing
        assert "3.11" in done.stderr, done.stderr  # the venv's Python, kept by leaving PYTHON unset
        assert (scratch / ".venv" / "bin" / "python").exists()
