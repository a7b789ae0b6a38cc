"""Score a model set (or the ideal ratio mask) on reference multitracks.

Reference layout (MUSDB18-HQ): ``REFERENCE_DIR/<track>/<stem>.wav|flac|ogg`` with
stems among ``vocals drums bass guitar other`` and optionally ``mixture`` (else the
mixture is the sum of the stems). ``accompaniment`` (MIR-1K style) stands for
``other`` when there is no ``other`` file.

Folding rule: a target with no reference file on a track is not scored on its
own; its estimate is added to the estimated ``other``, whose reference then holds
it (MUSDB keeps guitar inside ``other``: the guitar estimate is folded into
``other`` there). A reference stem that is silent on a track (energy below
1e-8 of the mixture's) is not scored on that track.

Metrics, per target:

* global SDR ``10 log10(sum s^2 / sum (s - s_hat)^2)`` over the whole track
  (MDX-challenge style), mean over tracks;
* with ``museval=True``: BSSEval v4 SDR (museval's ``bss_eval``, 1 s windows and
  hops, time-invariant 512-tap distortion filters), median over a track's frames,
  then median over tracks.

``oracle=True`` scores the ideal ratio mask instead of a model:
``X * |S_j| / sum_k |S_k|`` with the same kind of STFT (n_fft 4096, hop 1024 unless a
separator says otherwise), the ceiling of what a magnitude-ratio separator can reach.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .targets import TARGETS

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SILENCE = 1e-8


@dataclass
class ReferenceTrack:
    """One reference track: its mixture and the stems that have a file, all (C, N) float32."""

    name: str
    sample_rate: int
    mixture: np.ndarray
    stems: dict[str, np.ndarray]

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

    def table_rows(self) -> list[list[str]]:
        """Header row then one row per target: target, tracks, global SDR (mean), museval SDR (median)."""
        rows = [["target", "tracks", "global SDR (mean, dB)", "museval SDR (median, dB)"]]
        for target in self.targets:
            rows.append([target, str(self.counts.get(target, 0)), _fmt(self.global_sdr.get(target)),
                         _fmt(self.museval_sdr.get(target))])
        return rows


# -- reading references ------------------------------------------------------------------


def list_reference_tracks(reference_dir: str | Path) -> list[Path]:
    """Sub-folders of ``reference_dir`` holding at least one stem file, sorted by name."""
    root = Path(reference_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    return [p for p in sorted(root.iterdir()) if p.is_dir() and any(_find(p, s) for s in (*TARGETS, "accompaniment"))]


def read_reference_track(folder: str | Path) -> ReferenceTrack:
    """Read a track folder: stems padded to a common length, mono kept mono (all stems share channels)."""
    import soundfile as sf

    folder = Path(folder)
    files = {t: p for t in TARGETS if (p := _find(folder, t))}
    if "other" not in files and (p := _find(folder, "accompaniment")):
        files["other"] = p
    if not files:
        raise FileNotFoundError(f"{folder}: no stem files ({', '.join(TARGETS)})")
    mixture_file = _find(folder, "mixture")
    audio, rates = {}, set()
    for name, path in list(files.items()) + ([("mixture", mixture_file)] if mixture_file else []):
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
    mixture = audio["mixture"] if mixture_file else np.sum(list(stems.values()), axis=0).astype(np.float32)
    return ReferenceTrack(folder.name, rates.pop(), mixture, stems)


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        if (path := folder / f"{stem}{suffix}").exists():
            return path
    return None


# -- metrics -----------------------------------------------------------------------------


def global_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``10 log10(sum s^2 / sum (s - s_hat)^2)`` over all channels and samples (dB)."""
    reference = np.asarray(reference, np.float64)
    error = reference - np.asarray(estimate, np.float64)
    return float(10 * np.log10((np.sum(reference ** 2) + 1e-9) / (np.sum(error ** 2) + 1e-9)))


def museval_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("museval") is not None


