"""Score a model set (or the ideal ratio mask) on reference multitracks.

Reference layout (MUSDB18-HQ): ``REFERENCE_DIR/<track>/<stem>.wav|flac|ogg`` with
stems among ``vocals drums bass guitar other`` and optionally ``mixture`` (else the
mixture is the sum of the stems). ``accompaniment`` (MIR-1K style) stands for
``other`` when there is no ``other`` file.

Folding rule (:func:`stemcut.targets.fold_into_other`, the one the training
validation uses too): a target is scored on its own on a track when its
reference is known there (it has a file, see :mod:`stemcut.stemfolder`) and not
silent (energy above 1e-8 of the mixture's). Every other target's estimate, and its
reference, go into ``other`` (MUSDB keeps guitar inside ``other``: the guitar
estimate is folded into ``other`` there).

Metrics, per target:

* global SDR ``10 log10(sum s^2 / sum (s - s_hat)^2)`` over the whole track
  (MDX-challenge style), mean over tracks;
* with ``museval=True``: BSSEval v4 SDR (museval's ``bss_eval``, 1 s windows and
  hops, time-invariant 512-tap distortion filters), median over a track's frames,
  then median over tracks.

``oracle=True`` scores the ideal ratio mask instead of a model:
``X * |S_j| / sum_k |S_k|`` with the models' kind of STFT (``oracle_stft``, n_fft 4096
and hop 1024 by default), the ceiling of what a magnitude-ratio separator can reach.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .metrics import global_sdr, museval_available, museval_sdr
from .stemfolder import inside_other, list_stem_folders, mixture_file, stem_files
from .targets import OTHER, TARGETS, fold_into_other, output_stems

SILENCE = 1e-8


@dataclass
class ReferenceTrack:
    """One reference track: its mixture and the stems that have a file, all (C, N) float32."""

    name: str
    sample_rate: int
    mixture: np.ndarray
    stems: dict[str, np.ndarray]
    inside_other: set[str] = field(default_factory=set)  # stems without a file whose content is in `other`

    @property
    def seconds(self) -> float:
        return self.mixture.shape[-1] / self.sample_rate


@dataclass
class TrackScore:
    """Scores of one track; a target missing from a dict was not scored there."""

    track: str
    seconds: float
    global_sdr: dict[str, float] = field(default_factory=dict)
    museval_sdr: dict[str, float] = field(default_factory=dict)
    folded_into_other: list[str] = field(default_factory=list)


@dataclass
class EvalReport:
    """Per-target summaries over tracks, plus every track's scores."""

    reference_dir: str
    method: str
    tracks: list[TrackScore]
    targets: list[str]
    global_sdr: dict[str, float]
    museval_sdr: dict[str, float]
    counts: dict[str, int]
    seconds: float

    def to_dict(self) -> dict:
        return _finite(asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def text_table(self, title: str) -> str:
        """The table as plain aligned text under ``title`` (for logs and scripts)."""
        rows = self.table_rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join([title] + ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows])

    def table_rows(self) -> list[list[str]]:
        """Header row then one row per target: target, tracks, global SDR (mean), museval SDR (median)."""
        rows = [["target", "tracks", "global SDR (mean, dB)", "museval SDR (median, dB)"]]
        for target in self.targets:
            rows.append([target, str(self.counts.get(target, 0)), _fmt(self.global_sdr.get(target)),
                         _fmt(self.museval_sdr.get(target))])
        return rows


# -- reading references ------------------------------------------------------------------


def list_reference_tracks(reference_dir: str | Path) -> list[Path]:
    """The stem folders of ``reference_dir``, sorted by name."""
    return list_stem_folders(reference_dir)


def read_reference_track(folder: str | Path) -> ReferenceTrack:
    """Read a track folder: stems padded to a common length, mono kept mono (all stems share channels)."""
    import soundfile as sf

    folder = Path(folder)
    files = stem_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no stem files ({', '.join(TARGETS)})")
    mixture_path = mixture_file(folder)
    audio, rates = {}, set()
    for name, path in list(files.items()) + ([("mixture", mixture_path)] if mixture_path else []):
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio[name] = data.T
        rates.add(rate)
    if len(rates) != 1:
        raise ValueError(f"{folder}: stems have different sample rates {sorted(rates)}")
    channels = max(a.shape[0] for a in audio.values())
    length = max(a.shape[1] for a in audio.values())
    for name, data in audio.items():
        if data.shape[0] != channels:
            data = np.repeat(data[:1], channels, axis=0)
        audio[name] = np.pad(data, ((0, 0), (0, length - data.shape[1])))
    stems = {t: audio[t] for t in TARGETS if t in files}
    mixture = audio["mixture"] if mixture_path else np.sum(list(stems.values()), axis=0).astype(np.float32)
    return ReferenceTrack(folder.name, rates.pop(), mixture, stems, inside_other(folder))


# -- estimates ---------------------------------------------------------------------------


