"""A hostile review of fleet status and control over MQTT (2026-12-05, a helper's): each test is an
attack or a fault a fleet admin or a broker user can cause, through a real mosquitto (and the real
kiosk where it matters), and each failed before its fix."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from conftest import REPO, Broker, KioskThread, Observer, kiosk_settings, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator

FAST = {"ping_interval_s": 1.0, "connect_timeout_s": 2.0}


def _client(port: int, name: str) -> mqtt.Client:
    cl = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
    cl.max_queued_messages_set(0)
    cl.connect("127.0.0.1", port)
    cl.loop_start()
    wait_for(cl.is_connected, 5, f"{name} to connect")
    return cl


# ----------------------------------------------------------------------------- 1. fleet view
def test_fleet_view_survives_a_deeply_nested_retained_state(broker: Broker) -> None:
    """Any broker user who may write one `<prefix>/<id>/state` (a kiosk may write its own) retains
    `[[[[...` there. `FleetView.apply` caught ValueError only; json raises RecursionError, which
    escaped paho's on_message and killed its network thread: `edge-agent fleet` then showed nothing
    that arrived after it, and `--json` printed a partial snapshot with exit 0."""
    pub = _client(broker.port, "evil")
    try:
        pub.publish("edge-agent/aaa-evil/state", b"[" * 100_000, qos=1, retain=True).wait_for_publish(5)
        stop = threading.Event()

        def live() -> None:  # a kiosk saying it is online, live, while the snapshot is taken
            while not stop.is_set():
                pub.publish("edge-agent/kiosk-live/availability", b"online", qos=0)
                time.sleep(0.1)

        t = threading.Thread(target=live, daemon=True)
        t.start()
        try:
            cmd = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--json", "--wait-s", "3"]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)
        finally:
            stop.set()
            t.join(5)
    finally:
        pub.loop_stop()
        pub.disconnect()
    snap = json.loads(out.stdout)
    ids = [k["id"] for k in snap["kiosks"]]
    assert "kiosk-live" in ids, (out.returncode, ids, out.stderr[-300:])
    assert "Traceback" not in out.stderr, out.stderr[-1500:]


def test_fleet_view_is_never_handed_a_huge_retained_message(broker: Broker) -> None:
    """Anyone who may write one `<prefix>/<id>/state` retains 60 MiB there. `edge-agent fleet`
    spoke MQTT 3.1.1 with no maximum packet size: the broker delivered it, and the admin's view
    held it several times over (paho's buffer, the payload, its copy) at every start. Now it
    connects with MQTT 5 and a Maximum Packet Size, as the kiosk does: the broker keeps it."""
    pub = _client(broker.port, "big")
    try:
        pub.publish("edge-agent/aaa-big/state", b'{"state": "' + b"x" * (60 * 1024 * 1024) + b'"}', qos=1, retain=True).wait_for_publish(30)
        pub.publish("edge-agent/kiosk-ok/availability", b"online", qos=1, retain=True).wait_for_publish(5)
    finally:
        pub.loop_stop()
        pub.disconnect()
    cmd = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", str(broker.port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        time.sleep(4.0)
        assert proc.poll() is None, proc.stderr.read().decode()[-1000:] if proc.stderr else ""
        peak_mb = next(int(line.split()[1]) / 1024 for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if line.startswith("VmHWM:"))
    finally:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    assert b"kiosk-ok" in out  # the view works
    assert peak_mb < 60, f"the fleet view peaked at {peak_mb:.0f} MB"


# ----------------------------------------------------------------------------- 2. availability after an outage
def test_availability_is_online_again_after_an_outage_with_a_full_queue(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """README: "within 5 s of the broker coming back its availability and current state are
    published again". The events a kiosk says while the broker is away wait in paho's queue
    (MAX_QUEUED_EVENTS = 200, QoS 1); `_on_connect` published `online` and the state with
    `client.publish` into that same full queue, unchecked: both were dropped (not even counted),
    and the fleet and Home Assistant (whose entities all hang on the availability topic) saw the
    kiosk offline / unknown until its next reconnect. Now they go past the limit."""
    settings = kiosk_settings(tmp_path, sim.url, agent=FAST, mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port, "qos": 1, "discovery": False, "metrics_interval_s": 3600.0})
    prefix = f"edge-agent/{settings.device.id}"
    with KioskThread(settings) as k:
        reporter: Any = k.kiosk.reporter
        wait_for(reporter.connected.is_set, 20, "the kiosk to connect")
        broker.kill()
        wait_for(lambda: not reporter.connected.is_set(), 20, "the kiosk to notice the broker is gone")
        # a busy hour without the broker: conversations' events (about 8 each), 30 conversations
        for i in range(250):
            k.on_loop(lambda i=i: k.kiosk.reports.event("conversation_requested", {"fresh": False, "continue_session_id": f"s-{i}", "slot": "default"}))
        broker.start()  # the same port; nothing retained (persistence false)
        wait_for(reporter.connected.is_set, 20, "the kiosk to reconnect")
        obs = Observer(broker.port, f"{prefix}/#")
        try:
            time.sleep(6.0)
            obs.settle()
            avail = obs.find(f"{prefix}/availability")
            states = obs.find(f"{prefix}/state")
            assert avail and avail[-1] == b"online", (avail, states, reporter.events_dropped)
            assert states, (avail, reporter.events_dropped)
        finally:
            obs.close()


# ----------------------------------------------------------------------------- 3. stale pointers, corrected one for one
def test_a_flood_of_stale_session_pointers_does_not_crowd_out_the_kiosks_state(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """With `session.share`, any broker user may write `_sessions/#` (the ACL grants it to every
    kiosk). A pointer older than the one this kiosk owns is "corrected": the kiosk republished its
    own, one for one, from paho's thread into the bounded queue its state and events share, with
    no limit (the refusals of commands got one for exactly this). A flood of stale pointers then
    dropped the kiosk's own state changes and events (4 145 and 7 945 in two runs). Now
    owed.CORRECTIONS_BURST, and the slot is owed one correction after the flood."""
    settings = kiosk_settings(
        tmp_path,
        sim.url,
        agent=FAST,
        session={"share": True},
        mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port, "qos": 1, "discovery": False, "metrics_interval_s": 3600.0},
    )
    prefix = f"edge-agent/{settings.device.id}"
    with KioskThread(settings) as k:
        reporter: Any = k.kiosk.reporter
        share: Any = k.kiosk.share
        wait_for(reporter.connected.is_set, 20, "the kiosk to connect")
        watch = Observer(broker.port, "edge-agent/#")
        wait_for(watch.client.is_connected, 5, "the observer")
        # one conversation: the kiosk now owns the pointer of (agent, default)
        k.press()
        k.wait_state(c.LISTENING, 20)
        (agent,) = share.agents
        topic = f"edge-agent/_sessions/{agent}/default"
        watch.wait(topic, timeout_s=10)
        k.press()
        k.wait_state(c.IDLE, 20)
        attacker = _client(broker.port, "stale")
        stop = threading.Event()
        stale = json.dumps({"v": 1, "session_id": "old-1", "started_at": 1000.0, "ended_at": None, "continued_from": None, "kiosk": "x"}).encode()

        def flood() -> None:
            while not stop.is_set():
                for _ in range(200):
                    attacker.publish(topic, stale, qos=0)
                time.sleep(0.01)

        flooder = threading.Thread(target=flood, daemon=True)
        try:
            time.sleep(0.5)
            mark = len(watch.messages)
            flooder.start()
            wait_for(lambda: share.counts["corrected"] + share.counts.get("corrections_held", 0) >= 500, 20, "the flood to reach the kiosk")
            k.press()
            k.wait_state(c.LISTENING, 20)
            time.sleep(1.0)
            stop.set()
            flooder.join(5)
            time.sleep(1.0)
            states = [json.loads(p)["state"] for p in watch.find(f"{prefix}/state", mark)]
            events = [json.loads(p)["event"] for p in watch.find(f"{prefix}/event", mark)]
            corrected = share.counts["corrected"]
            assert reporter.events_dropped == 0, (reporter.events_dropped, corrected, states, events)
            assert c.LISTENING in states and "conversation_requested" in events, (states, events)
            # the flood over, the owed correction puts ours back as the slot's retained pointer
            wait_for(lambda: json.loads(watch.find(topic)[-1])["session_id"] != "old-1", 10, "the owed correction")
        finally:
            stop.set()
            attacker.loop_stop()
            attacker.disconnect()
            watch.close()


# ----------------------------------------------------------------------------- 4. a `$` topic prefix
def test_a_dollar_topic_prefix_is_refused_or_works(tmp_path: Path) -> None:
    """`mqtt.topic_prefix` is checked for `+`, `#`, NUL, control characters and length, because
    each "broke every subscription". A prefix starting with `$` (`$SYS/edge-agent`) passes, the
    kiosk logs "connected", and the broker drops every publish of it (clients may not publish
    under `$`) and every command to it: no availability, no state, no command, not a word said.
    (`$share/<group>` is worse: the kiosk's `cmd` subscription becomes a shared subscription on
    `<id>/cmd`, outside the prefix.) Either the config refuses it, or the availability arrives
    (now refused, as `fleet --prefix` is)."""
    from edge_agent.core import config
    from edge_agent.errors import ConfigError
    from edge_agent.fleet.status import StatusReporter

    prefix = "$SYS/edge-agent"
    b = Broker(tmp_path).start()
    try:
        try:
            settings = config.from_dict({"device": {"id": "kiosk-1"}, "mqtt": {"enabled": True, "host": "127.0.0.1", "port": b.port, "topic_prefix": prefix, "discovery": False}})
        except ConfigError:
            return  # refused with one clear message: fine
        obs = Observer(b.port, f"{prefix}/#")
        commands: list[Any] = []
        reporter = StatusReporter(settings.mqtt, "kiosk-1", lambda cmd, reply: commands.append(cmd))
        try:
            wait_for(obs.client.is_connected, 5, "the observer")
            reporter.start()
            wait_for(reporter.connected.is_set, 10, "the kiosk to connect")
            obs.client.publish(f"{prefix}/kiosk-1/cmd", b'{"action": "ping"}', qos=1)
            time.sleep(2.0)
            assert obs.find(f"{prefix}/kiosk-1/availability") == [b"online"], obs.messages
            assert commands, "the command never reached the kiosk"
        finally:
            reporter.close()
            obs.close()
    finally:
        b.kill()


# ----------------------------------------------------------------------------- 5. `fleet --port` out of range
def test_fleet_port_out_of_range_is_a_usage_error_not_another_port(tmp_path: Path) -> None:
    """`mqtt.port` in a config is checked (1-65535); `fleet --port` was not. 70000 was taken modulo
    65536: `fleet` read whatever broker listened on 4464 and exited 0 (here: an empty fleet, which a
    monitoring script takes for "no kiosks"); 0 or -1 was "unexpected error ... report it", exit 70."""
    b = Broker(tmp_path, port=70000 - 65536).start()
    try:
        for port in ("70000", "0"):
            cmd = [sys.executable, "-m", "edge_agent", "fleet", "--host", "127.0.0.1", "--port", port, "--json", "--wait-s", "0.5"]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=30)
            assert out.returncode not in (0, 70) and "port" in out.stderr, (port, out.returncode, out.stdout[:200], out.stderr[-300:])
    finally:
        b.kill()


def test_a_press_command_during_the_stop_starts_no_conversation(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """SIGTERM ends a live conversation cleanly. The stop awaits the link's close handshake (up to
    1.5 s) with the event loop running and the MQTT subscription, buttons and badge reader live: a
    `press` from the broker then (`_command_from_thread`, what paho's on_message calls) or from a
    button's thread (`post`) started a new conversation on a kiosk that was stopping: a socket to
    the agent after `conversation_ended reason=shutdown`, the command answered ok, the kiosk gone
    in `connecting` with the link's tasks left running (a helper's attack, 2026-12-06)."""
    from edge_agent.fleet.commands import Command

    settings = kiosk_settings(tmp_path, sim.url, agent=FAST, mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port, "qos": 1, "discovery": False, "metrics_interval_s": 3600.0})
    replies: list[dict[str, object]] = []
    k = KioskThread(settings).__enter__()
    try:
        wait_for(k.kiosk.reporter.connected.is_set, 20, "the kiosk to connect")  # type: ignore[attr-defined]
        k.press()
        k.wait_state(c.LISTENING)
        before = sim.connections

        def stop_then_press() -> None:
            k.kiosk.stop()  # SIGTERM's handler
            k.kiosk._command_from_thread(Command("press", "late"), replies.append)
            k.kiosk.post(c.Press(origin="badge"))  # a button's or a badge reader's thread, the same window

        k.on_loop(stop_then_press)
    finally:
        k.loop.is_closed() or k.loop.call_soon_threadsafe(k.kiosk.stop)
        k._thread.join(20)
    assert not k._thread.is_alive(), "the kiosk did not stop"
    assert k.leftover_tasks == [], f"tasks outlived the kiosk: {k.leftover_tasks}"
    assert sim.connections == before, ("a conversation started during the stop", replies)
    assert replies and not any(r.get("ok") for r in replies), replies
    assert k.kiosk.conversation.state == c.IDLE, k.kiosk.conversation.state

