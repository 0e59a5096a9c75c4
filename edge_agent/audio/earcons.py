"""Earcons: short cues generated in code (no asset files), played through the agent's speaker,
and `EarconRemover`, which takes them back out of what the microphone hears.

press: the press was heard; ready: the agent is listening; ended: the conversation is over;
reconnecting: the network dropped and we are getting the conversation back; error: it failed.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from edge_agent import SAMPLE_RATE_HZ

# name -> sequence of (frequency Hz, duration ms); 0 Hz is a pause
_SHAPES: dict[str, tuple[tuple[float, int], ...]] = {
    "press": ((880.0, 60),),
    "ready": ((660.0, 70), (0.0, 20), (990.0, 90)),
    "ended": ((990.0, 70), (0.0, 20), (660.0, 110)),
    "reconnecting": ((520.0, 60), (0.0, 60), (520.0, 60)),
    "error": ((220.0, 150), (0.0, 60), (220.0, 150)),
}
NAMES = tuple(_SHAPES)


def render(name: str, volume: float) -> bytes:
    """16 kHz mono int16 PCM for earcon `name` at `volume` (0..1), with 5 ms fades (no clicks)."""
    parts = []
    fade = SAMPLE_RATE_HZ * 5 // 1000
    for freq, ms in _SHAPES[name]:
        n = SAMPLE_RATE_HZ * ms // 1000
        if freq <= 0:
            parts.append(np.zeros(n, np.float32))
            continue
        wave = np.sin(2 * np.pi * freq * np.arange(n) / SAMPLE_RATE_HZ).astype(np.float32)
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
        parts.append(wave)
    pcm = np.concatenate(parts) * (volume * 32767.0)
    return bytes(np.clip(pcm, -32768, 32767).astype("<i2").tobytes())


class Earcons:
    """Pre-rendered earcons; `get` returns b"" when earcons are off or the name is unknown."""

    def __init__(self, enabled: bool, volume: float) -> None:
        self._pcm = {name: render(name, volume) for name in NAMES} if enabled and volume > 0 else {}

    def get(self, name: str) -> bytes:
        return self._pcm.get(name, b"")


REMOVED_HARMONICS = 3
"""Multiples of each earcon tone removed (a small speaker driven hard adds odd ones, a buzzing
enclosure even ones); the 4th measured no better in the simulated rooms."""
REMOVAL_BLOCK = 160
"""Samples per least-squares fit (10 ms): short enough that a tone's level (its start, its fade,
the room's build-up and decay) is nearly a straight line within one, long enough that the fit
takes little of the speech (four degrees of freedom per frequency out of 160)."""
REMOVAL_TAIL_S = 0.5
"""How long after an earcon ends its echo may still reach the mic (echo.CUE_TAIL_S: the path's
delay the timestamps do not see, plus the room's reverberation)."""
RINGING_AFTER_S = 0.3
"""From this long after the earcons heard ended, up to RINGING_TAIL_S, what the mic hears of them
is their reverberation: a frame the earcons' tones hold TONE_SHARE of is the kiosk's own sound
whatever is left once they are taken out (a hall's tail, RT60 0.6-1 s, leaves the tone's switch-off
smeared over every band at -10 to -13 dB: over SPEECH_OVER_TONE_DB, it opened the gate after a
silent press, tests/test_earcons_review.py). Speech alone never holds that share of a frame, so
the visitor's words pass as before; under a dominant tail they join the gate's pre-roll."""
RINGING_TAIL_S = 2.0
"""How long after an earcon ends its reverberation is looked for (past REMOVAL_TAIL_S, only in
frames its tones dominate): a hall's tail, or a speaker whose buffering the timestamps miss,
outlasts REMOVAL_TAIL_S."""
TONE_SHARE = 0.7
"""A frame is cleaned only where the earcon's frequencies hold this share of its energy: the tone is
there and dominates. Speech alone never gave them more than 0.6 in the dev recordings (0.5 for
one earcon), so a frame the earcon is not heard in goes on byte for byte; a faint earcon under
louder speech goes on with it, as the pre-roll always sent it."""
SPEECH_OVER_TONE_DB = -16.0
"""A cleaned frame counts as the visitor's (the gate may decide on it) when it holds at least this
much energy against the tone taken out of it; under it, it is the earcon's leftover (its onsets,
the room's smearing) and stays the kiosk's own sound. In the simulated rooms (bench/earcon_rooms.py)
the leftover of a silent press reached -22 dB, so 6 dB of margin."""
ROOM_SAMPLE_EVERY = 32
"""Frames (about 1 s) between two samples of the room's own level, taken while no earcon is heard,
the gate is closed and the agent silent: one sum of squares a second, not one a frame."""
ROOM_SAMPLES = 8
"""Samples of the room's level kept; their median is the room (a visitor or a passer-by talking
in a few of them does not move it)."""
ROOM_MARGIN_DB = 3.0
"""A frame the earcons are heard in whose rest (once their tones are taken out) is no louder than
the room's level (ROOM_SAMPLES) plus this is their sound fading into the room, whatever share of it
the tones hold: the kiosk's own too (passed on as captured where the tones do not dominate it). A
hall's tail (RT60 1-1.4 s) fades into the room at tone shares of 0.5-0.65, under TONE_SHARE; those
frames, judged as the visitor's, opened the gate after a silent press (tests/test_earcons_review.py).
A frame of steady noise varies by ~0.3 dB, the tones' removal takes ~15 % of it, a visitor at arm's
length stands 10 dB and more over the room."""


class EarconRemover:
    """Takes the kiosk's own earcons out of captured frames, so that words said over one reach the
    gate and go up, without the tone (earcons are never sent).

    The tones are known (each earcon's frequencies and their first harmonics); their amplitude
    and phase at the microphone are not (the speaker, the room). Each 10 ms block is fitted by least
    squares with sin/cos at those frequencies under a linear envelope, and the fit is subtracted:
    a narrow notch at each frequency that follows the tone's level block by block, whatever the
    echo path's delay or gain. One precomputed orthonormal basis of those tones per set of earcons
    heard at once (160 x k, k <= 24 columns: 31 kB where the dense 160 x 160 projection took 205 kB).

    `played` is told when an earcon plays (the clock of the capture timestamps); `clean` then takes
    every frame from its start to REMOVAL_TAIL_S after its end. With `enabled` False it only tells
    which frames an earcon (or its echo) may be heard in: the gate withholds those whole, as it
    did before (then without the tail unless echo_cancel was on: the earcon's echo, later than the
    timestamps say, opened the gate after every silent press in the simulated rooms).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._windows: deque[tuple[float, float, str]] = deque(maxlen=16)  # (from, until, name); a dead mic cannot grow it
        self._bases: dict[frozenset[str], np.ndarray] = {}
        self._room: deque[float] = deque(maxlen=ROOM_SAMPLES)
        """Mean square per sample of a frame every ROOM_SAMPLE_EVERY frames no earcon was heard in."""
        self._unsampled = 0
        self._room_level: float | None = None
        """The median of `_room`, taken when a sample comes (not at every frame an earcon is heard in)."""
        self.ringing = False
        """The last frame `clean` marked is only the earcons' late reverberation (RINGING_AFTER_S on,
        past REMOVAL_TAIL_S): it must not open the gate, but does not close one the visitor holds
        open (their voice can hold an earcon's tones in that share: they go on talking)."""

    def played(self, name: str, from_t: float, until_t: float) -> None:
        """Earcon `name` plays from `from_t` to `until_t` (time.monotonic(), as frames are stamped)."""
        self._windows.append((from_t, until_t, name))

    def clean(self, frame: bytes, captured_at: float, frame_s: float, room: bool = True) -> tuple[bytes, bool]:
        """(`frame` without the earcons playing in it, whether what is left is still the kiosk's own
        sound rather than the visitor's: the gate must not decide on it). A frame no earcon plays
        in comes back as it is, with False. `room`: nobody is talking (the gate is closed, the
        agent silent), so a frame no earcon is heard in may be taken as a sample of the room."""
        self.ringing = False
        if not self._windows:  # the usual frame: nothing to do (but for a sample of the room now and then)
            return self._sample_room(frame) if room else frame, False
        first_at = captured_at - frame_s
        while self._windows and self._windows[0][1] + RINGING_TAIL_S < first_at:
            self._windows.popleft()
        heard = [(b, name) for a, b, name in self._windows if a < captured_at]
        if not heard:
            return self._sample_room(frame) if room else frame, False
        ringing = all(b + RINGING_AFTER_S <= first_at for b, _ in heard)  # only their reverberation is left
        in_window = any(first_at < b + REMOVAL_TAIL_S for b, _ in heard)
        if not self.enabled and in_window:
            return frame, True
        names = frozenset(name for b, name in heard if not in_window or first_at < b + REMOVAL_TAIL_S)
        x = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        if len(x) % REMOVAL_BLOCK:
            return frame, in_window
        # x less its projection Q Qᵀ x, block by block (Q orthonormal: the tones' space). einsum,
        # not a matrix product: BLAS would wake OpenBLAS worker threads (see audio/cues.py)
        blocks = x.reshape(-1, REMOVAL_BLOCK)
        q = self._basis(names)
        y = (blocks - np.einsum("ik,jk->ij", np.einsum("ij,jk->ik", blocks, q), q)).ravel()
        left = float(np.square(y).sum())
        tone = float(np.square(x).sum()) - left  # y is x less its projection: the energies add up
        if tone < TONE_SHARE * (tone + left):  # no tone to speak of: the frame goes on as captured
            fading = self._fading(tone, left, len(x), q.shape[1])  # unless it is the tones' tail
            self.ringing = fading and not in_window
            return frame, fading
        if not self.enabled or not in_window:  # their late reverberation, dominant: the kiosk's own
            self.ringing = not in_window  # sound, kept as captured (a visitor's words under it go on byte for byte)
            return frame, True
        cleaned = np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()
        return cleaned, ringing or self._fading(tone, left, len(x), q.shape[1]) or left < tone * 10.0 ** (SPEECH_OVER_TONE_DB / 10.0)

    def _sample_room(self, frame: bytes) -> bytes:
        """`frame` (no earcon heard in it), its level kept every ROOM_SAMPLE_EVERY frames."""
        self._unsampled -= 1
        if self._unsampled < 0:
            self._unsampled = ROOM_SAMPLE_EVERY - 1
            x = np.frombuffer(frame, dtype="<i2").astype(np.float64)
            if len(x):
                self._room.append(float(np.einsum("i,i->", x, x)) / len(x))
                self._room_level = sorted(self._room)[len(self._room) // 2]
        return frame

    def _fading(self, tone: float, left: float, samples: int, columns: int) -> bool:
        """The earcons fading into the room: what is left once their tones are taken out is no
        louder than the room was (ROOM_MARGIN_DB), and the tones are there: twice what the room's
        noise alone puts in their `columns` of REMOVAL_BLOCK dimensions, of the frame and of the
        room (a mean square of 1 added: a silent microphone hears no tone)."""
        if self._room_level is None:
            return False
        room = samples * self._room_level
        if tone < 2.0 * columns / REMOVAL_BLOCK * (tone + left) or tone < 2.0 * columns / REMOVAL_BLOCK * (room + samples):
            return False
        return left <= room * math.pow(10.0, ROOM_MARGIN_DB / 10.0)

    def _basis(self, names: frozenset[str]) -> np.ndarray:
        """Q (REMOVAL_BLOCK x k, orthonormal columns): Q Qᵀ is the projection onto the tones of
        `names` (and harmonics) under a linear envelope. Kept as Q, not as the dense I - Q Qᵀ
        (REMOVAL_BLOCK² float64 per set of earcons heard): the same projection in fewer bytes and
        fewer operations per block."""
        q = self._bases.get(names)
        if q is None:
            t = np.arange(REMOVAL_BLOCK) / SAMPLE_RATE_HZ
            ramp = np.linspace(-1.0, 1.0, REMOVAL_BLOCK)
            freqs = sorted({f * k for name in names for f, _ in _SHAPES[name] if f > 0 for k in range(1, REMOVED_HARMONICS + 1) if f * k < SAMPLE_RATE_HZ / 2 - 200})
            columns = [env * wave(2 * np.pi * f * t) for f in freqs for wave in (np.cos, np.sin) for env in (1.0, ramp)]
            q = self._bases[names] = orthonormal_columns(np.stack(columns, axis=1))
        return q


def orthonormal_columns(basis: np.ndarray, rank_tol: float = 1e-9) -> np.ndarray:
    """An orthonormal basis of `basis`'s column space (columns dependent on earlier ones dropped),
    so that Q Qᵀ is the projection onto it. Gram-Schmidt, each column orthogonalised twice, in
    einsum only: `np.linalg.pinv` gave the same projection but made OpenBLAS's LAPACK resident
    (~1.1 MB of the daemon's memory, for one small matrix per set of earcons)."""
    kept: list[np.ndarray] = []
    for col in basis.T:
        v = col.astype(np.float64, copy=True)
        norm0 = math.sqrt(float(np.einsum("i,i->", v, v)))
        for _ in range(2):
            for u in kept:
                v -= float(np.einsum("i,i->", u, v)) * u
        norm = math.sqrt(float(np.einsum("i,i->", v, v)))
        if norm > rank_tol * max(norm0, 1e-300):
            kept.append(v / norm)
    return np.stack(kept, axis=1) if kept else np.zeros((basis.shape[0], 0))
