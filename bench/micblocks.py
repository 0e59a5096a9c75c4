"""What a shorter microphone device buffer costs (`audio.capture_block_ms`), on a clocked device.

A press that opens the gate sends the visitor's first syllable as the microphone hands it over
(`CaptureFeed.lead`), so the device's buffer sets how soon: 10 ms gives press -> speech p95 under
30 ms. But the device then wakes PortAudio's thread that often all the time, not only after a
press. This measures that price: a process that does nothing but capture with the daemon's own
`PyAudioSource` (frames cut, resampler, one loop wake-up per 60 ms capture period) on the
throw-away PulseAudio's `room.monitor` source, at device buffers of 60, 20 and 10 ms, each in its
own process, alternating, a few rounds: CPU % of one core (user + system of the whole process,
PortAudio's thread and the ALSA pulse plugin's included; the PulseAudio server's own is not),
and each block's ratio to 60 ms in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from steps import pct

from edge_agent.devtools.pulse import PulseServer

BLOCKS_MS = (60, 20, 10)

CHILD = r"""
import asyncio, resource, sys, time
from edge_agent.audio.microphone import PyAudioSource
block_ms, seconds = int(sys.argv[1]), float(sys.argv[2])
async def main() -> None:
    source = PyAudioSource("pulse", 30, 60, block_ms=block_ms)
    source.start(asyncio.get_running_loop(), lambda frame, at: None)
    await asyncio.sleep(2.0)  # the stream settles
    r0, t0, n0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), source.frames_captured
    await asyncio.sleep(seconds)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    source.stop()
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / (t1 - t0) * 100
    print(f"{cpu:.4f} {(source.frames_captured - n0) / (t1 - t0):.2f}")
asyncio.run(main())
"""


def bench_mic_blocks(pulse: PulseServer, seconds: float, rounds: int) -> dict[str, Any]:
    """`mic_block_cpu`: median CPU % of one core per device buffer, and its ratio to 60 ms."""
    env = {**os.environ, **pulse.env}
    cpu: dict[int, list[float]] = {b: [] for b in BLOCKS_MS}
    for _ in range(rounds):
        for block in BLOCKS_MS:
            out = subprocess.run([sys.executable, "-c", CHILD, str(block), str(seconds)], env=env, capture_output=True, text=True, timeout=seconds + 60, check=True)
            load, frames_per_s = (float(x) for x in out.stdout.split()[-2:])
            if not 30 <= frames_per_s <= 36:  # 33.3 frames a second: the device ran on a real clock
                raise RuntimeError(f"the microphone delivered {frames_per_s} frames/s at a {block} ms block")
            cpu[block].append(load)
    med = {b: pct(v, 50) for b, v in cpu.items()}
    result: dict[str, Any] = {f"block_{b}ms_cpu_percent": round(med[b], 3) for b in BLOCKS_MS}
    result.update({f"block_{b}ms_ratio_to_60ms": round(med[b] / med[60], 2) for b in BLOCKS_MS if b != 60})
    result.update({"seconds": seconds, "rounds": rounds, "device": "ALSA pulse -> PulseAudio room.monitor (clocked), 16 kHz mono"})
    return result


if __name__ == "__main__":  # a quick look: python bench/micblocks.py
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        server = PulseServer(Path(tmp)).start()
        try:
            print(bench_mic_blocks(server, 10.0, 2))
        finally:
            server.kill()
