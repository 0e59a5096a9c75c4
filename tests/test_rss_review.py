"""The daemon's memory (README, "daemon RSS, full stack"): `edge-agent run` with the default
settings does not load code only an off feature or another command runs. The fleet's session
share (`session.share`, off by default) and the `fleet` / `provision` commands' modules were
imported at every start (~0.4 MB of the daemon's peak RSS over the floor, measured alternately)."""

from __future__ import annotations

import subprocess
import sys

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
