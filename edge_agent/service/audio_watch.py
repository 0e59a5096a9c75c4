"""AudioWatch and SpeakerWatch: notice a stalled or lost microphone or speaker, report it once, and
reopen it every few seconds.

A USB microphone that is unplugged, or a capture that stops delivering frames, must not leave a
kiosk deaf in silence: the daemon reports `audio_stalled` (an `error` event), retries every
AUDIO_RETRY_S, and reports `audio_recovered` when frames flow again. While audio stays dead the
daemon's systemd watchdog pings stop (it asks `alive`), so systemd restarts the service as a
last resort.

A speaker whose device stops calling back (unplugged, its sound server gone) is the same with
`speaker_stalled` and `speaker_recovered`, except for the watchdog (a restart brings no unplugged
speaker back, and the kiosk still hears and shows its state). While it is gone what is queued for
it is dropped and counted (`dropped_ms` in `speaker_recovered`): a reply would otherwise wait for
the speaker and come minutes late, and a reply that never drains holds the conversation in
`speaking`, the visitor unheard in half duplex.

A PortAudio device's reopen (`opens_off_loop`) runs on a thread of its own, one at a time: it
scans the devices, stops the old stream (the speaker's drop thread is joined for up to 5 s) and
may hang in the driver, and on the event loop it held everything else (the link's pings, the
uplink, MQTT, the button) for as long, every AUDIO_RETRY_S of an outage. A reopen still running
is not started again; one running for REOPEN_HUNG_S is logged once as hung.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent import BYTES_PER_S
from edge_agent.audio.devices import AudioSink, AudioSource
from edge_agent.core.ratelimit import LogThrottle, left_out_note
from edge_agent.errors import EdgeAgentError

log = logging.getLogger("edge_agent")

AUDIO_STALL_S = 2.0
"""No captured frame for this long means the microphone is stalled or gone."""
SPEAKER_STALL_S = 3.0
"""No callback from the speaker's device for this long means it is gone (a drop's restart through
PulseAudio was seen to stall for up to 1.9 s, and a PulseAudio stream takes up to 2 s to start)."""
AUDIO_RETRY_S = 5.0
REOPEN_HUNG_S = 30.0
"""A reopen running this long on its thread is logged once as hung in the driver."""
DEVICE_SETTLE_S = 1.5
"""At shutdown, how long reopens running on their threads are waited for, both devices together,
before the devices stop: the unit's TimeoutStopSec= (5 s) must still see the store closed."""
RETRY_LOG_FIRST, RETRY_LOG_EVERY_S = 3, 600.0
"""Retries of one outage logged: the first few, then one per 10 minutes saying how many were
left out (a microphone gone for a month wrote a line every 5 s)."""

Notify = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Watched:
    """What a watch supervises: its name in the log, its event codes, its stall time."""

    what: str
    stalled: str
    recovered: str
    stall_s: float
    symptom: str


_OPENING = threading.Lock()
"""One device reopen at a time in the process: PortAudio's set-up is not made to run twice at once."""


class ReopenThread(threading.Thread):
    """One reopen of a device, off the event loop; `outcome` is what it raised (None: opened)."""

    def __init__(self, reopen: Callable[[], None], what: str) -> None:
        super().__init__(name=f"reopen {what}", daemon=True)  # a hung driver must not hold the exit
        self._reopen = reopen
        self.started_at = time.monotonic()
        self.outcome: Exception | None = None
        self.hung_said = False
        self.in_driver = False
        """It holds the one reopen at a time (else it waits for the other device's)."""

    def run(self) -> None:
        try:
            with _OPENING:
                self.in_driver = True
                self._reopen()
        except Exception as exc:  # handed to the loop's next check; nothing may kill this thread silently
            self.outcome = exc


MICROPHONE = Watched("audio input", "audio_stalled", "audio_recovered", AUDIO_STALL_S, "no audio from {name}")
SPEAKER = Watched("audio output", "speaker_stalled", "speaker_recovered", SPEAKER_STALL_S, "the speaker {name} took no audio")
DEVICE_EVENTS = frozenset({MICROPHONE.stalled, MICROPHONE.recovered, SPEAKER.stalled, SPEAKER.recovered})
"""The codes of a microphone or speaker gone and back: the daemon's LED shows them."""


