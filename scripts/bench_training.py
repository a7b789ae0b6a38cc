#!/usr/bin/env python
"""Training throughput: how long a batch takes to draw from the bank and to train on, on a device.

    python scripts/bench_training.py --data-root DATA --corpus CORPUS --device cpu --threads 2 --batch 6 --segment 3
    python scripts/bench_training.py --bundle ../runs/bank.zip --device cuda --batch 32 --segment 5

Fills a bank exactly as scripts/train.py does (or loads a bundle), then times --steps batches
drawn alone (bank.sample: excerpts, remixing and augmentations on the device), and --steps
full optimiser steps (draw + forward + backward + update) of the five-target model set, after
--warmup steps. Prints ms per draw, ms per step, steps/s and hours of audio seen per hour.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from stemcut.separator import resolve_device
from stemcut.targets import TARGETS
from stemcut.training.bank import BankConfig, TrainingBank
from stemcut.training.pools import add_pool_arguments, build_pools, parse_mix
from stemcut.training.split import load_split
from stemcut.training.trainer import TrainConfig, Trainer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pool_arguments(parser)
    parser.add_argument("--bundle", type=Path, default=None, help="a bank bundle instead of the pools")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--segment", type=float, default=3.0)
    parser.add_argument("--windows", type=int, default=256, help="bank windows")
    parser.add_argument("--arch", default="blstm")
    parser.add_argument("--params", default='{"hidden": 128, "layers": 2}')
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = BankConfig(windows=args.windows, refill_per_batch=1.0, threads=1)
    if args.bundle is not None:
        bank = TrainingBank.from_bundle(args.bundle, device, config, log=lambda _: None)
    else:
        pools = build_pools(args.data_root, args.synthetic, parse_mix(args.mix), load_split(args.split), args.corpus,
                            log=lambda _: None)
        bank = TrainingBank(pools, args.segment, device, config, log=print)
        bank.fill()
        bank.start()
    trainer = Trainer(TrainConfig(targets=list(TARGETS), arch=args.arch, params=json.loads(args.params),
                                  threads=args.threads, device=str(device)), device)

    def timed(action) -> float:
        for _ in range(args.warmup):
            action()
        synchronize(device)
        started = time.perf_counter()
        for _ in range(args.steps):
            action()
        synchronize(device)
        return (time.perf_counter() - started) / args.steps

    with bank:
        draw = timed(lambda: bank.sample(args.batch))
        step = timed(lambda: trainer.step(*_tensors(bank.sample(args.batch))))
    audio_hours_per_hour = args.batch * args.segment / step
    print(f"{device}, {args.threads} threads, batch {args.batch} x {args.segment:g} s, {args.arch} {args.params}, "
          f"bank {bank.slots} windows: draw {draw * 1e3:.0f} ms, step {step * 1e3:.0f} ms "
          f"({1 / step:.2f} steps/s, {audio_hours_per_hour:.0f} h of audio seen per hour)")
    return 0


def _tensors(batch):
    return batch.mixture, batch.stems, batch.known


if __name__ == "__main__":
    raise SystemExit(main())
