"""The warm link across a reload (SIGHUP) that leaves `[agent]` as it was: the real daemon in
process (conftest's KioskThread) against a websockets server playing the agent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from conftest import KioskThread, kiosk_settings, wait_for
from test_link_attacks import HostileServer
from test_standby3_review import WARM, _going_away_after


def test_a_reload_that_leaves_the_agent_as_it_was_keeps_the_standby_and_its_learned_hold(tmp_path: Path) -> None:
    """A fleet admin changes the log level (or anything outside `[agent]`) and sends SIGHUP. The
    reload closed the standby and forgot the hold learned from the server's idle limit, also with
    `[agent]` unchanged: a fresh socket to the vendor at each reload, and the next standbys held for
    `warm_hold_s` again until two 1001 closes taught the limit anew (the warm link missing meanwhile).
    New `[agent]` settings still end the standby (tests/test_standby2_review.py)."""
    with HostileServer(_going_away_after([2.5])) as srv, KioskThread(kiosk_settings(tmp_path, srv.url, agent=WARM)) as k:
        wait_for(lambda: k.kiosk.standby.hold_s <= 3.0 and k.kiosk.standby.ready, 30, "the hold learned from a 2.5 s idle limit")
        settings = k.kiosk.settings
        other = replace(settings, log=replace(settings.log, level="debug" if settings.log.level != "debug" else "info"))

        def reload() -> tuple[float, object, bool, float, object]:
            # on the kiosk's loop in one go: a standby living out its 2 s hold meanwhile is no reload's doing
            standby = k.kiosk.standby
            learned_s, link = standby.hold_s, standby.link
            applied = k.kiosk.reloads.reload(other)
            return learned_s, link, applied, standby.hold_s, standby.link

        learned_s, link, applied, hold_s, kept_link = k.on_loop(reload)
    assert applied and link is not None
    assert hold_s == learned_s, f"a reload with [agent] unchanged reset the learned hold {learned_s:.1f} s to {hold_s:.1f} s"
    assert kept_link is link, "a reload with [agent] unchanged closed the standby (a new socket to the vendor)"
