#!/usr/bin/env python3
"""A model set made of the best model per target from other sets.

    python scripts/compose_set.py --out ../runs/final --from ../runs/blstm-cont/export \\
        --take drums=../runs/unet-drums/export

Every target of --from is copied, then each --take TARGET=DIR replaces one target's model
(file and manifest entry, sha256 checked): stemcut.weights.compose_set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemcut.weights import compose_set, model_specs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder of the composed set")
    parser.add_argument("--from", dest="base", type=Path, required=True, help="set whose targets are all taken")
    parser.add_argument("--take", action="append", default=[], metavar="TARGET=DIR",
                        help="take TARGET's model from the set in DIR instead")
    args = parser.parse_args(argv)
    sources: dict[str, Path] = {spec.target: args.base for spec in model_specs(args.base)}
    for item in args.take:
        target, _, folder = item.partition("=")
        if not folder:
            parser.error(f"--take {item!r}: expected TARGET=DIR")
        sources[target] = Path(folder)
    compose_set(args.out, sources)
    for spec in model_specs(args.out):
        print(f"{spec.target:7s} {spec.arch:6s} {spec.params}  from {sources[spec.target]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
