"""The MQTT side a SessionShare (share.py) needs, its default timer, and the paced re-send of a
kiosk's own pointers and forgets after a connect (the status connection's queue is bounded)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

T = TypeVar("T")
Later = Callable[[float, Callable[[], None]], None]

RESEND_BATCH, RESEND_PACE_S = 50, 0.5
"""Pointers and forgets published again after a connect: this many at a time, then a pause (room
left in the status connection's queue: 200, QoS 1 holding each until acked)."""


class Bus(Protocol):
    """The MQTT side SessionShare needs (StatusReporter in the kiosk)."""

    def send(self, topic: str, payload: bytes, retain: bool) -> bool: ...

    def follow(self, topic_filter: str, handler: Callable[[str, bytes, bool], None]) -> None:
        """`handler(topic, payload, retained)`: `retained`, the broker's stored copy handed over at a
        (re)subscribe, not one published now."""

    def when_connected(self, hook: Callable[[], None]) -> None: ...

    def online(self) -> bool: ...


def timer(delay_s: float, fn: Callable[[], None]) -> None:
    """`fn` after `delay_s`, on a daemon timer thread."""
    t = threading.Timer(delay_s, fn)
    t.daemon = True
    t.start()


def send_paced(items: list[T], send: Callable[[T], bool | None], later: Later, batch: int, pace_s: float) -> None:
    """`send` each item in order, `batch` of them, then the rest after `pace_s` (`later`). `send`
    says True (sent, or nothing to send), False (the queue was full: that item first after the
    pause) or None (stop: the connection they were for is gone)."""
    for n, item in enumerate(items):
        sent = send(item) if n < batch else False
        if sent is None:
            return
        if not sent:
            later(pace_s, partial(send_paced, items[n:], send, later, batch, pace_s))
            return


class LatestWait:
    """`fn` once, `delay_s` after the latest `start`, on one wait at a time (`later`). A wait per
    start (one per connect) kept a timer thread asleep for 30 s each, to find a newer connect had
    made it moot: a broker restarting, or dropping the kiosk once a second (two kiosks with one
    client id), piled them up (tests/test_chaos_review.py)."""

    def __init__(self, fn: Callable[[], None], later: Later, monotonic: Callable[[], float]) -> None:
        self._fn, self._later, self._monotonic = fn, later, monotonic
        self._lock = threading.Lock()
        self._due = 0.0
        self._waiting = False

    def start(self, delay_s: float) -> None:
        with self._lock:
            self._due = self._monotonic() + delay_s
            if self._waiting:  # the wait under way looks again at the new time when it ends
                return
            self._waiting = True
        self._later(delay_s, self._end)

    def _end(self) -> None:
        with self._lock:
            left = self._due - self._monotonic()
            self._waiting = left > 1e-3
        if left > 1e-3:  # started again meanwhile: the rest of the newest wait
            self._later(left, self._end)
        else:
            self._fn()
