#!/usr/bin/env python
"""Score a model set (and/or the ideal ratio mask) on the real held-out validation split.

    python scripts/evaluate_split.py --data-root DATA --model-dir weights --oracle --museval --json runs/eval.json

Runs stemcut.training.validation.split_results (the scoring of `stemcut eval`) on each data
folder the split names (MUSDB previews, MedleyDB, CC0 album, MIR-1K), only on the held-out
tracks, and prints per-folder and overall tables (overall: global SDR mean over all tracks,
museval median over the tracks of --museval-folders, by default the MUSDB previews and
MedleyDB songs: BSSEval v4 is too slow on this CPU for the full CC0 song and the MIR-1K clips).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from stemcut.atomic import write_json
from stemcut.training.split import DATA_ROOT_ENV, load_split
from stemcut.training.validation import add_split_arguments, split_results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=None, help="model set to score")
    parser.add_argument("--oracle", action="store_true", help="also score the ideal ratio mask")
    parser.add_argument("--wiener", action="store_true", help="separate with the Wiener filter (1 iteration)")
    add_split_arguments(parser)
    args = parser.parse_args()
    if args.data_root is None:
        parser.error(f"give --data-root or set ${DATA_ROOT_ENV}")
    if args.model_dir is None and not args.oracle:
        parser.error("give --model-dir and/or --oracle")
    split = load_split(args.split)
    museval_folders = tuple(args.museval_folders.split(",")) if args.museval else ()
    results = {"command": shlex.join(["python", *sys.argv]), "split": str(args.split)}

    def log(line: str) -> None:
        print(line, flush=True)

    if args.model_dir is not None:
        from stemcut.separator import Separator

        with Separator(args.model_dir, device="cpu", threads=args.threads, wiener=args.wiener) as separator:
            results["model"] = split_results("model", separator, args.data_root, split,
                                             museval_folders=museval_folders, log=log)
    if args.oracle:
        results["oracle"] = split_results("oracle", None, args.data_root, split, museval_folders=museval_folders,
                                          log=log)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
