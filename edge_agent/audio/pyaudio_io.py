"""PyAudio (PortAudio) playback in callback mode, and opening PortAudio devices for it and for the
microphone (audio/microphone.py; `edge-agent devices`: audio/devicelist.py).

The callbacks run on PortAudio's thread and never block. Playback reads the PlaybackBuffer (one short lock) and converts back;
its callbacks come every period, silence or not, so a device that stops calling back is gone
(`PyAudioSink.alive`: the daemon's SpeakerWatch reopens it, see service/audio_watch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import encodings.idna  # noqa: F401  # before any device opens: see below
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio import rescan
from edge_agent.audio.alsascan import hide_from_scan, release_scan, want_device
from edge_agent.audio.devicedrop import DeviceDrop
from edge_agent.audio.devices import SpeakerHealth
from edge_agent.audio.playback import PlaybackBuffer
from edge_agent.audio.probepages import DEVICE_LOAD_ONLY, SET_UP_MOSTLY, START_UP_MOSTLY, release_probe_pages
from edge_agent.audio.quiet import quiet_native_stderr
from edge_agent.audio.resample import Resampler, to_channels
from edge_agent.errors import AudioError

log = logging.getLogger(__name__)

# The idna codec above: every host name the daemon connects to (the agent, the MQTT broker) goes
# through it (socket.getaddrinfo), and its first use loads unicodedata's shared library. Loaded
# after the `pulse` device, that library's symbol look-ups walked the tables of the libraries the
# device pulled in and made ~0.5 MB of what `_open_and_start` gave back (audio/probepages.py)
# resident again; loaded with this module, before any device, it touches none of them.


def _pyaudio() -> Any:
    try:
        import pyaudio
    except ImportError:
        raise AudioError("PyAudio is not installed (pip install pyaudio; apt install portaudio19-dev)") from None
    return pyaudio


def _new_pa(pyaudio: Any, hide: bool = False) -> Any:
    """PortAudio initialised without its backends' chatter on stderr (see audio/quiet.py), and
    without keeping the ALSA plugins its device scan loaded (see audio/alsascan.py); `hide`: a
    scan for the kiosk's own devices, which leaves alsascan.SCAN_HIDDEN out."""
    if hide:
        hide_from_scan()
    rescan.scanning()
    with quiet_native_stderr():
        pa = pyaudio.PyAudio()
    release_scan(jack_running=_has_jack(pa, pyaudio))
    return pa


def _has_jack(pa: Any, pyaudio: Any) -> bool:
    """Whether PortAudio's JACK host API came up (a JACK server, or PipeWire's, answered its probe)."""
    try:
        pa.get_host_api_info_by_type(pyaudio.paJACK)
    except (OSError, ValueError, AttributeError):
        return False
    return True


def _terminate(pa: Any) -> None:
    with quiet_native_stderr():
        pa.terminate()


def _find_or_release(pa: Any, spec: str, want_input: bool) -> dict[str, Any]:
    """`find_device`, terminating PortAudio when there is none: a PortAudio left initialised
    keeps its device list, and every later `pyaudio.PyAudio()` in the process would see it."""
    try:
        return find_device(pa, spec, want_input)
    except AudioError:
        _terminate(pa)
        raise


def find_device(pa: Any, spec: str, want_input: bool) -> dict[str, Any]:
    """Device info for "default", an index, or a case-insensitive part of the device name (a
    device whose whole name it is first, then the first device listed whose name holds it)."""
    key = "maxInputChannels" if want_input else "maxOutputChannels"
    kind = "input" if want_input else "output"
    try:
        if spec == "default":
            return dict(pa.get_default_input_device_info() if want_input else pa.get_default_output_device_info())
        if spec.isdecimal():  # not isdigit: "²" is a digit that int() refuses
            info = dict(pa.get_device_info_by_index(int(spec)))
            if info[key] > 0:
                return info
            raise AudioError(f"audio.{kind}: device {spec} ({info['name']}) has no {kind} channels")
    except OSError as exc:
        raise AudioError(f"audio.{kind}: no {spec} {kind} device ({exc})") from None
    infos = [dict(pa.get_device_info_by_index(i)) for i in range(pa.get_device_count())]
    matches = [info for info in infos if spec.lower() in str(info["name"]).lower() and info[key] > 0]
    for info in matches:  # a device named exactly so, before one that only has the name in its own
        if str(info["name"]).lower() == spec.lower():
            return info
    if matches:
        return matches[0]
    raise AudioError(f"audio.{kind}: no {kind} device matches {spec!r} (see `edge-agent devices`)")


