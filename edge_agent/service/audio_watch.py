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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


MICROPHONE = Watched("audio input", "audio_stalled", "audio_recovered", AUDIO_STALL_S, "no audio from {name}")
SPEAKER = Watched("audio output", "speaker_stalled", "speaker_recovered", SPEAKER_STALL_S, "the speaker {name} took no audio")


class AudioWatch:
    """Supervises one audio device; `check` is called from the daemon's tick."""

    def __init__(self, source: AudioSource | None, name: str, notify: Notify, recovered: Callable[[], None], watched: Watched = MICROPHONE) -> None:
        """`source`: the microphone `alive` asks (None for another device, whose caller knows)."""
        self.source, self.name, self.watched = source, name, watched
        self._notify, self._recovered = notify, recovered
        self.stalled_at: float | None = None
        self._retry_at = 0.0
        self._retry_log = LogThrottle(RETRY_LOG_FIRST, RETRY_LOG_EVERY_S)

    def alive(self, stall_s: float = AUDIO_STALL_S) -> bool:
        """The capture delivered a frame lately."""
        assert self.source is not None
        return time.monotonic() - self.source.last_frame_at < stall_s

    def check(self, alive: bool, now: float, reopen: Callable[[], None] | None) -> None:
        """Reports a stall once, retries `reopen` every AUDIO_RETRY_S while it lasts, reports the
        recovery. `reopen` is None while the loop is not running (nothing to reopen onto)."""
        w = self.watched
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
            try:
                reopen()
                self._log_retry(logging.INFO, f"{w.what} reopened", now)
            except (EdgeAgentError, OSError) as exc:
                self._log_retry(logging.ERROR, f"{w.what} still unavailable: {exc}", now)

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
        self.watch = AudioWatch(None, name, self._notify, lambda: None, SPEAKER)
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
            fields = {**fields, "dropped_ms": self._outage_bytes // 32}
            self._outage_bytes = 0
        self._kiosk_notify(kind, fields)
