"""End to end: the daemon process, keyboard button, file audio, the simulator on loopback.

press -> new session; press -> end; press -> continues it; restart the process -> press
continues the newest; long press -> no continuation. Asserts on what the simulator received.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import DATA, REPO, DaemonProcess, labels, read_wav, toml_dump, wait_for, write_wav

from edge_agent.devtools.simulator import AgentSimulator

FRAME_BYTES = 960  # 30 ms at 16 kHz int16
CLIP_S = 12.0  # the quiet recording's first utterance is labelled 2.2 - 8.79 s


def _config(tmp_path: Path, sim: AgentSimulator, clip: Path) -> Path:
    cfg = tmp_path / "edge-agent.toml"
    cfg.write_text(
        toml_dump(
            {
                "device": {"id": "kiosk-e2e", "state_dir": str(tmp_path / "state")},
                "agent": {"endpoint": sim.url, "agent_id": "agent-42", "include_metadata_in_prompt": True, "metadata": {"site": "lobby"}},
                "session": {"idle_timeout_s": 120.0},
                "audio": {"input": f"file:{clip}", "output": f"file:{tmp_path / 'speaker.wav'}", "frame_ms": 30},
                "button": {"source": "keyboard"},
            }
        )
    )
    return cfg


def _uplink_matches_recording(uplink: bytes, recording: bytes, speech: list[list[float]]) -> float:
    """Every non-silent uplink frame must be a frame of the recording, byte for byte (so the
    audio really is the recording at 16 kHz int16); returns the share of labelled speech sent."""
    frames = {recording[i : i + FRAME_BYTES]: i // FRAME_BYTES for i in range(0, len(recording) - FRAME_BYTES + 1, FRAME_BYTES)}
    silence = bytes(FRAME_BYTES)
    sent: set[int] = set()
    assert len(uplink) % FRAME_BYTES == 0, "uplink is not whole 30 ms frames"
    for off in range(0, len(uplink), FRAME_BYTES):
        frame = uplink[off : off + FRAME_BYTES]
        if frame == silence:
            continue
        assert frame in frames, f"uplink frame at byte {off} is not audio from the recording"
        sent.add(frames[frame])
    covered = total = 0.0
    for a, b in speech:
        for i in range(int(a / 0.03), int(b / 0.03)):
            total += 1
            covered += i in sent
    return covered / total


def test_press_resume_restart_long_press(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess]) -> None:
    recording = read_wav(DATA / "kiosk_dev_quiet.wav")[: int(CLIP_S * 32000)]
    clip = write_wav(tmp_path / "clip.wav", recording)
    cfg = _config(tmp_path, sim, clip)
    speech = [iv for iv in labels("quiet")["speech"] if iv[1] <= CLIP_S]

    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log(r"ready: device kiosk-e2e")
    started = time.monotonic()

    # 1. press -> a new session, no continuation
    mark = d.press()
    d.wait_log(r"state: listening", after=mark)
    first = sim.sessions[0]
    init = first.initiate["data"]
    assert init["public_key"] == "test-public-key"
    assert init["agent"] == {"agent_id": "agent-42"}
    assert init["metadata"] == {"site": "lobby"} and init["include_metadata_in_prompt"] is True
    assert "session_continuation" not in init

    # the visitor's utterance goes up, the agent answers, the answer is played
    wait_for(lambda: first.turns >= 1, 20, "the simulator to hear the utterance")
    d.wait_log(r"state: speaking")
    # the uplink copied between two clock reads: a late wake-up of this thread cannot put audio
    # sent after one read against the other
    elapsed_before = time.monotonic() - started
    uplink = bytes(first.uplink)
    elapsed_after = time.monotonic() - started
    assert _uplink_matches_recording(uplink, recording, speech) >= 0.995
    # real-time 16 kHz pacing: the uplink covers about the wall time the link was open
    assert 0.8 * (elapsed_before - 0.5) <= len(uplink) / 32000 <= elapsed_after + 0.5

    # the reply (the utterance played back plus a tone) ends; the kiosk listens again
    mark = len(d.lines)
    d.wait_log(r"state: listening", timeout_s=10, after=mark)

    # 2. press -> ends it; the session is stored as ended by the button
    mark = d.press()
    d.wait_log(r"state: idle", after=mark)
    wait_for(lambda: first.closed, 20, "the socket to close")

    # 3. press -> the initiate continues the first session
    mark = d.press()
    d.wait_log(r"state: listening", after=mark)
    second = sim.sessions[1]
    assert second.initiate["data"]["session_continuation"] == {"session_id": first.session_id}
    assert second.continued_from == first.session_id
    mark = d.press()
    d.wait_log(r"state: idle", after=mark)
    d.key("q")
    assert d.proc.wait(20) == 0

    # the speaker file holds what was played: the reply is the visitor's own speech played back
    played = read_wav(tmp_path / "speaker.wav")
    a = speech[0][0]
    middle = recording[int((a + 1.0) * 16000) * 2 : int((a + 1.5) * 16000) * 2]
    assert middle in played

    # 4. a new daemon process continues the newest stored session
    d2 = DaemonProcess(cfg)
    daemons.append(d2)
    d2.wait_log(r"ready: device")
    mark = d2.press()
    d2.wait_log(r"state: listening", after=mark)
    third = sim.sessions[2]
    assert third.initiate["data"]["session_continuation"] == {"session_id": second.session_id}
    mark = d2.press()
    d2.wait_log(r"state: idle", after=mark)

    # 5. long press -> a fresh session, no continuation
    mark = d2.long_press()
    d2.wait_log(r"state: listening", after=mark)
    fourth = sim.sessions[3]
    assert "session_continuation" not in fourth.initiate["data"]
    mark = d2.press()
    d2.wait_log(r"state: idle", after=mark)
    assert d2.stop() == 0

    # the store lists all four, newest first, with who continued whom
    out = subprocess.run([sys.executable, "-m", "edge_agent", "sessions", "-c", str(cfg)], capture_output=True, text=True, cwd=REPO, check=True).stdout
    ids = [s.session_id for s in sim.sessions]
    positions = [out.index(i) for i in reversed(ids)]
    assert positions == sorted(positions), out
    assert f"{third.session_id} continues {second.session_id}" in out
    assert "button" in out
