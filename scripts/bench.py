#!/usr/bin/env python3
"""Speed and memory of the whole `stemcut separate` command on generated songs.

    python scripts/bench.py                       # 3 and 60 minute files, shipped models
    python scripts/bench.py --minutes 3 --wiener  # with the Wiener filter
    python scripts/bench.py --model-dir DIR       # another model set
    python scripts/bench.py --vs --minutes 3 30 --repeat 3 --json r.json --plot docs/performance.png
                                                  # side by side with Demucs, Open-Unmix, Spleeter
    python scripts/bench.py --short 300           # a folder of 300 one-second files, one command
    python scripts/bench.py --device cuda --json gpu.json
                                                  # the device rows: a 10-minute song, a folder of
                                                  # ten 3-minute songs, 300 s in-process

Each run is a fresh `python -m stemcut separate` process (decode to written
files); the figures are its wall time per second of audio and its peak resident
memory (ru_maxrss of the child). The input is a generated stereo 44.1 kHz
16-bit WAV, written block by block, kept in a temporary folder.

With ``--vs`` every repeat runs, on the same file and one after the other,
stemcut with the Wiener filter off and on, then each peer in its own process
(scripts/bench_peers.py: htdemucs, umxhq without and with one Wiener iteration,
Spleeter 2-stem; install them as docs/performance.md says).

With ``--short N`` the input is instead a folder of N generated one-second stereo
44.1 kHz 16-bit WAV files (``--short-seconds`` changes the length), separated by
one `stemcut separate` command: the per-file costs (start-up, probing, padding to
a segment) that one long song hides.

With ``--device DEV`` three rows are measured on that device: (a) the whole command
on one ``--song-minutes`` song, (b) one command over a folder of ``--folder-songs``
songs of ``--folder-minutes`` each, (c) ``Separator.separate`` in this process on
``--in-process-seconds`` of audio, once per ``--in-process-batch`` size, after a
warm-up run of the same length (model loading, CUDA initialisation and kernel
selection excluded); ``--compare SECONDS`` adds the largest difference between the
device's stems and the CPU's on a clip of that length. The GPU targets of issue 12
(300x, 500x, 1000x real time on an H200) are printed beside the rows. A peer run is
stopped, and reported as such, when its resident memory passes ``--cap-gb`` or
its wall time ``--cap-s``. Ratios stemcut/peer are taken within each repeat,
then the median over repeats is reported.
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
from typing import NamedTuple

SCRIPTS = Path(__file__).resolve().parent

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


def write_short_folder(folder: Path, count: int, seconds: float) -> float:
    """``count`` short stereo files (different seeds) in ``folder``; returns their total seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = int(round(seconds * RATE))
    for index in range(count):
        rng = np.random.default_rng(index)
        t = (np.arange(frames) / RATE)[:, None]
        tone = 0.2 * np.sin(2 * np.pi * rng.uniform(80, 800) * t * np.array([1.0, 1.002]))
        kick = 0.3 * np.sin(2 * np.pi * 55 * t) * np.exp(-12 * (t % 0.5))
        noise = 0.02 * rng.standard_normal((frames, 2))
        sf.write(folder / f"clip-{index:04d}.wav", (tone + kick + noise).astype(np.float32), RATE, subtype="PCM_16")
    return count * frames / RATE