def _open(pa: Any, info: dict[str, Any], want_input: bool, frames_per_buffer_ms: int, callback: Callable[..., Any]) -> tuple[Any, int, int]:
    """Opens 16 kHz mono, or the device's native rate/channels when it refuses (-9997 and kin)."""
    pyaudio = _pyaudio()
    max_ch = int(info["maxInputChannels" if want_input else "maxOutputChannels"])
    native = int(info["defaultSampleRate"])
    tries = [(SAMPLE_RATE_HZ, 1), (native, 1), (native, min(2, max_ch)), (native, max_ch)]
    last: Exception | None = None
    for rate, channels in dict.fromkeys(tries):
        try:
            stream = pa.open(
                format=pyaudio.paInt16,
                channels=channels,
                rate=rate,
                input=want_input,
                output=not want_input,
                input_device_index=int(info["index"]) if want_input else None,
                output_device_index=None if want_input else int(info["index"]),
                frames_per_buffer=max(64, rate * frames_per_buffer_ms // 1000),
                stream_callback=callback,
                start=False,
            )
        except (OSError, ValueError) as exc:  # e.g. [Errno -9997] Invalid sample rate
            last = exc
            continue
        if (rate, channels) != (SAMPLE_RATE_HZ, 1):
            log.info("%s device %r opened at %d Hz, %d ch; converting to 16 kHz mono", "input" if want_input else "output", info["name"], rate, channels)
        return stream, rate, channels
    raise AudioError(f"cannot open {'input' if want_input else 'output'} device {info['name']!r}: {last}")


def _open_and_start(pa: Any, info: dict[str, Any], want_input: bool, period_ms: int, callback: Callable[..., Any], prepare: Callable[[Any, int, int], None]) -> Any:
    """`_open`, `prepare(stream, rate, channels)`, then start; returns the started stream (its format
    went to `prepare`, before the start's first callbacks). When any of it fails, the stream is closed and
    PortAudio terminated before the AudioError goes up (a PortAudio left initialised keeps its
    device list and its plugins' memory, and a retry would start a second one)."""
    stream = None
    try:
        stream, rate, channels = _open(pa, info, want_input, period_ms, callback)
        prepare(stream, rate, channels)
        stream.start_stream()
    except Exception as exc:  # whatever failed: nothing of PortAudio outlives it
        _close(stream, pa)
        if isinstance(exc, AudioError):
            raise
        raise AudioError(f"cannot start {'input' if want_input else 'output'} device {info['name']!r}: {exc}") from None
    release_probe_pages(DEVICE_LOAD_ONLY + SET_UP_MOSTLY + START_UP_MOSTLY)  # code only opening the device (and start-up) ran (audio/probepages.py)
    return stream


class PyAudioSink:
    """A speaker fed from a PlaybackBuffer. On `clear` and `pause` it also drops what the output
    device already holds (see `DeviceDrop`), so the visitor stops hearing the agent at once and
    not a device buffer later."""

    opens_off_loop = True  # PortAudio's scan and open, and the drop thread's join, may block

    def __init__(self, spec: str, buffer_ms: int, drop_device: bool = True) -> None:
        """`drop_device`: abort and restart the stream on clear/pause (False: only stop feeding
        it, and what the device holds still plays; the benchmark's baseline)."""
        self.spec = spec
        want_device(spec)
        self.buffer_ms = buffer_ms
        self.buffer = PlaybackBuffer()
        self._fifo = np.zeros(0, dtype=np.int16)
        self._cleared_seen: float | None = None
        self.callback_errors = 0
        self.callbacks = 0
        """Device callbacks so far; each one hands the device `buffer_ms` of audio."""
        self.last_callback_at = time.monotonic()
        """time.monotonic() of the latest device callback (or of the first start)."""
        self._started = False
        self._paused_for_scan = False
        self._handles = threading.Lock()
        """Guards taking `_stream` and `_pa` to close them, and `_paused_for_scan` with `_stream` read by `alive`."""
        """Closed for another device's scan (audio/rescan.py), opened again right after it."""
        self.frames_out = 0
        """Frames handed to the device (at its rate) since start: its clock, as the callbacks see it."""
        self.device_underflows = 0
        """Callbacks PortAudio flagged as output underflow (the device ran dry before them)."""
        self.clear_took_effect_at: int | None = None
        """Index of the callback that first played silence after the latest clear."""
        self.audio_leaves_at: float | None = None
        """time.monotonic() at which the newest agent sample handed to the device leaves it (from
        PortAudio's DAC time, so the device's own buffer is included; cut to the moment the device
        dropped its buffer when it did); the barge-in benchmark."""
        self._rate = SAMPLE_RATE_HZ
        self._pa: Any = None
        self._stream: Any = None
        self._handed: deque[tuple[bytes, float]] = deque()
        """Recent blocks read from the buffer and when their first sample is heard (a paused
        speaker's dropped device buffer goes back to the queue from these)."""
        self.drop = DeviceDrop(self, lambda: self.frames_out / self._rate) if drop_device else None

    def health(self) -> SpeakerHealth:
        drop = self.drop
        if drop is None:
            return SpeakerHealth(self.device_underflows, self.callback_errors)
        return SpeakerHealth(self.device_underflows, self.callback_errors, drop.drops, drop.failures, drop.enabled)

    def alive(self, stall_s: float) -> bool:
        """The device called back within `stall_s` (it does every `buffer_ms` while it runs; an
        unplugged one, or one whose sound server went, ends PortAudio's thread and calls no more)."""
        with self._handles:  # the flag and the stream read together: between the two, a scan's close
            if self._paused_for_scan:  # made a playing speaker look gone for one check
                return True
            stream = self._stream
        return stream is not None and time.monotonic() - self.last_callback_at < stall_s

    def start(self, loop: asyncio.AbstractEventLoop, on_drained: Callable[[], None]) -> None:
        """Opens and starts the device; again after `stop` (a reopen: the buffer stays, what the
        old device was handed goes). Devices open in the meantime may close for the scan (audio/rescan.py)."""
        rescan.open_with_scan(self, lambda: self._start(loop, on_drained))

    def pause_for_scan(self) -> None:
        """Closed for another device's scan: still `alive` meanwhile (the speaker watch, on the
        loop, took the closed stream for a gone speaker and discarded the reply playing)."""
        with self._handles:
            self._paused_for_scan = True
        self.stop()

    def resume_after_scan(self) -> None:
        try:
            self.start(self._loop, self._on_drained)
        finally:  # opened again: `alive`'s grace for its first callback; not: gone, as any
            with self._handles:
                self._paused_for_scan, self.last_callback_at = False, time.monotonic()

    def _start(self, loop: asyncio.AbstractEventLoop, on_drained: Callable[[], None]) -> None:
        if not self._started:  # the first start has `alive`'s grace for the first callback; a
            self._started, self.last_callback_at = True, time.monotonic()  # reopen needs a callback
        pyaudio = _pyaudio()
        info = _find_or_release(pa := _new_pa(pyaudio, hide=True), self.spec, want_input=False)
        self._loop, self._on_drained = loop, on_drained
        self._fifo, self._cleared_seen = self._fifo[:0], self.buffer.cleared_at
        self._handed.clear()
        self._continue, self._underflow = pyaudio.paContinue, pyaudio.paOutputUnderflow
        self._stream = _open_and_start(pa, info, False, self.buffer_ms, self._callback, self._prepare)
        self._pa = pa
        rescan.opened(self)
        if self.drop is not None:
            self.drop.start(self._stream, loop)
            self.buffer.before_change = self.drop.request

    def _prepare(self, stream: Any, rate: int, channels: int) -> None:
        """Before the stream starts (PortAudio may prime the device with callbacks during the
        start): the device's format (resampler, the callbacks' clock) and latency."""
        self._rate, self._channels = rate, channels
        self._latency_s = float(stream.get_output_latency())
        self._resampler = Resampler(SAMPLE_RATE_HZ, rate)

    def _dac_delay(self, time_info: Any) -> float:
        """Seconds from this callback until its first sample leaves the DAC: PortAudio's own
        timestamps when it gives sane ones, else the stream's reported output latency."""
        try:
            delay = float(time_info["output_buffer_dac_time"]) - float(time_info["current_time"])
        except (KeyError, TypeError, ValueError):
            delay = -1.0
        return delay if 0.0 < delay < 1.0 else self._latency_s

    def _callback(self, in_data: bytes | None, frame_count: int, time_info: Any, status: int) -> tuple[bytes, int]:
        drained = False
        try:
            index = self.callbacks
            self.callbacks += 1
            self.last_callback_at = time.monotonic()
            self.frames_out += frame_count
            if status & self._underflow:
                self.device_underflows += 1
            if self.buffer.cleared_at != self._cleared_seen:  # clear: drop converted leftovers too
                self._cleared_seen = self.buffer.cleared_at
                self._fifo = self._fifo[:0]
                self.clear_took_effect_at = index
            drop = self.drop
            if drop is not None:
                if drop.check_at is not None:
                    drop.check_pace(self.frames_out / self._rate)
                if drop.pending:  # the device is about to be emptied: take nothing it would drop
                    return bytes(frame_count * 2 * self._channels), self._continue
            played = self.buffer.played_bytes
            step = 2 * SAMPLE_RATE_HZ // 100  # convert 10 ms at a time
            tap = self.buffer.tap
            heard_at = time.monotonic() + self._dac_delay(time_info)
            while len(self._fifo) < frame_count:
                before = self.buffer.played_bytes
                pcm, d = self.buffer.read(step)
                drained = drained or d  # at once: a failure below must not lose the reply's end
                at = heard_at + len(self._fifo) / self._rate
                if tap is not None:  # the echo canceller's reference: what is heard, and when
                    tap(pcm, at)
                if self.drop is not None and self.buffer.played_bytes != before:
                    self._handed.append((pcm[: self.buffer.played_bytes - before], at))
                self._fifo = np.concatenate((self._fifo, self._resampler.process(np.frombuffer(pcm, dtype="<i2"))))
            out, self._fifo = self._fifo[:frame_count], self._fifo[frame_count:]
            if self.buffer.played_bytes != played:  # agent audio (or an earcon) in this period
                self.audio_leaves_at = heard_at + frame_count / self._rate
            while self._handed and self._handed[0][1] < heard_at - 1.0:  # heard long ago
                self._handed.popleft()
            if drained:
                self._loop.call_soon_threadsafe(self._on_drained)
            return to_channels(out, self._channels).astype("<i2").tobytes(), self._continue
        except Exception:  # never let an exception kill PortAudio's thread
            self.callback_errors += 1
            if drained:  # the reply's end was read: the conversation must hear of it (it stayed speaking for good)
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to tell
                    self._loop.call_soon_threadsafe(self._on_drained)
            return bytes(frame_count * 2 * self._channels), self._continue

    def dropped(self, at: float) -> bytes:
        """Called by `DeviceDrop` while the stream is stopped (no callback runs): nothing handed to
        the device is heard after `at`. Settles the bookkeeping and returns the agent audio that
        was handed over but not heard (16 kHz), oldest first."""
        if self.audio_leaves_at is not None and self.audio_leaves_at > at:
            self.audio_leaves_at = at
        unheard = b"".join(pcm[max(0, round((at - heard) * SAMPLE_RATE_HZ)) * 2 :] for pcm, heard in self._handed)
        self._handed.clear()
        self._fifo = self._fifo[:0]
        return unheard

    def stop(self) -> None:
        if self.drop is not None:
            self.buffer.before_change = None
            if not self.drop.stop():  # its thread is stuck in PortAudio: closing would abort the process
                log.error("the speaker's drop thread is stuck in PortAudio: its device is left open")
                rescan.closed(self, let_go=False)  # PortAudio stays held: no scan is fresh now
                self._stream = self._pa = None
                return
        rescan.closed(self)
        with self._handles:  # taken once: a scan's close and the kiosk's stop on two threads closed it twice
            stream, pa, self._stream, self._pa = self._stream, self._pa, None, None
        _close(stream, pa)


def _close(stream: Any, pa: Any) -> None:
    try:
        if stream is not None:
            stream.stop_stream()
            stream.close()
    except OSError:
        pass
    if pa is not None:
        _terminate(pa)
