"""Real singing over rendered songs: phrases cut from every vocal recording the shared data has.

Each song draws one set, then up to three recordings of it (its "singers"). Sources
(under the shared data root, each optional): ``solo/vocals/*`` (licence per file from
``solo/MANIFEST.csv``), ``mir1k/*/vocals.*``, ``cc0-album/*/vocals.*`` and
``musdb18-preview/train/*/vocals.*``. A song gets phrases of 3-16 s cut where the recording
is sung (frame energy within 35 dB of the clip's loudest), separated by gaps; each phrase is
varispeeded by up to +-2 semitones with soxr (pitch, tempo and formants move together: the
cheap augmentation), given a formant-region EQ tilt, and sometimes doubled (a second,
slightly detuned and delayed copy panned away). The vocals are not in the song's key: the
model learns timbre and placement, not harmony.
"""

from __future__ import annotations

import csv
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from stemcut.training.audio_io import read_audio_file
from stemcut.training.corpus_licences import is_commercial_ok
from stemcut.training.effects import apply_chain, pan
from stemcut.training.targets import SAMPLE_RATE
from stemcut.training.split import is_held_out_file, load_split

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
SET_LICENCES = {
    "mir1k": "research use (MIR-1K)",
    "cc0-album": "CC0-1.0",
    "musdb18-preview": "MUSDB18 (CC BY-NC-SA, research use)",
}
FRAME = 2048
ACTIVE_DB = -35.0
CLIP_CACHE = 8  # whole recordings (a CC0 album song is ~85 MB as float32 stereo)


@dataclass(frozen=True)
class VocalClip:
    path: Path
    set: str
    licence: str
    name: str = ""  # path relative to the data root, for meta.json


