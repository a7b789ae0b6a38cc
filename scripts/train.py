#!/usr/bin/env python
"""Train stemcut mask models: any subset of the five targets in one process, sharing every batch.

Example (how the shipped set was made is in weights/manifest.json, see docs/models.md):

    STEMCUT_DATA=/path/to/shared/data python scripts/train.py --targets vocals,drums,bass,guitar,other \\
        --arch blstm --params '{"hidden": 128, "layers": 2}' --steps 40000 --minutes 170 \\
        --run ../runs/main --resume --export ../runs/main/weights

Data: real sets under --data-root (MUSDB18 previews, CC0 album, MedleyDB, MIR-1K, solo clips),
the corpus of scripts/prepare_data.py under --corpus (Frets on Fire stems, game music, renders)
and synthetic songs under --synthetic, mixed by --mix pool weights; every track named in
--split is held out of training and is the validation set (and so is every render singing a
phrase of one). The batches are cut on the training device from a bank of --bank-windows stem
windows that --workers threads refill (--refill windows per step); --bundle trains on a bank
written by scripts/bundle_bank.py instead (a machine without the corpus). The budget is --steps over all
resumes; --minutes stops this invocation (checkpointed) so a long run can span sessions.
Checkpoints go to <run>/checkpoint/ (files of at most 16 MiB) every --checkpoint-minutes. Logs: stdout and <run>/train.log.
The work is done by stemcut.training.trainer.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from stemcut.targets import TARGETS
from stemcut.training.pools import add_pool_arguments, parse_mix
from stemcut.training.split import DATA_ROOT_ENV
from stemcut.training.trainer import TrainConfig, train


def parse_args(argv: list[str] | None) -> TrainConfig:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated subset of " + ",".join(TARGETS))
    parser.add_argument("--arch", default=defaults.arch, help="model family (stemcut.models.ARCHITECTURES)")
    parser.add_argument("--params", default="{}", help="JSON hyper-parameters for the family")
    parser.add_argument("--n-fft", type=int, default=defaults.n_fft)
    parser.add_argument("--hop", type=int, default=defaults.hop)
    add_pool_arguments(parser)
    parser.add_argument("--bundle", type=Path, default=None,
                        help="train on this bank bundle (scripts/bundle_bank.py) instead of the pools")
    parser.add_argument("--segment", type=float, default=defaults.segment, help="training excerpt length, seconds")
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimiser steps in all (over resumes)")
    parser.add_argument("--decay-from", type=float, default=defaults.decay_from,
                        help="fraction of the steps before the cosine decay")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="stop this invocation after this many minutes (0: run to --steps)")
    parser.add_argument("--session-steps", type=int, default=0,
                        help="stop this invocation after this many steps (0: run to --steps)")
    parser.add_argument("--run", type=Path, default=defaults.run, help="folder for checkpoint and log")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <run>/checkpoint/; with another --steps, --lr or --decay-from, "
                             "on that plan's learning-rate schedule from the step reached")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this model set's weights (same --arch and --params), e.g. weights")
    parser.add_argument("--export", type=Path, default=None, help="write the model set here at the end")
    parser.add_argument("--val-minutes", type=float, default=defaults.val_minutes, help="validate every this many minutes")
    parser.add_argument("--val-seconds", type=float, default=defaults.val_seconds,
                        help="score the middle this many seconds of each held-out track")
    parser.add_argument("--checkpoint-minutes", type=float, default=defaults.checkpoint_minutes)
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="threads refilling the bank from the pools (0: refill between steps)")
    parser.add_argument("--bank-windows", type=int, default=defaults.bank_windows,
                        help="stem windows the bank holds on the training device")
    parser.add_argument("--refill", type=float, default=defaults.refill,
                        help="windows replaced per step (0: the bank stays as first filled)")
    args = parser.parse_args(argv)
    try:
        parse_mix(args.mix)
    except ValueError as error:
        parser.error(f"--mix: {error}")
    if args.data_root is None and args.synthetic is None and args.corpus is None and args.bundle is None:
        parser.error(f"no training data: give --data-root (or set ${DATA_ROOT_ENV}), --corpus, --synthetic "
                     f"or --bundle")
    command = " ".join(shlex.quote(a) for a in ["python", "scripts/train.py", *(argv if argv is not None else sys.argv[1:])])
    try:
        return TrainConfig(
            targets=[t.strip() for t in args.targets.split(",") if t.strip()], arch=args.arch,
            params=json.loads(args.params), n_fft=args.n_fft, hop=args.hop, data_root=args.data_root,
            synthetic=args.synthetic, corpus=args.corpus, bundle=args.bundle, mix=args.mix, split=args.split, segment=args.segment, batch=args.batch,
            lr=args.lr, steps=args.steps, decay_from=args.decay_from, minutes=args.minutes,
            session_steps=args.session_steps, run=args.run,
            resume=args.resume, init=args.init, export=args.export, val_minutes=args.val_minutes, val_seconds=args.val_seconds,
            checkpoint_minutes=args.checkpoint_minutes, device=args.device, threads=args.threads,
            amp=not args.no_amp, seed=args.seed, workers=args.workers, bank_windows=args.bank_windows,
            refill=args.refill, command=command)
    except ValueError as error:
        parser.error(str(error))


def main(argv: list[str] | None = None) -> int:
    train(parse_args(argv), log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
