"""The file/null audio devices the demo, tests and benchmarks run on: real-time pace, exact
clear/pause, drained at the right moment, and no periodic wake-ups while the speaker plays."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import read_wav, write_wav

from edge_agent.audio import FileSink, FileSource

RATE_BYTES_S = 32000


def _tone(seconds: float) -> bytes:
    return bytes(range(1, 201)) * int(seconds * RATE_BYTES_S / 200)


def test_sink_plays_in_real_time_and_reports_drained(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"

    async def main() -> float:
        loop = asyncio.get_running_loop()
        drained = loop.create_future()
        sink = FileSink(out)
        sink.start(loop, lambda: drained.done() or drained.set_result(loop.time()))
        t0 = loop.time()
        sink.buffer.write(_tone(0.6))
        await asyncio.sleep(0.2)
        sink.buffer.write(_tone(0.4))  # more audio for a playing speaker: drains later
        took = await asyncio.wait_for(drained, 3) - t0
        sink.stop()
        return took

    took = asyncio.run(main())
    assert 0.98 <= took <= 1.25, took
    assert read_wav(out) == _tone(0.6) + _tone(0.4)


def test_sink_pause_holds_the_play_head_and_clear_cuts_to_the_sample(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"

    async def main() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        drained = loop.create_future()
        sink = FileSink(out)
        sink.start(loop, lambda: drained.done() or drained.set_result(loop.time()))
        t0 = loop.time()
        sink.buffer.write(_tone(0.5))
        await asyncio.sleep(0.2)
        sink.buffer.control("pause")
        await asyncio.sleep(0.4)  # nothing plays while paused
        sink.buffer.control("unpause")
        took = await asyncio.wait_for(drained, 3) - t0
        played_before_clear = bytes_written(sink)
        sink.buffer.write(_tone(1.0))
        await asyncio.sleep(0.3)
        sink.buffer.control("clear")
        await asyncio.sleep(0.2)
        sink.stop()
        return took, played_before_clear

    took, first = asyncio.run(main())
    assert 0.88 <= took <= 1.15, took  # 0.5 s of audio + 0.4 s paused
    assert first == len(_tone(0.5))
    second = len(read_wav(out)) - first
    assert abs(second - 0.3 * RATE_BYTES_S) <= 0.04 * RATE_BYTES_S, second / RATE_BYTES_S  # cut at the clear


def bytes_written(sink: FileSink) -> int:
    """What the sink has written so far (its WAV header is only final at close: count frames)."""
    assert sink._wav is not None
    return sink._wav.getnframes() * 2


def test_playing_sink_wakes_the_loop_only_to_drain(tmp_path: Path) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        drained = loop.create_future()
        sink = FileSink(None)
        sink.start(loop, lambda: drained.set_result(True))
        wakes = 0
        original = loop._run_once  # type: ignore[attr-defined]

        def counted() -> None:
            nonlocal wakes
            wakes += 1
            original()

        loop._run_once = counted  # type: ignore[attr-defined]
        sink.buffer.write(_tone(1.0))
        await asyncio.wait_for(drained, 3)
        loop._run_once = original  # type: ignore[attr-defined]
        sink.stop()
        return wakes

    assert asyncio.run(main()) <= 8  # start, drain, hand-offs; a 10 ms polling speaker: ~200


def test_source_paces_frames_loops_and_reopens(tmp_path: Path) -> None:
    clip = write_wav(tmp_path / "clip.wav", _tone(0.3))  # 10 frames of 30 ms

    async def main() -> tuple[list[bytes], list[bytes], int, float]:
        loop = asyncio.get_running_loop()
        once: list[bytes] = []
        src = FileSource(clip, 30)
        t0 = loop.time()
        src.start(loop, once.append)
        while len(once) < 15:
            await asyncio.sleep(0.01)
        took = loop.time() - t0
        src.stop()
        looped: list[bytes] = []
        again = FileSource(clip, 30, loop=True)
        again.start(loop, looped.append)
        await asyncio.sleep(0.5)
        again.stop()
        before_reopen = len(looped)
        again.start(loop, looped.append)  # reopened after stop: from the start again
        await asyncio.sleep(0.1)
        again.stop()
        return once, looped, before_reopen, took

    once, looped, n, took = asyncio.run(main())
    assert 0.4 <= took <= 0.7, took  # 15 frames of 30 ms, in real time
    assert b"".join(once[:10]) == _tone(0.3) and all(f == bytes(960) for f in once[10:15])
    assert n >= 14 and b"".join(looped[:n]) == (_tone(0.3) * 2)[: n * 960]  # again, no silence between
    assert b"".join(looped[n : n + 2]) == _tone(0.3)[: 2 * 960]  # reopened: from the start
