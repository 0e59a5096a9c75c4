"""TokenBucket, LogThrottle and FailureStreak: bounds on how often something may happen, fed the time (sans-I/O).

`TokenBucket` limits conversation starts (a flood of MQTT presses, a bouncing button: every
start opens a socket and may start a billed session). `LogThrottle` keeps a hostile or broken
server from writing one journal line per bad frame: the first few are logged, then one per
interval saying how many were left out. `FailureStreak` does the same for something retried
until it works (the MQTT broker's connection): the first failure at once, then one a minute.
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

    def retuned(self, burst: int, per_s: float, now: float) -> TokenBucket:
        """A bucket with new limits that keeps what this one has spent (at most the new burst
        left): a fresh one was full, so a reload during a flood of starts let a new burst through."""
        self._refill(now)
        bucket = TokenBucket(burst, per_s, now)
        bucket._tokens = min(float(bucket.burst), self._tokens)
        return bucket

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


class FailureStreak:
    """Failures in a row of something retried until it works (a broker connection): the first is
    reported at once, then at most one per `every_s` while they go on; `ended` closes the streak.

    Times are monotonic seconds passed in by the caller (the streak reads no clock)."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self.failures = 0
        """Failures in the current streak (0: none going on)."""
        self.since: float | None = None
        """When the current streak's first failure was (None: none going on)."""
        self._reported_at: float | None = None

    def failed(self, now: float) -> bool:
        """Counts a failure; True when this one is to be reported."""
        if self.since is None:
            self.since = now
        self.failures += 1
        if self._reported_at is not None and now - self._reported_at < self.every_s:
            return False
        self._reported_at = now
        return True

    def ended(self, now: float) -> tuple[int, float] | None:
        """Closes the streak (it worked): (failures, seconds since the first), or None when there
        was none. The next failure is reported at once again."""
        if self.since is None:
            return None
        streak = (self.failures, now - self.since)
        self.failures, self.since, self._reported_at = 0, None, None
        return streak
