"""The press and ready earcons in simulated rooms: do they open the gate, and does a visitor who
talks over them get through? `audio.earcon_removal` on (earcons taken out of the frames, the gate
decides on what is left) against off (frames an earcon plays in withheld from the gate whole).

Each case: the kiosk's speaker plays the press earcon at 3.0 s and the ready earcon when the link
is ready (80 or 250 ms later), through an echo path of devtools/echoroom.py (delay the timestamps do
not see, reverberation, speaker distortion, gain, room noise), at earcon_volume 0.3 (shipped) and
1.0 (devtools/echoscore.py `earcon_press`: frames go through `EarconRemover.clean` and the gate
as in the daemon, the gate told of the press: `vad.press_prior_ms`, shipped 500).
- idle: nobody speaks; frames the gate lets through in the 4 s from the press (goal 0).
- press -> gate opens: a visitor says 2 s of speech from the press (the dev recording, 2.2-4.2 s);
  from the press until the gate opens, on the frames' own clock (capture period not included).
- lost: ms of that speech not inside what the gate let through (pre-roll included).

    .venv/bin/python bench/earcon_rooms.py
"""

from __future__ import annotations

import sys
import wave
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent import SAMPLE_RATE_HZ as SR  # noqa: E402
from edge_agent.core.config_audio import VadSettings  # noqa: E402
from edge_agent.devtools.echoroom import EchoPath  # noqa: E402
from edge_agent.devtools.echoscore import earcon_press  # noqa: E402

GATE = VadSettings(engine="cues", aggressiveness=2, preroll_ms=500, hangover_ms=600, min_speech_ms=90, press_prior_ms=500)
PATHS = [EchoPath(delay_ms=45, rt60_s=0.25, gain=0.5, seed=s) for s in range(3)]
PATHS += [EchoPath(delay_ms=150, rt60_s=0.6, gain=0.9, reverb=0.2, seed=s) for s in range(3)]
PATHS += [EchoPath(delay_ms=80, rt60_s=0.4, gain=0.7, reverb=0.1, noise_rms=60.0, seed=s) for s in range(3)]
"""A speaker close to the mic in an ordinary room, a loud one in a hall, one in a noisier lobby."""


def speech_clip() -> bytes:
    with wave.open(str(REPO / "tests" / "data" / "kiosk_dev_quiet.wav")) as w:
        pcm = w.readframes(w.getnframes())
    return pcm[2 * int(2.2 * SR) : 2 * int(4.2 * SR)]


def run(removal: bool, gate_settings: VadSettings = GATE) -> dict[str, Any]:
    speech = speech_clip()
    idle, opens, lost = [], [], []
    for path in PATHS:
        for volume in (0.3, 1.0):
            for connect_s in (0.08, 0.25):
                idle.append(earcon_press(path, gate_settings, volume, connect_s, removal).frames_sent)
                heard = earcon_press(path, gate_settings, volume, connect_s, removal, speech)
                opens.append(heard.opened_s if heard.opened_s is not None else float("inf"))
                lost.append(heard.lost_ms)
    s = sorted(opens)
    return {
        "presses": len(idle),
        "idle_frames_sent": sum(idle),
        "silent_presses_that_sent": sum(1 for x in idle if x),
        "press_to_gate_open_ms_p50": round(1000 * s[len(s) // 2]),
        "press_to_gate_open_ms_p95": round(1000 * s[min(len(s) - 1, int(0.95 * len(s)))]),
        "speech_lost_ms_max": max(lost),
    }


def main() -> int:
    for removal in (False, True):
        print(f"earcon_removal={str(removal).lower()}: {run(removal)}")
    print(f"earcon_removal=true, press_prior_ms=0: {run(True, replace(GATE, press_prior_ms=0))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
