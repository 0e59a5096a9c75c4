"""StartLimit: the conversation start rate limit, sans-I/O bookkeeping for `Conversation`.

Every start opens a socket and may start a billed session, so starts are a token bucket, whoever
asks (button, MQTT): `session.start_burst` at once, refilled at `session.starts_per_minute`. A
start beyond it is refused and counted; the visitor (error earcon) and the fleet (`start_refused`
event) are told a few times, then at most every 10 s, so a flood cannot flood them in turn.
While the microphone is gone (`mic_gone`, kept by the daemon's AudioWatch) every start is refused
the same way, with `reason` `microphone_gone`: it opened a billed session nobody could talk in,
stored as the slot's newest for the next visitor to continue.
"""

from __future__ import annotations

from edge_agent.core.events import Action, Earcon, Notify
from edge_agent.core.ratelimit import LogThrottle, TokenBucket
from edge_agent.core.timing import Timing


class StartLimit:
    """The bucket of one kiosk's starts; `refused` counts the refusals (a metric)."""

    def __init__(self, t: Timing) -> None:
        self._bucket = TokenBucket(t.start_burst, t.starts_per_minute / 60.0)
        self._told = LogThrottle(first=3, every_s=10.0)
        self.refused = 0
        self.mic_gone = False

    def allow(self, origin: str, now: float, t: Timing, out: list[Action]) -> bool:
        """True when a start may go now; else the refusal is counted and, a few times, told
        through `out`. `t`'s limits apply at once (a reload changes them)."""
        if (self._bucket.burst, self._bucket.per_s) != (t.start_burst, t.starts_per_minute / 60.0):
            self._bucket = self._bucket.retuned(t.start_burst, t.starts_per_minute / 60.0, now)  # reloaded: what was spent stays spent
        if not self.mic_gone and self._bucket.take(now):  # a start refused for the mic spends no token
            return True
        self.refused += 1
        left_out = self._told.allow(now)
        if left_out is not None:
            why = {"reason": "microphone_gone"} if self.mic_gone else {"retry_in_s": round(self._bucket.wait_s(now), 1)}
            out.append(Notify("start_refused", {"origin": origin, **why, "refused_since_last": left_out}))
            out.append(Earcon("error"))
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until a start is allowed again (0: now)."""
        return self._bucket.wait_s(now)
