"""An operator's and a fleet admin's mistakes at the command line (2026-12-06, a helper's review;
each failed before its fix): `echo` interrupted emptying the -o it was about to replace,
`provision --passwd` naming the kiosk's own password file, `fleet --wait-s -1`, a stored session
of bytes that are no UTF-8, `demo --auto` interrupted claiming its story checked."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, Broker, interruptible
from test_cli_attacks import cli as run
from test_cli_attacks import wav

from edge_agent import cli
from edge_agent.core.store import DB_NAME, SessionStore


@pytest.mark.parametrize("existing", [True, False])
def test_echo_interrupted_keeps_the_output_it_was_to_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool) -> None:
    """An installer who pressed Ctrl-C during `echo mic.wav spk.wav -o cleaned.wav` found last
    take's cleaned.wav emptied to 0 bytes (or a new 0-byte cleaned.wav, no WAV at all, left behind)."""
    from edge_agent.service import echocheck

    rng = np.random.default_rng(1)
    spk = rng.standard_normal(16000 * 3) * 3000
    mic, ref = wav(tmp_path / "mic.wav", 0.5 * spk), wav(tmp_path / "spk.wav", spk)
    out = tmp_path / "cleaned.wav"
    if existing:
        out.write_bytes(b"last take's cleaned track")

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(echocheck, "cancel_tracks", interrupted)
    assert cli.main(["echo", str(mic), str(ref), "-o", str(out)]) == 130
    if existing:
        assert out.read_bytes() == b"last take's cleaned track", "Ctrl-C emptied the -o file the run had not yet replaced"
    else:
        assert not out.exists(), "Ctrl-C left a 0-byte -o file behind"


def test_provision_passwd_naming_the_kiosks_own_password_file_is_refused(tmp_path: Path) -> None:
    """`provision k4 --passwd k4.mqtt_password` (the admin took --passwd for where the password
    goes) wrote the hash line over the new password and exited 0: the password was nowhere, and
    the kiosk logged in with the hash, refused by the broker."""
    r = run("provision", "k4", "--dir", str(tmp_path), "--passwd", str(tmp_path / "." / "k4.mqtt_password"))
    assert r.returncode == 2, r.stderr
    assert "--passwd" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "k4.mqtt_password").exists(), "a refused run left a password file behind"


@pytest.mark.parametrize("wait", ["-1", "nan", "inf"])
def test_fleet_wait_s_not_a_duration_is_a_usage_error(tmp_path: Path, wait: str) -> None:
    """`fleet --json --wait-s -1` (or nan, inf) connected to the broker, then ended in "unexpected
    error ... report it", exit 70: a monitoring script took it for a bug of edge-agent."""
    broker = Broker(tmp_path).start()
    try:
        r = run("fleet", "--host", "127.0.0.1", "--port", str(broker.port), "--json", "--wait-s", wait)
    finally:
        broker.kill()
    assert "unexpected error" not in r.stderr, r.stderr
    assert r.returncode == 2 and "--wait-s" in r.stderr, r.stderr


def test_sessions_lists_a_store_with_a_row_of_bytes_that_are_no_utf8(tmp_path: Path) -> None:
    """One session whose id held bytes that are no UTF-8 (a hand edit, another tool's import) hid
    every session from `edge-agent sessions` (exit 1), and its escape codes reached the operator's
    terminal in the error message."""
    store = SessionStore(tmp_path)
    store.record_start("sess-good", "agentA", "default", None, started_at=1.7e9)
    store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:  # ESC ] 0 ; x BEL ESC [ 2 J, then a byte no UTF-8 starts with
        conn.execute("INSERT INTO sessions (id, agent, slot, started_at) VALUES (CAST(x'1b5d303b78071b5b324aff' AS TEXT), 'a', 'b', 1.6e9)")
    conn.close()
    r = run("sessions", "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "sess-good" in r.stdout
    assert "\x1b" not in r.stdout + r.stderr, "stored escape codes reached the terminal"


def test_demo_auto_interrupted_is_no_success(tmp_path: Path) -> None:
    """Ctrl-C during `demo --auto` after conversation 1 printed "demo done: conversation 2
    continued conversation 1 (checked in the simulator and the store)" and exited 0: a script (or
    CI) running the demo as its check took an unchecked story for a pass."""
    proc = subprocess.Popen(interruptible("demo", "--auto", "--state-dir", str(tmp_path / "demo")), cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "ok: conversation 1 is a new session" in line:
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait(10)
    said = "".join(seen) + out
    assert "demo done" not in said, said
    assert proc.returncode != 0, err
