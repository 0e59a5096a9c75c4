"""Uplink: the agent link a conversation talks over, and the visitor's audio on its way to it.

The Conversation asks for links by id (`OpenLink`, `CloseLink`); this opens them (taking the warm
standby when it fits, see agent/standby.py), and closes only the one asked for, so a late close
never hits its successor. From the press until `onready` captured audio is held in the backlog
(core/backlog.py) and sent in order once the agent is ready (`HeldAudio`); after that, live
frames go straight to the link. Runs on the daemon's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edge_agent.agent.link import AgentLink, LinkStats
from edge_agent.agent.standby import Standby
from edge_agent.core import conversation as c
from edge_agent.core.backlog import Backlog
from edge_agent.core.config_agent import AgentSettings


class Uplink:
    """The current AgentLink (None before the first conversation) and the audio held for it;
    `emit` takes the events its links report (on the loop)."""

    def __init__(self, stats: LinkStats, standby: Standby, backlog: Backlog, emit: Callable[[c.Event], None]) -> None:
        self.stats, self.standby, self.backlog = stats, standby, backlog
        self._emit = emit
        self.link: AgentLink | None = None
        self._replaced: list[AgentLink] = []
        """Links closed for a successor and perhaps still closing (a slow network): waited for at shutdown too."""

    def open(self, a: c.OpenLink, target: AgentSettings | None, default: AgentSettings) -> None:
        """Opens link `a.link_id` (closing the one before): the standby when there is no delay
        and it fits `target`, else a new link to `target` (None: `default`)."""
        if self.link is not None:
            self.link.close()
            # the link died and this one replaces it in the same conversation (a conversation's end
            # closes its link first, `close`, and takes its audio along): what it never sent is
            # held for the new link, ahead of what was held since (README, "Reconnects do the same")
            self.backlog.put_back(self.link.outbox.take_unsent())
            self._replaced = [link for link in self._replaced if not link.finished] + [self.link]
        warm = self.standby.take(a.link_id, self._emit, a.continue_session_id, target) if a.delay_s == 0 else None
        if warm is not None:
            self.link = warm
        else:
            self.link = AgentLink(target or default, a.link_id, self._emit, self.stats)
            self.link.start(a.continue_session_id, a.delay_s)

    def close(self, link_id: int) -> None:
        if self.link is not None and self.link.link_id == link_id:
            self.link.close()
            self.link.outbox.take_unsent()  # the conversation's audio ends with it: never another's

    def held(self, command: str) -> None:
        """What was held while the link opened: sent in order ("send") or dropped."""
        held = self.backlog.take()
        if command == "send" and self.link is not None:
            self.link.send_held(held)

    def send(self, frames: tuple[bytes, ...], captured_at: float, holding: bool) -> None:
        """The gate's output for one captured frame: held while `holding`, else sent live."""
        if holding:
            self.backlog.add(frames)
        elif self.link is not None:
            for i, f in enumerate(frames):  # a pre-roll burst: only the live (last) frame is timed
                self.link.send_audio(f, captured_at if i == len(frames) - 1 else None)

    def start_stream(self, silence: bytes) -> bool:
        """At `listening`: starts the stream now, with one frame of `silence`, rather than at the
        next captured frame (up to frame_ms later), unless audio already went or is queued.
        True when the frame went (the caller pays it back, like a pre-roll)."""
        link = self.link
        if link is None or link.first_audio_sent_at is not None or link.queued:
            return False
        link.send_audio(silence)
        return True

    async def wait_closed(self) -> None:
        """At shutdown: waits (briefly) for the current link, the ones it replaced that are still
        closing, and the standby (with those a reload closed) to close (each aborted past its wait,
        all waited for at once)."""
        waits = [link.wait_closed(1.5) for link in (*self._replaced, self.link) if link is not None and not link.finished]
        waits += [standby.wait_closed(1.0) for standby in self.standby.close() if not standby.finished]
        await asyncio.gather(*waits)
