"""LoopThread: an asyncio event loop on its own thread, for servers that tests and benchmarks run
beside the code under test (the agent simulator, the fault proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start_loop(self) -> None:
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout_s: float = 10.0) -> Any:
        """Runs a coroutine on the loop thread and returns its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop_loop(self, last: Coroutine[Any, Any, Any] | None = None) -> None:
        """Runs `last` (the server's stop), cancels what is left, stops and closes the loop."""

        async def shutdown() -> None:
            if last is not None:
                await last
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if self._thread.is_alive():
            return
        # a stop that outran `call`'s timeout (a connection slow to close) left tasks: cancel them and
        # let them end here, so none is finalised later by the garbage collector in someone else's code
        pending = asyncio.all_tasks(self.loop)
        for t in pending:
            t.cancel()
        if pending:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(asyncio.wait(pending, timeout=5.0))
        self.loop.close()