def _museval_metrics():
    """museval's ``metrics`` module, loaded on its own: the package's ``__init__`` imports
    musdb/stempeg, which need ffmpeg; ``bss_eval`` needs only numpy and scipy."""
    import importlib.util
    import sys

    if "museval.metrics" in sys.modules:
        return sys.modules["museval.metrics"]
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("museval is not installed (pip install 'stemcut[eval]' or pip install museval)")
    path = Path(list(spec.submodule_search_locations)[0]) / "metrics.py"
    module_spec = importlib.util.spec_from_file_location("_stemcut_museval_metrics", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def museval_sdr(references: np.ndarray, estimates: np.ndarray, sample_rate: int) -> np.ndarray:
    """BSSEval v4 SDR per source: median over 1 s frames (NaN frames, e.g. silent, ignored).

    ``references``/``estimates``: (sources, C, N)."""
    metrics = _museval_metrics()
    ref = np.transpose(references, (0, 2, 1)).astype(np.float64)
    est = np.transpose(estimates, (0, 2, 1)).astype(np.float64)
    sdr, _isr, _sir, _sar, _perm = metrics.bss_eval(ref, est, compute_permutation=False, window=sample_rate,
                                                     hop=sample_rate, framewise_filters=False,
                                                     bsseval_sources_version=False)
    with np.errstate(all="ignore"):
        return np.array([np.nanmedian(row) if np.isfinite(row).any() else np.nan for row in sdr])


# -- estimates ---------------------------------------------------------------------------


def oracle_estimates(track: ReferenceTrack, n_fft: int = 4096, hop: int = 1024) -> dict[str, np.ndarray]:
    """Ideal ratio mask stems ``X * |S_j| / sum_k |S_k|`` for the track's stems (one channel at a time)."""
    import torch

    window = torch.hann_window(n_fft)
    length = track.mixture.shape[-1]
    out = {t: np.zeros_like(track.mixture) for t in track.stems}

    def stft(x: np.ndarray) -> torch.Tensor:
        return torch.stft(torch.from_numpy(np.ascontiguousarray(x)), n_fft, hop, window=window, center=True,
                          return_complex=True)

    for channel in range(track.mixture.shape[0]):
        mixture = stft(track.mixture[channel])
        total = torch.zeros(mixture.shape, dtype=torch.float32)
        for stem in track.stems.values():
            total += stft(stem[channel]).abs()
        total += 1e-10
        for name, stem in track.stems.items():
            mask = stft(stem[channel]).abs() / total
            out[name][channel] = torch.istft(mixture * mask, n_fft, hop, window=window, center=True,
                                             length=length).numpy()
    return out


def fold_estimates(estimates: dict[str, np.ndarray], present: Iterable[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Add the estimate of every target without a reference into ``other`` (see the module doc)."""
    present = set(present)
    folded = {t: e for t, e in estimates.items() if t in present or t == "other"}
    moved = [t for t in estimates if t not in present and t != "other"]
    if moved:
        base = folded.get("other")
        other = np.zeros_like(next(iter(estimates.values()))) if base is None else base.copy()
        for target in moved:
            other += estimates[target]
        folded["other"] = other
    return folded, moved


# -- the evaluation ----------------------------------------------------------------------


def evaluate(reference_dir: str | Path, separator=None, oracle: bool = False, museval: bool = False,
             tracks: Sequence[str] | None = None,
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
    n_fft, hop = (separator.stft.n_fft, separator.stft.hop) if separator is not None else (4096, 1024)
    started = time.perf_counter()
    scores: list[TrackScore] = []
    for folder in folders:
        track = read_reference_track(folder)
        if oracle:
            estimates = oracle_estimates(track, n_fft, hop)
        else:
            estimates = separator.separate(track.mixture, track.sample_rate)
        estimates, moved = fold_estimates(estimates, track.stems)
        references = dict(track.stems)
        if "other" not in references:
            references["other"] = np.zeros_like(track.mixture)
        floor = SILENCE * float(np.sum(track.mixture.astype(np.float64) ** 2))
        scored = [t for t in TARGETS if t in estimates and t in references
                  and float(np.sum(references[t].astype(np.float64) ** 2)) > floor]
        score = TrackScore(folder.name, round(track.seconds, 2), folded_into_other=moved)
        for target in scored:
            score.global_sdr[target] = global_sdr(references[target], estimates[target])
        if museval and scored:
            values = museval_sdr(np.stack([references[t] for t in scored]), np.stack([estimates[t] for t in scored]),
                                 track.sample_rate)
            score.museval_sdr = {t: float(v) for t, v in zip(scored, values) if np.isfinite(v)}
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
           "museval_available", "oracle_estimates", "fold_estimates", "list_reference_tracks",
           "read_reference_track"]
