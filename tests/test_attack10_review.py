"""A helper's attack on the day's changes (attack10): what held is in its report; what did not, here."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.devtools.demo import demo_state_dir
from edge_agent.errors import UsageError


def test_a_demo_state_dir_that_cannot_be_looked_at_is_one_line_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`demo --state-dir` is checked first (devtools/demo.py `demo_state_dir`), to say in one line
    naming the option why it cannot be used. Its `exists()` ran outside the `except OSError`, and on
    Python 3.11 `Path.exists` raises for all but a missing path: a dir under one this user may not
    search (`--state-dir /var/lib/edge-agent/demo` by a user outside the service's group: EACCES) or
    a name too long (ENAMETOOLONG, here: root searches everywhere) ended in `unexpected error: ...
    report it`, exit 70."""
    too_long = tmp_path / ("x" * 300) / "demo"
    with pytest.raises(UsageError, match="--state-dir"):
        demo_state_dir(too_long)
    assert main(["demo", "--auto", "--state-dir", str(too_long)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edge-agent demo: --state-dir {too_long}: cannot make it"), err


def test_a_state_dir_this_user_may_not_search_is_one_line_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The EACCES case (as root it cannot happen for real): `Path.stat` refused as the kernel refuses
    a user without search permission on a parent."""
    target = tmp_path / "locked" / "demo"
    real_stat = Path.stat

    def stat(self: Path, *, follow_symlinks: bool = True) -> object:
        if self == target or target.parent in self.parents or self == target.parent:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(Path, "stat", stat)
    with pytest.raises(UsageError, match="--state-dir"):
        demo_state_dir(target)


def test_provision_into_a_dir_it_cannot_look_at_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`provision --dir` (the day's `--dir FILE` check, and `NAME.mqtt_password` looked for before the
    try that reports a write): `exists()` raising (EACCES under a dir not searchable, a name too
    long) was `unexpected error: ... report it`, exit 70, not `cannot write ...`, exit 1."""
    out_dir = tmp_path / ("x" * 300)
    assert main(["provision", "kiosk-1", "--dir", str(out_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edge-agent: cannot write {out_dir}/kiosk-1.mqtt_password: "), err
