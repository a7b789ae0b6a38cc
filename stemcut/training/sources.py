"""Readers for multitrack training sources, each mapped onto the five targets.

Every reader returns :class:`StemTrack` objects. A track loads (lazily, whole clip in
memory) to ``[5, 2, T]`` float32 at 44.1 kHz in :data:`TARGETS` order.

The ``known`` mask says, per target, whether that slot is the exact isolated target.
A target that is not known is silence in its own slot and its content, if any, lives
inside ``other`` (MUSDB's guitar, the bass of some CC0-album songs, everything but
vocals in MIR-1K's accompaniment). ``other`` itself is always "known" in that sense:
its reference is other + every unknown target.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import soundfile as sf

from stemcut.audio import SOUNDFILE_EXTENSIONS
from stemcut.stemfolder import inside_other, read_meta, stem_files
from stemcut.targets import fold_into_other
from stemcut.training.audio_io import LoadedAudio, read_audio_file, read_stem_mp4_streams, to_training_format
from stemcut.training.targets import SAMPLE_RATE, TARGETS, target_index
# Formats soundfile seeks in exactly, so a window is read without decoding the whole file.
WINDOWED_EXTENSIONS = {".wav", ".flac", ".aiff", ".aif"}
# NI Stems order used by MUSDB18: 0 mixture, 1 drums, 2 bass, 3 other, 4 vocals.
MUSDB_STREAM_TARGETS = {1: "drums", 2: "bass", 3: "other", 4: "vocals"}


@dataclass
class StemTrack:
    """One multitrack item: where it comes from, how to load it, and what is trustworthy.

    Attributes:
        name: track name (folder or file stem).
        layout: reader that produced it ("musdb-stem-mp4", "stem-folder", "vocals-accompaniment", "solo").
        known: per target (TARGETS order), True if that slot is the exact isolated target.
        was_mono: any stem was mono and duplicated to stereo.
        band_limited_hz: highest frequency with real content when the source was
            band-limited (e.g. 8000 for 16 kHz audio), else None.
        licence: licence of the material, as far as the reader knows.
        solo_target: for single-source clips, the target they belong to.
    """

    name: str
    layout: str
    known: tuple[bool, ...]
    loader: Callable[[], tuple[np.ndarray, bool, int]] = field(repr=False)
    was_mono: bool = False
    band_limited_hz: float | None = None
    licence: str = "unknown"
    solo_target: str | None = None
    frames: int = 0
    read_window: Callable[[int, int], np.ndarray] | None = field(default=None, repr=False)
    _cache: np.ndarray | None = field(default=None, repr=False)

    @property
    def has_guitar(self) -> bool:
        """True when guitar is a separate stem (possibly silent), not hidden inside other."""
        return self.known[target_index("guitar")]

    @property
    def known_mask(self) -> np.ndarray:
        """``known`` as a bool array of shape ``[5]``."""
        return np.array(self.known, dtype=bool)

    def load(self, cache: bool = False) -> np.ndarray:
        """Return the stems as ``[5, 2, T]`` float32 at 44.1 kHz (optionally kept in memory)."""
        if self._cache is not None:
            return self._cache
        stems, was_mono, lowest_rate = self.loader()
        self.was_mono = self.was_mono or was_mono
        if lowest_rate < SAMPLE_RATE and self.band_limited_hz is None:
            self.band_limited_hz = lowest_rate / 2
        if cache:
            self._cache = stems
        return stems

    def excerpts(self, count: int, length: int, rng: np.random.Generator, cache: bool = False) -> list[np.ndarray]:
        """``count`` random ``[5, 2, length]`` windows; a track shorter than ``length`` sits at a random
        offset inside silence. Reads only the windows when the track can (``read_window``)."""
        if self.read_window is not None and self._cache is None and self.frames > length:
            return [self.read_window(int(rng.integers(0, self.frames - length + 1)), length) for _ in range(count)]
        stems = self.load(cache=cache)
        return [place_window(stems, length, rng) for _ in range(count)]


def place_window(stems: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample window of ``stems`` (``[..., T]``); shorter audio is placed at a random
    offset inside silence."""
    total = stems.shape[-1]
    out = np.zeros(stems.shape[:-1] + (length,), np.float32)
    if total >= length:
        start = int(rng.integers(0, total - length + 1))
        out[...] = stems[..., start: start + length]
    elif total > 0:
        start = int(rng.integers(0, length - total + 1))
        out[..., start: start + total] = stems
    return out


def _stack(stems: dict[str, LoadedAudio]) -> tuple[np.ndarray, bool, int]:
    """Stack per-target audio into ``[5, 2, T]`` (zero-padded to the longest stem)."""
    length = max((a.samples.shape[1] for a in stems.values()), default=0)
    out = np.zeros((len(TARGETS), 2, length), dtype=np.float32)
    for name, audio in stems.items():
        out[target_index(name), :, : audio.samples.shape[1]] += audio.samples
    was_mono = any(a.was_mono for a in stems.values())
    lowest_rate = min((a.source_rate for a in stems.values()), default=SAMPLE_RATE)
    return out, was_mono, lowest_rate


def _known_except(hidden: Iterable[str]) -> tuple[bool, ...]:
    """Known mask: every target known but those whose content is inside ``other``."""
    hidden = set(hidden)
    return tuple(name not in hidden for name in TARGETS)


