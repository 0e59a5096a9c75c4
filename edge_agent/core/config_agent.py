"""Settings of the agent link: `[agent]` (endpoint, agent id, public key, metadata, link timing).

Read once from the config's `[agent]` section (core/config.py builds every section); the key is
never in the settings' repr, and `with_key` reads `public_key_file` only where the agent is
talked to, so `sessions`, `gate` or `echo` run for an operator who may not read it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from edge_agent.core.tomlsection import Section, secret_from_file, websocket_url
from edge_agent.errors import ConfigError

PUBLIC_KEY_ENV = "EDGE_AGENT_PUBLIC_KEY"
EXAMPLE_AGENT_ID = "your-agent-id"
"""The placeholder config/edge-agent.toml ships with: a kiosk must not start with it."""
EXAMPLE_BUTTON_AGENT_ID = "..."
"""The placeholder of the example's commented `[[buttons]]` entry: uncommented as it is, it was a
valid label, so `run` and `doctor` passed, and each press of that button failed at the platform."""
EXAMPLE_PUBLIC_KEY = "your-millis-public-key"
"""The placeholder script/install writes (commented out) into /etc/edge-agent/environment: an
operator who uncomments the line unchanged must hear so, not have the platform refuse the key."""
DEFAULT_ENDPOINT = "wss://api-west.millis.ai:8080/millis"


@dataclass(frozen=True)
class AgentSettings:
    endpoint: str
    agent_id: str | None
    public_key: str | None = field(repr=False)
    include_metadata_in_prompt: bool
    metadata: dict[str, Any]
    config: dict[str, Any]
    ping_interval_s: float
    connect_timeout_s: float
    dead_after_s: float
    compression: bool
    """Offer permessage-deflate: gated silence then costs ~1 % of its bandwidth (see SilenceDeflate)."""
    warm_link: bool
    """Keep a connected socket standing by between conversations (see AgentLink.start_standby)."""
    warm_hold_s: float
    """How long a standby is held unused before it is replaced; shortened by itself when the
    server turns out to drop idle sockets sooner."""
    public_key_file: str | None = None

    @classmethod
    def read(cls, s: Section) -> AgentSettings:
        endpoint = websocket_url(s, "endpoint", DEFAULT_ENDPOINT)
        inline = s.opt_str("public_key")  # read (and type-checked) even when the environment's key wins
        # white space around a key pasted into the environment or the config is not part of it (as
        # around the file's, `secret_from_file`); a key of white space alone is a missing one
        key = (os.environ.get(PUBLIC_KEY_ENV) or "").strip() or (inline or "").strip() or None
        key_path = s.opt_str("public_key_file")  # read by `with_key`, only where the agent is talked to
        settings = cls(
            endpoint=endpoint,
            agent_id=s.opt_str("agent_id"),
            public_key=key,
            include_metadata_in_prompt=s.flag("include_metadata_in_prompt", False),
            metadata=s.json_table("metadata"),
            config=s.json_table("config"),
            ping_interval_s=s.number("ping_interval_s", 5.0, 0.5, 120.0),
            connect_timeout_s=s.number("connect_timeout_s", 10.0, 0.5, 120.0),
            dead_after_s=s.number("dead_after_s", 15.0, 1.0, 600.0),
            compression=s.flag("compression", True),
            warm_link=s.flag("warm_link", False),
            warm_hold_s=s.number("warm_hold_s", 50.0, 1.0, 3600.0),
            public_key_file=key_path,
        )
        return settings

    @property
    def agent_key(self) -> str:
        """What sessions are filed under: the agent id, or 'inline' for a config-only agent."""
        return self.agent_id or "inline"

    def with_key(self) -> AgentSettings:
        """These settings with the key read from `public_key_file` when one is set (the
        environment's key or an inline one still wins). Only what talks to the agent reads the
        file, so `sessions`, `gate` or `echo` work without it; ConfigError naming
        agent.public_key_file when it cannot be read or is empty."""
        if not self.public_key_file:
            return self
        key_file = secret_from_file("agent.public_key_file", self.public_key_file)
        return replace(self, public_key=self.public_key or key_file)

    def runnable_problems(self) -> list[ConfigError]:
        """What stops talking to an agent (not listing sessions or running the gate), on settings
        whose key has been read (`with_key`): the key and the agent id, both at once (the example
        config failed on the key, and once it was set, on the placeholder id); and a dead-link
        limit within the ping interval (every quiet moment of a conversation ended its link and
        reconnected into a new session)."""
        problems = []
        if not self.public_key:
            problems.append(ConfigError("agent.public_key", f"missing: set {PUBLIC_KEY_ENV}, agent.public_key or agent.public_key_file"))
        elif self.public_key == EXAMPLE_PUBLIC_KEY:
            where = f"in /etc/edge-agent/environment? set {PUBLIC_KEY_ENV} to the public key from the Millis dashboard"
            problems.append(ConfigError("agent.public_key", f"still the installer's placeholder {EXAMPLE_PUBLIC_KEY!r} ({where})"))
        if not self.agent_id and not self.config:
            problems.append(ConfigError("agent.agent_id", "missing: set agent.agent_id or an [agent.config] table"))
        elif self.agent_id == EXAMPLE_AGENT_ID:
            problems.append(ConfigError("agent.agent_id", f"still the example's placeholder {EXAMPLE_AGENT_ID!r}: set the agent id from the Millis dashboard"))
        if self.dead_after_s <= self.ping_interval_s:  # a quiet link is heard from only in its pongs: each gap ended it as dead
            problems.append(ConfigError("agent.dead_after_s", f"must be more than agent.ping_interval_s ({self.ping_interval_s:g} s: a quiet link hears only the pongs), got {self.dead_after_s:g}"))
        return problems

    def require_runnable(self) -> None:
        """ConfigError (with the others in its `more`) when `runnable_problems` finds any."""
        problems = self.runnable_problems()
        if problems:
            raise ConfigError.together(problems)
