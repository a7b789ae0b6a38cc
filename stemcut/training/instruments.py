"""Instrument rendering: sampled (SoundFont via ``tinysoundfont``) or a built-in numpy synth.

Both renderers turn a list of :class:`~stemcut.training.composer.Note` into ``[2, T]``
float32 at 44.1 kHz. The built-in synth needs no assets (used when no SoundFont is
given, e.g. in tests); the SoundFont path gives far more realistic timbres.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemcut.training.composer import CLAP, CRASH, HAT, HAT_OPEN, KICK, PEDAL_HAT, RIDE, RIM, SNARE, Note
from stemcut.training.effects import apply_filters, biquad, pan
from stemcut.training.targets import SAMPLE_RATE

SOUNDFONT_ENV = "STEMCUT_SOUNDFONT"
DEFAULT_SOUNDFONTS = ("/usr/share/sounds/sf3/FluidR3Mono_GM.sf3", "/usr/share/sounds/sf2/FluidR3_GM.sf2")


@dataclass(frozen=True)
class Instrument:
    """A GM program (bank/preset; drums use bank 128) plus the family the built-in synth plays."""

    name: str
    program: int
    family: str  # drums, bass, guitar, keys, pad, lead, brass, strings, choir
    bank: int = 0

    @property
    def is_drums(self) -> bool:
        return self.family == "drums"


def find_soundfont(path: str | os.PathLike | None = None) -> Path | None:
    """The SoundFont to use: ``path``, else ``$STEMCUT_SOUNDFONT``, else a Debian default, else None."""
    for candidate in (path, os.environ.get(SOUNDFONT_ENV), *DEFAULT_SOUNDFONTS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    if path:
        raise FileNotFoundError(f"SoundFont not found: {path}")
    return None


def soundfont_renderer_available() -> bool:
    """True when ``tinysoundfont`` is importable (install it with ``pip install --no-deps tinysoundfont``)."""
    import importlib.util

    return importlib.util.find_spec("tinysoundfont") is not None


def load_soundfont(soundfont: Path):
    """A ``tinysoundfont`` synth at the training rate with ``soundfont`` loaded: (synth, soundfont id)."""
    try:
        import tinysoundfont  # imported here so the built-in path needs nothing
    except ImportError as error:  # its wheel declares pyaudio (playback only), hence --no-deps
        raise ImportError("SoundFont rendering needs tinysoundfont: pip install --no-deps tinysoundfont") from error
    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    return synth, synth.sfload(str(soundfont))


class SoundfontRenderer:
    """Renders parts with a SoundFont through ``tinysoundfont`` (one synth per process)."""

    def __init__(self, soundfont: Path) -> None:
        self.path = Path(soundfont)
        self._synth, self._sfid = load_soundfont(self.path)

    def has_program(self, bank: int, program: int) -> bool:
        return bool(self._synth.sfpreset_name(self._sfid, bank, program))

    def render(self, notes: list[Note], instrument: Instrument, n_samples: int) -> np.ndarray:
        channel = 9 if instrument.is_drums else 0
        self._synth.sounds_off()
        self._synth.program_select(channel, self._sfid, instrument.bank, instrument.program, instrument.is_drums)
        events = sorted([(int(n.start * SAMPLE_RATE), 1, n.pitch, n.velocity) for n in notes]
                        + [(int((n.start + n.duration) * SAMPLE_RATE), 0, n.pitch, 0) for n in notes])
        out = np.zeros((n_samples, 2), np.float32)
        position = 0
        for sample, is_on, pitch, velocity in events:
            sample = min(max(sample, 0), n_samples)
            if sample > position:
                out[position:sample] = np.frombuffer(self._synth.generate(sample - position), np.float32).reshape(-1, 2)
                position = sample
            if is_on:
                self._synth.noteon(channel, pitch, velocity)
            else:
                self._synth.noteoff(channel, pitch)
        if position < n_samples:
            out[position:] = np.frombuffer(self._synth.generate(n_samples - position), np.float32).reshape(-1, 2)
        self._synth.sounds_off()
        return np.ascontiguousarray(out.T)


class BuiltinRenderer:
    """Asset-free numpy synth: additive/subtractive voices, Karplus-Strong guitar, synthetic drums.

    Deterministic: all noise comes from a generator seeded by ``seed`` at each render.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def render(self, notes: list[Note], instrument: Instrument, n_samples: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, instrument.program, instrument.bank, len(notes)])
        mono = np.zeros(n_samples + SAMPLE_RATE * 2, np.float32)
        voice = _drum_hit if instrument.is_drums else _VOICES[instrument.family]
        for note in notes:
            start = int(note.start * SAMPLE_RATE)
            if start >= n_samples:
                continue
            sound = voice(note, rng)[: mono.shape[0] - start]
            mono[start : start + sound.shape[0]] += sound * (note.velocity / 127) ** 1.5
        mono = mono[:n_samples]
        if instrument.family in ("pad", "brass", "strings", "bass", "lead"):
            mono = apply_filters(mono, [biquad("lowpass", 1500 + 4000 * rng.random(), 0.9)])
        return pan(mono, float(rng.uniform(-0.3, 0.3)))


