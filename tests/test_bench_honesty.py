"""Where the benchmarks' clocks start and what their verdicts let through (a helper's review of
the figures against their README definitions, 2026-12-06; each failed before its fix):
`AgentSimulator.control`, the barge-in figure's start, stamped the send after the write (a
negative same-run baseline in a saved result), and the soak's fixed allowance passed an hour's
run leaking 14 MB an hour."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import time
from types import ModuleType
from typing import Any

from conftest import REPO

from edge_agent.devtools.simulator import AgentSimulator


def _soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_soak", REPO / "bench" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _SlowSocket:
    """A socket whose write takes 20 ms (a full send buffer, a loaded machine)."""

    def __init__(self) -> None:
        self.send_started_at: float | None = None

    async def send(self, message: object) -> None:
        self.send_started_at = time.monotonic()
        await asyncio.sleep(0.02)


def test_control_returns_the_time_the_message_was_sent_not_after_the_write() -> None:
    sim = AgentSimulator()
    ws = _SlowSocket()
    sim._open_conn = lambda session_id: ws  # type: ignore[method-assign,assignment,return-value]
    sent_at = asyncio.run(sim.control("clear"))
    assert ws.send_started_at is not None
    # the bench takes this as the moment `clear` left the agent: it must not be later than that
    assert sent_at <= ws.send_started_at, f"control() stamped {1000 * (sent_at - ws.send_started_at):.1f} ms after the send began"


def _run(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"samples": samples, "missed": [], "counts": {"presses": 300}, "exit_code": 0}


def test_soak_fails_a_steady_leak_that_stays_under_the_fixed_allowance() -> None:
    """README: `bench/soak` "fails on growth of RSS, file descriptors, threads or tasks". An hour's
    run leaking 14 MB an hour (a Pi's memory gone in under two days) gains 7 MB between the second
    and the last quarter, under the fixed +8 MB, and passed."""
    samples = [{"t_s": t, "rss_mb": 50.0 + 14.0 * t / 3600, "open_fds": 20, "threads": 9, "tasks": 12} for t in range(0, 3601, 10)]
    problems = _soak().verdict(_run(samples))
    assert any("rss_mb" in p for p in problems), problems


def test_soak_passes_a_flat_run_with_noise() -> None:
    rng = random.Random(3)
    samples = [{"t_s": t, "rss_mb": 50.0 + rng.uniform(0, 1.0), "open_fds": 20 + rng.randrange(2), "threads": 9, "tasks": 12 + rng.randrange(2)} for t in range(0, 3601, 10)]
    assert _soak().verdict(_run(samples)) == []
