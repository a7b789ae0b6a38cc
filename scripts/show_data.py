#!/usr/bin/env python
"""Draw the spectrograms of songs' stems (and their mixtures) into a PNG, one column per song.

    python scripts/show_data.py SONG_DIR [SONG_DIR ...] --png out.png [--seconds 20] [--start S[,S...]] [--max-hz 16000]

SONG_DIR is any layout the training readers understand as a folder of
``<target>.wav|flac|ogg`` files (synthetic songs, renders, MUSDB18-HQ, MedleyDB rebuilds).
Several songs are drawn side by side (e.g. renders beside a real MUSDB preview), each
from its ``--start`` (one value for all, or one per song). Needs matplotlib (the ``train`` extra).
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


def _title(song: Path, name: str) -> str:
    meta_path = song / "meta.json"
    if not meta_path.exists():
        return name
    meta = json.loads(meta_path.read_text())
    if "tempo" in meta:
        return f"{name}  ({meta['tempo']:.0f} bpm, {meta.get('key', '')}, guitar: {meta.get('guitar', '?')})"
    if meta.get("layout") == "render":
        tones = ", ".join(t["tone"] for t in meta.get("parts", {}).get("guitar", []))
        return f"{name}  (render of {meta['midi']}{', guitar: ' + tones if tones else ''})"
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("songs", type=Path, nargs="+")
    parser.add_argument("--png", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=20.0, help="draw at most this much")
    parser.add_argument("--start", default="0", help="from this many seconds into each song (one value, or one per song, comma-separated)")
    parser.add_argument("--max-hz", type=float, default=16000.0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts = [float(v) for v in args.start.split(",")]
    if len(starts) not in (1, len(args.songs)):
        parser.error("--start: one value, or one per song")
    starts = starts * len(args.songs) if len(starts) == 1 else starts
    names = ["mixture", *TARGETS]
    fig, axes = plt.subplots(len(names), len(args.songs), figsize=(9 * len(args.songs), 1.3 * len(names)),
                             sharex="col", squeeze=False)
    for column, (song, start) in enumerate(zip(args.songs, starts)):
        track = read_stem_folder(song)
        begin = int(start * SAMPLE_RATE)
        stems = track.load()[..., begin : begin + int(args.seconds * SAMPLE_RATE)]
        rows = [("mixture", stems.sum(axis=0))] + [(t, stems[i]) for i, t in enumerate(TARGETS)]
        duration = stems.shape[-1] / SAMPLE_RATE
        for axis, (name, audio) in zip(axes[:, column], rows):
            spec = log_spectrogram(audio.mean(axis=0), hop=2048)
            top = int(spec.shape[0] * min(args.max_hz, SAMPLE_RATE / 2) / (SAMPLE_RATE / 2))
            peak = spec.max()
            axis.imshow(spec[:top], origin="lower", aspect="auto", cmap="magma", vmin=peak - 80, vmax=peak,
                        interpolation="nearest",
                        extent=(start, start + duration, 0, top * SAMPLE_RATE / 2 / spec.shape[0] / 1000))
            known = "" if name == "mixture" or track.known[TARGETS.index(name)] else " (inside other)"
            axis.set_ylabel(f"{name}{known}\nkHz", fontsize=8)
            axis.tick_params(labelsize=7)
        axes[0, column].set_title(_title(song, track.name), fontsize=9)
        axes[-1, column].set_xlabel("seconds")
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=60)
    plt.close(fig)
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
