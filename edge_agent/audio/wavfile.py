"""16 kHz mono 16-bit WAV files: what the gate, the file microphone, the tests and the benchmarks read and write.

Apart from `devices` so that `edge-agent gate FILE.wav` reads its file without importing the
device machinery (asyncio, threads): its start-up is part of its cost. The ffmpeg/sox command that
converts a recording is suggested only for a readable WAV in another format, not for an empty file
or one that is no WAV at all; a WAV cut short (its header promising more than the file holds) is
read as far as it goes, with a warning. A WAVE_FORMAT_EXTENSIBLE file of plain PCM (what sox,
Audacity and some recorders write) is read as the PCM it is, on Python 3.11 too, whose `wave`
refused it ("unknown format: 65534"; 3.12's reads it).
"""

from __future__ import annotations

import logging
import struct
import sys
import wave
from pathlib import Path

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.errors import AudioError

log = logging.getLogger(__name__)


WAVE_FORMAT_EXTENSIBLE = 0xFFFE
WAVE_FORMAT_PCM = 1
KSDATAFORMAT_SUBTYPE_PCM = bytes.fromhex("0100000000001000800000aa00389b71")
"""The sub-format GUID of integer PCM in a WAVE_FORMAT_EXTENSIBLE fmt chunk (its first two bytes
are the plain format tag, 1)."""


class _ExtensiblePcmRead(wave.Wave_read):
    """Python 3.11's `wave` reader, also taking WAVE_FORMAT_EXTENSIBLE whose sub-format is PCM, as
    3.12's does; every other format is the "unknown format" error `wave` gives, in its words."""

    def _read_fmt_chunk(self, chunk: object) -> None:
        head = chunk.read(16)  # type: ignore[attr-defined]  # wave's Chunk: tag, channels, rate, bytes/s, align, bits
        if len(head) < 14:
            raise EOFError
        tag, channels, rate = struct.unpack_from("<HHL", head)
        if tag == WAVE_FORMAT_EXTENSIBLE:
            ext = chunk.read(24)  # type: ignore[attr-defined]  # size, valid bits, speaker mask, sub-format
            if len(ext) < 24 or len(head) < 16:
                raise EOFError
            if ext[8:24] != KSDATAFORMAT_SUBTYPE_PCM:
                raise wave.Error(f"unknown format: {tag} with a sub-format that is not PCM")
        elif tag != WAVE_FORMAT_PCM:
            raise wave.Error(f"unknown format: {tag}")
        if len(head) < 16:
            raise EOFError
        self._sampwidth = (struct.unpack_from("<H", head, 14)[0] + 7) // 8
        if not self._sampwidth:
            raise wave.Error("bad sample width")
        if not channels:
            raise wave.Error("bad # of channels")
        self._nchannels, self._framerate = channels, rate
        self._framesize = channels * self._sampwidth
        self._comptype, self._compname = "NONE", "not compressed"


def _open(path: str) -> wave.Wave_read:
    return _ExtensiblePcmRead(path) if sys.version_info < (3, 12) else wave.open(path, "rb")


def open_wav_16k_mono(path: str | Path) -> wave.Wave_read:
    """An open 16 kHz mono 16-bit WAV; anything else is an AudioError naming the file."""
    try:
        w = _open(str(path))
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror or exc}") from None
    except RuntimeError:  # `wave` seeking past a chunk whose size runs beyond the file (3.11: a bare RuntimeError)
        raise AudioError(f"{path}: not a 16 kHz mono 16-bit PCM WAV (a chunk's size runs past the end of the file)") from None
    except (wave.Error, EOFError) as exc:  # empty, cut short, not a WAV, or float / compressed samples
        why = str(exc) or _why_cut(Path(path))
        if why.startswith("unknown"):  # `wave`'s "unknown format: 3": a WAV of float or compressed samples
            raise AudioError(f"{path}: not a 16 kHz mono 16-bit PCM WAV ({why}); {convert_hint(path)}") from None
        raise AudioError(f"{path}: not a 16 kHz mono 16-bit PCM WAV ({why})") from None
    if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE_HZ, 1, 2):
        w.close()
        raise AudioError(f"{path}: need 16 kHz mono 16-bit WAV, got {w.getframerate()} Hz, {w.getnchannels()} ch, {8 * w.getsampwidth()} bit; {convert_hint(path)}")
    return w


def _why_cut(path: Path) -> str:
    """Why a file `wave` found ended too soon is no WAV (its EOFError says nothing)."""
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        return "empty file"
    if not b"RIFF".startswith(head):
        return "file does not start with RIFF id"  # `wave`'s words for a longer one
    return "too short: the file ends inside its header"


def convert_hint(path: str | Path) -> str:
    """The command that turns any recording into what the gate and the file microphone read."""
    out = Path(path).with_suffix("").name + "-16k.wav"
    return f"convert it: ffmpeg -i {path} -ar 16000 -ac 1 -c:a pcm_s16le {out}  (or: sox {path} -r 16000 -c 1 -b 16 -e signed-integer {out})"


def read_wav_16k_mono(path: str | Path) -> bytes:
    """PCM frames of a 16 kHz mono 16-bit WAV; anything else is an AudioError naming the file."""
    w = open_wav_16k_mono(path)
    try:
        promised = w.getnframes()
        pcm = _read_frames(w, promised)
        pcm = pcm[: len(pcm) - len(pcm) % 2]  # a file cut at an odd byte: whole samples only (echo failed on the half)
        if len(pcm) < 2 * promised:  # cut short: a copy or a recording that stopped early
            log.warning("%s: the header promises %.2f s of audio, the file holds %.2f s (cut short?); going on with what it holds", path, promised / SAMPLE_RATE_HZ, len(pcm) / 2 / SAMPLE_RATE_HZ)
        return pcm
    except (OSError, wave.Error, EOFError) as exc:
        raise AudioError(f"cannot read {path}: {exc}") from None
    except MemoryError:  # a day's recording on a Pi: "unexpected error: MemoryError ... report it", exit 70
        hours = promised / SAMPLE_RATE_HZ / 3600
        raise AudioError(f"{path}: {hours:.1f} h of audio is more than this machine's memory holds; cut it into shorter recordings (sox {path} part.wav trim 0 3600 : newfile : restart)") from None
    finally:
        w.close()


READ_FRAMES = 1 << 20
"""Frames read at a time (2 MiB): a header promising 0xFFFFFFFF bytes had one read ask for a
4 GiB buffer before the file's end was found (MemoryError on a Pi), where the file held 2 s."""


def _read_frames(w: wave.Wave_read, promised: int) -> bytes:
    """Up to `promised` frames, as many as the file holds, READ_FRAMES at a time."""
    parts: list[bytes] = []
    left = promised
    while left > 0:
        part = w.readframes(min(left, READ_FRAMES))
        if not part:
            break
        parts.append(part)
        left -= len(part) // 2
    return b"".join(parts)


def write_wav_16k_mono(path: str | Path, pcm: bytes) -> Path:
    """Writes 16 kHz mono 16-bit PCM as a WAV file (recordings for tests, demo, soak)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE_HZ)
        w.writeframes(pcm)
    return Path(path)