class AudioWatch:
    """Supervises one audio device; `check` is called from the daemon's tick."""

    def __init__(self, source: AudioSource | None, name: str, notify: Notify, recovered: Callable[[], None], watched: Watched = MICROPHONE, off_loop: bool = False) -> None:
        """`source`: the microphone `alive` asks (None for another device, whose caller knows);
        `off_loop`: reopen on a thread (the device's `opens_off_loop`)."""
        self.source, self.name, self.watched = source, name, watched
        self._notify, self._recovered = notify, recovered
        self.off_loop = off_loop
        self.stalled_at: float | None = None
        self._retry_at = 0.0
        self._retry_log = LogThrottle(RETRY_LOG_FIRST, RETRY_LOG_EVERY_S)
        self._job: ReopenThread | None = None

    def alive(self, stall_s: float = AUDIO_STALL_S) -> bool:
        """The capture delivered a frame lately."""
        assert self.source is not None
        return time.monotonic() - self.source.last_frame_at < stall_s

    def check(self, alive: bool, now: float, reopen: Callable[[], None] | None) -> None:
        """Reports a stall once, retries `reopen` every AUDIO_RETRY_S while it lasts, reports the
        recovery. `reopen` is None while the loop is not running (nothing to reopen onto)."""
        w = self.watched
        if self._job is not None:
            if self._job.is_alive():
                self._still_running(self._job, now)
                return
            outcome, self._job = self._job.outcome, None
            self._retry_at = now + AUDIO_RETRY_S  # counted from the end of a slow try
            self._report(outcome, now)
        if alive:
            if self.stalled_at is not None:
                down_s, self.stalled_at = now - self.stalled_at, None
                self._notify(w.recovered, {"down_s": round(down_s, 1)})
                self._recovered()
            return
        if self.stalled_at is None:
            self.stalled_at = now
            self._retry_at = now
            self._retry_log = LogThrottle(RETRY_LOG_FIRST, RETRY_LOG_EVERY_S)
            self._notify("error", {"code": w.stalled, "message": f"{w.symptom.format(name=self.name)} for {w.stall_s:.0f} s"})
        if now >= self._retry_at and reopen is not None:
            self._retry_at = now + AUDIO_RETRY_S
            if self.off_loop:
                self._job = ReopenThread(reopen, w.what)
                self._job.start()
                return
            try:
                reopen()
            except (EdgeAgentError, OSError) as exc:
                self._report(exc, now)
            else:
                self._report(None, now)

    def _report(self, outcome: Exception | None, now: float) -> None:
        w = self.watched
        if outcome is None:
            self._log_retry(logging.INFO, f"{w.what} reopened", now)
        elif isinstance(outcome, (EdgeAgentError, OSError)):
            self._log_retry(logging.ERROR, f"{w.what} still unavailable: {outcome}", now)
        else:  # a bug in a reopen: its traceback, as the tick's own handler would have logged it
            log.error("%s reopen failed", w.what, exc_info=outcome)

    def hung(self, now: float) -> bool:
        """A reopen has run on its thread for REOPEN_HUNG_S: the daemon stops its watchdog pings,
        so systemd restarts it (a speaker hung so keeps the kiosk mute; before the reopen left
        the loop, the blocked loop stopped the pings)."""
        job = self._job
        return job is not None and job.is_alive() and now - job.started_at >= REOPEN_HUNG_S

    def _still_running(self, job: ReopenThread, now: float) -> None:
        if not job.hung_said and now - job.started_at >= REOPEN_HUNG_S:
            job.hung_said = True
            where = "in the driver" if job.in_driver else "waiting for the other device's reopen"
            log.error("%s: its reopen has hung %s for %.0f s; not tried again until it returns", self.watched.what, where, now - job.started_at)

    def stop_device(self, stop: Callable[[], None], deadline: float) -> None:
        """At shutdown: `stop` once a reopen on its thread is done (waiting until `deadline`,
        time.monotonic()); a reopen still hung in the driver leaves the device as it is (closing
        a stream under the driver's call could abort the process)."""
        job = self._job
        if job is not None:
            job.join(max(0.0, deadline - time.monotonic()))
            if job.is_alive():
                log.error("%s: its reopen is hung in the driver; left open at exit", self.watched.what)
                return
        stop()

    def _log_retry(self, level: int, what: str, now: float) -> None:
        left_out = self._retry_log.allow(now)
        if left_out is not None:
            log.log(level, "%s%s", what, left_out_note(left_out, "retries"))


class SpeakerWatch:
    """Supervises the speaker (see the module's docstring); `check` is called from the daemon's tick."""

    def __init__(self, sink: AudioSink, name: str, notify: Notify, drained: Callable[[], None]) -> None:
        """`drained`: what the sink calls when the queue ran dry (the conversation stops speaking)."""
        self.sink, self._kiosk_notify, self._drained = sink, notify, drained
        self.dropped_bytes = 0
        """Agent audio dropped because the speaker was gone (16 kHz int16), since start."""
        self._outage_bytes = 0
        self.watch = AudioWatch(None, name, self._notify, lambda: None, SPEAKER, off_loop=sink.opens_off_loop)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Starts the sink; one that will not open (not plugged in yet) is retried like a lost one."""
        self._loop = loop
        try:
            self.sink.start(loop, self._drained)
        except (EdgeAgentError, OSError) as exc:
            log.error("audio output failed to open, retrying every %.0f s: %s", AUDIO_RETRY_S, exc)

    def check(self, now: float, running: bool) -> None:
        alive = self.sink.alive(SPEAKER.stall_s)
        if not alive:
            gone = self.sink.buffer.discard()
            if gone:
                self.dropped_bytes += gone
                self._outage_bytes += gone
                self._drained()
        self.watch.check(alive, now, self._reopen if running and self._loop is not None else None)

    def _reopen(self) -> None:
        assert self._loop is not None
        self.sink.stop()
        self.sink.start(self._loop, self._drained)

    def _notify(self, kind: str, fields: dict[str, Any]) -> None:
        if kind == SPEAKER.recovered:
            fields = {**fields, "dropped_ms": self._outage_bytes * 1000 // BYTES_PER_S}
            self._outage_bytes = 0
        self._kiosk_notify(kind, fields)
