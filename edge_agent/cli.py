"""The `edge-agent` command line: run, demo, simulate-agent, sessions, gate, devices, fleet, doctor.

Every EdgeAgentError ends as one line on stderr; a ConfigError exits 78 (EX_CONFIG) so systemd
does not restart-loop on a bad config. Logs go to stderr, without our own timestamps when
journald captures them (JOURNAL_STREAM is set).
"""

from __future__ import annotations

import os

# One BLAS thread: the daemon's numpy work is tiny per call, and OpenBLAS worker threads
# busy-wait between calls. Set before anything imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import gc
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent import __version__
from edge_agent.core import config
from edge_agent.errors import EX_CONFIG, ConfigError, EdgeAgentError, StoreError

log = logging.getLogger("edge_agent")


def setup_logging(level: str) -> None:
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)
    logging.getLogger("websockets").setLevel(logging.WARNING)


def _load(args: argparse.Namespace) -> config.Settings:
    settings = config.load(args.config)
    setup_logging(args.log_level or settings.log.level)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.service.daemon import Kiosk

    settings = _load(args)
    kiosk = Kiosk(settings)
    gc.freeze()  # what start-up built lives as long as the daemon: the collector never rescans it
    return asyncio.run(kiosk.run(on_reload=lambda: config.load(args.config)))


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.devtools.demo import run_demo

    setup_logging(args.log_level or "info")
    return run_demo(auto=args.auto, state_dir=Path(args.state_dir) if args.state_dir else None, input_spec=args.input, output_spec=args.output)


def cmd_simulate(args: argparse.Namespace) -> int:
    from edge_agent.devtools.simulator import serve_forever

    setup_logging(args.log_level or "info")
    try:
        record = Path(args.record) if args.record else None
        asyncio.run(serve_forever(args.host, args.port, data_opt_out=args.data_opt_out, end_after_turns=args.end_after_turns, record_dir=record, onready_delay_s=args.onready_delay_ms / 1000.0))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    from edge_agent.core.store import SessionStore

    settings = _load(args)
    store = SessionStore(settings.device.state_dir, settings.session.keep_sessions)
    try:
        if store.fault is not None:  # a listing from memory, or a wipe of it, would mislead
            raise StoreError(f"session store unusable: {store.fault}")
        if args.forget:
            print(f"forgot {store.forget()} sessions")
            return 0
        rows = store.recent(args.limit)
        if args.json:
            print(json.dumps([r.__dict__ for r in rows], indent=1))
            return 0
        if not rows:
            print("no sessions stored")
        for r in rows:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at))
            dur = f"{r.ended_at - r.started_at:7.1f}s" if r.ended_at else "   open "
            cont = f" continues {r.continued_from}" if r.continued_from else ""
            print(f"{started} {dur} {r.end_reason or '-':<12} {r.agent}/{r.slot} {r.id}{cont}")
    finally:
        store.close()
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from edge_agent.audio.devices import read_wav_16k_mono
    from edge_agent.audio.gate import VadGate, gate_file_intervals

    settings = _load(args)
    pcm = read_wav_16k_mono(args.input)
    gate = VadGate(settings.vad, settings.audio.frame_ms)
    t0 = time.perf_counter()
    sent = gate_file_intervals(gate, pcm)
    elapsed = time.perf_counter() - t0
    duration = len(pcm) / 32000.0
    share = sum(b - a for a, b in sent) / duration if duration else 0.0
    result: dict[str, object] = {"sent": [[round(a, 3), round(b, 3)] for a, b in sent], "sent_share": round(share, 4), "frames": gate.frames}
    if args.labels:
        from edge_agent.audio.gatescore import Labels, score

        result["score"] = score(sent, Labels.load(args.labels)).as_dict()
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.input}: {duration:.1f} s, {gate.frames} frames of {settings.audio.frame_ms} ms, engine {settings.vad.engine}")
    print(f"sent {share:.1%} of the audio in {len(sent)} stretches; gate ran at {duration / max(elapsed, 1e-9):.0f}x real time")
    for a, b in sent:
        print(f"  {a:8.2f} - {b:8.2f} s")
    if "score" in result:
        print("score against labels:", result["score"])
    return 0


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        fn: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), name)
        return fn(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description="Voice kiosk daemon for a hosted Millis AI voice agent.")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="overrides log.level")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-c", "--config", help="TOML config file (default: built-in defaults)")
        return p

    with_config(sub.add_parser("run", help="run the kiosk")).set_defaults(fn=cmd_run)
    p = sub.add_parser("demo", help="run the kiosk against the bundled agent simulator")
    p.add_argument("--auto", action="store_true", help="press the button by script (default when stdin is not a terminal)")
    p.add_argument("--state-dir", help="where the demo keeps its sessions (default: ~/.local/state/edge-agent-demo)")
    p.add_argument("--input", help="audio input (default: a microphone if PyAudio finds one, else the bundled recording)")
    p.add_argument("--output", help="audio output (default: the default speaker if any, else null)")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("simulate-agent", help="run the local Millis-protocol agent simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--data-opt-out", action="store_true", help="ignore session continuations, like an agent with Data Opt-Out")
    p.add_argument("--end-after-turns", type=int, default=0, help="hang up (onsessionended) after this many replies")
    p.add_argument("--record", help="directory to record each session's initiate and uplink audio")
    p.add_argument("--onready-delay-ms", type=int, default=0, help="answer initiate this much later (a server slow to start a session)")
    p.set_defaults(fn=cmd_simulate)
    p = with_config(sub.add_parser("sessions", help="list stored sessions, newest first"))
    p.add_argument("--forget", action="store_true", help="wipe every stored session (privacy switch)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(fn=cmd_sessions)
    p = with_config(sub.add_parser("gate", help="run the daemon's speech gate over a recording"))
    p.add_argument("input", help="16 kHz mono 16-bit WAV")
    p.add_argument("--labels", help="a .labels.json file to score against")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_gate)
    p = sub.add_parser("devices", help="list audio devices and which would be chosen")
    p.add_argument("-c", "--config")
    p.set_defaults(fn=_lazy("edge_agent.audio.pyaudio_io", "cmd_devices"))
    from edge_agent.fleet.view import add_parser as add_fleet

    add_fleet(sub)
    from edge_agent.service.doctor import add_parser as add_doctor

    add_doctor(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        print(f"edge-agent: config error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except EdgeAgentError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
