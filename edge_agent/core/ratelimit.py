"""TokenBucket and LogThrottle: bounds on how often something may happen, fed the time (sans-I/O).

`TokenBucket` limits conversation starts (a flood of MQTT presses, a bouncing button: every
start opens a socket and may start a billed session). `LogThrottle` keeps a hostile or broken
server from writing one journal line per bad frame: the first few are logged, then one per
interval saying how many were left out.
"""

from __future__ import annotations


class TokenBucket:
    """`burst` tokens at most, refilled at `per_s` tokens a second; `take` spends one.

    `now` is a monotonic time in seconds passed in by the caller (the bucket reads no clock)."""

    def __init__(self, burst: int, per_s: float, now: float = 0.0) -> None:
        self.burst = max(1, burst)
        self.per_s = per_s
        self._tokens = float(self.burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.per_s)
        self._at = max(self._at, now)

    def take(self, now: float) -> bool:
        """Spends a token if there is one; False (nothing spent) when the bucket is empty."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until the next token (0 when one is there)."""
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self.per_s if self.per_s > 0 else float("inf")


def left_out_note(left_out: int, what: str) -> str:
    """What a throttled log line adds: " (N `what` left out of the log before this one)", or
    nothing when none were (`LogThrottle.allow`'s count)."""
    return f" ({left_out} {what} left out of the log before this one)" if left_out else ""


class LogThrottle:
    """The first `first` occurrences pass, then one per `every_s` seconds; `suppressed` says how
    many were left out since the last one that passed (the caller puts it in the log line)."""

    def __init__(self, first: int = 5, every_s: float = 60.0) -> None:
        self._bucket = TokenBucket(first, 1.0 / every_s)
        self.suppressed = 0
        self.total = 0

    def allow(self, now: float) -> int | None:
        """None: leave this one out. Otherwise log it, with the returned count of those left out
        since the previous one (0 when none)."""
        self.total += 1
        if not self._bucket.take(now):
            self.suppressed += 1
            return None
        left_out, self.suppressed = self.suppressed, 0
        return left_out
