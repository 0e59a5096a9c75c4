"""Kiosk: the asyncio glue that runs the appliance.

It owns the devices (audio source and sink, button, LED), the SessionStore, the VadGate and the
status reporter, feeds the pure `Conversation` with events and carries out the actions it
returns, through the parts that do the work: `CaptureFeed` (service/capture.py: a captured
frame's way to the agent, through `MicPath`: the canceller and the gate), `Uplink` (agent/uplink.py: the agent link and the audio
held for it), `SessionRecords` (service/records.py: the store and the fleet's pointers, and their
faults), `KioskReports` (service/kiosk_reports.py: what it tells the log, the fleet and systemd),
`Ticker` (service/ticker.py), `AudioWatch` and `SpeakerWatch`. Foreign threads (PortAudio, gpiozero,
stdin, paho) reach it only through `post`, which uses call_soon_threadsafe and guards the
handler, so nothing they do can kill their thread or block the audio path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from edge_agent import BYTES_PER_S, __version__
from edge_agent.agent.link import AgentLink, LinkStats
from edge_agent.agent.resolver import ResolverThreads
from edge_agent.agent.standby import Standby
from edge_agent.agent.uplink import Uplink
from edge_agent.audio.devices import AudioSink, AudioSource
from edge_agent.audio.earcons import EarconRemover, Earcons
from edge_agent.audio.echo import EchoCanceller, make_backend
from edge_agent.audio.factory import open_sink, open_source
from edge_agent.audio.gate import VadGate
from edge_agent.audio.mic_path import MicPath
from edge_agent.core import conversation as c
from edge_agent.core.backlog import Backlog
from edge_agent.core.config import Settings, validate_for_run
from edge_agent.core.exposure import ExposureLog
from edge_agent.core.ports import Led, Reporter
from edge_agent.core.store import SessionStore
from edge_agent.errors import EdgeAgentError
from edge_agent.fleet.commands import Command
from edge_agent.fleet.metrics import own_process
from edge_agent.hardware.button import Button
from edge_agent.service import audio_watch
from edge_agent.service.assembly import apply_reload, make_button, make_led, make_reporter, timing_from
from edge_agent.service.audio_watch import AUDIO_RETRY_S, AUDIO_STALL_S, AudioWatch, SpeakerWatch
from edge_agent.service.capture import CaptureFeed
from edge_agent.service.kiosk_metrics import KioskMetrics
from edge_agent.service.kiosk_reports import KioskReports
from edge_agent.service.notify import SystemdNotifier, handle_signals, ignore_hangup
from edge_agent.service.records import SessionRecords
from edge_agent.service.reload import ConfigReload
from edge_agent.service.remote_control import carry_out
from edge_agent.service.roomgrade import RoomGradeFile, hardware_of
from edge_agent.service.slots import link_settings, make_share, slot_inputs
from edge_agent.service.ticker import Ticker

log = logging.getLogger("edge_agent")

class Kiosk:
    """One kiosk: its parts assembled from the settings (tests hand in their own), the pure
    `Conversation` fed with their events, and its actions carried out, all on one event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: AudioSource | None = None,
        sink: AudioSink | None = None,
        button: Button | None = None,
        led: Led | None = None,
        reporter: Reporter | None = None,
        store: SessionStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = validate_for_run(settings)  # with the agent's key read from its file
        self.settings = settings
        self.clock = clock
        self.store = store or SessionStore(settings.device.state_dir, settings.session.keep_sessions, settings.device.store_retry_s)
        self.source = source or open_source(settings.audio.input, settings.audio.frame_ms, settings.audio.capture_period_ms, key="audio.input", block_ms=settings.audio.capture_block_ms)
        self.sink = sink or open_sink(settings.audio.output, settings.audio.playback_buffer_ms, key="audio.output")
        self.button = button or make_button(settings.button)
        self.inputs: list[Button] = [self.button, *slot_inputs(settings)]
        """The main button, then `[[buttons]]` and the badge reader: each names its slot."""
        self.led: Led = led or make_led(settings.led)
        self.reporter: Reporter = reporter or make_reporter(settings, self._command_from_thread)
        self.share = make_share(settings, self.reporter, self.store, self._call_threadsafe, self._slot_forgotten)
        self.records = SessionRecords(self.store, self.share, self._notify, self._store_changed, clock)
        self.gate = VadGate(settings.vad, settings.audio.frame_ms)
        self.echo = EchoCanceller(make_backend(settings.audio.echo_cancel), delay_ms=settings.audio.echo_delay_ms)
        self.sink.buffer.tap = self.echo.ring.write  # the speaker reports what it played, and when
        self.sink.buffer.tap_cut = self.echo.ring.cut  # ... and when it dropped what it held
        self.room_grade = RoomGradeFile(settings.device.state_dir, hardware_of(settings.audio), self.echo.grade if self.echo.enabled else None)
        self.mic = MicPath(self.echo, EarconRemover(settings.audio.earcon_removal), self.gate, lambda speaking: self.dispatch(c.VisitorSpeech(speaking)))
        self.backlog = Backlog(settings.audio.backlog_ms, settings.audio.frame_ms)
        self.earcons = Earcons(settings.audio.earcons, settings.audio.earcon_volume)
        self.stats = LinkStats()
        self.notifier = SystemdNotifier()
        self.conversation = self._new_conversation()
        self.started_at = time.monotonic()
        self.counters = {"frames_captured": 0, "frames_uplinked": 0, "reconnects": 0, "errors": 0, "handler_errors": 0, "replies": 0}
        self.reports = KioskReports(self.reporter, self.notifier, self.counters, lambda: self.settings.log.transcripts)
        self.ticker = Ticker(self._tick, self._running)
        self.standby = Standby(settings.agent, self.stats)
        self.uplink = Uplink(self.stats, self.standby, self.backlog, self.dispatch)
        self.capture = CaptureFeed(self.conversation, self.mic, self.gate, self.uplink, self.ticker, self.counters, clock)
        self._stop: asyncio.Event | None = None
        self.reloads = ConfigReload(lambda: self.conversation.state == c.IDLE, self._apply_reload)
        """SIGHUP's settings: applied now when idle, else when the conversation ends (service/reload.py)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ready = asyncio.Event()
        self.audio_watch = AudioWatch(self.source, settings.audio.input, self._notify, self._announce_ready, off_loop=self.source.opens_off_loop)
        self.speaker_watch = SpeakerWatch(self.sink, settings.audio.output, self._notify, self._playback_drained)
        self.exposures = ExposureLog()  # logged at start, and what a reload newly exposes
        self.metric_parts = KioskMetrics(
            self.counters, self.stats, self.gate, self.backlog, self.source, self.sink, self.standby, self.store, self.echo, self.inputs, self.share, own_process(), self.started_at
        )

    @property
    def link(self) -> AgentLink | None:
        """The conversation's current agent link (None before the first)."""
        return self.uplink.link

    def _new_conversation(self) -> c.Conversation:
        newest = self.store.newest(self.settings.agent.agent_key, self.settings.session.slot)
        age = time.time() - newest.last_active_at if newest else None
        agent = self.settings.agent.agent_key
        return c.Conversation(
            timing_from(self.settings), newest.id if newest else None, age, slot=self.settings.session.slot, recall=self.recall, foreign=self.foreign, own_agent_id=agent, aged_at=self.clock()
        )

    def foreign(self, session_id: str, agent_id: str | None, slot: str) -> bool:
        """The store holds `session_id` for another (agent, slot) than the one given."""
        return self.records.foreign(session_id, agent_id or self.settings.agent.agent_key, slot)

    def recall(self, agent_id: str | None, slot: str) -> tuple[str, float] | None:
        """The newest stored session of (agent, slot), with its wall-clock age, for a press."""
        return self.records.newest(agent_id or self.settings.agent.agent_key, slot)

    # ------------------------------------------------------------------ event entry points
    def post(self, event: c.Event) -> None:
        """Thread-safe: hand an event from any thread to the event loop. A press or a start that
        comes once the kiosk is stopping is dropped there (`_stopping`)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch_unless_stopping, event)

    def _stopping(self) -> bool:
        """The stop has begun: nothing starts a conversation any more. The stop awaits the link's
        close handshake with the loop running and the buttons and the MQTT subscription still
        live: a press then opened a new link to the agent, the command was answered ok, and the
        kiosk exited in `connecting` with the link's tasks left running (a helper's attack)."""
        return self._stop is not None and self._stop.is_set()

    def _dispatch_unless_stopping(self, event: c.Event) -> None:
        if self._stopping() and isinstance(event, (c.Press, c.Start)):
            log.info("%s ignored: the kiosk is stopping", type(event).__name__.lower())
            return
        self.dispatch(event)

    def _call_threadsafe(self, fn: Callable[[], None]) -> None:
        """`fn` on the loop, from paho's or another thread; guarded as `dispatch` is."""

        def guarded() -> None:
            try:
                fn()
            except Exception:
                self.counters["handler_errors"] += 1
                log.exception("a call from another thread failed")

        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(guarded)

    def dispatch(self, event: c.Event) -> None:
        """Feed one event to the Conversation and carry out its actions (on the loop)."""
        try:
            actions = self.conversation.handle(event, self.clock())
            for action in actions:
                self._execute(action)
        except Exception:  # one bad event must never take the daemon down
            self.counters["handler_errors"] += 1
            log.exception("handling %s failed", type(event).__name__)

    # ------------------------------------------------------------------ actions
    def _execute(self, a: c.Action) -> None:
        if isinstance(a, c.Play):
            self.sink.buffer.write(a.pcm, reply=True)
        elif isinstance(a, c.Playback):
            self.sink.buffer.control(a.command)
        elif isinstance(a, c.OpenLink):
            self.uplink.open(a, link_settings(self.settings, a.agent_id, a.slot), self.settings.agent)
        elif isinstance(a, c.CloseLink):
            self.uplink.close(a.link_id)
        elif isinstance(a, c.StoreStart):
            self.records.started(a.session_id, a.agent_id or self.settings.agent.agent_key, a.slot, a.continued_from)
        elif isinstance(a, c.StoreEnd):
            self.records.ended(a.session_id, a.reason)
        elif isinstance(a, c.NewVisitor):
            self.gate.new_visitor()
            self.capture.hurry(self.source)
        elif isinstance(a, c.HeldAudio):
            self.uplink.held(a.command)
            if a.command == "drop":
                self.capture.held_dropped()
        elif isinstance(a, c.Earcon):
            pcm = self.earcons.get(a.name)
            if pcm:
                self.sink.buffer.write(pcm, cue=True)  # an agent's pause does not hold it
                # when it plays, on the clock that stamps captured frames (time.monotonic())
                until = time.monotonic() + self.sink.buffer.queued_bytes / BYTES_PER_S
                self.mic.cue(a.name, until - len(pcm) / BYTES_PER_S, until)
        elif isinstance(a, c.Notify):
            self._notify(a.kind, a.fields)
        elif isinstance(a, c.StateChanged):
            if a.state == c.LISTENING and self.uplink.start_stream(self.gate.silence):
                self.gate.debt += 1  # the extra frame is paid back from the gate's silence, like a pre-roll
            self._show_led()
            self.reports.states.changed(a, time.monotonic())

    def _playback_drained(self) -> None:
        """The speaker's queue ran dry (told from its thread, so maybe late): unless audio was
        queued since (a reply arriving as an earcon ran dry), the agent stopped speaking."""
        if not self.sink.buffer.queued_bytes:
            self.dispatch(c.PlaybackDrained())

    def _store_changed(self) -> None:
        """The store went to memory (the LED shows it while idle) or back to disk (an idle
        conversation learns its newest session again)."""
        if self.store.fault is None and self.conversation.state == c.IDLE:
            newest = self.store.newest(self.settings.agent.agent_key, self.settings.session.slot)
            self.dispatch(c.StoreReloaded(newest.id if newest else None, time.time() - newest.last_active_at if newest else None))
        self._show_led()

    def _show_led(self) -> None:
        """The state; the error blink while the microphone or the speaker is gone (it looked idle)."""
        state = self.conversation.state
        gone = self.audio_watch.stalled_at is not None or self.speaker_watch.watch.stalled_at is not None
        self.led.show(c.ERROR if gone else "store_fault" if state == c.IDLE and self.store.fault is not None else state)

    def _notify(self, kind: str, fields: dict[str, Any]) -> None:
        self.reports.event(kind, fields)
        if kind in audio_watch.DEVICE_EVENTS or fields.get("code") in audio_watch.DEVICE_EVENTS:
            self.conversation.mic_gone = self.audio_watch.stalled_at is not None  # no start with no mic
            self._show_led()

    # ------------------------------------------------------------------ commands
    def _command_from_thread(self, cmd: Command, reply: Callable[[dict[str, Any]], None]) -> None:
        """From paho's thread: run the command on the loop, answer from there."""
        self._call_threadsafe(lambda: self.run_command(cmd, reply))

    def run_command(self, cmd: Command, reply: Callable[[dict[str, Any]], None]) -> None:
        """One remote command -> one event or store call; a result always goes back."""
        if self._stopping() and cmd.action in ("press", "long_press", "resume", "new"):
            reply({"id": cmd.id, "action": cmd.action, "ok": False, "error": "the kiosk is stopping"})
            return
        try:
            result = carry_out(cmd, self.conversation, self.dispatch, self.forget_sessions, self.clock(), self.room_grade.forget)
        except Exception:  # a bug: the command still gets the answer it was promised
            log.exception("command %s failed", cmd.action)
            result = {"id": cmd.id, "action": cmd.action, "ok": False, "error": "internal error (see the kiosk's log)"}
        reply(result)

    def metrics(self) -> dict[str, Any]:
        """The numbers a fleet admin watches (service/kiosk_metrics.py)."""
        conv = self.conversation
        return self.metric_parts.gather(conv.state, conv.starts_refused, self.reports.response_latency_ms, self.settings.agent.warm_link)

    def _slot_forgotten(self, agent: str, slot: str) -> None:
        """The fleet forgot one slot: a conversation of that slot goes off the record, no other; the
        retained state no longer names its last session (it kept naming it on every kiosk but the
        one the forget was sent to, and `edge-agent fleet` showed it)."""
        named = self.conversation.published_ids()
        self.dispatch(c.SessionsForgotten(slot, None if agent == self.settings.agent.agent_key else agent))
        if self.conversation.published_ids() != named:
            self._state_forgotten()

    def _state_forgotten(self) -> None:
        self.reports.forgotten(self.conversation.state, self.conversation.published_ids(), time.monotonic())

    def forget_sessions(self) -> int:
        """Wipes the store (and moved-aside copies); a running conversation goes on off the record."""
        count = self.records.forget()  # the fleet's copies too
        self.dispatch(c.SessionsForgotten())
        self._state_forgotten()
        self._notify("sessions_forgotten", {"count": count, "disk_wipe_pending": self.store.wipe_pending, "disk_scrub_pending": self.store.scrub_pending})
        self.records.check()
        return count

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _apply_reload(self, settings: Settings) -> None:
        """Checked settings of a reload (service/reload.py) made the kiosk's and handed to its parts."""
        self.settings = apply_reload(self.settings, settings, self.conversation, self.share, self.store, self.standby, self.exposures)

    # ------------------------------------------------------------------ lifecycle
    def _running(self) -> bool:
        return self._stop is not None and not self._stop.is_set()

    def _tick(self, now: float) -> None:
        """Timeouts, store and audio supervision, the standby and the systemd watchdog (see Ticker)."""
        try:
            self.notifier.flush()  # READY=1 that met a full queue (PID 1 busy): again, until it goes
            self.dispatch(c.Tick())
            self.reports.states.flush(now)
            if self.store.fault is not None and self.conversation.state == c.IDLE and self.store.retry(now):
                self.records.check()  # retried only while idle: a lock may hold a try for BUSY_TIMEOUT_S
            self.standby.keep(now, self._running() and self.conversation.state == c.IDLE)
            if self.conversation.state == c.IDLE:
                self.room_grade.keep()  # a reply graded since the last write (not mid-reply)
                self.reloads.take_pending()
            alive = self.audio_alive()
            self.audio_watch.check(alive, now, self._reopen_audio if self._loop is not None else None)
            self.speaker_watch.check(now, self._running())
            if alive and not self.speaker_watch.watch.hung(now):  # a hung driver: systemd restarts us
                self.notifier.watchdog(now)
        except Exception:  # the timer must keep running whatever one tick hits
            self.counters["handler_errors"] += 1
            log.exception("tick failed")

    def audio_alive(self, stall_s: float = AUDIO_STALL_S) -> bool:
        """The capture delivered a frame lately: the watchdog pings only while this holds."""
        return self.audio_watch.alive(stall_s)

    def _reopen_audio(self) -> None:
        assert self._loop is not None
        self.source.stop()
        self.source.start(self._loop, self.capture.frame)

    async def run(self, on_reload: Callable[[], Settings] | None = None) -> int:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ResolverThreads())  # a stuck name lookup never holds the stop
        self._loop = loop
        self._stop = asyncio.Event()
        handle_signals(loop, self.stop, (lambda: self.reloads.reload_from(on_reload)) if on_reload is not None else None)
        self.exposures.log(self.settings)
        self.records.check()
        self.speaker_watch.start(loop)  # a speaker that will not open is retried (see SpeakerWatch)
        audio_ok = True
        try:
            self.source.start(loop, self.capture.frame)
        except (EdgeAgentError, OSError) as exc:  # e.g. the USB mic is not enumerated yet: retry
            audio_ok = False
            self.source.last_frame_at = time.monotonic() - AUDIO_STALL_S
            log.error("audio input failed to open, retrying every %.0f s: %s", AUDIO_RETRY_S, exc)
        for b in self.inputs:
            b.start(self.post, lambda: self._call_threadsafe(self.stop))
        self.ticker.start(loop)
        metrics = loop.create_task(self.reports.publish_metrics(self.settings.mqtt.metrics_interval_s, self.metrics))
        self.reporter.state(self.conversation.state, None, None)
        self.reporter.start()
        log.info("edge-agent %s started: device %s, agent %s, endpoint %s", __version__, self.settings.device.id, self.settings.agent.agent_key, self.settings.agent.endpoint)
        if audio_ok:
            self._announce_ready()
        try:
            await self._stop.wait()
        finally:
            metrics.cancel()
            await self._shutdown()
        return 0

    def _announce_ready(self) -> None:
        """READY=1 once audio, button and status reporting are set up (once per process)."""
        if not self.ready.is_set():
            self.notifier.send("READY=1", f"STATUS={self.conversation.state}", must_arrive=True)
            log.info("ready: device %s", self.settings.device.id)
            self.ready.set()

    async def _shutdown(self) -> None:
        self.notifier.send("STOPPING=1")
        ignore_hangup(self._loop)  # a reload during the stop means nothing, and after it SIGHUP's default ended the process
        self.dispatch(c.End("shutdown"))
        await self.uplink.wait_closed()
        self.reports.states.flush(time.monotonic(), force=True)
        self.ticker.cancel()
        for b in self.inputs:
            b.close()
        settled_by = time.monotonic() + audio_watch.DEVICE_SETTLE_S  # reopens on their threads: one wait for both
        self.audio_watch.stop_device(self.source.stop, settled_by)
        self.speaker_watch.watch.stop_device(self.sink.stop, settled_by)
        self.echo.close()
        self.room_grade.keep()
        self.led.close()
        self.reporter.close()
        self.store.close()
        self.notifier.close()
        log.info("edge-agent stopped")
