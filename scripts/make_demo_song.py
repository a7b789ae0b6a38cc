#!/usr/bin/env python3
"""Write a short generated demo song (the mixture only) to try stemcut on.

    python scripts/make_demo_song.py demo.wav [--seconds 20] [--seed 7]

The song comes from the project's synthetic multitrack generator (built-in synth,
no SoundFont needed); its stems are summed into one stereo 44.1 kHz WAV.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stemcut.audio import save_audio
from stemcut.training.synthetic import GeneratorConfig, generate_song


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="WAV file to write")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    stems, meta = generate_song(args.seed, GeneratorConfig(seconds=args.seconds, soundfont=None))
    mixture = sum(stems.values())
    save_audio(args.out, mixture, 44100)
    print(f"{args.out}: {args.seconds:g} s demo song, {meta.get('tempo', '?')} bpm, key {meta.get('key', '?')}")


if __name__ == "__main__":
    main()
