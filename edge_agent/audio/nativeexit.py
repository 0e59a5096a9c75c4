"""Shuts LiveKit's native runtime down while the interpreter is still whole.

The echo canceller's AEC3 runs in LiveKit's Rust library, whose tokio worker threads forward
every native log line to Python through a callback. A forward still on its way when the
interpreter finalises kills the process with SIGABRT: CPython ends a late thread that asks for
the GIL with a forced unwind, and the Rust frame it meets cannot unwind ("panic in a function
that cannot unwind"; seen once at the end of a 17-minute test run, exit 134). A daemon stopped
by systemd would be recorded as crashed. LiveKit's own atexit hook shuts the runtime down too,
but from inside the exit sequence; done here first, the hook finds nothing left to do.

Kept apart from `echo` so that every command can call it on its way out without importing numpy
or LiveKit: it only acts when LiveKit's client was loaded.
"""

from __future__ import annotations

import sys
import time

SETTLE_S = 0.2
"""After the shutdown, time for callbacks already on their way to finish (the GIL is released)."""


def shut_native_runtime(settle_s: float = SETTLE_S) -> bool:
    """Disposes LiveKit's FFI client if this process started one; True when it did. Call only
    once nothing will run a canceller again (the end of a command, of a test session)."""
    ffi = sys.modules.get("livekit.rtc._ffi_client")
    client_cls = getattr(ffi, "FfiClient", None)
    client = getattr(client_cls, "_instance", None)
    dispose = getattr(client, "_dispose", None)
    if dispose is None or getattr(client_cls, "_ffi_disposed", False):
        return False
    dispose()
    time.sleep(settle_s)
    return True
