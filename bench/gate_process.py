"""The cost of the whole `edge-agent gate FILE.wav --json` process, as a kiosk runs it.

What is measured is the product's own command: the `edge-agent` console script of a plain (not
editable) install of this checkout in a venv of its own, as `script/install` makes it, so the
editable install's import hook that the development venv runs at every start-up is not counted.
The dependencies come from the development venv through a `.pth` line (its own `.pth` files, the
hook among them, do not run then).

The figure is CPU time (user + system, all threads) of the process over a 10-minute recording,
the smallest of `runs` runs: on a shared machine the smallest is the run least slowed by the
neighbours. Interleaved with them, in the same venv: a bare `python -c "import numpy"` (the floor
any numpy program pays, with one BLAS thread as the command sets) and `edge-agent gate` over 1 s
of audio (its start-up: interpreter, imports, config, WAV read, JSON), so a reader sees how much of
the figure is start-up and how much the gate.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from edge_agent.audio.wavfile import write_wav_16k_mono

REPO = Path(__file__).resolve().parent.parent


def installed_product(tmp: Path) -> Path:
    """A venv holding this checkout installed as on a kiosk; returns its bin directory."""
    src, venv = tmp / "src", tmp / "venv"
    src.mkdir(parents=True)
    shutil.copytree(REPO / "edge_agent", src / "edge_agent", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):  # built outside the checkout: no build/ left in it
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "edge-agent-bench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(src)]
    if importlib.util.find_spec("setuptools") is not None:  # the build backend is here (the .pth line): no download
        pip[-1:-1] = ["--no-build-isolation", "--no-index"]
    subprocess.run(pip, check=True, capture_output=True)
    return venv / "bin"


def _cpu_s(cmd: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd="/")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_gate_process(tmp: Path, pcm: bytes, minutes: float, runs: int) -> dict[str, Any]:
    """`pcm` repeated to `minutes` of audio, gated by the installed command `runs` times (module docstring)."""
    tmp.mkdir(parents=True, exist_ok=True)
    bin_dir = installed_product(tmp / "product")
    repeat = max(1, round(minutes * 60 * 32000 / len(pcm)))
    long_wav = write_wav_16k_mono(tmp / "long.wav", pcm * repeat)
    short_wav = write_wav_16k_mono(tmp / "short.wav", pcm[:32000])
    audio_s = len(pcm) * repeat / 32000
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    commands = {
        "gate": [str(bin_dir / "edge-agent"), "gate", str(long_wav), "--json"],
        "startup": [str(bin_dir / "edge-agent"), "gate", str(short_wav), "--json"],
        "floor": [str(bin_dir / "python"), "-c", "import numpy"],
    }
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            cpu[name].append(_cpu_s(cmd, env))
    best = min(cpu["gate"])
    return {
        "audio_s": round(audio_s, 1),
        "cpu_s": round(best, 3),
        "x_realtime": round(audio_s / best),
        "runs": runs,
        "cpu_s_median": round(statistics.median(cpu["gate"]), 3),
        "startup_cpu_s": round(min(cpu["startup"]), 3),
        "floor_numpy_import_cpu_s": round(min(cpu["floor"]), 3),
        "installed_as": "console script of a plain install in its own venv (script/install's way)",
    }
