"""Hostile input to the command-line tools (2026-12-06, a helper's; each failed before its fix):
`echo -o` removing what it did not create, a labels file that is no file, a recording cut at an
odd byte, output that cannot be written, `devices` on a `loop:` input, `provision` writing through
a link at its temporary name, `sessions --limit` past SQLite's integers."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO


def cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def echo_pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    n = 16000 * 8
    spk = rng.standard_normal(n) * 3000
    spk[:32000] = 0
    mic = np.zeros(n)
    mic[160:] = 0.5 * spk[:-160]
    mic += rng.standard_normal(n) * 50
    return wav(tmp_path / "mic.wav", mic), wav(tmp_path / "spk.wav", spk)


# ----------------------------------------------------------------------------- echo -o
def test_echo_failed_write_does_not_delete_what_it_did_not_create(tmp_path: Path) -> None:
    mic, spk = echo_pair(tmp_path)
    out = tmp_path / "out.wav"
    out.symlink_to("/dev/full")  # any write fails with ENOSPC, as on a full card
    r = cli("echo", str(mic), str(spk), "-o", str(out))
    assert r.returncode == 1, r.stderr
    assert "No space left" in r.stderr
    assert out.is_symlink(), "echo deleted the -o path it did not create (as root, `-o /dev/full` deletes the device node)"


def test_sessions_huge_limit_is_not_an_unexpected_error(tmp_path: Path) -> None:
    from edge_agent.core.store import SessionStore

    store = SessionStore(tmp_path)
    store.record_start("sess-1", "agentA", "default", None, started_at=1.7e9)
    store.close()
    r = cli("sessions", "--state-dir", str(tmp_path), "--limit", "99999999999999999999")
    assert "unexpected error" not in r.stderr, r.stderr
    assert r.returncode in (0, 2)


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # keep the machine alive if it reads forever


@pytest.mark.parametrize("labels", ["fifo", "/dev/zero"])
def test_gate_labels_not_a_regular_file_is_one_line(tmp_path: Path, labels: str) -> None:
    rec = wav(tmp_path / "rec.wav", np.zeros(16000 * 3))
    if labels == "fifo":
        labels = str(tmp_path / "rec.labels.json")
        os.mkfifo(labels)
    try:
        r = subprocess.run([sys.executable, "-m", "edge_agent", "gate", str(rec), "--labels", labels, "--json"], cwd=REPO, capture_output=True, text=True, timeout=15, preexec_fn=_limited)
    except subprocess.TimeoutExpired:
        pytest.fail(f"edge-agent gate --labels {labels} blocks (FIFO) or reads without end (/dev/zero)")
    assert r.returncode == 1, r.stderr
    assert "unexpected error" not in r.stderr


def test_echo_mic_cut_at_an_odd_byte_is_not_an_unexpected_error(tmp_path: Path) -> None:
    mic, spk = echo_pair(tmp_path)
    data = mic.read_bytes()
    mic.write_bytes(data[:-1])  # header promises 8 s, the file ends half-way through the last sample
    r = cli("echo", str(mic), str(spk), "-o", str(tmp_path / "out.wav"), "--json")
    assert "unexpected error" not in r.stderr, r.stderr
    assert r.returncode == 0


def test_read_wav_cut_at_an_odd_byte_gives_whole_samples(tmp_path: Path) -> None:
    from edge_agent.audio.wavfile import read_wav_16k_mono

    path = wav(tmp_path / "rec.wav", np.arange(1000))
    path.write_bytes(path.read_bytes()[:-1])
    assert len(read_wav_16k_mono(path)) % 2 == 0


@pytest.mark.parametrize("argv", [["gate", "REC", "--json"], ["broker-acl"]])
def test_stdout_on_a_full_disk_is_one_plain_line(tmp_path: Path, argv: list[str]) -> None:
    rec = wav(tmp_path / "rec.wav", np.zeros(16000 * 3))
    argv = [str(rec) if a == "REC" else a for a in argv]
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "edge_agent", *argv], cwd=REPO, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert "unexpected error" not in r.stderr, r.stderr
    assert r.returncode == 1


def test_stdout_closed_is_not_an_unexpected_error(tmp_path: Path) -> None:
    rec = wav(tmp_path / "rec.wav", np.zeros(16000 * 3))
    r = subprocess.run(f"{sys.executable} -m edge_agent gate {rec} --json >&-", shell=True, cwd=REPO, stderr=subprocess.PIPE, text=True, timeout=60)
    assert "unexpected error" not in r.stderr, r.stderr


def test_devices_does_not_look_up_a_loop_input_as_a_card(tmp_path: Path) -> None:
    rec = wav(tmp_path / "rec.wav", np.zeros(16000 * 3))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[audio]\ninput = "loop:{rec}"\noutput = "null"\n')
    r = cli("devices", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "no input device matches" not in r.stdout, r.stdout


def test_provision_does_not_write_through_a_link_at_its_temporary_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    passwd = tmp_path / "passwd"
    passwd.write_text("other:$7$101$x$y\n")
    (tmp_path / "passwd.tmp").symlink_to(victim)
    r = cli("provision", "kiosk1", "--dir", str(tmp_path / "out"), "--passwd", str(passwd))
    assert victim.read_text() == "precious\n", "provision truncated and wrote the file a link at passwd.tmp points to"
    assert r.returncode == 0 and "kiosk1:" in passwd.read_text(), r.stderr  # and the password file got its line
