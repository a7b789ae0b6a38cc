"""Scoring on the real held-out split, through the same separator and scoring as ``stemcut eval``.

Training-time validation (:func:`validate`) and ``scripts/evaluate_split.py``
(:func:`evaluate_split`) both read the held-out tracks with
:func:`stemcut.evaluation.read_reference_track`, separate them with a
:class:`stemcut.separator.Separator` and score them with
:func:`stemcut.evaluation.score_track`: the SDR a training run records is measured
on the path ``stemcut separate`` and ``stemcut eval`` run.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..evaluation import EvalReport, ReferenceTrack, evaluate, read_reference_track, score_track, summarise


def crop_middle(track: ReferenceTrack, max_seconds: float | None) -> ReferenceTrack:
    """The middle ``max_seconds`` of a track (all of it if shorter or None)."""
    length = track.mixture.shape[-1]
    keep = length if max_seconds is None else min(length, int(round(max_seconds * track.sample_rate)))
    if keep == length:
        return track
    start = (length - keep) // 2
    cut = slice(start, start + keep)
    return dataclasses.replace(track, mixture=np.ascontiguousarray(track.mixture[:, cut]),
                               stems={t: np.ascontiguousarray(a[:, cut]) for t, a in track.stems.items()})


def validation_tracks(data_root: str | Path, split: dict[str, list[str]],
                      max_seconds: float | None = None) -> list[tuple[str, ReferenceTrack]]:
    """(folder/track name, track cropped to ``max_seconds``) for every held-out track under ``data_root``."""
    root = Path(data_root)
    tracks = []
    for folder, names in split.items():
        for name in names:
            path = root / folder / name
            if path.is_dir():
                tracks.append((f"{folder}/{name}", crop_middle(read_reference_track(path), max_seconds)))
    return tracks


def validate(separator, tracks: list[tuple[str, ReferenceTrack]]) -> EvalReport:
    """Mean global SDR per target (and per track) of ``separator`` on ``tracks``."""
    started = time.perf_counter()
    scores = [dataclasses.replace(score_track(track, separator.separate(track.mixture, track.sample_rate)),
                                  track=name) for name, track in tracks]
    return summarise("validation split", "model", scores, time.perf_counter() - started)


def evaluate_split(separator, data_root: str | Path, split: dict[str, list[str]], *, oracle: bool = False,
                   museval_folders: tuple[str, ...] = (),
                   progress: Callable[[str, object], None] | None = None) -> dict:
    """Score every split folder under ``data_root`` (museval on ``museval_folders``):
    {'overall': report dict, 'folders': {folder: report dict}}; folders not there are skipped."""
    root = Path(data_root)
    groups: dict[str, EvalReport] = {}
    started = time.perf_counter()
    for folder, names in split.items():
        path = root / folder
        if not path.is_dir():
            continue
        groups[folder] = evaluate(path, separator, oracle=oracle, museval=folder in museval_folders, tracks=names,
                                  progress=(lambda name, score, f=folder: progress(f"{f}/{name}", score))
                                  if progress else None)
    if not groups:
        raise FileNotFoundError(f"{root}: none of the split's folders ({', '.join(split)}) is there")
    every = [score for report in groups.values() for score in report.tracks]
    overall = summarise(str(root), next(iter(groups.values())).method, every, time.perf_counter() - started)
    return {"overall": overall, "folders": groups}


def split_results(method: str, separator, data_root: str | Path, split: dict[str, list[str]], *,
                  museval_folders: tuple[str, ...] = (), log: Callable[[str], None] = print) -> dict:
    """:func:`evaluate_split` for one method ('model', 'oracle' or a peer's name), its tables
    logged; returns JSON-ready {'overall': ..., 'folders': {...}}."""
    def show(name: str, score) -> None:
        log(f"  {method} {name}: " + ", ".join(f"{t} {v:.2f}" for t, v in score.global_sdr.items()))

    result = evaluate_split(separator, data_root, split, oracle=method == "oracle", museval_folders=museval_folders,
                            progress=show)
    for folder, report in result["folders"].items():
        log("\n" + report.text_table(f"{method} - {folder} ({len(report.tracks)} tracks)"))
    overall = result["overall"]
    log("\n" + overall.text_table(f"{method} - all held-out tracks ({len(overall.tracks)})"))
    return {"overall": overall.to_dict(), "folders": {k: v.to_dict() for k, v in result["folders"].items()}}


def add_split_arguments(parser) -> None:
    """The options every split-scoring command line takes (argparse)."""
    from .split import DATA_ROOT_ENV, DEFAULT_SPLIT, default_data_root

    parser.add_argument("--data-root", type=Path, default=default_data_root(),
                        help=f"folder of the real sets [default: ${DATA_ROOT_ENV}]")
    parser.add_argument("--split", type=Path, default=DEFAULT_SPLIT, help="held-out split (JSON)")
    parser.add_argument("--museval", action="store_true", help="also BSSEval v4 (slow)")
    parser.add_argument("--museval-folders", default="musdb18-preview/train,mdb",
                        help="split folders that get museval (it costs seconds of CPU per second of audio)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
