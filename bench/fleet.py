"""Fleet benchmark: shared session pointers at fleet scale on one local Mosquitto.

    script/bench fleet [--json FILE] [--kiosks 1000] [--slots 100000] [--quick]

What it builds: one mosquitto; `--slots` retained session pointers (agent `agent-big`); `--kiosks`
simulated kiosks (paho clients in a few processes, each with retained availability and state,
one metrics message, and a subscription to the pointers of `agent-1` like a real kiosk's);
two kiosks' real sharing stack (SessionStore + StatusReporter + SessionShare, the production
classes) for the propagation figure; a follower process that catches up all `--slots` pointers
for the memory and lookup figures; a real Kiosk behind a byte-counting proxy for the traffic
figures; and `edge-agent fleet --json` over the simulated fleet.
Figures and their definitions are printed with the table (and in README, "Conversations that follow the person": `script/bench fleet`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import multiprocessing as mp
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

import paho.mqtt.client as mqtt  # noqa: E402
import steps  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from steps import wait_until  # noqa: E402

from edge_agent.core import config  # noqa: E402
from edge_agent.core.store import SessionStore  # noqa: E402
from edge_agent.devtools.loopthread import LoopThread  # noqa: E402
from edge_agent.devtools.mosquitto import Mosquitto  # noqa: E402
from edge_agent.fleet.share import Pointer, SessionShare, pointer_topic  # noqa: E402
from edge_agent.fleet.status import StatusReporter  # noqa: E402

PREFIX = "edge-agent"
BROKER_CONF = "max_queued_messages 0\nmax_inflight_messages 0\n"
"""Unlimited queues: a kiosk catching up N retained pointers gets all N (the default 1000 would drop the rest)."""


def pct(values: list[float], q: float) -> float:
    return steps.pct(values, q, 3)


def slot_key(i: int) -> str:
    return "b-" + hashlib.sha256(str(i).encode()).hexdigest()[:32]


def session_id(i: int, tag: str = "s") -> str:
    return f"{tag}-{hashlib.md5(str(i).encode()).hexdigest()}"


def mqtt_settings(port: int) -> config.MqttSettings:
    return config.from_dict({"mqtt": {"enabled": True, "host": "127.0.0.1", "port": port, "discovery": False, "keepalive_s": 30}}).mqtt


class SharingKiosk:
    """A kiosk's sharing stack without audio: store, MQTT reporter, SessionShare, an event loop."""

    def __init__(self, root: Path, name: str, port: int, agents: list[str], on_filed: Any = None, keep_sessions: int = 1000) -> None:
        self.store = SessionStore(root / name, keep_sessions=keep_sessions)
        self.loop = LoopThread(name)
        self.reporter = StatusReporter(mqtt_settings(port), name, lambda cmd, reply: None)
        self.on_filed = on_filed

        def file(rows: list[Any]) -> int:
            n = self.store.merge_shared(rows)
            if self.on_filed is not None:
                self.on_filed(rows)
            return n

        self.share = SessionShare(self.reporter, PREFIX, name, agents, lambda fn: self.loop.loop.call_soon_threadsafe(fn), file, self.store.forget_slots)

    def start(self) -> SharingKiosk:
        self.loop.start_loop()
        self.reporter.start()
        if not self.reporter.connected.wait(10):
            raise RuntimeError("kiosk did not connect")
        return self

    def store_session(self, agent: str, slot: str, sid: str) -> None:
        """What the Kiosk does on `onready`: file the session, then announce it (on its loop)."""
        now = time.time()
        self.store.record_start(sid, agent, slot, None, now)
        self.share.announce(agent, slot, Pointer(sid, now))

    def close(self) -> None:
        with contextlib.suppress(AttributeError):  # paho's loop_stop races its own thread's end
            self.reporter.close()
        self.loop.stop_loop()
        self.store.close()


