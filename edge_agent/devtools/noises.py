"""Seeded synthetic room sounds for the gate's test rooms (see rooms.py): each function returns
float64 samples at 16 kHz, scaled to unit RMS unless said otherwise, from a numpy Generator.

Kinds: stationary (white, pink, brown, mains hum), fluctuating (a fan swinging ±6 dB, HVAC,
passing traffic), music (chords, a melody and a beat), impulsive events (knocks, a door, footsteps,
a dropped tray), steady tones (a buzz, a whine: `steady_tone`), a synthetic room impulse
response for reverberation, and the frequency responses of microphones (`microphone`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RATE = 16000


def unit(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x))))
    return x / rms if rms > 0 else x


def colored(rng: np.random.Generator, n: int, exponent: float, lo_hz: float = 20.0, hi_hz: float = 8000.0) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), band-limited to lo..hi Hz."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / RATE)
    shape = np.maximum(f, lo_hz) ** (-exponent / 2.0)
    shape[(f < lo_hz * 0.5) | (f > hi_hz)] = 0.0
    return unit(np.fft.irfft(spec * shape, n))


def lowpass(x: np.ndarray, hi_hz: float, lo_hz: float = 0.0) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / RATE)
    spec[(f > hi_hz) | (f < lo_hz)] = 0.0
    return np.fft.irfft(spec, len(x))


MICROPHONES = ("flat", "dull", "cheap")
"""Microphone responses `microphone` applies: "flat" (as recorded), "dull" (a capsule behind cloth
or a grille: second-order low-pass at 1.5 kHz, so -12 dB per octave above it) and "cheap" (a small
USB microphone: second-order high-pass at 250 Hz, fourth-order low-pass at 3.6 kHz, a +6 dB
presence peak at 2.5 kHz)."""


def microphone_gain(kind: str, f_hz: np.ndarray) -> np.ndarray:
    """The magnitude response of microphone `kind` (MICROPHONES) at the frequencies `f_hz`."""
    f = np.asarray(f_hz, dtype=np.float64)
    if kind == "flat":
        return np.ones_like(f)
    if kind == "dull":
        return np.asarray(1.0 / np.sqrt(1.0 + (f / 1500.0) ** 4))
    if kind == "cheap":
        highpass = (f / 250.0) ** 2 / np.sqrt(1.0 + (f / 250.0) ** 4)
        lowpass = 1.0 / np.sqrt(1.0 + (f / 3600.0) ** 8)
        octaves = np.log2(np.maximum(f, 1.0) / 2500.0)
        return np.asarray(highpass * lowpass * (1.0 + np.exp(-(octaves**2) / 0.18)))
    raise ValueError(f"unknown microphone {kind!r}; one of {', '.join(MICROPHONES)}")


def microphone(x: np.ndarray, kind: str) -> np.ndarray:
    """`x` as microphone `kind` hears it (zero-phase, by FFT over the whole signal)."""
    if kind == "flat":
        return x
    return np.fft.irfft(np.fft.rfft(x) * microphone_gain(kind, np.fft.rfftfreq(len(x), 1.0 / RATE)), len(x))


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Linear convolution by FFT, cut to len(x)."""
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: len(x)]


def room_response(rng: np.random.Generator, rt60_s: float, direct_to_reverb_db: float) -> np.ndarray:
    """A synthetic impulse response: the direct path, then exponentially decaying noise (-60 dB at rt60_s)."""
    n = int(rt60_s * 1.2 * RATE)
    t = np.arange(n) / RATE
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60_s)
    tail[: int(0.003 * RATE)] = 0.0  # first reflections arrive a few ms after the direct sound
    tail = lowpass(tail, 6000.0)
    tail *= 10 ** (-direct_to_reverb_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] += 1.0
    return tail


def hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics, slowly beating) over a little pink noise."""
    t = np.arange(n) / RATE
    f0 = float(rng.choice([50.0, 60.0]))
    x = sum((0.7**k) * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6.3)) for k in range(7))
    x = np.asarray(x) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    return unit(unit(x) + 0.2 * colored(rng, n, 1.0))


def steady_tone(rng: np.random.Generator, n: int, f0_hz: float, harmonics: int) -> np.ndarray:
    """A tone that never changes, `harmonics` partials of `f0_hz` falling as 1/sqrt(k), over a
    little white noise: a ballast's or transformer's buzz (120 Hz, 33 partials up to 4 kHz) or a
    whine (1 kHz, 3 partials). Steady like music's held notes, but it never moves on."""
    t = np.arange(n) / RATE
    x = np.asarray(sum(np.sin(2 * np.pi * f0_hz * k * t + rng.uniform(0, 6.3)) / np.sqrt(k) for k in range(1, harmonics + 1)))
    return unit(unit(x) + 0.05 * rng.standard_normal(n))


