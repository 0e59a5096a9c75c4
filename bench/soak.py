"""Soak: simulated conversations for a long time, watching the daemon's resources for growth.

The real daemon process talks to the agent simulator through the fault proxy, reports to a real
mosquitto, and hears the dev recordings on a loop (full duplex, so the visitor barges in). The
driver presses, waits for replies, cuts the network now and then, and ends conversations; every
few seconds it samples the daemon's RSS, open file descriptors, threads and asyncio tasks.
It fails when, after warm-up, the last quarter of the run holds more than a small constant
over the second quarter, and when the kiosk misses anything the driver expected: a press that
started no conversation, a conversation that never ended, a reply not heard within 20 s (the
visitor talks throughout), a cut not reconnected within 12 s. Its summary line states the counts.

    .venv/bin/python bench/soak.py [--minutes 60] [--json FILE]     (CI: --minutes 2)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent.audio.devices import write_wav_16k_mono  # noqa: E402
from edge_agent.devtools.faultproxy import FaultProxyThread  # noqa: E402
from edge_agent.devtools.mosquitto import Mosquitto  # noqa: E402
from edge_agent.devtools.simulator import SimulatorThread  # noqa: E402

LIMITS = {"rss_mb": 8.0, "open_fds": 4, "threads": 2, "tasks": 4}
"""Allowed growth from the second quarter of the run to the last quarter (noise, any run)."""
RATE_LIMITS_PER_HOUR = {"rss_mb": 4.0, "open_fds": 4, "threads": 2, "tasks": 4}
"""Allowed growth per hour over the same span, in runs of RATE_MIN_S or more: a fixed allowance
alone let an hour's run leak 14 MB/h (336 MB a day) and pass."""
RATE_MIN_S = 1800.0
METRICS_MAX_AGE_S = 6.0
"""A task count from metrics older than this is not taken (they come every 2 s)."""


def _recording(tmp: Path) -> Path:
    """Both dev recordings back to back (about 110 s), played on a loop."""
    pcm = b""
    for name in ("quiet", "noisy"):
        with wave.open(str(REPO / "tests" / "data" / f"kiosk_dev_{name}.wav")) as w:
            pcm += w.readframes(w.getnframes())
    return write_wav_16k_mono(tmp / "soak.wav", pcm)


class Watch:
    """Collects the daemon's MQTT state, events and metrics."""

    def __init__(self, port: int) -> None:
        self.state = "idle"
        self.events: list[str] = []
        self.metrics: dict[str, Any] = {}
        self.metrics_at = 0.0
        """time.monotonic() the newest metrics message came."""
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-watch")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("edge-agent/soak/#")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, c: Any, u: Any, m: mqtt.MQTTMessage) -> None:
        leaf = m.topic.rsplit("/", 1)[-1]
        try:
            data = json.loads(m.payload)
        except ValueError:
            return
        if leaf == "state":
            self.state = data["state"]
        elif leaf == "event":
            self.events.append(data["event"])
        elif leaf == "metrics":
            self.metrics, self.metrics_at = data, time.monotonic()

    def fresh_metric(self, key: str, max_age_s: float) -> Any:
        """`key` of the newest metrics, None when they are older than `max_age_s` (a daemon that
        stopped publishing must not show its last count for the rest of the run)."""
        return self.metrics.get(key) if time.monotonic() - self.metrics_at <= max_age_s else None

    def wait(self, pred: Any, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if pred():
                return True
            time.sleep(0.05)
        return False


def run(minutes: float, seed: int, warm_link: bool = False) -> dict[str, Any]:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="edge-agent-soak-"))
    broker = Mosquitto(tmp).start()
    try:
        return _drive(tmp, broker, minutes, rng, warm_link)
    finally:
        broker.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _drive(tmp: Path, broker: Mosquitto, minutes: float, rng: random.Random, warm_link: bool = False) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    counts = {"presses": 0, "conversations": 0, "completed": 0, "replies_expected": 0, "replies": 0, "cuts": 0, "cuts_reconnected": 0, "long_presses": 0}
    missed: list[str] = []
    with SimulatorThread() as sim:
        proxy_thread = FaultProxyThread("127.0.0.1", sim.port)
        proxy = proxy_thread.__enter__()
        cfg = tmp / "soak.toml"
        cfg.write_text(
            f"""
[device]
id = "soak"
state_dir = "{tmp / 'state'}"
[agent]
endpoint = "{proxy.url()}"
agent_id = "soak-agent"
dead_after_s = 5.0
ping_interval_s = 1.0
warm_link = {str(warm_link).lower()}
warm_hold_s = 4.0
[session]
idle_timeout_s = 15.0
reconnect_window_s = 10.0
starts_per_minute = 60.0
[audio]
input = "loop:{_recording(tmp)}"
output = "null"
duplex = "full"
[button]
source = "keyboard"
[log]
level = "warning"
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
metrics_interval_s = 2.0
discovery = false
"""
        )
        env = {**os.environ, "EDGE_AGENT_PUBLIC_KEY": "soak"}
        log = (tmp / "daemon.log").open("w")
        daemon = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(cfg)], stdin=subprocess.PIPE, stderr=log, text=True, cwd=REPO, env=env)
        proc = psutil.Process(daemon.pid)
        watch = Watch(broker.port)
        stop = threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            while not stop.wait(5.0):
                try:
                    rss_mb = round(proc.memory_info().rss / 1e6, 2)
                    t_s = round(time.monotonic() - t0, 1)
                    samples.append({"t_s": t_s, "rss_mb": rss_mb, "open_fds": proc.num_fds(), "threads": proc.num_threads(), "tasks": watch.fresh_metric("tasks", METRICS_MAX_AGE_S)})
                except psutil.Error:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def press(long: bool = False) -> None:
            assert daemon.stdin is not None
            daemon.stdin.write("l\n" if long else "p\n")
            daemon.stdin.flush()

        deadline = t0 + minutes * 60
        watch.wait(lambda: watch.metrics, 15)
        def count(event: str) -> int:
            return watch.events.count(event)

        while time.monotonic() < deadline and daemon.poll() is None:
            long = rng.random() < 0.15
            counts["long_presses"] += long
            started, ended = count("conversation_started"), count("conversation_ended")
            press(long)
            counts["presses"] += 1
            at = round(time.monotonic() - t0, 1)
            if not watch.wait(lambda n=started: count("conversation_started") > n, 10):
                missed.append(f"{at} s: press started no conversation")
                watch.wait(lambda: watch.state == "idle", 5)
                continue
            counts["conversations"] += 1
            replies = count("response_latency")
            counts["replies_expected"] += 1
            if watch.wait(lambda r=replies: count("response_latency") > r, 20):
                counts["replies"] += 1
            else:
                missed.append(f"{at} s: no reply heard within 20 s")
            if rng.random() < 0.35 and watch.state in ("listening", "speaking"):
                reconnected = count("reconnected")
                proxy_thread.cut()
                counts["cuts"] += 1
                if watch.wait(lambda n=reconnected: count("reconnected") > n, 12):
                    counts["cuts_reconnected"] += 1
                else:
                    missed.append(f"{at} s: cut not reconnected within 12 s")
            time.sleep(rng.uniform(0.5, 4.0))
            if watch.state in ("listening", "speaking", "connecting"):
                press()
            if watch.wait(lambda n=ended: count("conversation_ended") > n, 8):
                counts["completed"] += 1
            else:
                missed.append(f"{at} s: conversation did not end")
            watch.wait(lambda: watch.state == "idle", 5)
        stop.set()
        daemon.terminate()
        exit_code = daemon.wait(10)
        watch.client.loop_stop()
        proxy_thread.__exit__(None, None, None)
    return {
        "minutes": minutes,
        "samples": samples,
        "missed": missed,
        "counts": {**counts, "reconnects": watch.events.count("reconnected"), "barge_ins": sum(s.barge_ins for s in sim.sessions), "sessions": len(sim.sessions), "warm_presses": watch.metrics.get("warm_presses")},
        "exit_code": exit_code,
        "log_tail": (tmp / "daemon.log").read_text()[-2000:],
    }


