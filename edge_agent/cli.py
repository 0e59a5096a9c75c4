"""The `edge-agent` command line: run, demo, simulate-agent, sessions, gate, echo, devices, fleet, provision, broker-acl, doctor.

Every EdgeAgentError ends as one line on stderr; a ConfigError exits 78 (EX_CONFIG) so systemd
does not restart-loop on a bad config, a UsageError (an argument naming something unusable) 2,
as argparse does. Nothing a user types ends in a traceback: a reader that
goes away (`| head`) ends the command quietly, and anything unforeseen is one line asking for
`--log-level debug`, which shows the traceback. Logs go to stderr, without our own timestamps
when journald captures them (JOURNAL_STREAM is set); the sound and GPIO libraries' chatter only
at debug level.
"""

from __future__ import annotations

import os

# One BLAS thread: the daemon's numpy work is tiny per call, and OpenBLAS worker threads
# busy-wait between calls. Set before anything imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import contextlib
import errno
import gc
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent import __version__
from edge_agent.audio.nativeexit import shut_native_runtime
from edge_agent.core import config
from edge_agent.core.logs import LEVELS, setup_logging
from edge_agent.errors import EX_CONFIG, EX_USAGE, ConfigError, EdgeAgentError, UsageError

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

log = logging.getLogger("edge_agent")


EX_SOFTWARE = 70
"""sysexits.h EX_SOFTWARE: something we did not foresee (a bug), reported in one line."""
EX_PIPE = 141
"""What a shell reports for a command ended by SIGPIPE: the reader of our output went away."""


def _load(args: argparse.Namespace) -> config.Settings:
    return config.load_logged(args.config, args.log_level)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from edge_agent.service.daemon import Kiosk
    from edge_agent.service.instance import claim_as_service, settings_after_wait
    from edge_agent.service.notify import SystemdNotifier

    settings = _load(args)
    config.validate_for_run(settings)  # a config error first (a state dir that is a file: 78)
    notifier = SystemdNotifier()
    try:  # before the store opens: one daemon per state dir (the service waits for a hand run to end)
        claimed, waited = claim_as_service(settings.device.state_dir, notifier)
    finally:
        notifier.close()
    if waited:  # the operator who ran it by hand may have edited the config meanwhile
        settings = settings_after_wait(args.config, settings)
        setup_logging(args.log_level or settings.log.level)
    kiosk = Kiosk(settings)
    gc.freeze()  # what start-up built lives as long as the daemon: the collector never rescans it
    try:
        return asyncio.run(kiosk.run(on_reload=lambda: _reloaded(args)))
    finally:
        if claimed is not None:
            os.close(claimed)


def _reloaded(args: argparse.Namespace) -> config.Settings:
    """The config read again for a SIGHUP, with `--log-level` over its `log.level` as at start: a
    reload set a `run --log-level debug` back to the file's level, and the debug lines stopped."""
    from dataclasses import replace

    settings = config.load(args.config)
    return replace(settings, log=replace(settings.log, level=args.log_level)) if args.log_level else settings


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.devtools.demo import DEMO_STATE_DIR, demo_state_dir, run_demo
    from edge_agent.service.instance import claim

    setup_logging(args.log_level or "info")
    state_dir = Path(args.state_dir) if args.state_dir else None
    demo_state_dir(state_dir)
    claimed = claim(state_dir or DEMO_STATE_DIR, "--state-dir DIR")  # a running kiosk's (or demo's) store is not the demo's to use
    try:
        return run_demo(auto=args.auto, state_dir=state_dir, input_spec=args.input, output_spec=args.output)
    finally:
        if claimed is not None:
            os.close(claimed)


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio

    from edge_agent.devtools.simulator import serve_forever

    setup_logging(args.log_level or "info")
    record = Path(args.record) if args.record else None
    if record is not None:
        try:
            record.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgeAgentError(f"--record {record}: {exc.strerror or exc}") from None
    try:
        bad_id = args.bad_session_id.replace("\\n", "\n") if args.bad_session_id else None
        behaviour = {"drop_after_ready": args.drop_after_ready, "bad_session_id": bad_id, "onready_delay_s": args.onready_delay_ms / 1000.0}
        asyncio.run(serve_forever(args.host, args.port, data_opt_out=args.data_opt_out, end_after_turns=args.end_after_turns, record_dir=record, **behaviour))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # port in use, an address not on this machine, a host that does not resolve
        raise EdgeAgentError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; choose another --port (0 = any free one) or --host") from None
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 1-65535, or 0 for any free one")
    return port


