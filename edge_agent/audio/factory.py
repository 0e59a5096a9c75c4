"""Audio factory: turns an `audio.input` / `audio.output` spec into a device, as gpiozero's pin
factory turns a pin number into a pin. The rest of the kiosk only sees `AudioSource` / `AudioSink`.
"""

from __future__ import annotations

from edge_agent.audio.devices import AudioSink, AudioSource, FileSink, FileSource
from edge_agent.audio.pyaudio_io import PyAudioSink, PyAudioSource


def open_source(spec: str, frame_ms: int, period_ms: int | None = None) -> AudioSource:
    """`file:PATH.wav` (once), `loop:PATH.wav` (repeated) or a PyAudio device ("default", a name
    or an index), delivering `frame_ms` frames `period_ms` at a time (default: one frame)."""
    if spec.startswith("file:"):
        return FileSource(spec[5:], frame_ms, period_ms)
    if spec.startswith("loop:"):
        return FileSource(spec[5:], frame_ms, period_ms, loop=True)
    return PyAudioSource(spec, frame_ms, period_ms)


def open_sink(spec: str, buffer_ms: int) -> AudioSink:
    """`file:PATH.wav`, `null`, or a PyAudio device ("default", a name or an index)."""
    if spec == "null":
        return FileSink(None)
    if spec.startswith("file:"):
        return FileSink(spec[5:])
    return PyAudioSink(spec, buffer_ms)
