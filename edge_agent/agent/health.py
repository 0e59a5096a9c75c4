"""What every agent link counts and how a link's end is judged.

`LinkStats` holds the counters shared by every link of the daemon (the metrics and the
benchmarks read them); `classify` turns whatever ended or prevented a connection into (fatal,
short reason): fatal means retrying cannot help (bad key, unknown agent, policy close), the rest
are retried with back-off. Kept apart from the link's I/O so the doctor and the tests can use
them without opening anything.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from edge_agent.core.ratelimit import LogThrottle
from edge_agent.errors import AgentError

FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
"""Close codes that say "your request is wrong", not "try later"; 4000-4999 count as fatal too."""
RETRYABLE_HTTP = frozenset({408, 425, 429})
TRY_LATER_CLOSE_CODES = frozenset({1001, 1012, 1013, 1014})
"""Going away, restarting, try again later, bad gateway: a server's close that is no refusal."""

STANDBY_ANSWER_S = 1.5
"""How long a standby taken by a press has to answer (its server's pong, any message) before it is
taken for dead and a fresh link connects (AgentLink._prove_standby); longer when the measured
round trip asks for it."""


class StandbyGone(AgentError):
    """A standby taken by a press had no answer: its server died unheard while it stood by."""


@dataclass
class LinkStats:
    """Counters shared by every link of the daemon (the metrics read them)."""

    bytes_up: int = 0
    bytes_down: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    rtt_ms: float | None = None
    bad_frames: int = 0
    frame_log: LogThrottle = field(default_factory=lambda: LogThrottle(first=5, every_s=60.0))
    """Every frame the links skip (malformed, unknown method, audio before onready) is logged
    through this one limiter: a few, then one a minute saying how many were left out."""
    connects: int = 0
    capture_to_wire_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    """Recent delays from a live frame's capture to its bytes handed to the socket."""
    clear_arrived_at: float | None = None
    """time.monotonic() of the latest `clear` from the agent (the barge-in benchmark reads it)."""
    uplink_tap: Callable[[bytes, float], None] | None = None
    """Benchmarks only: called with every uplink frame and the time.monotonic() it was written."""


def closed_by_server(exc: BaseException) -> bool:
    """The server closed the connection itself (its close frame came first), with a code that
    does not ask to try later: before `onready`, a refusal the protocol has no code for."""
    if not isinstance(exc, ConnectionClosed) or exc.rcvd is None or exc.rcvd_then_sent is False:
        return False
    return exc.rcvd.code not in TRY_LATER_CLOSE_CODES


def asks_to_try_later(exc: BaseException) -> bool:
    """The server closed the connection with a code that asks to try later (going away, a
    restart): no refusal, and no sign of how long it lets an idle socket live either."""
    return isinstance(exc, ConnectionClosed) and exc.rcvd is not None and exc.rcvd.code in TRY_LATER_CLOSE_CODES


def classify(exc: BaseException) -> tuple[bool, str]:
    """(fatal, short reason) for anything that ended or prevented a connection."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        fatal = 400 <= status < 500 and status not in RETRYABLE_HTTP
        return fatal, f"http_{status}"
    if isinstance(exc, ConnectionClosed):
        if exc.sent is not None and exc.rcvd_then_sent is False:  # the kiosk closed first (a frame
            return False, f"close_{exc.sent.code} sent"  # too big, bad UTF-8): the server's echo of
        rcvd = exc.rcvd  # our own code is no refusal of the session; a reconnect may do better
        code = rcvd.code if rcvd is not None else 1006
        fatal = code in FATAL_CLOSE_CODES or 4000 <= code <= 4999
        reason = rcvd.reason if rcvd is not None and rcvd.reason else ""
        return fatal, f"close_{code}" + (f" {reason[:60]!r}" if reason else "")  # server text: repr
    if isinstance(exc, AgentError) and exc.fatal:  # the server's first words made no sense (NotReadyError)
        return True, f"{exc.code}: {str(exc)[:120]}"  # quoted with repr where they quote the server
    if isinstance(exc, ssl.SSLCertVerificationError):
        return True, f"tls: {exc.verify_message}"
    if isinstance(exc, InvalidURI):  # the endpoint was checked at start: this one came in a redirect
        return False, f"redirected to {exc.uri[:120]!r}, no WebSocket URL (a captive portal or a proxy on the way?)"
    if isinstance(exc, ValueError):
        return True, f"bad endpoint: {exc}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return False, "timeout"
    return False, f"{type(exc).__name__}: {str(exc)[:80]!r}"  # may quote the server: repr