def run_short(args, scratch: Path) -> list[dict]:
    """One `stemcut separate` over a folder of ``args.short`` short files, ``args.repeat`` times."""
    folder = scratch / "short"
    seconds = write_short_folder(folder, args.short, args.short_seconds)
    command = stemcut_command(folder, scratch / "out", args, args.wiener)
    runs = []
    for repeat in range(args.repeat):
        run = measure(command)
        runs.append(run)
        wiener = "on " if args.wiener else "off"
        print(f"{args.short} x {args.short_seconds:g} s files  run {repeat + 1}  wiener={wiener}  {run.wall:7.2f} s  "
              f"{run.wall / args.short:.4f} s per file  {run.wall / seconds:.4f} s per audio s  "
              f"({seconds / run.wall:.1f}x real time)  CPU {run.cpu:.1f} s  peak RSS {run.rss:.0f} MiB  "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
    wall = statistics.median(run.wall for run in runs)
    cpu = statistics.median(run.cpu for run in runs)
    return [{"short_files": args.short, "seconds_each": args.short_seconds, "wiener": args.wiener,
             "threads": args.threads, "runs": len(runs), "wall_s": round(wall, 2),
             "s_per_file": round(wall / args.short, 4), "s_per_audio_s": round(wall / seconds, 4),
             "x_realtime": round(seconds / wall, 1), "cpu_s": round(cpu, 2),
             "peak_rss_mib": round(max(run.rss for run in runs), 1),
             "all_wall_s": [round(run.wall, 2) for run in runs]}]


GPU_TARGETS = {"song": 300, "folder": 500, "in_process": 1000}  # x real time on an H200 (issue 12)


def run_device(args, scratch: Path) -> list[dict]:
    """The device rows: a song and a folder through the whole command, then in-process."""
    rows = []
    song = write_song(scratch / "song.wav", args.song_minutes)
    folder = scratch / "folder"
    folder.mkdir()
    for index in range(args.folder_songs):
        write_song(folder / f"song-{index:02d}.wav", args.folder_minutes, seed=index + 1)
    for name, source, seconds in (("song", song, args.song_minutes * 60),
                                  ("folder", folder, args.folder_songs * args.folder_minutes * 60)):
        command = stemcut_command(source, scratch / "out", args, args.wiener) + ["--device", args.device]
        runs = [measure(command) for _ in range(args.repeat)]
        wall = statistics.median(run.wall for run in runs)
        rows.append(device_row(name, args, seconds, wall, runs=len(runs),
                               cpu_s=round(statistics.median(r.cpu for r in runs), 2),
                               peak_rss_mib=round(max(r.rss for r in runs), 1), all_wall_s=[round(r.wall, 3) for r in runs]))
    rows += run_in_process(args, scratch)
    if args.compare:
        rows.append(compare_with_cpu(args, scratch))
    return rows


def device_row(name: str, args, seconds: float, wall: float, **extra) -> dict:
    row = {"row": name, "device": args.device, "wiener": args.wiener, "audio_s": round(seconds, 3),
           "wall_s": round(wall, 3), "s_per_audio_s": round(wall / seconds, 5),
           "x_realtime": round(seconds / wall, 1), "gpu_target_x": GPU_TARGETS[name],
           "load": round(os.getloadavg()[0], 2), **extra}
    what = {"song": f"whole command, {seconds / 60:g} min song",
            "folder": f"whole command, folder of {args.folder_songs} x {args.folder_minutes:g} min",
            "in_process": f"in-process separate, {seconds:g} s, batch {extra.get('batch_size')}"}[name]
    print(f"{args.device:8s} {what:44s} {wall:8.3f} s  {wall / seconds:.5f} s per audio s  "
          f"({seconds / wall:.1f}x real time; GPU target {GPU_TARGETS[name]}x)  load {row['load']:.2f}", flush=True)
    return row


def read_clip(scratch: Path, seconds: float, name: str) -> np.ndarray:
    path = write_song(scratch / f"{name}.wav", seconds / 60, seed=7)
    audio, _ = sf.read(path, dtype="float32", always_2d=True)
    path.unlink()
    return np.ascontiguousarray(audio.T)


def separator_for(args, device: str, batch_size: int | None):
    from stemcut import Separator

    return Separator(args.model_dir, device=device, batch_size=batch_size, wiener=args.wiener,
                     threads=args.threads if device == "cpu" else None)


def run_in_process(args, scratch: Path) -> list[dict]:
    """``Separator.separate`` on the clip: a warm-up run, then ``--repeat`` timed ones per batch size."""
    audio = read_clip(scratch, args.in_process_seconds, "in-process")
    rows = []
    for batch_size in args.in_process_batch:
        with separator_for(args, args.device, batch_size) as separator:
            separator.separate(audio, RATE)  # warm-up: CUDA context, kernel selection, allocator
            walls, cpus = [], []
            for _ in range(args.repeat):
                started, cpu = time.perf_counter(), time.process_time()
                separator.separate(audio, RATE)
                walls.append(time.perf_counter() - started)
                cpus.append(time.process_time() - cpu)
            rows.append(device_row("in_process", args, audio.shape[1] / RATE, statistics.median(walls),
                                   batch_size=separator.settings.batch_size, runs=len(walls),
                                   cpu_s=round(statistics.median(cpus), 3),
                                   all_wall_s=[round(w, 4) for w in walls]))
    return rows


def compare_with_cpu(args, scratch: Path) -> dict:
    """Largest difference between the device's stems and the CPU's (batch size 1) on a clip."""
    audio = read_clip(scratch, args.compare, "compare")
    with separator_for(args, args.device, None) as separator:
        device_stems, batch_size = separator.separate(audio, RATE), separator.settings.batch_size
    with separator_for(args, "cpu", 1) as separator:
        cpu_stems = separator.separate(audio, RATE)
    diffs = {stem: float(np.abs(device_stems[stem] - cpu_stems[stem]).max()) for stem in cpu_stems}
    peak = max(float(np.abs(stems).max()) for stems in cpu_stems.values())
    row = {"row": "compare", "device": args.device, "wiener": args.wiener, "audio_s": audio.shape[1] / RATE,
           "batch_size": batch_size, "max_abs_diff": diffs, "max_abs_diff_all": max(diffs.values()),
           "stem_peak": peak}
    print(f"{args.device:8s} stems against the CPU's on {args.compare:g} s (batch {batch_size} vs 1): "
          f"max abs difference {row['max_abs_diff_all']:.3g} (stems peak {peak:.3g})", flush=True)
    return row


class Run(NamedTuple):
    wall: float      # seconds
    rss: float       # peak resident MiB
    stopped: str     # '' or why the run was stopped
    cpu: float       # user + system CPU seconds of the child


def measure(command: list[str], cap_mib: float | None = None, cap_s: float | None = None) -> Run:
    """Wall seconds, peak RSS in MiB (wait4's ru_maxrss), '' or why the run was stopped, and
    the child's CPU seconds (less sensitive than wall time to other load on a shared machine).

    With caps, the child's VmRSS is polled every 0.1 s and the child killed when it
    passes ``cap_mib`` or runs longer than ``cap_s``."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stopped = ""
    status = usage = None
    if cap_mib or cap_s:
        import threading

        stderr_chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: stderr_chunks.append(child.stderr.read()), daemon=True)
        reader.start()
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            rss = _rss_mib(child.pid)
            elapsed = time.perf_counter() - started
            if cap_mib and rss > cap_mib:
                stopped = f"stopped at {rss / 1024:.1f} GiB RSS after {elapsed:.0f} s"
            elif cap_s and elapsed > cap_s:
                stopped = f"stopped after {elapsed:.0f} s"
            if stopped:
                child.kill()
                _, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.1)
        reader.join(5)
        stderr = b"".join(stderr_chunks).decode(errors="replace")
    else:
        _, status, usage = os.wait4(child.pid, 0)
        stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    wall = time.perf_counter() - started
    if not stopped and os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{stderr}")
    return Run(wall, usage.ru_maxrss / 1024.0, stopped, usage.ru_utime + usage.ru_stime)


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# name -> (stems it gives, how it is run)
PEERS = {"htdemucs": 4, "umxhq": 4, "umxhq-wiener": 4, "spleeter2": 2}


def stemcut_command(song: Path, out: Path, args, wiener: bool) -> list[str]:
    command = [sys.executable, "-m", "stemcut", "separate", str(song), "-o", str(out), "--force",
               "--threads", str(args.threads), "-q", "--wiener" if wiener else "--no-wiener"]
    if args.model_dir:
        command += ["--model-dir", str(args.model_dir)]
    return command + args.extra


def run_vs(args, scratch: Path) -> list[dict]:
    """Every repeat: stemcut (Wiener off, on), then each peer, on the same file."""
    results = []
    systems = ["stemcut", "stemcut-wiener"] + [peer for peer in args.peers]
    for minutes in args.minutes:
        song = write_song(scratch / f"song-{minutes:g}min.wav", minutes)
        seconds = minutes * 60
        runs: dict[str, list[tuple[float, float, str]]] = {name: [] for name in systems}
        for repeat in range(args.repeat):
            for name in systems:
                out = scratch / "out"
                if name.startswith("stemcut"):
                    command = stemcut_command(song, out, args, name == "stemcut-wiener")
                else:
                    command = [sys.executable, str(SCRIPTS / "bench_peers.py"), "run", name, str(song), str(out),
                               "--threads", str(args.threads)]
                if name.startswith("stemcut"):
                    run = measure(command)  # never capped: stemcut's own figures must be complete
                elif not runs[name] or not runs[name][-1][2]:
                    run = measure(command, args.cap_gb * 1024, args.cap_s)
                else:
                    run = runs[name][-1]  # stopped once at this length: not run again
                runs[name].append(run)
                wall, rss, stopped, _ = run
                print(f"{minutes:6g} min  run {repeat + 1}  {name:15s} {wall:8.1f} s  {wall / seconds:.4f} s/s  "
                      f"RSS {rss:7.0f} MiB  {stopped}", flush=True)
                for path in out.rglob("*"):
                    if path.is_file():
                        path.unlink()
        for name in systems:
            stems = 5 if name.startswith("stemcut") else PEERS[name]
            walls = [run[0] for run in runs[name]]
            stopped = next((run[2] for run in runs[name] if run[2]), "")
            wall = statistics.median(walls)
            entry = {"minutes": minutes, "system": name, "stems": stems, "threads": args.threads,
                     "runs": len(walls), "wall_s": round(wall, 2), "s_per_audio_s": round(wall / seconds, 4),
                     "s_per_audio_s_per_stem": round(wall / seconds / stems, 5),
                     "x_realtime": round(seconds / wall, 1), "peak_rss_mib": round(max(r[1] for r in runs[name]), 1),
                     "stopped": stopped, "all_wall_s": [round(w, 2) for w in walls]}
            if not name.startswith("stemcut"):
                mine = "stemcut-wiener" if name == "umxhq-wiener" else "stemcut"
                # Same-run ratios of s per audio s (total, and per stem), median over repeats.
                ratios = [m[0] / p[0] for m, p in zip(runs[mine], runs[name])]
                if stopped:  # the peer ran (and was stopped) in the first repeat only
                    ratios = ratios[:1]
                entry["vs"] = mine
                entry["ratio_stemcut_over_peer"] = round(statistics.median(ratios), 3)
                entry["ratio_per_stem"] = round(statistics.median(ratios) * stems / 5, 3)
                entry["ratio_rss"] = round(max(r[1] for r in runs[mine]) / entry["peak_rss_mib"], 3)
                if stopped:
                    entry["note"] = "peer stopped at the cap: its wall time and RSS are lower bounds"
            results.append(entry)
        song.unlink()
    return results


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({r["minutes"] for r in results})
    systems = list(dict.fromkeys(r["system"] for r in results))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    width = 0.8 / len(systems)
    for index, name in enumerate(systems):
        rows = {r["minutes"]: r for r in results if r["system"] == name}
        xs = [i + index * width for i in range(len(lengths))]
        for axis, key in zip(axes, ("s_per_audio_s", "peak_rss_mib")):
            # A run stopped at the time cap gives a lower bound (bar marked ≥); one stopped at the
            # memory cap did not get far enough for any speed figure (no bar, a note).
            def shown(m):
                row = rows.get(m)
                if row is None or (key == "s_per_audio_s" and "RSS" in row["stopped"]):
                    return 0
                return row[key]

            bars = axis.bar(xs, [shown(m) for m in lengths], width, label=name, color=f"C{index}")
            for bar, m in zip(bars, lengths):
                if m in rows and rows[m]["stopped"]:
                    if bar.get_height():
                        axis.annotate("≥ (stopped)", (bar.get_x() + width / 2, bar.get_height()), ha="center",
                                      fontsize=6, rotation=90, va="bottom")
                    else:
                        axis.annotate("over memory cap", (bar.get_x() + width / 2, 0.02), ha="center", fontsize=6,
                                      rotation=90, va="bottom", xycoords=("data", "axes fraction"))
    for axis, title in zip(axes, ("seconds per audio second (lower is faster)", "peak RSS, MiB")):
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(lengths))], [f"{m:g} min" for m in lengths])
        axis.set_title(title, fontsize=9)
        axis.set_yscale("log")
        axis.tick_params(labelsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=None,
                        help="lengths of the test files [3 60; with --vs 3 30]")
    parser.add_argument("--model-dir", type=Path, default=None, help="model set (default: shipped weights/)")
    parser.add_argument("--wiener", action="store_true", help="turn the Wiener filter on (1 iteration)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs per file; the median is reported")
    parser.add_argument("--vs", action="store_true", help="also run the peers, side by side")
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--cap-gb", type=float, default=20.0, help="stop a peer run past this RSS")
    parser.add_argument("--cap-s", type=float, default=600.0, help="stop a peer run past this wall time")
    parser.add_argument("--plot", type=Path, help="with --vs: write a PNG of the results here")
    parser.add_argument("--short", type=int, metavar="N",
                        help="instead: one command over a folder of N generated short files")
    parser.add_argument("--short-seconds", type=float, default=1.0, help="with --short: seconds per file")
    parser.add_argument("--device", help="instead: the device rows on DEV (cpu, cuda, cuda:N)")
    parser.add_argument("--song-minutes", type=float, default=10.0, help="with --device: the song's length")
    parser.add_argument("--folder-songs", type=int, default=10, help="with --device: songs in the folder")
    parser.add_argument("--folder-minutes", type=float, default=3.0, help="with --device: each folder song's length")
    parser.add_argument("--in-process-seconds", type=float, default=300.0,
                        help="with --device: audio for the in-process row")
    parser.add_argument("--in-process-batch", type=lambda text: None if text == "auto" else int(text), nargs="+",
                        default=[None], metavar="N|auto", help="with --device: batch sizes of the in-process rows")
    parser.add_argument("--compare", type=float, default=0.0, metavar="SECONDS",
                        help="with --device: also compare its stems with the CPU's on a clip this long")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `stemcut separate` options")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.minutes is None:
        args.minutes = [3.0, 30.0] if args.vs else [3.0, 60.0]

    results = []
    with tempfile.TemporaryDirectory(prefix="stemcut-bench-") as scratch:
        scratch = Path(scratch)
        if args.device:
            results = run_device(args, scratch)
        elif args.short:
            results = run_short(args, scratch)
        elif args.vs:
            results = run_vs(args, scratch)
        for minutes in ([] if args.vs or args.short or args.device else args.minutes):
            song = write_song(scratch / f"song-{minutes:g}min.wav", minutes)
            command = stemcut_command(song, scratch / "out", args, args.wiener)
            runs = [measure(command) for _ in range(args.repeat)]
            wall = statistics.median(run[0] for run in runs)
            rss = max(run[1] for run in runs)
            cpu = statistics.median(run.cpu for run in runs)
            seconds = minutes * 60
            results.append({"minutes": minutes, "wiener": args.wiener, "threads": args.threads,
                            "wall_s": round(wall, 2), "s_per_audio_s": round(wall / seconds, 4),
                            "x_realtime": round(seconds / wall, 1), "peak_rss_mib": round(rss, 1),
                            "cpu_s": round(cpu, 2)})
            print(f"{minutes:6g} min  wiener={'on ' if args.wiener else 'off'}  {wall:8.1f} s  "
                  f"{wall / seconds:.4f} s per audio s  ({seconds / wall:.1f}x real time)  peak RSS {rss:.0f} MiB  "
                  f"CPU {cpu:.1f} s  load {os.getloadavg()[0]:.2f}", flush=True)
            for path in (scratch / "out").rglob("*"):
                if path.is_file():
                    path.unlink()
            song.unlink()
    if args.vs:
        print(f"\n{'min':>5} {'system':15s} {'s/s':>8} {'s/s/stem':>9} {'x RT':>6} {'RSS MiB':>8} {'stemcut/peer':>12} "
              f"{'per stem':>8}  note")
        for r in results:
            print(f"{r['minutes']:5g} {r['system']:15s} {r['s_per_audio_s']:8.4f} {r['s_per_audio_s_per_stem']:9.5f} "
                  f"{r['x_realtime']:6.1f} {r['peak_rss_mib']:8.0f} {r.get('ratio_stemcut_over_peer', ''):>12} "
                  f"{r.get('ratio_per_stem', ''):>8}  {r['stopped']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.plot and args.vs:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
