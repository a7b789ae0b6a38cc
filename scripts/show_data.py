#!/usr/bin/env python
"""Draw the spectrograms of a song's stems (and their mixture) into a PNG.

    python scripts/show_data.py SONG_DIR --png out.png [--seconds 20] [--max-hz 16000]

SONG_DIR is any layout the training readers understand as a folder of
``<target>.wav|flac|ogg`` files (synthetic songs, MUSDB18-HQ, MedleyDB rebuilds).
Needs matplotlib (the ``train`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from stemcut.training.sources import read_stem_folder
from stemcut.training.targets import SAMPLE_RATE, TARGETS


def log_spectrogram(audio: np.ndarray, n_fft: int = 2048, hop: int = 2048) -> np.ndarray:
    """dB magnitude spectrogram ``[bins, frames]`` of a mono signal."""
    if audio.shape[0] < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.shape[0]))
    frames = 1 + (audio.shape[0] - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spectrum = np.abs(np.fft.rfft(audio[index] * np.hanning(n_fft), axis=1)).T
    return 20 * np.log10(spectrum + 1e-6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", type=Path)
    parser.add_argument("--png", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=20.0, help="draw at most this much from the start")
    parser.add_argument("--max-hz", type=float, default=16000.0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    track = read_stem_folder(args.song)
    stems = track.load()[..., : int(args.seconds * SAMPLE_RATE)]
    rows = [("mixture", stems.sum(axis=0))] + [(t, stems[i]) for i, t in enumerate(TARGETS)]
    title = track.name
    meta_path = args.song / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if "tempo" in meta:
            title += f"  ({meta['tempo']:.0f} bpm, {meta.get('key', '')}, guitar: {meta.get('guitar', '?')})"
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.3 * len(rows)), sharex=True)
    duration = stems.shape[-1] / SAMPLE_RATE
    for axis, (name, audio) in zip(axes, rows):
        spec = log_spectrogram(audio.mean(axis=0), hop=2048)
        top = int(spec.shape[0] * min(args.max_hz, SAMPLE_RATE / 2) / (SAMPLE_RATE / 2))
        peak = spec.max()
        axis.imshow(spec[:top], origin="lower", aspect="auto", cmap="magma", vmin=peak - 80, vmax=peak,
                    interpolation="nearest", extent=(0, duration, 0, top * SAMPLE_RATE / 2 / spec.shape[0] / 1000))
        known = "" if name == "mixture" or track.known[TARGETS.index(name)] else " (inside other)"
        axis.set_ylabel(f"{name}{known}\nkHz", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0].set_title(title, fontsize=9)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=60)
    plt.close(fig)
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