def oracle_estimates(track: ReferenceTrack, n_fft: int = 4096, hop: int = 1024) -> dict[str, np.ndarray]:
    """Ideal ratio mask stems ``X * |S_j| / sum_k |S_k|`` for the track's stems, with the models' STFT."""
    import torch

    from .filtering import apply_mask, ratio_shares
    from .transforms import STFT

    stft = STFT(n_fft, hop)
    names = list(track.stems)
    with torch.inference_mode():
        mixture = stft(torch.from_numpy(np.ascontiguousarray(track.mixture)))
        magnitudes = torch.stack([stft(torch.from_numpy(np.ascontiguousarray(track.stems[t]))).abs() for t in names])
        shares = ratio_shares(magnitudes)
        length = track.mixture.shape[-1]
        return {t: stft.inverse(apply_mask(shares[i], mixture), length).numpy() for i, t in enumerate(names)}


def score_track(track: ReferenceTrack, estimates: dict[str, np.ndarray], museval: bool = False) -> TrackScore:
    """Global (and museval) SDR of ``estimates`` against ``track``, after the guitar/other fold."""
    names = output_stems([t for t in estimates if t != OTHER])
    zeros = np.zeros_like(track.mixture)
    references = np.stack([track.stems.get(t, zeros) for t in names])
    floor = SILENCE * float(np.sum(track.mixture.astype(np.float64) ** 2))
    known = [t in track.stems or t not in track.inside_other for t in names]
    audible = [float(np.sum(r.astype(np.float64) ** 2)) > floor for r in references]
    separate = np.array([k and a for k, a in zip(known, audible)])
    folded_refs = fold_into_other(references, names, separate)
    folded_ests = fold_into_other(np.stack([estimates.get(t, zeros) for t in names]), names, separate)
    other = names.index(OTHER)
    scored = [i for i, t in enumerate(names) if separate[i] or
              (i == other and float(np.sum(folded_refs[other].astype(np.float64) ** 2)) > floor)]
    moved = [t for i, t in enumerate(names) if not separate[i] and i != other and t in estimates]
    score = TrackScore(track.name, round(track.seconds, 2), folded_into_other=moved)
    for i in scored:
        score.global_sdr[names[i]] = global_sdr(folded_refs[i], folded_ests[i])
    if museval and scored:
        values = museval_sdr(folded_refs[scored], folded_ests[scored], track.sample_rate)
        score.museval_sdr = {names[i]: float(v) for i, v in zip(scored, values) if np.isfinite(v)}
    return score


# -- the evaluation ----------------------------------------------------------------------


def evaluate(reference_dir: str | Path, separator=None, oracle: bool = False, museval: bool = False,
             tracks: Sequence[str] | None = None, oracle_stft: tuple[int, int] = (4096, 1024),
             progress: Callable[[str, TrackScore], None] | None = None) -> EvalReport:
    """Score ``separator`` (a :class:`stemcut.separator.Separator`) or, with ``oracle=True``, the
    ideal ratio mask on every track folder of ``reference_dir`` (or only the named ``tracks``).

    ``progress(track name, its scores)`` is called after each track."""
    if separator is None and not oracle:
        raise ValueError("give a separator, or oracle=True")
    if museval and not museval_available():
        raise ImportError("museval is not installed (pip install 'stemcut[eval]' or pip install museval)")
    folders = list_reference_tracks(reference_dir)
    if tracks is not None:
        wanted = list(tracks)
        by_name = {f.name: f for f in folders}
        missing = [t for t in wanted if t not in by_name]
        if missing:
            raise FileNotFoundError(f"{reference_dir}: no track folder(s) {', '.join(missing)}")
        folders = [by_name[t] for t in wanted]
    if not folders:
        raise FileNotFoundError(f"{reference_dir}: no track folders with stem files")
    n_fft, hop = oracle_stft
    started = time.perf_counter()
    scores: list[TrackScore] = []
    for folder in folders:
        track = read_reference_track(folder)
        if oracle:
            estimates = oracle_estimates(track, n_fft, hop)
        else:
            estimates = separator.separate(track.mixture, track.sample_rate)
        score = score_track(track, estimates, museval)
        scores.append(score)
        if progress is not None:
            progress(folder.name, score)
    return summarise(str(reference_dir), "oracle (ideal ratio mask)" if oracle else "model", scores,
                     time.perf_counter() - started)


def summarise(reference_dir: str, method: str, scores: list[TrackScore], seconds: float = 0.0) -> EvalReport:
    """Mean global SDR and median museval SDR per target over ``scores`` (also for merging runs)."""
    targets = [t for t in TARGETS if any(t in s.global_sdr for s in scores)]
    global_mean = {t: float(np.mean([s.global_sdr[t] for s in scores if t in s.global_sdr])) for t in targets}
    museval_median = {t: float(np.median(v)) for t in targets
                      if (v := [s.museval_sdr[t] for s in scores if t in s.museval_sdr])}
    counts = {t: sum(t in s.global_sdr for s in scores) for t in targets}
    return EvalReport(reference_dir, method, scores, targets, global_mean, museval_median, counts, round(seconds, 1))


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


__all__ = ["EvalReport", "TrackScore", "ReferenceTrack", "evaluate", "summarise", "global_sdr", "museval_sdr",
           "museval_available", "oracle_estimates", "score_track", "list_reference_tracks",
           "read_reference_track"]
