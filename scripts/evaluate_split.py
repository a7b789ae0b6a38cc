#!/usr/bin/env python
"""Score a model set (and/or the ideal ratio mask) on the real held-out validation split.

    python scripts/evaluate_split.py --model-dir weights --oracle --museval --json runs/eval.json

Runs :func:`stemcut.evaluation.evaluate` on each data folder the split names (MUSDB
previews, MedleyDB, CC0 album, MIR-1K), only on the held-out tracks, and prints
per-folder and overall tables (overall: global SDR mean over all tracks, museval
median over the tracks of --museval-folders, by default the MUSDB previews and
MedleyDB songs: BSSEval v4 is too slow on this CPU for the full CC0 song and the
MIR-1K clips).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemcut.evaluation import EvalReport, evaluate, summarise  # noqa: E402
from stemcut.atomic import write_json  # noqa: E402
from stemcut.training.split import DEFAULT_SPLIT, load_split  # noqa: E402


def print_table(title: str, report: EvalReport) -> None:
    rows = report.table_rows()
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\n{title}")
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


def run(method: str, separator, args, split: dict[str, list[str]]) -> dict:
    groups, every = {}, []
    started = time.perf_counter()
    for folder, names in split.items():
        path = args.data_root / folder
        if not path.is_dir():
            print(f"skip {folder}: not under {args.data_root}")
            continue
        use_museval = args.museval and folder in args.museval_folders.split(",")
        report = evaluate(path, separator, oracle=method == "oracle", museval=use_museval, tracks=names,
                          progress=lambda name, score: print(f"  {method} {folder}/{name}: " + ", ".join(
                              f"{t} {v:.2f}" for t, v in score.global_sdr.items()), flush=True))
        groups[folder] = report
        every.extend(report.tracks)
        print_table(f"{method} - {folder} ({len(report.tracks)} tracks)", report)
    overall = summarise(str(args.data_root), groups[next(iter(groups))].method, every,
                        time.perf_counter() - started)
    print_table(f"{method} - all held-out tracks ({len(every)})", overall)
    return {"overall": overall.to_dict(), "folders": {k: v.to_dict() for k, v in groups.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=None, help="model set to score (omit with --oracle-only)")
    parser.add_argument("--data-root", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--split", type=Path, default=DEFAULT_SPLIT)
    parser.add_argument("--oracle", action="store_true", help="also score the ideal ratio mask")
    parser.add_argument("--museval", action="store_true", help="also BSSEval v4 (slow)")
    parser.add_argument("--museval-folders", default="musdb18-preview/train,mdb",
                        help="split folders that get museval (it costs seconds of CPU per second of audio)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    split = load_split(args.split)
    results = {"command": " ".join(["python", *sys.argv]), "split": str(args.split)}
    if args.model_dir is not None:
        from stemcut.separator import Separator

        separator = Separator(args.model_dir, device="cpu", wiener=False)
        results["model"] = run("model", separator, args, split)
    if args.oracle:
        results["oracle"] = run("oracle", None, args, split)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
