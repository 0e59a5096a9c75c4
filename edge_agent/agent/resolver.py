"""ResolverThreads: the event loop's executor, where asyncio resolves the agent's host name.

asyncio runs `getaddrinfo` (every connect by name) on the loop's default executor, a thread pool
that `asyncio.run` waits for at its end and the interpreter joins at exit, without a limit. With a
resolver that does not answer (Wi-Fi associated, uplink dead: glibc waits 5 s twice per name
server) a stop during a press's connect finished the kiosk's shutdown at once and then waited up
to 10 s for that thread: past systemd's TimeoutStopSec (5 s), SIGKILL, the unit failed. Here each
call gets a daemon thread of its own that nothing waits for at the end; at most MAX_IN_FLIGHT run
at once (a connect beyond them fails at once, as an unreachable network does, and is retried).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

MAX_IN_FLIGHT = 8
"""Calls running at once: the link, its standby and their reconnects; more means a stuck resolver."""


class ResolverThreads(ThreadPoolExecutor):
    """An executor running each call on its own daemon thread, never waited for at shutdown. A
    `ThreadPoolExecutor` by type only (asyncio takes no other as its default); its pool is never
    used, so none of its threads exists for the interpreter to join."""

    def __init__(self, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        super().__init__(max_workers=1, thread_name_prefix="edge-agent-unused")
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        if not self._slots.acquire(blocking=False):
            future.set_exception(OSError(f"{MAX_IN_FLIGHT} name lookups already waiting for the resolver"))
            return future

        def run() -> None:
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:  # handed to the awaiting coroutine, as a pool does
                        future.set_exception(exc)
                    else:
                        future.set_result(result)
            finally:
                self._slots.release()

        try:
            threading.Thread(target=run, name="edge-agent-resolver", daemon=True).start()
        except RuntimeError as exc:  # no thread to be had (the limit of the process)
            self._slots.release()
            future.set_exception(OSError(f"no thread for a name lookup: {exc}"))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing is waited for: a lookup stuck in the network must not hold the stop."""