def _whole_number(text: str, least: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value}: give {least} or more")
    return value


def _positive_int(text: str) -> int:
    value = _whole_number(text, least=1)
    if value > MAX_COUNT:  # SQLite's integers end there: past it `sessions --limit` exited 70
        raise argparse.ArgumentTypeError(f"{value}: give at most {MAX_COUNT}")
    return value


MAX_COUNT = 2**63 - 1
"""Largest count an option takes."""


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def _seconds_within(text: str, least_s: float, most_s: float, over_least: bool = False) -> float:
    """A number of seconds from `least_s` (or over it, with `over_least`) to `most_s`."""
    value = _seconds(text)
    if not ((least_s < value if over_least else least_s <= value) and value <= most_s):  # nan fails this too
        lower = f"over {least_s:g} and at most" if over_least else f"{least_s:g} to"
        raise argparse.ArgumentTypeError(f"{text}: give {lower} {most_s:g} seconds")
    return value


def _meter_seconds(text: str) -> float:
    """Over 0, at most 60 s: `doctor --meter-s 1e9` listened for years, its frames held in memory."""
    return _seconds_within(text, 0, 60, over_least=True)


def _seconds_from(text: str) -> float:
    """0-60 s: where a track started in a recording (the room alone for a few seconds first)."""
    return _seconds_within(text, 0, 60)


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        fn: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), name)
        return fn(args)

    return run


