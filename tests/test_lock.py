"""The hashed dependency locks (requirements/, made by script/lock) match pyproject.toml: a
dependency added without re-locking fails here, in CI, not on a kiosk at install time."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")
DEV_TOOLS = {"pytest", "ruff", "mypy", "hypothesis"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = lock.read_text().splitlines()
    for i, line in enumerate(lines):
        if m := PIN.match(line):
            out[norm(m[1])] = m[2]
            assert "--hash=sha256:" in lines[i + 1], f"{lock.name}: {m[1]} has no hash"
    return out


def requirement_names(reqs: list[str]) -> set[str]:
    return {norm(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in reqs}


PYTHONS = re.search(r"PYTHONS=\(([^)]*)\)", (REPO / "script" / "lock").read_text())[1].split()  # type: ignore[index]


def test_every_lock_was_made_from_the_dependencies_pyproject_lists_now() -> None:
    locks = sorted(str(p) for p in (REPO / "requirements").glob("*.txt"))
    assert len(locks) == 2 * len(PYTHONS)
    out = subprocess.run([sys.executable, str(REPO / "script" / "depcheck"), "verify", *locks], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("version", PYTHONS)
def test_runtime_lock_covers_the_kiosk_and_carries_no_dev_tools(version: str) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    runtime = pins(REPO / "requirements" / f"runtime-py{version}.txt")
    dev = pins(REPO / "requirements" / f"dev-py{version}.txt")
    kiosk = requirement_names(project["dependencies"]) | requirement_names([r for e, rs in extras.items() if e != "dev" for r in rs])
    assert kiosk <= set(runtime), kiosk - set(runtime)
    assert requirement_names(extras["dev"]) <= set(dev)
    assert not DEV_TOOLS & set(runtime)
    assert {k: dev[k] for k in runtime} == runtime  # the tests run the versions a kiosk gets


def test_there_is_a_lock_for_this_python() -> None:
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in PYTHONS
