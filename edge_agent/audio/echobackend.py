"""The echo canceller's backends: WebRTC's AEC3 (through LiveKit's APM, the `aec` extra) and a
null one that passes the mic through. Apart from `EchoCanceller` (echo.py), which only feeds them
10 ms blocks, so the native library, its install hint and its release before exit are one piece.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.errors import ConfigError

BLOCK = SAMPLE_RATE_HZ // 100
"""The backend's block: 10 ms."""


class EchoBackend(Protocol):
    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """One 10 ms block of mic and of the reference heard with it, int16; the cleaned mic."""
        ...

    def close(self) -> None:
        """Releases native resources now rather than at interpreter exit."""
        ...


class NullBackend:
    """No cancellation: the mic passes unchanged."""

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return mic

    def close(self) -> None:
        pass


class Aec3Backend:
    """WebRTC AEC3 (+ high-pass, optional noise suppression and gain control) via LiveKit's APM.

    AEC3 finds the residual delay itself (measured 10-400 ms) and follows slow changes; we hand it
    the reference in step with the mic, one 10 ms block each, as it expects.
    """

    def __init__(self, noise_suppression: bool = False, gain_control: bool = False) -> None:
        try:
            from livekit import rtc
        except ImportError:
            raise ConfigError("audio.echo_cancel", "needs the livekit package (pip install 'edge-agent[aec]'), or set echo_cancel = false") from None
        self._apm: Any = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True, noise_suppression=noise_suppression, auto_gain_control=gain_control)
        # one frame each, reused: numpy views write straight into the buffers the APM processes
        self._rev: Any = rtc.AudioFrame(bytearray(2 * BLOCK), SAMPLE_RATE_HZ, 1, BLOCK)
        self._cap: Any = rtc.AudioFrame(bytearray(2 * BLOCK), SAMPLE_RATE_HZ, 1, BLOCK)
        self._rev_pcm = np.frombuffer(self._rev.data, dtype=np.int16)
        self._cap_pcm = np.frombuffer(self._cap.data, dtype=np.int16)
        # AEC3 estimates the delay itself; the APM wants a delay set before it first processes.
        # Setting it again before every block (one more FFI round trip of three) changed no
        # output sample in the simulated rooms (checked bit for bit), so it is set once.
        self._apm.set_stream_delay_ms(0)

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        self._rev_pcm[:] = ref
        self._apm.process_reverse_stream(self._rev)
        self._cap_pcm[:] = mic
        self._apm.process_stream(self._cap)
        return self._cap_pcm.copy()

    def close(self) -> None:
        """Drops the native APM while LiveKit's runtime is alive: left to interpreter exit, its
        runtime thread was seen to panic (abort) once in a few dozen runs."""
        handle = getattr(self._apm, "_ffi_handle", None)
        if handle is not None:
            handle.dispose()


def make_backend(enabled: bool, noise_suppression: bool = False) -> EchoBackend:
    """AEC3 when echo cancellation is on (ConfigError with the install hint when it is missing)."""
    if not enabled:
        return NullBackend()
    return Aec3Backend(noise_suppression=noise_suppression)