# ----------------------------------------------------------------------------- simulated kiosks
def sim_worker(port: int, first: int, count: int, ready: Any, stop: Any, results: Any) -> None:
    """`count` lightweight kiosks: retained availability + state, one metrics message, and a
    subscription to agent-1's pointers (counting what arrives)."""
    received = [0]
    lock = threading.Lock()
    clients = []
    connected = threading.Semaphore(0)

    def on_connect(c: mqtt.Client, kid: str) -> None:
        c.subscribe(f"{PREFIX}/_sessions/agent-1/+", 1)
        c.publish(f"{PREFIX}/{kid}/availability", "online", 1, True)
        state = {"state": "idle", "session_id": None, "continued_from": None, "slot": None, "since": "2026-11-30T00:00:00+00:00", "version": "sim"}
        c.publish(f"{PREFIX}/{kid}/state", json.dumps(state), 1, True)
        c.publish(f"{PREFIX}/{kid}/metrics", json.dumps({"uptime_s": 1.0, "rtt_ms": 12.0, "cpu_percent": 1.5, "temperature_c": 48.0}), 0)
        connected.release()

    def on_message(*_: Any) -> None:
        with lock:
            received[0] += 1

    for i in range(first, first + count):
        kid = f"sim-{i:04d}"
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=kid)
        c.will_set(f"{PREFIX}/{kid}/availability", "offline", 1, True)
        c.on_connect = lambda c, u, f, rc, p, kid=kid: on_connect(c, kid)
        c.on_message = on_message
        c.connect_async("127.0.0.1", port, keepalive=60)
        c.loop_start()
        clients.append(c)
    for _ in range(count):
        connected.acquire(timeout=60)
    ready.put(count)
    stop.wait()
    results.put(received[0])
    for c in clients:
        c.publish(f"{PREFIX}/{c._client_id.decode()}/availability", "offline", 1, True)
        c.disconnect()
        c.loop_stop()


# ----------------------------------------------------------------------------- follower (own process)
def follower(port: int, slots: int, state_dir: str) -> None:
    """Catches up every retained pointer of agent-big; prints memory, time and lookup cost."""
    proc = psutil.Process()
    kiosk = SharingKiosk(Path(state_dir), "follower", port, ["agent-big"], keep_sessions=slots + 10_000)
    rss_before = proc.memory_info().rss
    t0 = time.perf_counter()
    kiosk.start()
    while kiosk.share.counts["filed"] < slots and time.perf_counter() - t0 < 600:
        time.sleep(0.05)
    catchup_s = time.perf_counter() - t0
    time.sleep(0.5)
    rss_after = proc.memory_info().rss
    rng = random.Random(7)
    probes = [slot_key(rng.randrange(slots)) for _ in range(2000)]
    big = [_timed(lambda s=s: kiosk.store.newest("agent-big", s)) for s in probes]
    small_store = SessionStore(Path(state_dir) / "one-slot", keep_sessions=slots + 10_000)
    small_store.record_start("s-one", "agent-big", probes[0], None)
    small = [_timed(lambda s=s: small_store.newest("agent-big", s)) for s in probes]
    starts_big = [_timed(lambda i=i: kiosk.store.record_start(session_id(i, "new"), "agent-big", probes[i], None)) for i in range(50)]
    starts_small = [_timed(lambda i=i: small_store.record_start(session_id(i, "new"), "agent-big", probes[i], None)) for i in range(50)]
    db = sum(p.stat().st_size for p in (Path(state_dir) / "follower").iterdir())
    out = {
        "filed": kiosk.share.counts["filed"],
        "received": kiosk.share.counts["received"],
        "catchup_s": round(catchup_s, 2),
        "rss_before_mb": round(rss_before / 1e6, 1),
        "rss_after_mb": round(rss_after / 1e6, 1),
        "db_mb": round(db / 1e6, 1),
        "lookup_us_p50": pct(big, 50),
        "lookup_us_p99": pct(big, 99),
        "lookup_one_slot_us_p50": pct(small, 50),
        "lookup_one_slot_us_p99": pct(small, 99),
        "record_start_ms_p50": round(pct(starts_big, 50) / 1000, 2),
        "record_start_one_slot_ms_p50": round(pct(starts_small, 50) / 1000, 2),
    }
    kiosk.close()
    print(json.dumps(out))


def reopened(state_dir: str, slots: int) -> None:
    """A kiosk restarted with the follower's store: RSS once the store is open and used."""
    proc = psutil.Process()
    import edge_agent.service.daemon  # noqa: F401 - what a kiosk process has loaded

    before = proc.memory_info().rss
    store = SessionStore(Path(state_dir) / "follower", keep_sessions=slots + 10_000)
    rng = random.Random(8)
    for _ in range(2000):
        store.newest("agent-big", slot_key(rng.randrange(slots)))
    print(json.dumps({"rss_without_store_mb": round(before / 1e6, 1), "rss_mb": round(proc.memory_info().rss / 1e6, 1)}))


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e6


