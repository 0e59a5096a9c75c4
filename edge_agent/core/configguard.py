"""Guards on a config file that must run before its sections read it: the file's text is scanned
for dotted keys that would take tomllib gigabytes, and the parsed data for integers no TOML
reader should have let through (beyond 64 bits). Each is a config error naming the place."""

from __future__ import annotations

import re
from typing import Any

from edge_agent.errors import ConfigError

DOTTED_KEYS_MAX_COST = 32_000_000
"""Most sum over the file's dotted runs (a.b.c, also 1.5 or a host name in a value) of their
parts squared: tomllib keeps every prefix of a dotted key as its own tuple, so one key of 60000
parts (a 120 kB file) took 13 GB. At this cost tomllib peaks near 200 MB, and a key of 5000 parts
still reaches the check that names it (deeper than the agent's JSON takes, 64: cost 4096)."""
DOTTED_RUN = re.compile(r"""(?<![A-Za-z0-9_-])(?:(?:[A-Za-z0-9_-]++|"(?:[^"\\\n]|\\.)*+"|'[^'\n]*+')[ \t]*+\.[ \t]*+)++""")
"""A run of dotted parts, each tried once from its start (possessive: a linear scan of any text)."""
INT64 = (-(2**63), 2**63 - 1)
"""TOML's integers are 64-bit: a larger one made Python's int-to-text conversion fail (ValueError)
in every message and JSON that showed it."""


def oversized_ints(data: dict[str, Any]) -> list[ConfigError]:
    """A ConfigError for each integer outside TOML's 64 bits, naming its key (walked without recursing)."""
    problems: list[ConfigError] = []
    stack: list[tuple[str, object]] = [(name, value) for name, value in reversed(data.items())]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack += reversed([(f"{where}.{name}", sub) for name, sub in item.items()])
        elif isinstance(item, list):
            stack += reversed([(f"{where}[{i}]", sub) for i, sub in enumerate(item)])
        elif isinstance(item, int) and not INT64[0] <= item <= INT64[1]:
            problems.append(ConfigError(where, f"an integer of {item.bit_length()} bits: TOML's integers are 64-bit"))
    return problems


def dotted_cost(text: str) -> int:
    """Sum of each dotted run's parts squared (see DOTTED_KEYS_MAX_COST)."""
    return sum((m.group().count(".") + 1) ** 2 for m in DOTTED_RUN.finditer(text))
