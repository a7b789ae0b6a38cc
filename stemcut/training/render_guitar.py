"""Guitar from real clean electric-guitar samples, re-amped: drive and a cabinet impulse response.

Samples are named ``<prefix>_<note>[_<dynamic>]_rr<n>.wav`` under
``Samples/<guitar>/<articulation>/`` (the Karoryfer Black and Green Guitars layout; ``e3`` is
MIDI 40 there: key = 12 x octave + pitch class). A note plays the nearest sampled key of its
dynamic (``p``/``mf``/``f`` by velocity), resampled by soxr to the wanted pitch, a round robin
drawn; short notes use staccato samples when there are any. The dry DI track then goes
through a tone: ``clean`` (light compression, cabinet) or ``distorted`` (pre-EQ, tanh drive,
cabinet); the cabinet is a guitarix impulse response by convolution or, without one, the
cabinet EQ of :func:`stemcut.training.effects.amp_chain`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import oaconvolve

from stemcut.training.effects import apply_chain, random_eq
from stemcut.training.render_midi import MidiNote
from stemcut.training.targets import SAMPLE_RATE

_NAME = re.compile(r"^[a-z]+_(?P<note>[a-g]b?)(?P<octave>\d)(?:_(?P<dynamic>pp|p|mp|mf|f|ff))?_rr(?P<rr>\d+)\.wav$")
_PITCH_CLASS = {"c": 0, "db": 1, "d": 2, "eb": 3, "e": 4, "f": 5, "gb": 6, "g": 7, "ab": 8, "a": 9, "bb": 10, "b": 11}
DYNAMICS = ("pp", "p", "mp", "mf", "f", "ff")
SUSTAIN, STACCATO = "ord", "stac"
STACCATO_BELOW_S = 0.18
RELEASE_S = 0.06
SAMPLE_CACHE = 256


@dataclass(frozen=True)
class GuitarSample:
    path: Path
    key: int
    dynamic: str
    rr: int


def sample_key(note: str, octave: int) -> int:
    """MIDI key of a sample name's note (Karoryfer naming: ``e3`` = 40)."""
    return 12 * octave + _PITCH_CLASS[note]


