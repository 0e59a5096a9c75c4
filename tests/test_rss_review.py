"""The daemon's memory (README, "daemon RSS, full stack"): `edge-agent run` with the default
settings does not load code only an off feature or another command runs. The fleet's session
share (`session.share`, off by default) and the `fleet` / `provision` commands' modules were
imported at every start (~0.4 MB of the daemon's peak RSS over the floor, measured alternately).
Nor does it keep resident the library code only its start-up ran (SQLite, part of numpy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NOT_AT_RUN = ("edge_agent.fleet.share", "edge_agent.fleet.pointer", "edge_agent.fleet.forget", "edge_agent.fleet.view", "edge_agent.fleet.fleetcmd", "edge_agent.fleet.provision")


def test_run_with_defaults_loads_no_share_nor_fleet_command() -> None:
    # what `edge-agent run` imports before the kiosk starts: the parser of every command, the
    # daemon, and the share's factory deciding it is off
    code = (
        "import sys; from edge_agent import cli; cli.build_parser();"
        "from edge_agent.service import daemon, slots; from edge_agent.core.config import from_dict;"
        "assert slots.make_share(from_dict({}), object(), None, None, None) is None;"
        f"print(sorted(m for m in {NOT_AT_RUN!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_fleet_commands_still_parse_and_load_when_run() -> None:
    from edge_agent.cli import build_parser

    args = build_parser().parse_args(["broker-acl", "--admin", "ops"])
    assert args.fn(args) == 0  # the lazy wrapper imports fleet/provision.py and runs the command
    assert "edge_agent.fleet.provision" in sys.modules


STORE_THEN_RELEASE = r"""
import json, sys
from pathlib import Path
from edge_agent.audio.probepages import START_UP_MOSTLY, release_probe_pages
from edge_agent.core.store import SessionStore

def code_kb(prefix):  # resident kB of the library's read-only mappings (its code and constants)
    kb, counted = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and len(head) >= 5:
                counted = "w" not in head[1] and head[-1].rsplit("/", 1)[-1].startswith(prefix)
            elif counted and line.startswith("Rss:"):
                kb += int(head[1])
    return kb

SessionStore(Path(sys.argv[1]), 10, 1.0)  # the store's start-up: schema, checks
opened = code_kb("libsqlite3.so")
release_probe_pages(START_UP_MOSTLY)
print(json.dumps({"opened_kb": opened, "released_kb": code_kb("libsqlite3.so")}))
"""


def test_the_code_only_start_up_ran_is_given_back_with_the_device(tmp_path: Path) -> None:
    """SQLite's code that opening the session store ran (~1.2 MB resident against ~0.7 MB for
    loading the library; a conversation runs ~0.1 MB of it) and the part of numpy's core that
    building the tables ran stayed resident for the daemon's life: ~1.8 MB of its peak RSS over
    the floor (`bench/run.py --only memory`, measured alternately). Opening a stream gives them
    back with the device's own set-up code (audio/probepages.py); they fault back in from the page
    cache should they run again."""
    from edge_agent.audio import pyaudio_io

    released: list[tuple[str, ...]] = []

    class Stream:
        def start_stream(self) -> None:
            pass

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pyaudio_io, "_open", lambda *a: (Stream(), 16000, 1))
        mp.setattr(pyaudio_io, "release_probe_pages", lambda prefixes: released.append(prefixes) or 0)
        pyaudio_io._open_and_start(object(), {"name": "x"}, True, 30, lambda *a: None, lambda *a: None)
    assert released and {"libsqlite3.so", "_multiarray_umath."} <= set(released[0]), released

    run = subprocess.run([sys.executable, "-c", STORE_THEN_RELEASE, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["opened_kb"] > 0 and out["released_kb"] < out["opened_kb"] / 2, out