def fan(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pink noise whose level swings ±6 dB at 0.2-1.5 Hz (two slow oscillations), with a faint blade tone."""
    t = np.arange(n) / RATE
    f1, f2 = rng.uniform(0.2, 1.5, 2)
    swing = 0.6 * np.sin(2 * np.pi * f1 * t + rng.uniform(0, 6.3)) + 0.4 * np.sin(2 * np.pi * f2 * t + rng.uniform(0, 6.3))
    blade = 0.05 * np.sin(2 * np.pi * rng.uniform(80, 160) * t)
    return unit((colored(rng, n, 1.0) + blade) * 10 ** (6.0 * swing / 20))


def hvac(rng: np.random.Generator, n: int) -> np.ndarray:
    """Air handling: brownish rumble plus airy hiss, a motor tone with harmonics, a slow ±3 dB drift."""
    t = np.arange(n) / RATE
    motor_hz = rng.uniform(90, 200)
    motor = sum(0.5**k * np.sin(2 * np.pi * motor_hz * (k + 1) * t) for k in range(4))
    x = colored(rng, n, 1.6) + 0.4 * colored(rng, n, 0.5, lo_hz=400) + 0.15 * unit(np.asarray(motor))
    drift = 3.0 * np.sin(2 * np.pi * rng.uniform(0.03, 0.12) * t + rng.uniform(0, 6.3))
    return unit(x * 10 ** (drift / 20))


def traffic(rng: np.random.Generator, n: int) -> np.ndarray:
    """A street through a window: low rumble, and vehicles passing every few seconds (+6..+15 dB swells)."""
    t = np.arange(n) / RATE
    level = np.ones(n)
    at = rng.uniform(0, 4)
    while at < n / RATE:
        width, gain = rng.uniform(1.0, 3.0), 10 ** (rng.uniform(6, 15) / 20)
        level += (gain - 1) * np.exp(-0.5 * ((t - at) / (width / 2.5)) ** 2)
        at += rng.uniform(3, 9)
    tyres = colored(rng, n, 1.0, lo_hz=300, hi_hz=4000)
    return unit((colored(rng, n, 2.0) + 0.5 * tyres) * level)


def _tone(freq_hz: float, dur_s: float, harmonics: int, decay_s: float, vibrato: float = 0.0) -> np.ndarray:
    t = np.arange(int(dur_s * RATE)) / RATE
    phase = 2 * np.pi * freq_hz * (t + vibrato * np.sin(2 * np.pi * 5.5 * t) / (2 * np.pi * 5.5))
    x = sum((0.6**k) * np.sin((k + 1) * phase) for k in range(harmonics))
    env = np.minimum(1.0, t / 0.01) * np.exp(-t / decay_s) * np.minimum(1.0, (dur_s - t) / 0.02)
    return np.asarray(np.asarray(x) * env)


def place(out: np.ndarray, x: np.ndarray, at: int, gain: float = 1.0) -> None:
    """Adds `x` times `gain` into `out` from sample `at` on, cut at `out`'s end (a sound laid into a room)."""
    if at >= len(out):
        return
    m = min(len(x), len(out) - at)
    out[at : at + m] += gain * x[:m]


def music(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pop-like music: a chord per bar (I-V-vi-IV in a random key), a melody, kick, snare, hi-hat."""
    bpm = rng.uniform(80, 140)
    beat = int(60.0 / bpm * RATE)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    scale = [0, 2, 4, 5, 7, 9, 11, 12, 14, 16]
    progression = [[0, 4, 7], [7, 11, 14], [9, 12, 16], [5, 9, 12]]
    chords, melody, drums = np.zeros(n), np.zeros(n), np.zeros(n)
    kick = _tone(55.0, 0.25, 1, 0.08) * 3
    snare = lowpass(rng.standard_normal(int(0.2 * RATE)), 6000, 200) * np.exp(-np.arange(int(0.2 * RATE)) / (0.05 * RATE))
    hat = lowpass(rng.standard_normal(int(0.05 * RATE)), 8000, 5000) * np.exp(-np.arange(int(0.05 * RATE)) / (0.01 * RATE))
    for b, at in enumerate(range(0, n, beat)):
        if b % 4 == 0:
            for semi in progression[(b // 4) % 4]:
                place(chords, _tone(root * 2 ** (semi / 12), 4 * beat / RATE, 6, 1.5), at, 0.5)
        place(drums, kick if b % 2 == 0 else snare, at)
        place(drums, hat, at + beat // 2, 0.5)
        for half in range(2):
            if rng.random() < 0.7:
                semi = scale[int(rng.integers(0, len(scale)))] + 12
                place(melody, _tone(root * 2 ** (semi / 12), beat / 2 / RATE, 5, 0.4, vibrato=0.01), at + half * beat // 2)
    return unit(unit(chords) + 0.8 * unit(melody) + 0.7 * unit(drums))


def tray(rng: np.random.Generator) -> np.ndarray:
    """A metal tray dropped on a hard floor: a 10 ms clatter, then six inharmonic partials
    (400-3500 Hz) ringing out in 0.1-0.3 s each and beating against each other; peak 1.0."""
    t = np.arange(int(0.9 * RATE)) / RATE
    partials = rng.uniform(400, 3500, 6)
    ring = sum(np.sin(2 * np.pi * f * t) * np.exp(-t / rng.uniform(0.1, 0.3)) for f in partials)
    ring = np.asarray(ring) + rng.standard_normal(len(t)) * np.exp(-t / 0.01)
    return np.asarray(ring / np.abs(ring).max())


def footstep(rng: np.random.Generator) -> np.ndarray:
    """A heel on a hard floor: 80 ms of noise under 1500 Hz dying in 15 ms; peak 1.0."""
    m = int(0.08 * RATE)
    step = lowpass(rng.standard_normal(m), 1500, 60) * np.exp(-np.arange(m) / (0.015 * RATE))
    return np.asarray(step / np.abs(step).max())


def struck_in_quiet(rng: np.random.Generator, n: int, strike: Callable[[np.random.Generator], np.ndarray], starts: list[int], peak: float) -> np.ndarray:
    """No one talking: a quiet pink bed (RMS 60 on int16's scale) over `n` samples, and
    `strike(rng)` (peak 1.0: a knock, a tray) scaled to `peak` at each sample offset in `starts`."""
    out = colored(rng, n, 1.0) * 60.0
    for at in starts:
        place(out, strike(rng) * peak, at)
    return out


def impulses(rng: np.random.Generator, n: int) -> np.ndarray:
    """Knocks, door slams, footsteps and a dropped tray every 1.5-4 s; peak 1.0 (not unit RMS)."""
    out = np.zeros(n)
    at = int(rng.uniform(0.5, 2.0) * RATE)
    while at < n:
        kind = rng.choice(["knock", "door", "steps", "tray"], p=[0.4, 0.2, 0.25, 0.15])
        if kind == "knock":  # two or three raps on wood: short resonant bursts
            for k in range(int(rng.integers(2, 4))):
                m = int(0.06 * RATE)
                burst = lowpass(rng.standard_normal(m), 2500, 80) * np.exp(-np.arange(m) / (0.008 * RATE))
                place(out, burst / np.abs(burst).max(), at + k * int(0.18 * RATE))
        elif kind == "door":  # a low thud and a rattle
            m = int(0.4 * RATE)
            thud = _tone(rng.uniform(60, 110), 0.4, 2, 0.08) + lowpass(rng.standard_normal(m), 4000, 200) * np.exp(-np.arange(m) / (0.04 * RATE)) * 0.5
            place(out, thud / np.abs(thud).max(), at)
        elif kind == "steps":  # four to six footsteps at ~2 per second
            for k in range(int(rng.integers(4, 7))):
                step = footstep(rng)
                place(out, 0.5 * step, at + k * int(rng.uniform(0.45, 0.6) * RATE))
        else:
            place(out, tray(rng), at)
        at += int(rng.uniform(1.5, 4.0) * RATE)
    return out