class GuitarBank:
    """Every guitar and articulation found under ``<root>/Samples``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.samples: dict[tuple[str, str], list[GuitarSample]] = {}
        for path in sorted((self.root / "Samples").glob("*/*/*.wav")):
            match = _NAME.match(path.name.lower())
            if not match:
                continue
            guitar, articulation = path.parent.parent.name, path.parent.name
            sample = GuitarSample(path, sample_key(match["note"], int(match["octave"])), match["dynamic"] or "mf",
                                  int(match["rr"]))
            self.samples.setdefault((guitar, articulation), []).append(sample)
        self.guitars = sorted({g for g, a in self.samples if a == SUSTAIN})
        if not self.guitars:
            raise FileNotFoundError(f"no {SUSTAIN} guitar samples under {self.root / 'Samples'}")
        self._audio: OrderedDict[tuple[Path, int], np.ndarray] = OrderedDict()

    def _candidates(self, guitar: str, note: MidiNote) -> list[GuitarSample]:
        articulation = STACCATO if note.duration < STACCATO_BELOW_S and (guitar, STACCATO) in self.samples else SUSTAIN
        pool = self.samples[(guitar, articulation)]
        dynamics = sorted({s.dynamic for s in pool}, key=DYNAMICS.index)
        wanted = dynamics[min(int(note.velocity / 128 * len(dynamics)), len(dynamics) - 1)]
        pool = [s for s in pool if s.dynamic == wanted]
        nearest = min(abs(s.key - note.pitch) for s in pool)
        return [s for s in pool if abs(s.key - note.pitch) == nearest]

    def _shifted(self, sample: GuitarSample, cents: int) -> np.ndarray:
        """The sample's mono audio pitched by ``cents`` (soxr resampling: shorter when higher)."""
        key = (sample.path, cents)
        if key in self._audio:
            self._audio.move_to_end(key)
            return self._audio[key]
        data = sf.read(str(sample.path), dtype="float32", always_2d=True)[0].mean(axis=1)
        if cents:
            ratio = 2 ** (cents / 1200)
            data = soxr.resample(data, SAMPLE_RATE * ratio, SAMPLE_RATE, quality="HQ").astype(np.float32)
        self._audio[key] = data
        if len(self._audio) > SAMPLE_CACHE:
            self._audio.popitem(last=False)
        return data

    def render_di(self, notes: list[MidiNote], guitar: str, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """The dry mono DI track of ``notes`` played on ``guitar``."""
        out = np.zeros(n_samples, np.float32)
        release = int(RELEASE_S * SAMPLE_RATE)
        for note in notes:
            start = int(round(note.start * SAMPLE_RATE))
            if start >= n_samples:
                continue
            options = self._candidates(guitar, note)
            sample = options[int(rng.integers(len(options)))]
            audio = self._shifted(sample, 100 * (note.pitch - sample.key))
            length = min(len(audio), int(note.duration * SAMPLE_RATE) + release, n_samples - start)
            piece = audio[:length] * np.float32((0.35 + 0.65 * note.velocity / 127))
            fade = min(release, length)
            piece[length - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
            out[start : start + length] += piece
        return out


def load_impulse(path: Path) -> np.ndarray:
    """A mono impulse response at 44.1 kHz, normalised to unit energy."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    data = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        data = soxr.resample(data, rate, SAMPLE_RATE).astype(np.float32)
    return data / (float(np.sqrt(np.sum(data.astype(np.float64) ** 2))) + 1e-9)


def cabinet_eq(rng: np.random.Generator) -> list[dict]:
    """A speaker-cabinet EQ (no impulse response): high-pass, low-mid body, presence, roll-off."""
    return [
        {"type": "eq", "kind": "highpass", "freq": round(float(rng.uniform(70, 120)), 1), "q": 0.707, "gain_db": 0.0},
        {"type": "eq", "kind": "peak", "freq": round(float(rng.uniform(100, 250)), 1), "q": 1.0,
         "gain_db": round(float(rng.uniform(1, 5)), 2)},
        {"type": "eq", "kind": "peak", "freq": round(float(rng.uniform(1800, 3500)), 1), "q": 1.2,
         "gain_db": round(float(rng.uniform(1, 6)), 2)},
        {"type": "eq", "kind": "lowpass", "freq": round(float(rng.uniform(4000, 6500)), 1), "q": 0.8, "gain_db": 0.0},
        {"type": "eq", "kind": "lowpass", "freq": round(float(rng.uniform(5000, 9000)), 1), "q": 0.707, "gain_db": 0.0},
    ]


def tone_chains(tone: str, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """(before the cabinet, after it) effect chains for a ``clean`` or ``distorted`` tone."""
    if tone == "distorted":
        pre = [
            {"type": "eq", "kind": "highpass", "freq": round(float(rng.uniform(90, 160)), 1), "q": 0.707, "gain_db": 0.0},
            {"type": "eq", "kind": "peak", "freq": round(float(rng.uniform(600, 1200)), 1), "q": 0.8,
             "gain_db": round(float(rng.uniform(3, 9)), 2)},
            {"type": "drive", "gain_db": round(float(rng.uniform(18, 38)), 2),
             "asymmetry": round(float(rng.uniform(0, 0.3)), 3)},
        ]
    else:
        pre = [
            {"type": "eq", "kind": "highpass", "freq": round(float(rng.uniform(60, 100)), 1), "q": 0.707, "gain_db": 0.0},
            {"type": "compress", "threshold_db": round(float(rng.uniform(-28, -16)), 2),
             "ratio": round(float(rng.uniform(2, 4)), 2), "attack_ms": round(float(rng.uniform(5, 20)), 2),
             "release_ms": round(float(rng.uniform(80, 250)), 2)},
        ]
        if rng.random() < 0.3:  # edge of break-up
            pre.append({"type": "drive", "gain_db": round(float(rng.uniform(3, 9)), 2), "asymmetry": 0.1})
    return pre, random_eq(rng, bands=2, max_db=4.0)


def reamp(di: np.ndarray, tone: str, impulse: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """``di`` (mono) through the tone and the cabinet; returns mono audio and the chain applied."""
    pre, post = tone_chains(tone, rng)
    audio = apply_chain(di[None].astype(np.float32), pre) if float(np.abs(di).max(initial=0)) > 0 else di[None]
    if impulse is not None:
        audio = oaconvolve(audio, impulse[None], axes=-1)[:, : di.shape[0]].astype(np.float32)
        cab: list[dict] = []
    else:
        cab = cabinet_eq(rng)
        audio = apply_chain(audio, cab)
    audio = apply_chain(audio, post)
    return audio[0], {"tone": tone, "pre": pre, "cabinet_eq": cab, "post": post}


def pick_tone(program: int, rng: np.random.Generator) -> str:
    """GM overdriven/distortion guitars (29, 30) are mostly distorted, the others mostly clean."""
    distorted = 0.9 if program in (29, 30) else 0.15
    return "distorted" if rng.random() < distorted else "clean"