class _Parser(argparse.ArgumentParser):
    """argparse whose help and `--version` can fail to print: its own `_print_message` drops an
    OSError, so `edge-agent --help > /dev/full` printed nothing and exited 0. A failed write to
    stdout now reaches `main` (one line, exit 1); stderr's stays dropped (nowhere to say it)."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if message and file is not None and file is sys.stdout:
            print(message, end="", file=file, flush=True)
        else:
            super()._print_message(message, file)


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(prog="edge-agent", description="Voice kiosk daemon for a hosted Millis AI voice agent.")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", choices=LEVELS, help="overrides log.level (also accepted after the command)")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser, installed: bool = False) -> argparse.ArgumentParser:
        """`-c`; with `installed`, its default is the installed kiosk's config (what the systemd
        unit runs with) when that file exists: `run` and `doctor`, about this kiosk. The other
        commands keep built-in defaults: the installed file is private to root and the service's
        group, and a recording gated or sessions listed by anyone must not depend on it."""
        default = f"{config.INSTALLED_CONFIG} if it exists, else built-in defaults" if installed else "built-in defaults"
        p.add_argument("-c", "--config", help=f"TOML config file (default: {default})")
        p.set_defaults(config_installed=installed)
        return p

    with_config(sub.add_parser("run", help="run the kiosk"), installed=True).set_defaults(fn=cmd_run)
    p = sub.add_parser(
        "demo",
        help="run the kiosk against the bundled agent simulator",
        description="The kiosk against the bundled agent simulator. --auto presses by script and checks that conversation 2 continues conversation 1 (exit 1 if not).",
    )
    p.add_argument("--auto", action="store_true", help="press the button by script and check the story (default when stdin is not a terminal)")
    p.add_argument("--state-dir", help="where the demo keeps its sessions (default: ~/.local/state/edge-agent-demo, emptied at each run; a dir of your own is never emptied)")
    p.add_argument(
        "--input",
        metavar="SPEC",
        help="audio input: file:PATH.wav (played once), loop:PATH.wav (repeated), a plain PATH.wav, or a device name/index from `edge-agent devices` "
        "(default: the bundled recording with --auto, else a microphone if PyAudio finds one)",
    )
    p.add_argument("--output", metavar="SPEC", help="audio output: a device name/index, file:PATH.wav (records what the agent says) or null (default: the default speaker if any, else null)")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("simulate-agent", help="run the local Millis-protocol agent simulator")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8765, help="TCP port (default 8765; 0 = any free port)")
    p.add_argument("--data-opt-out", action="store_true", help="ignore session continuations, like an agent with Data Opt-Out")
    p.add_argument("--end-after-turns", type=_whole_number, default=0, help="hang up (onsessionended) after this many replies (default 0: never)")
    p.add_argument("--record", help="directory to record each session's initiate and uplink audio")
    p.add_argument("--drop-after-ready", action="store_true", help="hostile: cut every socket right after onready")
    p.add_argument("--bad-session-id", help="hostile: send this session id in onready (\\n for a newline)")
    p.add_argument("--onready-delay-ms", type=_whole_number, default=0, help="answer initiate this much later (a server slow to start a session)")
    p.set_defaults(fn=cmd_simulate)
    p = with_config(sub.add_parser("sessions", help="list stored sessions, newest first"))
    p.add_argument("--state-dir", help="read the sessions in this state dir (e.g. the demo's) instead of the config's device.state_dir")
    p.add_argument("--forget", action="store_true", help="wipe every stored session (privacy switch)")
    p.add_argument("--json", action="store_true", help="print the sessions (or, with --forget, the count) as JSON")
    p.add_argument("--limit", type=_positive_int, default=50, help="list at most this many, the newest (default 50)")
    p.set_defaults(fn=_lazy("edge_agent.service.sessions", "cmd_sessions"))
    p = with_config(sub.add_parser("gate", help="run the daemon's speech gate over a recording"))
    p.add_argument("input", nargs="+", help="16 kHz mono 16-bit WAV; several are gated in turn, each by a fresh gate (with --json one line each, in order)")
    p.add_argument("--labels", help="a .labels.json file to score against")
    p.add_argument("--json", action="store_true", help='print {"sent": [[start_s, end_s], ...], "sent_share": ..., "frames": ...} (and "score" with --labels)')
    p.set_defaults(fn=_lazy("edge_agent.service.gatecheck", "cmd_gate"))
    p = with_config(sub.add_parser("echo", help="run the daemon's echo canceller over a mic recording and the speaker signal"))
    p.add_argument("mic", help="what the microphone recorded, 16 kHz mono 16-bit WAV")
    p.add_argument("speaker", help="what the speaker played meanwhile, same format and length (less than 1 s apart: the longer is trimmed)")
    p.add_argument("-o", "--output", required=True, help="where to write the cleaned microphone track (not one of the inputs)")
    p.add_argument("--json", action="store_true", help='print {"erle_db": ..., "delay_ms": ..., "room": ..., "room_grades_db": [...]} (null: not measured, why on stderr)')
    p.add_argument("--speaker-from", type=_seconds_from, default=0.0, metavar="S", help="the speaker started S seconds into the mic recording (the room alone first: the grade needs its noise)")
    p.add_argument("--keep-grade", action="store_true", help="keep the take's room grade in the config's state dir for the kiosk's next start (stop the service first)")
    p.set_defaults(fn=_lazy("edge_agent.service.echocheck", "cmd_echo"))
    p = with_config(sub.add_parser("devices", help="list audio devices and which would be chosen"))
    p.set_defaults(fn=_lazy("edge_agent.audio.devicelist", "cmd_devices"))
    from edge_agent.fleet.fleetargs import add_fleet, add_provision  # the commands load when they run

    add_fleet(sub, _lazy)
    add_provision(sub, _lazy)
    # the doctor (asyncio, numpy, threads) is imported only when it runs: `edge-agent gate` starts light
    p = with_config(sub.add_parser("doctor", help="check config, audio, GPIO, MQTT and the agent endpoint"), installed=True)
    p.add_argument("--meter-s", type=_meter_seconds, default=3.0, help="how long the microphone level meter listens (seconds, over 0 and at most 60, default 3)")
    p.set_defaults(fn=_lazy("edge_agent.service.doctor", "cmd_doctor"))
    for command in sub.choices.values():  # `edge-agent run --log-level debug` works too
        command.add_argument("--log-level", choices=LEVELS, default=argparse.SUPPRESS, help="overrides log.level")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except BrokenPipeError:  # `edge-agent --help | head -1`
        _stdout_to_devnull()
        return EX_PIPE
    except OSError as exc:  # `--help` or `--version` to a full card or /dev/full
        return _output_failed(exc)
    if getattr(args, "config_installed", False) and args.config is None:
        args.config = config.installed_or_none()
    runtime_before = "livekit.rtc._ffi_client" in sys.modules  # a caller's own (main() run in-process)
    try:
        return _dispatch(args)
    finally:
        if not runtime_before:  # the echo canceller's, before the interpreter's exit (audio/nativeexit.py)
            shut_native_runtime()


PATH_OPTIONS = ("config", "state_dir", "labels", "record", "passwd", "password_file", "ca_file", "dir")
"""Options naming a file or directory: given empty (`--passwd "$PASSWD"`, the variable unset), each
was taken for the option left out, and the command went on without it and said nothing
(`provision --passwd ""` printed the line and updated no password file, exit 0; `gate --labels ""`
scored nothing; `fleet --password-file ""` logged in without a password)."""


def _refuse_empty_paths(args: argparse.Namespace) -> None:
    for dest in PATH_OPTIONS:
        value = getattr(args, dest, None)
        if isinstance(value, str) and not value.strip():
            raise UsageError(f"--{dest.replace('_', '-')}: empty (leave the option out for its default)")


def _dispatch(args: argparse.Namespace) -> int:
    try:
        _refuse_empty_paths(args)
        code = int(args.fn(args))
        if sys.stdout is not None:  # started with stdout closed (`>&-`): nothing to flush
            try:
                sys.stdout.flush()  # a pipe's reader gone shows here, not at interpreter exit
            except OSError as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                return _output_failed(exc)
        return code
    except ConfigError as exc:
        for problem in exc.shown():
            print(f"edge-agent: config error: {problem}", file=sys.stderr)
        return EX_CONFIG
    except UsageError as exc:
        print(f"edge-agent {args.command}: {exc}", file=sys.stderr)
        return EX_USAGE
    except EdgeAgentError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `edge-agent gate X.wav | head`: the reader has what it wanted. Python's documented way
        # out: point stdout at /dev/null so the final flush cannot fail again, and say nothing.
        _stdout_to_devnull()
        return EX_PIPE
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            return _unexpected(args, exc)
        return _output_failed(exc)
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        return _unexpected(args, exc)


def _unexpected(args: argparse.Namespace, exc: BaseException) -> int:
    if args.log_level == "debug" or log.isEnabledFor(logging.DEBUG):
        traceback.print_exception(exc)
    print(f"edge-agent: unexpected error: {type(exc).__name__}: {exc} (run again with --log-level debug for the traceback, and report it)", file=sys.stderr)
    return EX_SOFTWARE


NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""A full disk, a quota, a file too large: the machine's state, never a bug of edge-agent."""


def _output_failed(exc: OSError) -> int:
    """The output could not be written (`> /dev/full`, a full card): one line, exit 1; it said
    "unexpected error ... report it", exit 70. Stdout goes to /dev/null so the interpreter's
    own flush at exit cannot fail again."""
    _stdout_to_devnull()
    print(f"edge-agent: cannot write: {exc.strerror or exc}", file=sys.stderr)
    return 1


def _stdout_to_devnull() -> None:
    """Points stdout at /dev/null: what is still buffered for it goes nowhere, and the
    interpreter's flush at exit cannot fail on it again."""
    if sys.stdout is None:
        return
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, sys.stdout.fileno())
        finally:
            os.close(null)