# ----------------------------------------------------------------------------- byte counting proxy
class CountingProxy(LoopThread):
    """TCP proxy counting bytes each way (kiosk -> broker is `up`)."""

    def __init__(self, target_port: int) -> None:
        super().__init__("counting-proxy")
        self.target_port = target_port
        self.up = self.down = 0
        self.port = 0

    def __enter__(self) -> CountingProxy:
        self.start_loop()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_loop()

    async def _start(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        treader, twriter = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, twriter, True), pipe(treader, writer, False))

    @property
    def total(self) -> int:
        return self.up + self.down


def traffic(port: int, root: Path, idle_s: float) -> dict[str, Any]:
    """A real Kiosk (defaults: metrics every 30 s, keepalive 30 s, share on) behind a counting
    proxy: bytes idle over `idle_s`, scaled to an hour, then bytes of one conversation."""
    from conftest import KioskThread, Observer, kiosk_settings

    from edge_agent.core import conversation as c
    from edge_agent.devtools.simulator import SimulatorThread

    root.mkdir(parents=True, exist_ok=True)
    with SimulatorThread() as sim, CountingProxy(port) as proxy:
        settings = kiosk_settings(root, sim.url, device={"id": "measured"}, session={"share": True}, mqtt={"enabled": True, "host": "127.0.0.1", "port": proxy.port})
        obs = Observer(port, f"{PREFIX}/_sessions/agent-1/+")
        with KioskThread(settings) as k:
            time.sleep(3.0)  # connect, discovery, retained pointers of agent-1 from earlier phases
            start, t0 = proxy.total, time.monotonic()
            time.sleep(idle_s)
            idle = proxy.total - start
            idle_h = idle * 3600.0 / (time.monotonic() - t0)
            before, mark, t1 = proxy.total, len(obs.messages), time.monotonic()
            cmd = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-cmd")
            cmd.connect("127.0.0.1", port)
            cmd.loop_start()
            cmd.publish(f"{PREFIX}/measured/cmd", json.dumps({"action": "press", "slot": slot_key(424242)}), 1).wait_for_publish(5)
            wait_until(lambda: k.state == c.LISTENING, 10, 0.02)
            time.sleep(2.0)
            cmd.publish(f"{PREFIX}/measured/cmd", json.dumps({"action": "end"}), 1).wait_for_publish(5)
            wait_until(lambda: k.state == c.IDLE, 10, 0.02)
            time.sleep(1.0)
            conv = proxy.total - before - idle_h * (time.monotonic() - t1) / 3600.0
            pointers = [(t, p) for t, p, _, _ in obs.messages[mark:] if t.endswith(slot_key(424242))]
            cmd.loop_stop()
            cmd.disconnect()
        obs.close()
    fanout = sum(len(t) + len(p) + 6 for t, p in pointers)  # PUBLISH QoS 1: header, topic length, packet id
    return {"idle_bytes_per_hour": round(idle_h), "idle_window_s": idle_s, "conversation_bytes": round(conv), "pointer_messages": len(pointers), "fanout_bytes_per_follower": fanout}