def _audio_files(folder: Path, stem: str | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    return [p for p in files if p.stem == stem] if stem else files


def find_vocal_clips(data_root: Path, commercial_only: bool = False,
                     split: dict[str, list[str]] | None = None) -> list[VocalClip]:
    """Every real vocal recording under ``data_root`` (see the module doc) but the held-out tracks of
    ``split`` (default: the validation split), optionally only commercial-clean ones."""
    split = load_split() if split is None else split
    root = Path(data_root)
    clips: list[VocalClip] = []
    licences: dict[str, str] = {}
    manifest = root / "solo" / "MANIFEST.csv"
    if manifest.exists():
        with open(manifest, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                licences[Path(row.get("file", "")).name] = row.get("licence", "")
    for path in _audio_files(root / "solo" / "vocals"):
        clips.append(VocalClip(path, "solo", licences.get(path.name) or "see solo/MANIFEST.csv",
                               path.relative_to(root).as_posix()))
    for name, stem in (("mir1k", "vocals"), ("cc0-album", "vocals"), ("musdb18-preview", "vocals")):
        folder = root / name / "train" if (root / name / "train").is_dir() else root / name
        clips += [VocalClip(p, name, SET_LICENCES[name], p.relative_to(root).as_posix()) for p in _audio_files(folder, stem)]
    clips = [c for c in clips if not is_held_out_file(split, c.name)]
    if commercial_only:
        clips = [c for c in clips if is_commercial_ok(c.licence)]
    return clips


class VocalTrack:
    """Places augmented real phrases over a song (clips decoded lazily, a few kept in memory)."""

    def __init__(self, clips: list[VocalClip]) -> None:
        if not clips:
            raise ValueError("no vocal clips")
        self.clips = clips
        self._audio: OrderedDict[Path, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _load(self, clip: VocalClip) -> tuple[np.ndarray, np.ndarray]:
        """(``[2, T]`` audio, start samples of its sung frames)."""
        if clip.path in self._audio:
            self._audio.move_to_end(clip.path)
            return self._audio[clip.path]
        audio = read_audio_file(clip.path).samples
        frames = audio.shape[1] // FRAME
        energy = (audio[:, : frames * FRAME].reshape(2, frames, FRAME) ** 2).mean(axis=(0, 2)) if frames else np.zeros(0)
        level = 10 * np.log10(energy + 1e-12)
        active = np.flatnonzero(level > level.max(initial=-120) + ACTIVE_DB) * FRAME if frames else np.zeros(0, int)
        self._audio[clip.path] = (audio, active)
        if len(self._audio) > CLIP_CACHE:
            self._audio.popitem(last=False)
        return audio, active

    def render(self, n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
        """``[2, n_samples]`` of sung phrases and what was used (file, offset, length, speed, licence)."""
        out = np.zeros((2, n_samples), np.float32)
        used: list[dict] = []
        sets = sorted({c.set for c in self.clips})
        picked = sets[int(rng.integers(len(sets)))]
        chosen = [c for c in self.clips if c.set == picked]
        singers = [chosen[int(i)] for i in rng.choice(len(chosen), size=min(3, len(chosen)), replace=False)]
        position = int(min(rng.uniform(1.0, 8.0) * SAMPLE_RATE, rng.uniform(0.0, 0.15) * n_samples))
        misses = 0
        while position < n_samples - SAMPLE_RATE and misses < 20:
            clip = singers[int(rng.integers(len(singers)))]
            audio, active = self._load(clip)
            starts = active[active <= audio.shape[1] - 2 * SAMPLE_RATE]
            if not len(starts):
                misses += 1
                continue
            offset = int(starts[int(rng.integers(len(starts)))])
            length = min(int(rng.uniform(3.0, 16.0) * SAMPLE_RATE), audio.shape[1] - offset)
            semitones = float(rng.uniform(-2.0, 2.0))
            piece = audio[:, offset : offset + length]
            if abs(semitones) > 0.05:
                ratio = 2 ** (semitones / 12)
                piece = soxr.resample(piece.T, SAMPLE_RATE * ratio, SAMPLE_RATE, quality="HQ").T.astype(np.float32)
            piece = piece[:, : n_samples - position]
            if piece.shape[1] < SAMPLE_RATE // 2:
                break  # the song ends here
            fade = min(int(0.03 * SAMPLE_RATE), piece.shape[1] // 2)
            ramp = np.linspace(0, 1, fade, dtype=np.float32)
            piece = piece.copy()
            piece[:, :fade] *= ramp
            piece[:, -fade:] *= ramp[::-1]
            out[:, position : position + piece.shape[1]] += piece
            used.append({"file": clip.name or clip.path.name, "set": clip.set, "offset_s": round(offset / SAMPLE_RATE, 3),
                         "at_s": round(position / SAMPLE_RATE, 3), "seconds": round(piece.shape[1] / SAMPLE_RATE, 3),
                         "semitones": round(semitones, 2), "licence": clip.licence})
            position += piece.shape[1] + int(rng.uniform(0.5, 6.0) * SAMPLE_RATE)
        return out, used


def vocal_chain(rng: np.random.Generator) -> list[dict]:
    """Formant-region tilt (two peaks), presence, a vocal compressor."""
    return [
        {"type": "eq", "kind": "highpass", "freq": round(float(rng.uniform(80, 140)), 1), "q": 0.707, "gain_db": 0.0},
        {"type": "eq", "kind": "peak", "freq": round(float(rng.uniform(400, 900)), 1), "q": 1.2,
         "gain_db": round(float(rng.uniform(-4, 4)), 2)},
        {"type": "eq", "kind": "peak", "freq": round(float(rng.uniform(1500, 3200)), 1), "q": 1.2,
         "gain_db": round(float(rng.uniform(-3, 5)), 2)},
        {"type": "eq", "kind": "highshelf", "freq": round(float(rng.uniform(6000, 10000)), 1), "q": 0.707,
         "gain_db": round(float(rng.uniform(-2, 4)), 2)},
        {"type": "compress", "threshold_db": round(float(rng.uniform(-30, -18)), 2),
         "ratio": round(float(rng.uniform(2.5, 5)), 2), "attack_ms": round(float(rng.uniform(3, 15)), 2),
         "release_ms": round(float(rng.uniform(60, 200)), 2)},
    ]


def double(vocals: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A doubled take: the vocals detuned by a few cents, delayed 12-35 ms, the two spread apart."""
    cents = float(rng.uniform(6, 15)) * (1 if rng.random() < 0.5 else -1)
    delay = int(rng.uniform(0.012, 0.035) * SAMPLE_RATE)
    mono = vocals.mean(axis=0)
    copy = soxr.resample(mono, SAMPLE_RATE * 2 ** (cents / 1200), SAMPLE_RATE).astype(np.float32)
    copy = np.concatenate([np.zeros(delay, np.float32), copy])[: mono.shape[0]]
    copy = np.pad(copy, (0, mono.shape[0] - copy.shape[0]))
    spread = float(rng.uniform(0.3, 0.7))
    level = float(rng.uniform(0.4, 0.8))
    return pan(mono, -spread) + level * pan(copy, spread), {"cents": round(cents, 1), "delay_ms": round(delay / 44.1, 1),
                                                             "spread": round(spread, 2), "level": round(level, 2)}


def process_vocals(vocals: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The vocal bus: EQ + compressor, sometimes doubled."""
    chain = vocal_chain(rng)
    audio = apply_chain(vocals, chain)
    info: dict = {"chain": chain}
    if rng.random() < 0.3:
        audio, info["double"] = double(audio, rng)
    return audio.astype(np.float32), info
