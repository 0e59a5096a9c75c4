"""The suite does not go green by skipping what script/test installs (mosquitto, PyAudio): a
machine without them ran every MQTT and audio-device test as "skipped" and passed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import Broker

from edge_agent.devtools import mosquitto

TESTS = Path(__file__).resolve().parent


def test_a_missing_mosquitto_fails_the_test_instead_of_skipping_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mosquitto.shutil, "which", lambda name: str(tmp_path / "no-mosquitto-here"))
    outcome: BaseException | None = None
    try:
        Broker(tmp_path)
    except BaseException as exc:  # Skipped and Failed are BaseExceptions: caught here, judged below
        outcome = exc
    assert isinstance(outcome, pytest.fail.Exception), f"a missing mosquitto gave {outcome!r}, not a failure"
    assert "mosquitto is not installed" in str(outcome)


def test_no_test_module_skips_when_an_installed_dependency_is_missing() -> None:
    """`pytest.importorskip` turns a missing PyAudio (which script/bootstrap installs) into a
    quiet skip of every real-device test; an import fails the run instead."""
    skipping = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "importorskip":
                skipping.append(f"{path.name}:{node.lineno}")
    assert not skipping, f"importorskip in {skipping}"
