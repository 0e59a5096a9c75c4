"""Half duplex keeps the agent from hearing itself; full duplex lets the visitor barge in.

In the quiet recording the visitor speaks again (11.4-13.9 s) while the agent's reply to the
first utterance is playing, which is exactly the overlap these modes differ on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, KioskThread, kiosk_settings, read_wav, wait_for

from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.service.daemon import Kiosk

CLIP_S = 16.0


def _run(tmp_path: Path, sim: AgentSimulator, duplex: str) -> tuple[Kiosk, bytes]:
    recording = read_wav(DATA / "kiosk_dev_quiet.wav")[: int(CLIP_S * 32000)]
    settings = kiosk_settings(tmp_path, sim.url, recording, audio={"output": f"file:{tmp_path / 'out.wav'}", "duplex": duplex, "earcons": False})
    with KioskThread(settings) as k:
        k.press()
        wait_for(lambda: sim.sessions and sim.sessions[0].turns >= 1, 20, "the first reply")
        wait_for(lambda: k.kiosk.source.frames_captured * 0.03 >= CLIP_S, 20, "the clip to play")
    return k.kiosk, recording


def _sent_utterance_frames(uplink: bytes, recording: bytes, start_s: float, end_s: float) -> int:
    frames = {recording[i : i + 960] for i in range(int(start_s * 16000) * 2 // 960 * 960, int(end_s * 32000), 960)}
    return sum(uplink[o : o + 960] in frames for o in range(0, len(uplink) - 959, 960))


def test_half_duplex_sends_silence_while_the_agent_speaks(tmp_path: Path, sim: AgentSimulator) -> None:
    _kiosk, recording = _run(tmp_path, sim, "half")
    session = sim.sessions[0]
    assert _sent_utterance_frames(bytes(session.uplink), recording, 11.4, 13.9) == 0
    assert session.barge_ins == 0
    assert _sent_utterance_frames(bytes(session.uplink), recording, 2.2, 8.79) > 150  # the first one went up


def test_full_duplex_lets_the_visitor_barge_in_and_clear_stops_playback(tmp_path: Path, sim: AgentSimulator) -> None:
    kiosk, recording = _run(tmp_path, sim, "full")
    session = sim.sessions[0]
    assert _sent_utterance_frames(bytes(session.uplink), recording, 11.4, 13.9) > 50
    assert session.barge_ins >= 1 and "clear" in session.sent
    # the reply (5 s of speech + tone) was cut short on the speaker
    played = np.frombuffer(read_wav(tmp_path / "out.wav"), dtype=np.int16)
    assert 0 < len(played) / 16000 < 5.0
    assert kiosk.sink.buffer.cleared_at is not None


@pytest.mark.parametrize("name", ["press", "ready", "ended", "reconnecting", "error"])
def test_earcons_are_short_and_quiet_enough(name: str) -> None:
    from edge_agent.audio.earcons import Earcons, render

    pcm = np.frombuffer(render(name, 0.3), dtype=np.int16)
    assert 0.05 <= len(pcm) / 16000 <= 0.5
    assert 0.25 * 32767 <= np.abs(pcm).max() <= 0.31 * 32767
    assert abs(int(pcm[0])) < 200 and abs(int(pcm[-1])) < 200  # faded: no click
    assert Earcons(False, 0.3).get(name) == b"" and Earcons(True, 0.0).get(name) == b""
