#!/usr/bin/env python3
"""Speed and memory of the whole `stemcut separate` command on generated songs.

    python scripts/bench.py                       # 3 and 60 minute files, shipped models
    python scripts/bench.py --minutes 3 --wiener  # with the Wiener filter
    python scripts/bench.py --model-dir DIR       # another model set

Each run is a fresh `python -m stemcut separate` process (decode to written
files); the figures are its wall time per second of audio and its peak resident
memory (ru_maxrss of the child). The input is a generated stereo 44.1 kHz
16-bit WAV, written block by block, kept in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 44100


def write_song(path: Path, minutes: float, seed: int = 0) -> Path:
    """A stereo 'song': chords of sines, a kick-like pulse and noise, written in 10 s blocks."""
    rng = np.random.default_rng(seed)
    frames = int(minutes * 60 * RATE)
    block = 10 * RATE
    with sf.SoundFile(path, "w", samplerate=RATE, channels=2, subtype="PCM_16") as out:
        for start in range(0, frames, block):
            t = (np.arange(start, min(start + block, frames)) / RATE)[:, None]
            chord = sum(0.08 * np.sin(2 * np.pi * f * t * np.array([1.0, 1.003])) for f in (110, 220, 277.2, 329.6))
            kick = 0.3 * np.sin(2 * np.pi * 55 * t) * np.exp(-12 * (t % 0.5))
            noise = 0.02 * rng.standard_normal((t.shape[0], 2))
            out.write((chord + kick + noise).astype(np.float32))
    return path


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS in MiB of `command`, from wait4's resource usage."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{stderr}")
    return wall, usage.ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0, 60.0], help="lengths of the test files")
    parser.add_argument("--model-dir", type=Path, default=None, help="model set (default: shipped weights/)")
    parser.add_argument("--wiener", action="store_true", help="turn the Wiener filter on (1 iteration)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs per file; the median is reported")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `stemcut separate` options")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="stemcut-bench-") as scratch:
        scratch = Path(scratch)
        for minutes in args.minutes:
            song = write_song(scratch / f"song-{minutes:g}min.wav", minutes)
            command = [sys.executable, "-m", "stemcut", "separate", str(song), "-o", str(scratch / "out"),
                       "--threads", str(args.threads), "-q", "--wiener" if args.wiener else "--no-wiener"]
            if args.model_dir:
                command += ["--model-dir", str(args.model_dir)]
            command += args.extra
            runs = [measure(command) for _ in range(args.repeat)]
            wall = statistics.median(run[0] for run in runs)
            rss = max(run[1] for run in runs)
            seconds = minutes * 60
            results.append({"minutes": minutes, "wiener": args.wiener, "threads": args.threads,
                            "wall_s": round(wall, 2), "s_per_audio_s": round(wall / seconds, 4),
                            "x_realtime": round(seconds / wall, 1), "peak_rss_mib": round(rss, 1)})
            print(f"{minutes:6g} min  wiener={'on ' if args.wiener else 'off'}  {wall:8.1f} s  "
                  f"{wall / seconds:.4f} s per audio s  ({seconds / wall:.1f}x real time)  peak RSS {rss:.0f} MiB",
                  flush=True)
            for path in (scratch / "out").rglob("*"):
                if path.is_file():
                    path.unlink()
            song.unlink()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
