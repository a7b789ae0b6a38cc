#!/usr/bin/env python
"""In-process speed of the separator path (no file decode/encode, no interpreter start-up).

Separates SECONDS of generated stereo 44.1 kHz noise with all stems of MODEL_DIR, Wiener
off (or on), three times after a warm-up, and prints the median wall time per second of
audio. Run time does not depend on the audio's content. ``scripts/bench.py`` times the
whole CLI command instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from stemcut.separator import Separator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=None, help="model set [default: the shipped weights/]")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--wiener", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with Separator(args.model_dir, device=args.device, wiener=args.wiener, threads=args.threads) as separator:
        rng = np.random.default_rng(0)
        audio = (rng.standard_normal((2, int(44100 * args.seconds))) * 0.1).astype(np.float32)
        separator.separate(audio[:, : 44100 * 5], 44100)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            separator.separate(audio, 44100)
            times.append(time.perf_counter() - started)
    print(f"{separator.model_dir}: {args.seconds:.0f} s stereo, {len(separator.stems)} stems, "
          f"Wiener {'on' if args.wiener else 'off'}, threads {args.threads}: "
          f"median {sorted(times)[1] / args.seconds:.4f} s per audio s (runs {', '.join(f'{t:.2f}' for t in times)} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
