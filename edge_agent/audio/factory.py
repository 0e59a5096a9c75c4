"""Audio factory: turns an `audio.input` / `audio.output` spec into a device, as gpiozero's pin
factory turns a pin number into a pin. The rest of the kiosk only sees `AudioSource` / `AudioSink`.
"""

from __future__ import annotations

from edge_agent.audio.devices import AudioSink, AudioSource, FileSink, FileSource
from edge_agent.audio.microphone import PyAudioSource
from edge_agent.audio.pyaudio_io import PyAudioSink
from edge_agent.errors import AudioError, ConfigError


def open_source(spec: str, frame_ms: int, period_ms: int | None = None, key: str | None = None, block_ms: int = 0) -> AudioSource:
    """`file:PATH.wav` (once), `loop:PATH.wav` (repeated) or a PyAudio device ("default", a name
    or an index), delivering `frame_ms` frames `period_ms` at a time (default: one frame); a
    device hands them over in `block_ms` buffers (0: the period).

    With `key` (the config key the spec came from, for `run`), a recording that cannot be read
    is a ConfigError naming that key: unlike a device that is not plugged in yet, waiting does
    not bring it."""
    if spec.startswith(("file:", "loop:")):
        try:
            return FileSource(spec[5:], frame_ms, period_ms, loop=spec.startswith("loop:"))
        except AudioError as exc:
            if key is None:
                raise
            raise ConfigError(key, str(exc)) from None
    return PyAudioSource(spec, frame_ms, period_ms, block_ms=block_ms)


def open_sink(spec: str, buffer_ms: int, key: str | None = None) -> AudioSink:
    """`file:PATH.wav`, `null`, or a PyAudio device ("default", a name or an index); with `key`,
    a file that cannot be written is a ConfigError naming that key (see `open_source`)."""
    if spec == "null":
        return FileSink(None)
    if spec.startswith("file:"):
        try:
            return FileSink(spec[5:])
        except AudioError as exc:
            if key is None:
                raise
            raise ConfigError(key, str(exc)) from None
    return PyAudioSink(spec, buffer_ms)
