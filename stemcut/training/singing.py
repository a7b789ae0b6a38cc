"""Vocals for synthetic songs: a formant singing synth and cut-ups of real sung recordings."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemcut.training.audio_io import read_audio_file
from stemcut.training.composer import Note
from stemcut.training.effects import apply_filters, biquad
from stemcut.training.targets import SAMPLE_RATE

# (F1, F2, F3, F4) in Hz for an adult male voice; scaled up for higher voices.
VOWEL_FORMANTS = {"a": (730, 1090, 2440, 3400), "e": (530, 1840, 2480, 3500), "i": (270, 2290, 3010, 3700),
                  "o": (570, 840, 2410, 3400), "u": (300, 870, 2240, 3300)}
FORMANT_GAINS = (1.0, 0.6, 0.35, 0.2)
CONTROL_HOP = 64  # harmonic amplitudes are computed at this hop and interpolated


@dataclass(frozen=True)
class Voice:
    """A synthetic singer: pitch range, formant scale, vibrato and breathiness."""

    low: int
    high: int
    formant_scale: float
    vibrato_hz: float
    vibrato_cents: float
    breath: float

    @staticmethod
    def random(rng: np.random.Generator) -> "Voice":
        high_voice = rng.random() < 0.5
        low = int(rng.integers(55, 60)) if high_voice else int(rng.integers(45, 50))
        return Voice(low, low + int(rng.integers(12, 17)), float(rng.uniform(1.1, 1.2) if high_voice else
                     rng.uniform(0.95, 1.05)), float(rng.uniform(4.8, 6.5)), float(rng.uniform(15, 70)),
                     float(rng.uniform(0.01, 0.06)))


def sing(notes: list[Note], voice: Voice, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Render a melody as a mono formant-synthesised voice with portamento, vibrato, jitter and consonants."""
    if not notes:
        return np.zeros(n_samples, np.float32)
    frames = n_samples // CONTROL_HOP + 2
    frame_time = np.arange(frames) * CONTROL_HOP / SAMPLE_RATE
    log_f0 = np.full(frames, np.nan)
    gate = np.zeros(frames)
    vowel_table = np.array([VOWEL_FORMANTS[v] for v in "aeiou"], float) * voice.formant_scale
    formants = np.zeros((frames, 4))
    vibrato_gate = np.zeros(frames)
    for note in notes:
        a, b = np.searchsorted(frame_time, [note.start, note.start + note.duration])
        if a >= frames:
            continue
        log_f0[a:b] = math.log(440.0 * 2 ** ((note.pitch - 69) / 12))
        gate[a:b] = note.velocity / 127
        formants[a:b] = vowel_table[int(rng.integers(len(vowel_table)))]
        ramp = np.clip((frame_time[a:b] - note.start - 0.15) / 0.3, 0, 1)  # vibrato blooms after the onset
        vibrato_gate[a:b] = ramp
    # Fill rests with the last pitch/vowel so glides start from the previous note.
    filled = np.where(np.isnan(log_f0), 0, 1)
    index = np.maximum.accumulate(np.where(filled, np.arange(frames), 0))
    log_f0 = np.nan_to_num(log_f0[index], nan=math.log(220.0))
    formants = formants[index]
    log_f0 = _smooth(log_f0, 0.04)  # portamento
    formants = _smooth(formants, 0.05)
    gate = _smooth(gate, 0.025)
    jitter = _smooth(rng.standard_normal(frames), 0.02) * 0.004
    vibrato = voice.vibrato_cents / 1200 * math.log(2) * np.sin(2 * math.pi * voice.vibrato_hz * frame_time)
    f0 = np.exp(log_f0 + vibrato * vibrato_gate + jitter)

    t = np.arange(n_samples)
    f0_samples = np.interp(t, np.arange(frames) * CONTROL_HOP, f0)
    phase = 2 * math.pi * np.cumsum(f0_samples) / SAMPLE_RATE
    out = np.zeros(n_samples)
    active = gate > 1e-3
    max_harmonic = int(0.45 * SAMPLE_RATE / f0[active].min()) if active.any() else 1
    widths = np.array([80.0, 100.0, 140.0, 200.0])
    for k in range(1, min(max_harmonic, 60) + 1):
        freq = k * f0
        # glottal tilt (about -12 dB/octave) times a sum of formant resonances
        envelope = sum(g / (1 + ((freq - formants[:, i]) / widths[i]) ** 2) for i, g in enumerate(FORMANT_GAINS))
        amplitude = np.where(freq < 0.45 * SAMPLE_RATE, envelope * k**-1.0 * gate, 0.0)
        if amplitude.max() < 1e-4:
            continue
        out += np.interp(t, np.arange(frames) * CONTROL_HOP, amplitude) * np.sin(k * phase)
    gate_samples = np.interp(t, np.arange(frames) * CONTROL_HOP, gate)
    breath = apply_filters(rng.standard_normal(n_samples).astype(np.float32),
                           [biquad("highpass", 1500), biquad("lowpass", 9000)])
    out += voice.breath * 0.3 * breath * gate_samples
    out += _consonants(notes, n_samples, rng)
    return (out / (np.abs(out).max() + 1e-9) * 0.5).astype(np.float32)