def verdict(result: dict[str, Any]) -> list[str]:
    """Everything the kiosk missed, then growth from the second quarter to the last quarter, per
    resource, against LIMITS."""
    s = result["samples"]
    problems = []
    if result["exit_code"] != 0:
        problems.append(f"daemon exited {result['exit_code']} on SIGTERM")
    problems += result.get("missed", [])
    if result["counts"].get("presses", 0) == 0:
        problems.append("no press was made")
    if len(s) < 8:
        return [*problems, f"only {len(s)} samples: run longer"]
    q = len(s) // 4
    for key, limit in LIMITS.items():
        base = [x[key] for x in s[q : 2 * q] if x[key] is not None]
        last = [x[key] for x in s[3 * q :] if x[key] is not None]
        if not base or not last:  # a resource not watched is not one that did not grow
            problems.append(f"{key} not sampled in the {'second' if not base else 'last'} quarter of the run")
        elif max(last) - max(base) > limit:
            problems.append(f"{key} grew from {max(base)} to {max(last)} (limit +{limit})")
        elif base and last and s[-1]["t_s"] - s[0]["t_s"] >= RATE_MIN_S:
            hours = (s[3 * q]["t_s"] - s[q]["t_s"]) / 3600.0
            rate = (max(last) - max(base)) / hours
            if rate > RATE_LIMITS_PER_HOUR[key]:
                problems.append(f"{key} grew from {max(base)} to {max(last)}: {rate:.1f} an hour (limit {RATE_LIMITS_PER_HOUR[key]})")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the samples and the verdict here")
    ap.add_argument("--warm-link", action="store_true", help="with agent.warm_link (standbys replaced every 4 s)")
    args = ap.parse_args()
    result = run(args.minutes, args.seed, args.warm_link)
    problems = verdict(result)
    result["problems"] = problems
    s = result["samples"]
    print(f"{'t (s)':>7} {'RSS MB':>8} {'fds':>5} {'threads':>8} {'tasks':>6}")
    for x in s[:: max(1, len(s) // 12)] + s[-1:]:
        print(f"{x['t_s']:>7} {x['rss_mb']:>8} {x['open_fds']:>5} {x['threads']:>8} {x['tasks'] if x['tasks'] is not None else '-':>6}")
    print("counts:", json.dumps(result["counts"]))
    c = result["counts"]
    summary = f"{c['conversations']}/{c['presses']} presses started a conversation, {c['completed']} completed, {c['replies']}/{c['replies_expected']} replies heard, {c['cuts_reconnected']}/{c['cuts']} cuts reconnected"
    print("soak:", f"PASS: {summary}; no growth beyond " + json.dumps(LIMITS) if not problems else f"FAIL ({summary}): " + "; ".join(problems))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if problems:
        print(result["log_tail"], file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
