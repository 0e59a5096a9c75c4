"""A newcomer's review (newcomer3, 2026-12-07): what an installer meets following the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import UsageError
from edge_agent.fleet.provision import provision


@pytest.mark.parametrize("name", ["kiosk_", "-kiosk", "a" * 64])
def test_provision_says_the_rule_a_refused_name_breaks(tmp_path: Path, name: str) -> None:
    """`provision kiosk_` said "use a valid device id (ASCII letters, digits, - and _)": a name of
    only those characters, refused with no reason it could see (the rule also wants 1-63 of them,
    a letter or digit at each end, as `device.id` and `broker-acl --admin` say)."""
    with pytest.raises(UsageError) as refused:
        provision(name, tmp_path, None, rotate=False)
    message = str(refused.value)
    assert "1-63" in message and "starting and ending with a letter or digit" in message, message
    assert not list(tmp_path.iterdir())
