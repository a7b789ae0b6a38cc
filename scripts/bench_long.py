"""Memory stays bounded on a very long file: separate a generated 3-hour song.

    python scripts/bench_long.py                     # 3 h, stereo 44.1 kHz, tiny random models
    python scripts/bench_long.py --hours 0.25 --model-dir weights

The input is written block by block (never held in memory), then separated by the
batch runner exactly as ``stemcut separate`` does it. The resident set size is
sampled as the separation goes; the script fails (exit 1) if it grows by more than
``--max-growth-mb`` after the first 10 % of the file. Disk: a 3-hour stereo 16-bit
input is 1.9 GB, and so is each stem written (``--stems`` limits them; default vocals).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; elsewhere the peak so far)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_long_input(path: Path, seconds: float, rate: int, channels: int, block: int = 1 << 18) -> None:
    rng = np.random.default_rng(0)
    total = int(seconds * rate)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, subtype="PCM_16",
                      format="RF64" if total * channels * 2 > 4 * 1024**3 - 2**20 else "WAV") as out:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / rate
            tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 3 * t) * np.sin(2 * np.pi * 880 * t)
            audio = tone[:, None] + 0.02 * rng.standard_normal((n, channels))
            out.write(audio.astype(np.float32))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--stems", default="vocals", help="comma-separated stems to write")
    parser.add_argument("--model-dir", type=Path, help="model set [default: tiny random models]")
    parser.add_argument("--segment", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, help="where the input and stems go [default: a temp folder, removed]")
    parser.add_argument("--max-growth-mb", type=float, default=200.0)
    args = parser.parse_args()

    from stemcut.audio import OutputSpec
    from stemcut.batch import plan_jobs, run_jobs
    from stemcut.separator import Separator
    from stemcut.weights import write_untrained_set

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="stemcut-long-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = write_untrained_set(work / "models", "blstm",
                                            {"n_fft": 512, "max_bin": 128, "hidden": 16, "layers": 1},
                                            n_fft=512, hop=128)
        seconds = args.hours * 3600
        song = work / "long.wav"
        started = time.perf_counter()
        write_long_input(song, seconds, args.rate, args.channels)
        print(f"input: {seconds / 3600:.2f} h, {song.stat().st_size / 2**30:.2f} GiB, "
              f"written in {time.perf_counter() - started:.0f} s", flush=True)

        separator = Separator(model_dir, device="cpu", segment=args.segment, threads=args.threads)
        spec = OutputSpec()
        stems = [s.strip() for s in args.stems.split(",") if s.strip()]
        plan = plan_jobs([song], work / "out", stems, spec)
        total = int(seconds * args.rate)
        done = 0
        samples: list[tuple[float, float]] = []
        next_mark = 0.0

        def progress(frames: int) -> None:
            nonlocal done, next_mark
            done += frames
            fraction = done / total
            if fraction >= next_mark:
                samples.append((fraction, rss_mb()))
                print(f"  {100 * fraction:5.1f} %  RSS {samples[-1][1]:8.1f} MiB", flush=True)
                next_mark += 0.05

        started = time.perf_counter()
        result = run_jobs(separator, plan.jobs, spec, stems=stems, on_progress=progress, force=True)
        elapsed = time.perf_counter() - started
        outcome = result.outcomes[0]
        print(f"{outcome.status}: {outcome.duration / 3600:.2f} h of audio in {elapsed:.0f} s "
              f"({outcome.duration / max(elapsed, 1e-9):.1f}x real time) {outcome.reason}")
        if outcome.status != "done" or not samples:
            return 1
        after_warmup = [rss for fraction, rss in samples if fraction >= 0.1]
        baseline = after_warmup[0] if after_warmup else samples[-1][1]
        peak = max(rss for _, rss in samples)
        growth = max(after_warmup, default=baseline) - baseline
        print(f"RSS at 10 %: {baseline:.1f} MiB, peak: {peak:.1f} MiB, growth after 10 %: {growth:.1f} MiB "
              f"(limit {args.max_growth_mb:.0f})")
        return 0 if growth <= args.max_growth_mb else 1
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