def _hz(pitch: int) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def _envelope(length: int, attack: float, release: float, decay: float | None = None) -> np.ndarray:
    t = np.arange(length) / SAMPLE_RATE
    env = np.minimum(1.0, t / max(attack, 1e-3))
    if decay is not None:
        env *= np.exp(-t / decay)
    tail = min(int(release * SAMPLE_RATE), length)
    if tail:
        env[-tail:] *= np.linspace(1, 0, tail)
    return env


def _harmonics(freq: float, length: int, weights: list[float], detune_cents: float = 0.0) -> np.ndarray:
    t = np.arange(length) / SAMPLE_RATE
    out = np.zeros(length)
    for k, weight in enumerate(weights, start=1):
        if k * freq >= 0.45 * SAMPLE_RATE:
            break
        for cents in ((0.0,) if detune_cents == 0 else (-detune_cents, detune_cents)):
            out += weight * np.sin(2 * math.pi * k * freq * 2 ** (cents / 1200) * t)
    return out


def _saw_weights(n: int) -> list[float]:
    return [1 / k for k in range(1, n + 1)]


def _keys(note: Note, rng: np.random.Generator) -> np.ndarray:
    length = int((note.duration + 0.3) * SAMPLE_RATE)
    weights = [1, 0.5, 0.3, 0.2, 0.12, 0.08, 0.05, 0.03]
    return (0.3 * _harmonics(_hz(note.pitch), length, weights) * _envelope(length, 0.003, 0.25, 0.8)).astype(np.float32)


def _pad(note: Note, rng: np.random.Generator) -> np.ndarray:
    length = int((note.duration + 0.5) * SAMPLE_RATE)
    return (0.12 * _harmonics(_hz(note.pitch), length, _saw_weights(12), 7) * _envelope(length, 0.4, 0.5)).astype(
        np.float32)


def _brass(note: Note, rng: np.random.Generator) -> np.ndarray:
    length = int((note.duration + 0.1) * SAMPLE_RATE)
    return (0.2 * _harmonics(_hz(note.pitch), length, _saw_weights(16)) * _envelope(length, 0.04, 0.08)).astype(
        np.float32)


def _lead(note: Note, rng: np.random.Generator) -> np.ndarray:
    length = int((note.duration + 0.05) * SAMPLE_RATE)
    square = [1 / k if k % 2 else 0.0 for k in range(1, 16)]
    return (0.2 * _harmonics(_hz(note.pitch), length, square) * _envelope(length, 0.01, 0.05)).astype(np.float32)


def _bass(note: Note, rng: np.random.Generator) -> np.ndarray:
    length = int((note.duration + 0.05) * SAMPLE_RATE)
    weights = [1, 0.6, 0.35, 0.2, 0.12, 0.06]
    return (0.5 * _harmonics(_hz(note.pitch), length, weights) * _envelope(length, 0.005, 0.04, 1.2)).astype(
        np.float32)


def _pluck(note: Note, rng: np.random.Generator) -> np.ndarray:
    """Karplus-Strong string, vectorised one period at a time (each period only needs the previous one)."""
    period = max(2, int(round(SAMPLE_RATE / _hz(note.pitch))))
    length = int((note.duration + 0.15) * SAMPLE_RATE)
    periods = -(-length // period)
    out = np.empty((periods, period))
    out[0] = rng.uniform(-1, 1, period)
    out[0] = np.convolve(out[0], [0.5, 0.5], mode="same")  # soften the pick
    damping = 0.996 - 0.002 * rng.random()
    for i in range(1, periods):
        previous = out[i - 1]
        out[i] = damping * 0.5 * (previous + np.roll(previous, 1))
    signal = out.reshape(-1)[:length]
    return (0.4 * signal * _envelope(length, 0.001, 0.12)).astype(np.float32)


_VOICES = {"keys": _keys, "pad": _pad, "strings": _pad, "brass": _brass, "lead": _lead, "bass": _bass,
           "guitar": _pluck, "choir": _pad}


def _drum_hit(note: Note, rng: np.random.Generator) -> np.ndarray:
    """Synthetic kit: pitched-down sine kick, tone+noise snare, high-passed noise cymbals, sine toms."""
    pitch = note.pitch
    if pitch == KICK:
        length = int(0.35 * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        freq = 50 + 110 * np.exp(-t / 0.03)
        return (0.9 * np.sin(2 * math.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / 0.12)).astype(np.float32)
    if pitch in (SNARE, RIM, CLAP):
        length = int(0.25 * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        noise = np.diff(rng.standard_normal(length + 1)) * 0.35
        tone = np.sin(2 * math.pi * 185 * t)
        return ((0.5 * noise + 0.3 * tone) * np.exp(-t / 0.06)).astype(np.float32)
    if pitch in (HAT, HAT_OPEN, PEDAL_HAT, CRASH, RIDE):
        decay = {HAT: 0.03, PEDAL_HAT: 0.02, HAT_OPEN: 0.2, CRASH: 0.9, RIDE: 0.5}[pitch]
        length = int(min(6 * decay, 2.0) * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        noise = np.diff(rng.standard_normal(length + 2), n=2) * 0.15
        return (noise * np.exp(-t / decay)).astype(np.float32)
    length = int(0.4 * SAMPLE_RATE)  # toms and anything else
    t = np.arange(length) / SAMPLE_RATE
    freq = _hz(pitch) * (1 + 0.5 * np.exp(-t / 0.05))
    return (0.6 * np.sin(2 * math.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / 0.15)).astype(np.float32)
