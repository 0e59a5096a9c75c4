"""Why AEC3: WebRTC's AEC3 (the `livekit` package) against speexdsp's MDF echo canceller (Debian's
libspeexdsp1 through ctypes, with and without its residual-echo suppressor), both behind the
daemon's own alignment, over the same simulated rooms. Prints ERLE (agent alone, after 2 s),
speed (x real time, one core) and the resident memory each adds.

    .venv/bin/python bench/aec_choice.py      (needs: apt install libspeexdsp1)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent.audio.devices import read_wav_16k_mono  # noqa: E402
from edge_agent.audio.echo import BLOCK, EchoCanceller  # noqa: E402
from edge_agent.audio.echobackend import Aec3Backend, EchoBackend  # noqa: E402
from edge_agent.audio.echotrack import cancel_tracks, erle_db  # noqa: E402
from edge_agent.devtools.echoroom import EchoPath, simulate  # noqa: E402

SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_PREPROCESS_SET_DENOISE = 0
SPEEX_PREPROCESS_SET_ECHO_STATE = 24


class SpeexBackend:
    """speexdsp's MDF canceller, `tail_ms` of filter (it must cover the delay and the room)."""

    def __init__(self, tail_ms: int = 300, suppress: bool = True) -> None:
        name = ctypes.util.find_library("speexdsp")
        if name is None:
            raise SystemExit("libspeexdsp not found: apt install libspeexdsp1")
        lib = ctypes.CDLL(name)
        v, i = ctypes.c_void_p, ctypes.c_int
        lib.speex_echo_state_init.restype = v
        lib.speex_echo_state_init.argtypes = [i, i]
        lib.speex_echo_cancellation.argtypes = [v, v, v, v]
        lib.speex_echo_ctl.argtypes = [v, i, v]
        lib.speex_preprocess_state_init.restype = v
        lib.speex_preprocess_state_init.argtypes = [i, i]
        lib.speex_preprocess_ctl.argtypes = [v, i, v]
        lib.speex_preprocess_run.argtypes = [v, v]
        self._lib = lib
        self._st = lib.speex_echo_state_init(BLOCK, 16 * tail_ms)
        rate = ctypes.c_int(16000)
        lib.speex_echo_ctl(self._st, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._pp = None
        if suppress:
            self._pp = lib.speex_preprocess_state_init(BLOCK, 16000)
            # denoise on: speexdsp's preprocess.c sets every gain to 1 with it off, the residual-echo
            # suppressor included (this ran with it off: "with" and "without" measured the same filter)
            on = ctypes.c_int(1)
            lib.speex_preprocess_ctl(self._pp, SPEEX_PREPROCESS_SET_DENOISE, ctypes.byref(on))
            lib.speex_preprocess_ctl(self._pp, SPEEX_PREPROCESS_SET_ECHO_STATE, self._st)
        self._out = np.zeros(BLOCK, dtype=np.int16)

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        m, r = np.ascontiguousarray(mic), np.ascontiguousarray(ref)
        self._lib.speex_echo_cancellation(self._st, m.ctypes.data, r.ctypes.data, self._out.ctypes.data)
        if self._pp is not None:
            self._lib.speex_preprocess_run(self._pp, self._out.ctypes.data)
        return self._out.copy()


PATHS = [
    EchoPath(delay_ms=10, rt60_s=0.2, seed=0, noise_rms=2.0),
    EchoPath(delay_ms=45, rt60_s=0.25, seed=1, noise_rms=2.0),
    EchoPath(delay_ms=90, rt60_s=0.4, seed=2, drift_ppm=100, noise_rms=2.0),
    EchoPath(delay_ms=150, rt60_s=0.3, seed=3, drift_ppm=-80, noise_rms=2.0),
]


def run(make: Any) -> dict[str, Any]:
    speech = read_wav_16k_mono(REPO / "tests" / "data" / "kiosk_dev_quiet.wav")
    far = (speech[2 * 16000 * 20 :] + speech)[: 2 * 16000 * 30]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    backend: EchoBackend = make()
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    out: dict[str, Any] = {"rss_added_mb": round(rss, 1)}
    cpu = 0.0
    for p in PATHS:
        mic, _ = simulate(far, p)
        canceller = EchoCanceller(make())
        t0 = time.process_time()
        cleaned, far_active, *_ = cancel_tracks(mic, far, canceller)
        cpu += time.process_time() - t0
        out[f"erle_db_{p.delay_ms:.0f}ms"] = erle_db(mic, cleaned, far_active)
    out["x_realtime"] = round(len(PATHS) * 30 / cpu)
    del backend
    return out


def main() -> int:
    which = sys.argv[1:] or ["aec3", "speex", "speex_no_suppressor"]
    makers = {"aec3": Aec3Backend, "speex": lambda: SpeexBackend(300, True), "speex_no_suppressor": lambda: SpeexBackend(300, False)}
    for name in which:  # one process per backend keeps the memory figures apart
        print(name, run(makers[name]), flush=True)
    return 0


if __name__ == "__main__":
    from edge_agent.audio.nativeexit import shut_native_runtime

    try:
        code = main()
    finally:
        shut_native_runtime()  # the echo rooms ran AEC3 in this process (see audio/nativeexit.py)
    raise SystemExit(code)
