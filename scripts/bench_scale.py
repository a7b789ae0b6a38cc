#!/usr/bin/env python
"""Scale-out on one machine: one process vs N processes (and a Dask local cluster) on one folder.

Generates SONGS stereo songs of SECONDS each, then runs `stemcut separate` on them into a fresh
output folder per configuration: one process (--threads T), P processes at once on the same
output folder (--threads 1 each, sharing the work through per-track claims) and, when Dask is
installed, `--dask local:P`. For each it prints the wall time and checks that every track was
separated exactly once (from the JSON reports) and that the outputs are byte-identical to the
single run. Writes the table as JSON with --json.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def make_songs(folder: Path, count: int, seconds: float) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * 44100)) / 44100
    for index in range(count):
        tone = sum(0.1 * np.sin(2 * np.pi * f * t) for f in rng.uniform(60, 2000, 5))
        audio = np.stack([tone, tone[::-1]]) + 0.01 * rng.standard_normal((2, t.size))
        sf.write(folder / f"song{index:03d}.wav", audio.T.astype(np.float32), 44100, subtype="PCM_16")


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.wav"))}


def separate(songs: Path, out: Path, report: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stemcut", "separate", str(songs), "-o", str(out), "-q",
                             "--json", str(report), *extra], stdout=subprocess.DEVNULL)


def run(name: str, songs: Path, scratch: Path, processes: int, extra: list[str]) -> dict:
    out = scratch / name
    started = time.perf_counter()
    workers = [separate(songs, out, scratch / f"{name}-{i}.json", *extra) for i in range(processes)]
    codes = [w.wait() for w in workers]
    wall = time.perf_counter() - started
    done: dict[str, int] = {}
    for i in range(processes):
        for entry in json.loads((scratch / f"{name}-{i}.json").read_text())["files"]:
            if entry["status"] == "done":
                done[entry["input"]] = done.get(entry["input"], 0) + 1
    return {"config": name, "processes": processes, "wall_s": round(wall, 2), "exit_codes": codes,
            "tracks_done": len(done), "done_twice": sum(n > 1 for n in done.values()), "digest": digest(out)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stemcut-scale-") as scratch_name:
        scratch = Path(scratch_name)
        songs = scratch / "songs"
        make_songs(songs, args.songs, args.seconds)
        p = args.processes
        results = [run("1 process, 1 thread", songs, scratch, 1, ["--threads", "1"]),
                   run(f"1 process, {p} threads", songs, scratch, 1, ["--threads", str(p)]),
                   run(f"{p} processes, 1 thread each", songs, scratch, p, ["--threads", "1"])]
        if importlib.util.find_spec("distributed") is not None:
            results.append(run(f"dask local:{p}", songs, scratch, 1, ["--threads", "1", "--dask", f"local:{p}"]))
        reference = results[0]["digest"]
        audio = args.songs * args.seconds
        print(f"{args.songs} songs x {args.seconds:g} s, load average before: {os.getloadavg()[0]:.2f}")
        for result in results:
            result["identical_to_single_run"] = result.pop("digest") == reference
            result["x_real_time"] = round(audio / result["wall_s"], 1)
            print(f"  {result['config']:28s} {result['wall_s']:7.2f} s  {result['x_real_time']:6.1f}x real time  "
                  f"tracks done {result['tracks_done']}/{args.songs}, twice {result['done_twice']}, "
                  f"identical {result['identical_to_single_run']}, exit {result['exit_codes']}")
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "songs": args.songs,
                                         "seconds": args.seconds, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
