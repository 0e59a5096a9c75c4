"""16 kHz mono 16-bit WAV files: what the gate, the file microphone, the tests and the benchmarks read and write.

Apart from `devices` so that `edge-agent gate FILE.wav` reads its file without importing the
device machinery (asyncio, threads): its start-up is part of its cost.
"""

from __future__ import annotations

import wave
from pathlib import Path

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.errors import AudioError


def open_wav_16k_mono(path: str | Path) -> wave.Wave_read:
    """An open 16 kHz mono 16-bit WAV; anything else is an AudioError naming the file."""
    try:
        w = wave.open(str(path), "rb")  # noqa: SIM115 - the caller owns it
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (wave.Error, EOFError) as exc:  # empty, cut short, not a WAV, or float / compressed samples
        why = str(exc) or ("empty file" if Path(path).stat().st_size == 0 else "too short: the file ends inside its header")
        raise AudioError(f"{path}: not a 16 kHz mono 16-bit PCM WAV ({why}); {convert_hint(path)}") from None
    if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE_HZ, 1, 2):
        w.close()
        raise AudioError(f"{path}: need 16 kHz mono 16-bit WAV, got {w.getframerate()} Hz, {w.getnchannels()} ch, {8 * w.getsampwidth()} bit; {convert_hint(path)}")
    return w


def convert_hint(path: str | Path) -> str:
    """The command that turns any recording into what the gate and the file microphone read."""
    out = Path(path).with_suffix("").name + "-16k.wav"
    return f"convert it: ffmpeg -i {path} -ar 16000 -ac 1 -c:a pcm_s16le {out}  (or: sox {path} -r 16000 -c 1 -b 16 -e signed-integer {out})"


def read_wav_16k_mono(path: str | Path) -> bytes:
    """PCM frames of a 16 kHz mono 16-bit WAV; anything else is an AudioError naming the file."""
    w = open_wav_16k_mono(path)
    try:
        return w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise AudioError(f"cannot read {path}: {exc}") from None
    finally:
        w.close()


def write_wav_16k_mono(path: str | Path, pcm: bytes) -> Path:
    """Writes 16 kHz mono 16-bit PCM as a WAV file (recordings for tests, demo, soak)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE_HZ)
        w.writeframes(pcm)
    return Path(path)
