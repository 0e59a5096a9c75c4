"""Standby: the warm link, one connected socket waiting between conversations.

With `agent.warm_link` on, the kiosk keeps an `AgentLink` connected but silent (no `initiate`)
while idle, so a press goes straight to `initiate` without DNS, TCP, TLS and the WebSocket
upgrade. Servers and NATs drop idle sockets, so a standby is replaced after `warm_hold_s`; when
the server turns out to drop it sooner, the next one is held for 80 % of the life it had (after a
1001, only once two in a row agree: see `_went_away`), and a shortened hold grows back while
standbys live it out (GROW). A
failing standby (server down, refused) is retried with backoff; a press meanwhile simply opens
a cold link as without this feature.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

from edge_agent.agent.link import AgentLink, LinkStats
from edge_agent.core import conversation as c
from edge_agent.core.config_agent import AgentSettings

log = logging.getLogger(__name__)

MIN_HOLD_S = 1.0
FIRST_RETRY_S = 5.0
MAX_RETRY_S = 60.0
AGREE = 0.2
"""Two standbys the server closed with 1001 at ages this close (a fraction of the longer) show
its idle limit; one such close, or two at ages apart, may be a restart at a random point."""
GROW_AFTER = 3
GROW = 1.5
"""After GROW_AFTER standbys in a row lived out a shortened hold, the next is held GROW times
longer, up to `warm_hold_s`: a hold learned from a limit that went away (a server restarting with
a plain close, a proxy's limit during a deploy) stayed short for the daemon's life, a new socket
to the vendor every few seconds all day. Against a limit that stays, one standby in about four
meets it and is replaced at once, as any standby the server drops."""


class Standby:
    """Owns at most one standby link. Runs on the event loop; `now` is time.monotonic()."""

    def __init__(self, settings: AgentSettings, stats: LinkStats) -> None:
        self.settings = settings
        self.stats = stats
        self.link: AgentLink | None = None
        self.hold_s = settings.warm_hold_s
        """Current hold, shortened when the server drops idle sockets sooner, grown back (GROW)."""
        self._lived_out = 0
        """Standbys in a row that lived out a shortened hold."""
        self._limit_s: float | None = None
        """The age the server's 1001 closes agreed on, once learned: a grown hold that meets the
        same limit again agrees with it (one 1001 alone backs off as after a restart)."""
        self._ids = itertools.count(-1, -1)  # never one of the Conversation's link ids
        self._opened_at = 0.0
        self._retry_at = 0.0
        self._failures = 0
        self._went_away_s: float | None = None
        """Life of the last standby, if the server closed it with 1001 (going away)."""
        self.opened = 0
        self.taken = 0
        self._ended: list[AgentLink] = []
        """Standbys this closed (a reload, a press that found one ending) and perhaps still closing:
        `close` hands them on, so the shutdown waits for them too (a reload's was left running)."""

    @property
    def ready(self) -> bool:
        return self.link is not None and self.link.standing_by

    def keep(self, now: float, idle: bool) -> None:
        """Called every tick: opens a standby when the kiosk is idle and none is there."""
        if not self.settings.warm_link or not idle or self.link is not None or now < self._retry_at:
            return
        self.link = AgentLink(self.settings, next(self._ids), self._on_event, self.stats)
        self.link.start_standby(self.hold_s)
        self._opened_at = now
        self.opened += 1

    def take(self, link_id: int, emit: Callable[[c.Event], None], continuation: str | None, settings: AgentSettings | None = None) -> AgentLink | None:
        """The standby as the conversation's link `link_id`, or None (then connect cold).
        `settings`: another agent id or metadata for this conversation's `initiate` (the
        socket itself depends only on the endpoint, which stays the same)."""
        link, self.link = self.link, None
        if link is None:
            return None
        if settings is not None:
            link.settings = settings  # read when `initiate` is built, after activation
        if link.activate(link_id, emit, continuation):
            link.on_served = self._served
            return link
        self._end(link)
        return None

    def _served(self) -> None:
        """The session a press asked for started on the standby it took (`onready` on it): the
        warm link served the press. Counted here, not at the take: one found dead there (a fresh
        connect served the press) was counted and then taken back, and `warm_presses` went down by
        one, which a dashboard reads as a restart; nor at the standby's first answer (a pong), which
        came from one the server closed right after, before any session."""
        self.taken += 1

    def close(self) -> list[AgentLink]:
        """Ends the standby (shutdown, new settings); returns it and every standby closed before
        that may still be closing, so the caller may await them."""
        link, self.link = self.link, None
        if link is not None:
            self._end(link)
        return list(self._ended)

    def _end(self, link: AgentLink) -> None:
        link.close()
        self._ended = [old for old in self._ended if not old.finished] + [link]

    def reconfigure(self, settings: AgentSettings) -> None:
        """New `[agent]` settings (a reload): the standby on the old ones ends; a backoff earned by
        the old ones (a wrong endpoint, a refused key) ends with them, or the warm link mended by
        the reload stayed away for up to MAX_RETRY_S. A reload that leaves `[agent]` as it was
        keeps the standby and what it learned of the server: ended, a reload of the log level
        opened a new socket to the vendor and forgot the server's idle limit."""
        if settings == self.settings:
            return
        self._failures, self._retry_at = 0, 0.0
        self.settings = settings
        self.hold_s = settings.warm_hold_s
        self._went_away_s = self._limit_s = None
        self._lived_out = 0
        self.close()

    def _went_away(self, error: str, try_later: bool, lived_s: float, last_s: float | None) -> bool:
        """A 1001 (going away) is both a restart's close and some servers' idle limit (AWS API
        Gateway): one says nothing, a standby's life spent to about the same age as the last one's
        (within AGREE) is the limit. The hold then learns it as from a plain close; the first
        backs off as after a restart (each 1001 did, 5 s doubling to 60 s, the hold never learned:
        against a 2.5 s idle limit the warm link was missing most of the time)."""
        if not try_later or error.split(" ", 1)[0] != "close_1001" or lived_s < 2 * MIN_HOLD_S:
            return False
        self._went_away_s = lived_s
        if last_s is None or abs(lived_s - last_s) > AGREE * max(lived_s, last_s):
            return False
        self.hold_s = max(MIN_HOLD_S, min(self.hold_s, 0.8 * min(lived_s, last_s)))
        self._lived_out, self._limit_s = 0, lived_s
        log.info("the agent server closed idle standbys with 1001 after %.1f s and %.1f s: holding the next for %.1f s", last_s, lived_s, self.hold_s)
        return True

    def _grow_hold(self) -> None:
        """A standby lived out its hold: after GROW_AFTER in a row, a shortened hold grows back."""
        if self.hold_s >= self.settings.warm_hold_s:
            return
        self._lived_out += 1
        if self._lived_out >= GROW_AFTER:
            self._lived_out = 0
            self.hold_s = min(self.settings.warm_hold_s, self.hold_s * GROW)
            log.info("%d standbys lived out their hold: holding the next for %.1f s", GROW_AFTER, self.hold_s)

    def _on_event(self, ev: c.Event) -> None:
        """Only a standby's end matters: replace it at once when it expired as planned or the
        server dropped it while idle, later (with backoff) when connecting failed."""
        link = self.link
        if not isinstance(ev, c.LinkDown) or link is None or ev.link_id != link.link_id:
            return
        self.link = None
        now = time.monotonic()
        lived_s = now - self._opened_at
        went_away_s, self._went_away_s = self._went_away_s, None
        if ev.error is None:
            self._failures = 0
            self._retry_at = now
            if self._limit_s is not None and lived_s > self._limit_s and abs(lived_s - self._limit_s) > AGREE * lived_s:
                # lived out well past the learned limit: it went away, and a restart's 1001 at
                # the age it was learned from agreed with it (no backoff, the hold cut again)
                self._limit_s = None
            self._grow_hold()
        elif ev.error.startswith("close_") and not link.try_later and lived_s >= 2 * MIN_HOLD_S:
            # only the server's own close is its idle limit: a network cut (1006) or a restart
            # (a close asking to try later: backs off below) at a random point of a standby's life
            # cut the hold for good (one Wi-Fi blip: 50 s to 2.4 s, a new connection every 2.4 s)
            if link.server_closed:
                self.hold_s = max(MIN_HOLD_S, min(self.hold_s, 0.8 * lived_s))
                self._lived_out = 0
                log.info("the agent server closed an idle standby after %.1f s (%s): holding the next for %.1f s", lived_s, ev.error, self.hold_s)
            self._failures = 0  # it connected and lived: the server is fine, only impatient
            self._retry_at = now
        elif self._went_away(ev.error, link.try_later, lived_s, self._limit_s if went_away_s is None else went_away_s):
            self._failures = 0
            self._retry_at = now
        else:
            self._failures += 1
            wait_s = min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** (self._failures - 1))
            self._retry_at = now + wait_s
            log.warning("standby link failed (%s), next try in %.0f s", ev.error, wait_s)