def _smooth(values: np.ndarray, seconds: float) -> np.ndarray:
    """Moving average over ``seconds`` of control frames (along axis 0)."""
    width = max(1, int(seconds * SAMPLE_RATE / CONTROL_HOP))
    kernel = np.ones(width) / width
    if values.ndim == 1:
        return np.convolve(values, kernel, mode="same")
    return np.stack([np.convolve(values[:, i], kernel, mode="same") for i in range(values.shape[1])], axis=1)


def _consonants(notes: list[Note], n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Short filtered-noise bursts (s, t, k-like) before some note onsets."""
    out = np.zeros(n_samples)
    for note in notes:
        if rng.random() > 0.5:
            continue
        length = int(rng.uniform(0.02, 0.08) * SAMPLE_RATE)
        start = int(note.start * SAMPLE_RATE) - length // 2
        if start < 0 or start + length > n_samples:
            continue
        burst = rng.standard_normal(length) * np.hanning(length) * rng.uniform(0.02, 0.08)
        out[start : start + length] += np.diff(burst, prepend=0.0) if rng.random() < 0.6 else burst
    return out


class VocalClipBank:
    """Real sung recordings to cut phrases from (a folder of clips, searched recursively).

    If the folder holds ``vocals.*`` files (MIR-1K layout) only those are used; otherwise
    every audio file. Licences come from a ``MANIFEST.csv`` (``file``, ``licence``) in the
    folder or its parent when there is one.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        suffixes = (".wav", ".flac", ".ogg", ".mp3")
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in suffixes)
        named = [p for p in files if p.stem == "vocals"]
        self.files = named or files
        if not self.files:
            raise FileNotFoundError(f"no vocal audio files under {self.root}")
        self._licences: dict[str, str] = {}
        for manifest in (self.root / "MANIFEST.csv", self.root.parent / "MANIFEST.csv"):
            if manifest.exists():
                with open(manifest, newline="", encoding="utf-8") as f:
                    for row in csv.DictReader(f):
                        self._licences[Path(row["file"]).name] = row.get("licence", "")

    def licence(self, path: Path) -> str:
        return self._licences.get(path.name, "see source")

    def phrases(self, notes: list[Note], n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
        """Place real sung excerpts where the melody has phrases; returns ``[2, T]`` and the clips used."""
        out = np.zeros((2, n_samples), np.float32)
        used: list[dict] = []
        for start, end in _phrase_spans(notes):
            path = self.files[int(rng.integers(len(self.files)))]
            clip = read_audio_file(path).samples
            length = min(int((end - start) * SAMPLE_RATE), clip.shape[1], n_samples - int(start * SAMPLE_RATE))
            if length < SAMPLE_RATE // 4:
                continue
            offset = int(rng.integers(0, clip.shape[1] - length + 1))
            piece = clip[:, offset : offset + length] * _fade(length)
            position = int(start * SAMPLE_RATE)
            out[:, position : position + length] += piece
            used.append({"file": str(path.relative_to(self.root)), "offset_s": round(offset / SAMPLE_RATE, 3),
                         "seconds": round(length / SAMPLE_RATE, 3), "licence": self.licence(path)})
        return out, used


def _fade(length: int, seconds: float = 0.03) -> np.ndarray:
    ramp = min(int(seconds * SAMPLE_RATE), length // 2)
    fade = np.ones(length, np.float32)
    if ramp:
        fade[:ramp] = np.linspace(0, 1, ramp)
        fade[-ramp:] = np.linspace(1, 0, ramp)
    return fade


def _phrase_spans(notes: list[Note], gap: float = 0.4) -> list[tuple[float, float]]:
    """Group notes separated by less than ``gap`` seconds into (start, end) phrases."""
    spans: list[tuple[float, float]] = []
    for note in sorted(notes, key=lambda n: n.start):
        end = note.start + note.duration
        if spans and note.start - spans[-1][1] < gap:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((note.start, end))
    return spans
