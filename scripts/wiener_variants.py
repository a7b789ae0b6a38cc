"""The step that combines the models' estimates into stems, compared on held-out tracks.

    python scripts/wiener_variants.py --data-root $STEMCUT_DATA --model-dir weights

Each track of the split folder (default: the held-out MUSDB previews), cropped to its
middle --seconds (one pass, no chunking: keep it within a segment), goes once through the
STFT and the models; then every variant below forms the stems from the same estimates
``v`` and is scored as ``stemcut eval`` scores (global SDR, mean over tracks). The ratio
mask and the first sqrt(v) row run ``MaskSeparator.forward`` (what ``--no-wiener`` and
``--wiener`` do, on one segment); the others are ``filtering.wiener`` (norbert's algorithm)
fed ``v``, ``v**2`` or ``sqrt(v)``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from stemcut.atomic import write_json
from stemcut.evaluation import score_track
from stemcut.filtering import wiener
from stemcut.training.split import DATA_ROOT_ENV, DEFAULT_SPLIT, default_data_root, load_split
from stemcut.training.validation import validation_tracks
from stemcut.transforms import istft
from stemcut.weights import load_model_set

Combine = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _as_run(iterations: int | None):
    """What ``stemcut separate`` does: :meth:`MaskSeparator.forward` (one segment here)."""
    return lambda core, audio, v, x: core(audio, iterations)


def _alternative(combine: Combine):
    """Another combining step on the same estimates v (S, B, C, F, T) and mixture x (B, C, F, T)."""
    def run(core, audio, v, x):
        stems = combine(v, x).transpose(-1, -2)
        return torch.stack([istft(stem, core.stft.n_fft, core.stft.hop, core.stft.window, audio.shape[-1])
                            for stem in stems])
    return run


VARIANTS = {  # name -> (core, audio (B, C, L), v, x) -> stems (S, B, C, L)
    "ratio mask v/sum(v) (--no-wiener)": _as_run(None),
    "Wiener, 1 iteration, on v (as before)": _alternative(lambda v, x: wiener(v, x, 1)),
    "Wiener, 2 iterations, on v": _alternative(lambda v, x: wiener(v, x, 2)),
    "squared ratio mask v^2/sum(v^2), no EM": _alternative(lambda v, x: wiener(v.square(), x, 0)),
    "Wiener, 1 iteration, on sqrt(v) (--wiener)": _as_run(1),
    "Wiener, 2 iterations, on sqrt(v)": _alternative(lambda v, x: wiener(v.sqrt(), x, 2)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=default_data_root(),
                        help=f"folder of the real sets [default: ${DATA_ROOT_ENV}]")
    parser.add_argument("--split", type=Path, default=DEFAULT_SPLIT, help="held-out split (JSON)")
    parser.add_argument("--folder", default="musdb18-preview/train", help="split folder to score (stereo tracks)")
    parser.add_argument("--model-dir", type=Path, default=None, help="model set (default: shipped weights/)")
    parser.add_argument("--seconds", type=float, default=10.0, help="middle of each track kept")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the table here")
    args = parser.parse_args()
    if args.data_root is None:
        parser.error(f"give --data-root or set ${DATA_ROOT_ENV}")
    torch.set_num_threads(args.threads)
    split = load_split(args.split)
    data_root = args.data_root
    tracks = validation_tracks(data_root, {args.folder: split[args.folder]}, args.seconds)
    model_set = load_model_set(args.model_dir)
    core = model_set.mask_separator().eval()
    scores: dict[str, list] = {name: [] for name in VARIANTS}
    with torch.no_grad():
        for name, track in tracks:
            if track.sample_rate != model_set.sample_rate or track.mixture.shape[0] != 2:
                raise SystemExit(f"{name}: the variants need stereo at {model_set.sample_rate} Hz")
            audio = torch.from_numpy(track.mixture)[None]
            spectrogram = core.spectrogram(audio)
            estimates = core.estimates(spectrogram.abs())
            v, x = estimates.transpose(-1, -2), spectrogram.transpose(-1, -2)
            for variant, run in VARIANTS.items():
                stems = run(core, audio, v, x)
                audio_stems = {stem: stems[i, 0].numpy() for i, stem in enumerate(core.stems)}
                scores[variant].append(score_track(track, audio_stems).global_sdr)
    targets = [t for t in core.stems if any(t in s for s in scores[next(iter(VARIANTS))])]
    table = {variant: {t: float(np.mean([s[t] for s in rows if t in s])) for t in targets}
             for variant, rows in scores.items()}
    print(f"{len(tracks)} tracks of {args.folder}, middle {args.seconds:g} s, global SDR mean (dB)\n")
    print("| combining step | " + " | ".join(targets) + " |\n|---|" + "---|" * len(targets))
    for variant, row in table.items():
        print(f"| {variant} | " + " | ".join(f"{row[t]:.2f}" for t in targets) + " |")
    if args.json:
        write_json(args.json, {"command": shlex.join(["python", *sys.argv]), "table": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
