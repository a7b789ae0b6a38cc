#!/usr/bin/env python
"""In-process speed of the separator path (no file decode/encode, no interpreter start-up).

    python scripts/bench_separator.py [MODEL_DIR] [SECONDS] [THREADS]

Separates SECONDS (default 60) of generated stereo 44.1 kHz noise with all stems of
MODEL_DIR (default: the shipped weights/), Wiener off, three times after a warm-up,
and prints the median wall time per second of audio. Run time does not depend on
the audio's content. ``scripts/bench.py`` times the whole CLI command instead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemcut.separator import Separator  # noqa: E402
from stemcut.weights import default_model_dir  # noqa: E402


def main() -> int:
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else default_model_dir()
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    separator = Separator(model_dir, device="cpu", wiener=False, threads=threads)
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((2, int(44100 * seconds))) * 0.1).astype(np.float32)
    separator.separate(audio[:, : 44100 * 5], 44100)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        separator.separate(audio, 44100)
        times.append(time.perf_counter() - started)
    print(f"{model_dir}: {seconds:.0f} s stereo, {len(separator.stems)} stems, Wiener off, threads {threads}: "
          f"median {sorted(times)[1] / seconds:.4f} s per audio s (runs {', '.join(f'{t:.2f}' for t in times)} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
