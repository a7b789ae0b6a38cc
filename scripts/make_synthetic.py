#!/usr/bin/env python
"""Render synthetic five-stem songs: DIR/<song>/{vocals,drums,bass,guitar,other}.flac + meta.json.

Example:
    python scripts/make_synthetic.py --out ../data_synth --songs 20 --seconds 30 --seed 1 --jobs 1 \
        --soundfont /usr/share/sounds/sf3/FluidR3Mono_GM.sf3 --vocal-clips $STEMCUT_DATA/solo/vocals

Song i gets the seed (--seed, i), so output does not depend on --jobs. Without a SoundFont
(--soundfont, $STEMCUT_SOUNDFONT or the Debian default path) the built-in synth is used.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import numpy as np

from stemcut.training.instruments import find_soundfont, soundfont_renderer_available
from stemcut.training.synthetic import GeneratorConfig, generate_song, write_song


def _song_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _make_one(args: tuple[int, int, Path, GeneratorConfig]) -> str:
    seed, index, out, config = args
    name = f"song_{seed:04d}_{index:05d}"
    stems, meta = generate_song(_song_seed(seed, index), config)
    meta["name"] = name
    write_song(out / name, stems, meta)
    return name


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per song)")
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each song")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--soundfont", type=str, default=None,
                        help="sf2/sf3 file (default: $STEMCUT_SOUNDFONT, then Debian FluidR3Mono_GM.sf3)")
    parser.add_argument("--builtin-synth", action="store_true", help="ignore any SoundFont, use the built-in synth")
    parser.add_argument("--vocal-clips", type=Path, default=None,
                        help="folder of real sung clips to cut up for some songs' vocals")
    parser.add_argument("--real-vocal-probability", type=float, default=0.5)
    args = parser.parse_args(argv)

    soundfont = None if args.builtin_synth else find_soundfont(args.soundfont)
    if soundfont is not None and args.soundfont is None and not soundfont_renderer_available():
        print("tinysoundfont is not installed (pip install --no-deps tinysoundfont): using the built-in synth",
              file=sys.stderr)
        soundfont = None
    config = GeneratorConfig(args.seconds, soundfont, args.vocal_clips, args.real_vocal_probability)
    args.out.mkdir(parents=True, exist_ok=True)
    work = [(args.seed, i, args.out, config) for i in range(args.songs)]
    wall, cpu = time.perf_counter(), _cpu_seconds()
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for name in pool.imap(_make_one, work):
                print(name, flush=True)
    else:
        for item in work:
            print(_make_one(item), flush=True)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    audio_hours = args.songs * args.seconds / 3600
    print(f"renderer: {soundfont or 'built-in synth'}")
    print(f"{args.songs} songs x {args.seconds:g} s = {audio_hours * 60:.1f} min of 5-stem audio in "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU: {audio_hours / (cpu / 3600):.1f} h of 5-stem audio per CPU-hour")
    return 0


if __name__ == "__main__":
    sys.exit(main())
