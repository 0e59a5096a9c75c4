"""ConfigReload: a SIGHUP's settings applied at once while the kiosk is idle, else when its
conversation ends, and a file that does not load rejected with what the kiosk keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edge_agent.core.config import Settings, validate_for_run
from edge_agent.errors import ConfigError, EdgeAgentError

log = logging.getLogger("edge_agent")


class ConfigReload:
    """The kiosk's reloads: `idle` says whether its conversation is idle; `apply` makes checked
    settings the kiosk's (through service/assembly.py `apply_reload`)."""

    def __init__(self, idle: Callable[[], bool], apply: Callable[[Settings], None]) -> None:
        self._idle = idle
        self._apply = apply
        self.pending: Settings | None = None
        """Settings a SIGHUP brought during a conversation: taken when it ends."""

    def reload(self, settings: Settings) -> bool:
        """SIGHUP: new `[session]`, `[agent]` and `[log]` settings, now when idle, else when the
        conversation ends (it was dropped: the log said deferred and nothing came of it); the
        sections opened at start wait for a restart, and the log names them."""
        settings = validate_for_run(settings)
        if not self._idle():
            self.pending = settings
            log.warning("config reload deferred until the conversation ends")
            return False
        self.pending = None
        self._apply(settings)
        return True

    def take_pending(self) -> None:
        """At a tick while idle: the reload deferred during the conversation, taken once (a file
        gone bad meanwhile is one error, not one a tick)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.reload_from(lambda: pending)

    def reload_from(self, on_reload: Callable[[], Settings]) -> None:
        """The SIGHUP handler: `on_reload` reads the config file; one that does not load is logged."""
        try:
            self.reload(on_reload())
        except EdgeAgentError as exc:
            # a reload deferred earlier (valid, asked for during this conversation) still applies
            # at its end: the log said "keeping the running config" and then changed it
            keeping = "the running config (and the reload deferred earlier, applied when the conversation ends)" if self.pending else "the running config"
            log.error("config reload rejected, keeping %s: %s", keeping, exc.every() if isinstance(exc, ConfigError) else exc)
