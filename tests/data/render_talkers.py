"""Renders tests/data/talkers.wav: other people's speech for the test rooms (babble, TV, a second voice).

Run once by hand (needs `espeak-ng`); the output is committed so tests do not depend on the
synthesizer's version. Ten synthetic talkers (espeak-ng voices with different variants, pitch and
speed) each read two sentences written for this project; `talkers.json` lists each talker's
stretch of the file and its speech intervals (found by energy on the clean rendering).

    .venv/bin/python tests/data/render_talkers.py
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 16000
TALKERS = [
    ("en-us+m3", 45, 165, "Could you tell me where the ticket office is? I think we are meant to meet our group by the stairs."),
    ("en-gb+f2", 60, 150, "The coffee machine on the second floor has been broken since Monday. Somebody should really call maintenance."),
    ("en-gb-x-rp+m1", 35, 175, "We parked on the north side, near the big fountain. It took us almost an hour to get here this morning."),
    ("en-us+f4", 70, 160, "Did you see the paintings in the east wing? My daughter loved the one with the horses and the storm."),
    ("en-gb-scotland+m7", 40, 140, "I will wait for you at the entrance after lunch. Bring the umbrella, it looks like rain again."),
    ("en-029+f1", 55, 180, "Excuse me, is this the queue for the audio guides? They told us to ask at the information desk."),
    ("en-us-nyc+m5", 30, 155, "The meeting moved to three o'clock, so we have a little time. Let us find somewhere quiet to sit down."),
    ("en-gb-x-gbclan+f3", 65, 170, "My phone is nearly out of battery. Is there a socket anywhere around here where I could charge it?"),
    ("en+m2", 50, 145, "Last year the exhibition was much smaller, only two rooms. Now it fills the whole building and the garden."),
    ("en-gb-x-gbcwmd+f5", 75, 165, "Please keep an eye on the children while I buy the tickets. I will only be a few minutes, I promise."),
]


def render(voice: str, pitch: int, speed: int, text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            rate, x = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    n = int(len(x) * RATE / rate)
    return np.interp(np.arange(n) * rate / RATE, np.arange(len(x)), x)  # espeak-ng speaks at 22.05 kHz


def speech_intervals(x: np.ndarray, offset_s: float) -> list[list[float]]:
    hop = RATE // 100
    level = np.array([np.sqrt(np.mean(x[i : i + hop] ** 2)) for i in range(0, len(x) - hop, hop)])
    on = level > level.max() * 10 ** (-40 / 20)
    out: list[list[float]] = []
    for i, v in enumerate(on):
        t = offset_s + i * hop / RATE
        if v and (not out or t - out[-1][1] > 0.15):
            out.append([round(t, 3), round(t + 0.01, 3)])
        elif v:
            out[-1][1] = round(t + 0.01, 3)
    return out


def main() -> None:
    parts, meta, t = [], [], 0.0
    for voice, pitch, speed, text in TALKERS:
        x = render(voice, pitch, speed, text)
        x *= 0.3 * 32767 / np.abs(x).max()
        meta.append({"voice": voice, "pitch": pitch, "speed": speed, "start": round(t, 3), "end": round(t + len(x) / RATE, 3), "speech": speech_intervals(x, t)})
        parts.append(x)
        t += len(x) / RATE
    pcm = np.concatenate(parts).astype(np.int16)
    with wave.open(str(HERE / "talkers.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    made = "espeak-ng " + subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.split()[3]
    (HERE / "talkers.json").write_text(json.dumps({"sample_rate": RATE, "made_with": made, "talkers": meta}, indent=1) + "\n")


if __name__ == "__main__":
    main()
