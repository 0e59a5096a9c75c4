"""The echo path's drift: how fast its delay slides (two sound cards on two crystals) where the
timestamps do not see it, fitted to the canceller's delay estimates.

The canceller moves its bulk delay at this rate (`reference.Alignment.rate`), so the echo path
stays still for AEC3, which otherwise follows a sliding path only in part: measured over the
bench's simulated rooms, ERLE kiosk 200 ms -120 ppm 24.4 -> 39.0 dB (the 30 dB goal), 150 ms
-80 ppm 35.6 -> 42.9, 250 ms -90 ppm 40.6 -> 46.7. Where the timestamps follow the drift already
(a live sink's DAC times) the whole delay stays put, the fit gives ~0 and nothing moves; a path
whose delay shrinks has its bulk at 0 already and is left to AEC3. The price: with the path held
still AEC3's suppressor cuts a visitor's onset over loud echo a little harder (double-talk recall
0.99-0.996 instead of 1.0 in 4 of 16 runs of the -ppm rooms; README, "Echo cancellation").

A line through the last few whole-delay estimates (bulk + residual, so moving the bulk does not
feed back into the fit), Theil-Sen (median of the pairwise slopes): an estimate that locked onto
a reflection instead of the direct sound lies off the line, is left out, and the line is fitted
again without it. Pure arithmetic over a handful of points, once per estimate (every couple of
seconds of far-end audio).
"""

from __future__ import annotations

from collections import deque
from statistics import median

KEEP = 8
"""Estimates the line goes through (the newest; at 2 s of far-end audio each, the last 16 s or more)."""
MIN_POINTS = 5
"""...of which this many must lie on it..."""
MIN_SPAN_S = 8.0
"""...spanning this long, before the rate counts: 0.25 ms steps of a 4 kHz correlation, refined
by interpolation, give a slope good to a few ppm only over several seconds."""
OFF_LINE_S = 0.0008
"""An estimate farther than this from the line is not the direct sound (a reflection, a visitor)."""
DEAD_BAND = 20e-6
"""Rates under 20 ppm are left to AEC3 (about 1 ms a minute: it follows that by itself), so a path
that does not drift never moves on the fit's noise."""
MAX_RATE = 500e-6
"""No crystal pair drifts faster than this (5x a bad USB pair): a steeper line is not drift."""
FOLLOW_S = 60.0
"""The rate is followed at most this long after the last estimate (a kiosk idles for hours): a
wrong fit can then move the bulk delay by MAX_RATE x FOLLOW_S = 30 ms at most, inside the
estimator's search below the bulk (-50 ms), so the next estimates still find the echo."""


def theil_sen(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(slope, intercept) of the line through `points` (x, y): the median of the pairwise slopes
    over pairs at least a second apart, and the median intercept; None with too few pairs."""
    slopes = [(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1 :] if abs(x2 - x1) >= 1.0]
    if not slopes:
        return None
    slope = median(slopes)
    return slope, median(y - slope * x for x, y in points)


class DriftFit:
    """The drift rate (seconds of delay per second) fitted to the newest delay estimates."""

    def __init__(self) -> None:
        self._points: deque[tuple[float, float]] = deque(maxlen=KEEP)
        self.rate = 0.0
        """Seconds of echo delay gained per second; 0 until a line holds (and under DEAD_BAND)."""
        self.inliers = 0
        """Estimates on the line at the last fit."""
        self._last_s: float | None = None

    def rate_at(self, now_s: float) -> float:
        """The rate to follow at `now_s`: 0 once FOLLOW_S went by without an estimate."""
        if self._last_s is None or now_s - self._last_s > FOLLOW_S:
            return 0.0
        return self.rate

    def add(self, at_s: float, delay_s: float) -> float:
        """One estimate of the whole echo delay `delay_s`, made at `at_s` (the capture clock); the
        rate after it. The rate is kept as it was when the points do not (yet) make a line."""
        self._points.append((at_s, delay_s))
        self._last_s = at_s
        points = list(self._points)
        line = theil_sen(points)
        if line is None:
            return self.rate
        slope, intercept = line
        on = [(x, y) for x, y in points if abs(y - slope * x - intercept) <= OFF_LINE_S]
        self.inliers = len(on)
        if len(on) < MIN_POINTS or on[-1][0] - on[0][0] < MIN_SPAN_S:
            return self.rate
        refit = theil_sen(on)
        if refit is None:
            return self.rate
        slope = refit[0]
        self.rate = 0.0 if abs(slope) < DEAD_BAND or abs(slope) > MAX_RATE else slope
        return self.rate