def read_stem_mp4(path: str | Path, licence: str = "see dataset") -> StemTrack:
    """One MUSDB18 ``.stem.mp4`` file (NI Stems: mixture, drums, bass, other, vocals).

    The mixture stream is ignored: the training mixture is the sum of the stems.
    Guitar is inside ``other`` (not known).
    """
    path = Path(path)

    def load() -> tuple[np.ndarray, bool, int]:
        streams, rate = read_stem_mp4_streams(path)
        if len(streams) < 5:
            raise ValueError(f"{path}: expected 5 audio streams (NI Stems), found {len(streams)}")
        stems = {t: to_training_format(streams[i], rate) for i, t in MUSDB_STREAM_TARGETS.items()}
        return _stack(stems)

    name = path.name.removesuffix(".stem.mp4")
    return StemTrack(name, "musdb-stem-mp4", _known_except(["guitar"]), load, licence=licence)


def read_musdb_mp4_dir(root: str | Path) -> list[StemTrack]:
    """All ``*.stem.mp4`` files under ``root`` (recursively), sorted by path."""
    return [read_stem_mp4(p) for p in sorted(Path(root).rglob("*.stem.mp4"))]


def read_stem_folder(folder: str | Path, licence: str | None = None, layout: str = "stem-folder") -> StemTrack:
    """One stem folder (:mod:`stemcut.stemfolder`: MUSDB18-HQ, MedleyDB rebuilds, synthetic, MIR-1K).

    A stem the folder has no file for is silence (known) or, for bass and guitar
    and what ``meta.json`` names, inside ``other`` (not known; any file it does
    have is added into ``other``). ``meta.json``'s ``licence`` is used when
    ``licence`` is not given; ``band_limited_hz`` (or ``parts_below_44k``: 12 kHz) marks
    the track band-limited."""
    folder = Path(folder)
    files = stem_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no {'/'.join(TARGETS)} audio files")
    meta = read_meta(folder)
    known = _known_except(inside_other(folder))
    licence = licence or meta.get("licence") or "see dataset"
    band_limited = meta.get("band_limited_hz") or (12000.0 if meta.get("parts_below_44k") else None)

    def load() -> tuple[np.ndarray, bool, int]:
        stems, was_mono, lowest_rate = _stack({t: read_audio_file(p) for t, p in files.items()})
        # A target that is not known has its content moved into "other".
        return fold_into_other(stems, TARGETS, np.array(known)), was_mono, lowest_rate

    track = StemTrack(folder.name, layout, known, load, band_limited_hz=band_limited, licence=licence)
    infos = [sf.info(str(p)) for p in files.values()] if all(
        p.suffix.lower() in WINDOWED_EXTENSIONS for p in files.values()) else []
    if infos and all(i.samplerate == SAMPLE_RATE for i in infos):
        track.frames = max(i.frames for i in infos)

        def read_window(start: int, length: int) -> np.ndarray:
            out = np.zeros((len(TARGETS), 2, length), np.float32)
            for target, path in files.items():
                data, _ = sf.read(str(path), start=start, frames=length, dtype="float32", always_2d=True)
                audio = to_training_format(data.T, SAMPLE_RATE)
                out[target_index(target), :, : audio.samples.shape[1]] += audio.samples
                track.was_mono = track.was_mono or audio.was_mono
            return fold_into_other(out, TARGETS, np.array(known))

        track.read_window = read_window
    return track


def read_stem_folders(root: str | Path, licence: str | None = None) -> list[StemTrack]:
    """Every stem folder under ``root``, sorted by name."""
    from stemcut.stemfolder import list_stem_folders

    return [read_stem_folder(folder, licence) for folder in list_stem_folders(root)]


def read_vocals_accompaniment(root: str | Path, licence: str = "research use (MIR-1K)") -> list[StemTrack]:
    """MIR-1K-style ``<clip>/{vocals,accompaniment}.*`` pairs (16 kHz mono clips are
    resampled and flagged by ``load``): vocals known, the rest inside ``other``."""
    from stemcut.stemfolder import ACCOMPANIMENT_NAME, find_file, list_stem_folders

    return [read_stem_folder(folder, licence, layout="vocals-accompaniment") for folder in list_stem_folders(root)
            if find_file(folder, "vocals") and find_file(folder, ACCOMPANIMENT_NAME)]


def read_solo_clips(root: str | Path, categories: Iterable[str] = TARGETS) -> list[StemTrack]:
    """Single-source clips sorted as ``<root>/<category>/<clip>.*`` (category = a target).

    Each clip fills its category's slot; every other slot is genuine silence, so all
    targets are known. Mix these over other material (see ``dataset.SourcePool.backing``).
    Licences come from ``<root>/MANIFEST.csv`` (columns ``file``, ``licence``) when present.
    """
    root = Path(root)
    licences = _manifest_licences(root / "MANIFEST.csv")
    tracks = []
    for category in categories:
        index = target_index(category)
        folder = root / category
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in SOUNDFILE_EXTENSIONS):

            def load(p: Path = path, i: int = index) -> tuple[np.ndarray, bool, int]:
                audio = read_audio_file(p)
                out = np.zeros((len(TARGETS), 2, audio.samples.shape[1]), np.float32)
                out[i] = audio.samples
                return out, audio.was_mono, audio.source_rate

            licence = licences.get(f"{category}/{path.name}", "see source")
            info = sf.info(str(path))
            tracks.append(StemTrack(path.stem, "solo", (True,) * len(TARGETS), load, licence=licence,
                                    solo_target=category, frames=round(info.frames * SAMPLE_RATE / info.samplerate)))
    return tracks


def _manifest_licences(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["file"]: row.get("licence", "") for row in csv.DictReader(f)}

