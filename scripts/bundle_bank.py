#!/usr/bin/env python
"""Pack a training bank into one file of at most --max-mib, to train where the corpus is not.

    python scripts/bundle_bank.py --data-root DATA --corpus CORPUS --mix "musdb=0.35,...,renders=0.35" \\
        --windows 400 --segment 3 --out ../runs/bank.zip
    python scripts/train.py --bundle ../runs/bank.zip ...      # e.g. on a lent GPU machine

The bank is filled from the pools exactly as scripts/train.py fills it (same --mix, split,
held-out songs left out), then written by stemcut.training.bank.TrainingBank.save_bundle: a zip
of 10-channel Ogg Vorbis windows and a JSON index of pools, masks and licences. If the file
comes out larger than --max-mib, the bank is rebuilt with proportionally fewer windows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stemcut.training.bank import BankConfig, TrainingBank
from stemcut.training.pools import add_pool_arguments, build_pools, parse_mix
from stemcut.training.split import load_split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pool_arguments(parser)
    parser.add_argument("--windows", type=int, default=400, help="windows to pack (fewer if they do not fit)")
    parser.add_argument("--segment", type=float, default=4.0, help="training excerpt length, seconds")
    parser.add_argument("--quality", type=float, default=0.3, help="Ogg Vorbis quality, 0 (smallest) to 1")
    parser.add_argument("--max-mib", type=float, default=60.0, help="largest bundle to write, MiB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="the bundle file to write")
    args = parser.parse_args(argv)
    try:
        mix = parse_mix(args.mix)
    except ValueError as error:
        parser.error(f"--mix: {error}")
    pools = build_pools(args.data_root, args.synthetic, mix, load_split(args.split), args.corpus)
    windows = args.windows
    limit = int(args.max_mib * 2**20)
    while windows >= 2:
        bank = TrainingBank(pools, args.segment, "cpu", BankConfig(windows=windows, refill_per_batch=0), seed=args.seed)
        bank.fill()
        size = bank.save_bundle(args.out, quality=args.quality)
        print(f"{args.out}: {bank.slots} windows of {bank.window / 44100:.2f} s, {size / 2**20:.1f} MiB", flush=True)
        if size <= limit:
            return 0
        windows = int(bank.slots * limit / size * 0.97)
        print(f"larger than --max-mib {args.max_mib:g}: again with {windows} windows", flush=True)
    args.out.unlink(missing_ok=True)
    print(f"error: {args.out}: not even 2 windows fit in {args.max_mib:g} MiB", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