# ----------------------------------------------------------------------------- main
def preload(port: int, slots: int) -> float:
    """`slots` retained pointers of agent-big, as kiosks would have left them; seconds taken."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-preload")
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.perf_counter()
    base = time.time() - slots
    for i in range(slots):
        p = Pointer(session_id(i), base + i, base + i + 30.0, None, f"sim-{i % 1000:04d}")
        c.publish(pointer_topic(PREFIX, "agent-big", slot_key(i)), p.to_wire(), 0, True)
        if i % 5000 == 4999:
            c.publish(f"{PREFIX}/bench/mark", b"", 1).wait_for_publish(60)  # keep the client's queue short
    c.publish(f"{PREFIX}/bench/mark", b"", 1).wait_for_publish(60)
    took = time.perf_counter() - t0
    c.loop_stop()
    c.disconnect()
    return took


def propagation(port: int, root: Path, sessions: int, interval_s: float, tag: str) -> dict[str, Any]:
    """Session stored on A -> filed in B's store, through the broker, one session every
    `interval_s` (with the simulated fleet connected, every pointer is fanned out to all of it)."""
    filed_at: dict[str, float] = {}

    def on_filed(rows: list[Any]) -> None:
        now = time.perf_counter()
        for row in rows:
            filed_at.setdefault(row[2], now)

    a = SharingKiosk(root, f"kiosk-a-{tag}", port, ["agent-1"]).start()
    b = SharingKiosk(root, f"kiosk-b-{tag}", port, ["agent-1"], on_filed).start()
    time.sleep(1.0)
    stored_at: dict[str, float] = {}
    try:
        for i in range(sessions):
            sid, slot = session_id(i, tag), slot_key(1_000_000 + i)

            def store(sid: str = sid, slot: str = slot) -> None:
                a.store_session("agent-1", slot, sid)
                stored_at[sid] = time.perf_counter()

            a.loop.loop.call_soon_threadsafe(store)
            time.sleep(interval_s)
        with contextlib.suppress(RuntimeError):
            wait_until(lambda: len(filed_at) >= sessions, 120, 0.02)
        unsent = a.share.counts["unsent"]
    finally:
        a.close()
        b.close()
    lat = [(filed_at[s] - stored_at[s]) * 1000.0 for s in stored_at if s in filed_at]
    return {"sessions": sessions, "interval_s": interval_s, "arrived": len(lat), "unsent_on_a": unsent, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": round(max(lat), 3), "durable_write_ms_p50": durable_write_ms(root)}


def durable_write_ms(root: Path) -> float:
    """Baseline: one durable SQLite write (what filing a pointer on B costs at least), p50 of 50."""
    store = SessionStore(root / "baseline")
    times = []
    for i in range(50):
        t = time.perf_counter()
        store.record_start(session_id(i, "w"), "agent-1", "x", None)
        times.append((time.perf_counter() - t) * 1000.0)
    store.close()
    return pct(times, 50)


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (and their threads) so far."""
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def fleet_view(port: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "edge_agent", "fleet", "--json", "--host", "127.0.0.1", "--port", str(port), "--wait-s", "3"], capture_output=True, text=True, timeout=60, cwd=REPO)
    took = time.perf_counter() - t0
    kiosks = json.loads(out.stdout)["kiosks"]
    sims = [k for k in kiosks if k["id"].startswith("sim-")]
    return {"kiosks_listed": len(sims), "online": sum(1 for k in sims if k["online"]), "with_state": sum(1 for k in sims if k["state"]), "wall_s": round(took, 2), "collect_s": 3.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--kiosks", type=int, default=1000)
    ap.add_argument("--slots", type=int, default=100_000)
    ap.add_argument("--sessions", type=int, default=300, help="sessions timed from kiosk A to kiosk B")
    ap.add_argument("--interval-s", type=float, default=0.1, help="between those sessions (10/s: a busy fleet's conversation rate)")
    ap.add_argument("--idle-s", type=float, default=62.0, help="idle window for the traffic figure (>= 2 metrics intervals)")
    ap.add_argument("--quick", action="store_true", help="100 kiosks, 10 000 slots, a 20 s idle window")
    ap.add_argument("--follower", nargs=3, metavar=("PORT", "SLOTS", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--reopen", nargs=2, metavar=("DIR", "SLOTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.follower:
        follower(int(args.follower[0]), int(args.follower[1]), args.follower[2])
        return 0
    if args.reopen:
        reopened(args.reopen[0], int(args.reopen[1]))
        return 0
    logging.basicConfig(level=logging.ERROR)
    if args.quick:
        args.kiosks, args.slots, args.idle_s, args.sessions = 100, 10_000, 31.0, 100
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        broker = Mosquitto(root, BROKER_CONF).start()
        ctx = mp.get_context("spawn")
        ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        workers = []
        try:
            result: dict[str, Any] = {"at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "kiosks": args.kiosks, "slots": args.slots}
            result["preload_s"] = round(preload(broker.port, args.slots), 2)
            follow_out = subprocess.run([sys.executable, __file__, "--follower", str(broker.port), str(args.slots), str(root / "follower")], capture_output=True, text=True, timeout=900)
            if follow_out.returncode != 0:
                raise RuntimeError(follow_out.stderr[-2000:])
            result["follower"] = json.loads(follow_out.stdout.strip().splitlines()[-1])
            again = subprocess.run([sys.executable, __file__, "--reopen", str(root / "follower"), str(args.slots)], capture_output=True, text=True, timeout=300, check=True)
            result["restarted"] = json.loads(again.stdout.strip().splitlines()[-1])
            result["propagation_alone"] = propagation(broker.port, root, args.sessions, args.interval_s, "alone")
            per = 250
            t0 = time.perf_counter()
            for first in range(0, args.kiosks, per):
                w = ctx.Process(target=sim_worker, args=(broker.port, first, min(per, args.kiosks - first), ready, stop, results), daemon=True)
                w.start()
                workers.append(w)
            connected = sum(ready.get(timeout=300) for _ in workers)
            result["fleet_connect_s"] = round(time.perf_counter() - t0, 2)
            result["fleet_connected"] = connected
            result["broker_rss_mb_with_fleet"] = round(psutil.Process(broker.proc.pid).memory_info().rss / 1e6, 1) if broker.proc else None
            cpu = _cpu_s([broker.proc.pid] if broker.proc else [])
            workers_cpu = _cpu_s([w.pid for w in workers if w.pid])
            result["propagation"] = propagation(broker.port, root, args.sessions, args.interval_s, "fleet")
            result["propagation"]["broker_cpu_ms_per_pointer"] = round((_cpu_s([broker.proc.pid] if broker.proc else []) - cpu) * 1000 / args.sessions, 2)
            result["propagation"]["followers_cpu_ms_per_pointer"] = round((_cpu_s([w.pid for w in workers if w.pid]) - workers_cpu) * 1000 / args.sessions, 2)
            result["fleet_view"] = fleet_view(broker.port)
            result["traffic"] = traffic(broker.port, root / "measured", args.idle_s)
            stop.set()
            received = sum(results.get(timeout=60) for _ in workers)
            result["fanout_delivered"] = received
        finally:
            stop.set()
            for w in workers:
                w.join(30)
                if w.is_alive():
                    w.kill()
            broker.kill()
    print(render(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def render(r: dict[str, Any]) -> str:
    f, p, t, v, p0 = r["follower"], r["propagation"], r["traffic"], r["fleet_view"], r["propagation_alone"]
    rows = [
        ("session stored on kiosk A -> filed on kiosk B, p50 / p99", f"{p['p50_ms']} / {p['p99_ms']} ms ({p['arrived']} of {p['sessions']} sessions, {1 / p['interval_s']:.0f}/s, {r['fleet_connected']} kiosks following)"),
        ("the same with only A and B on the broker", f"{p0['p50_ms']} / {p0['p99_ms']} ms ({p0['arrived']} of {p0['sessions']})"),
        ("CPU per pointer fanned out: broker / the simulated followers", f"{p['broker_cpu_ms_per_pointer']} / {p['followers_cpu_ms_per_pointer']} ms"),
        ("baseline: one durable SQLite write on this machine, p50", f"{p['durable_write_ms_p50']} ms"),
        (f"catch-up of {r['slots']} retained pointers (a kiosk reconnecting)", f"{f['catchup_s']} s, {f['filed']} filed"),
        (f"lookup on a press (store.newest), p50 / p99, {r['slots']} slots", f"{f['lookup_us_p50']} / {f['lookup_us_p99']} µs (1 slot: {f['lookup_one_slot_us_p50']} / {f['lookup_one_slot_us_p99']} µs)"),
        ("a conversation start (record_start: durable write + pruning), p50", f"{f['record_start_ms_p50']} ms with {r['slots']} slots (1 slot: {f['record_start_one_slot_ms_p50']} ms)"),
        (f"kiosk memory for {r['slots']} slots", f"RSS {f['rss_before_mb']} -> {f['rss_after_mb']} MB after the catch-up, SQLite {f['db_mb']} MB on disk"),
        ("... a kiosk process restarted with that store", f"RSS {r['restarted']['rss_without_store_mb']} -> {r['restarted']['rss_mb']} MB (2 000 lookups)"),
        ("broker bytes per kiosk per hour, idle", f"{t['idle_bytes_per_hour']} B"),
        ("broker bytes per conversation (the kiosk's own)", f"{t['conversation_bytes']} B"),
        ("... and to every kiosk following the agent", f"{t['fanout_bytes_per_follower']} B ({t['pointer_messages']} pointers)"),
        (f"`edge-agent fleet --json` with {r['kiosks']} kiosks", f"{v['kiosks_listed']} listed ({v['online']} online, {v['with_state']} with state) in {v['wall_s']} s"),
        ("broker RSS with the fleet connected", f"{r['broker_rss_mb_with_fleet']} MB"),
    ]
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


if __name__ == "__main__":
    sys.exit(main())
