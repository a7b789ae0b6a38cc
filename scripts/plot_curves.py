#!/usr/bin/env python3
"""Learning curves of training runs as one plot: training loss per minute (from train.log)
and the held-out validation points (history.json, or the train.log of a run still going), per target.

    python scripts/plot_curves.py ../runs/blstm-cont ../runs/unet-drums --out docs/img/curves.png

Training loss is each target's mean over the log's minute (noisy: each batch mixes other
pools); validation is global SDR on the middle 20 s of each held-out track, as the trainer
checks it. Runs that resumed log into the same train.log, so one curve covers them all.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

LINE = re.compile(r"step\s+(\d+)/\d+\s+([\d.]+) min\s+lr \S+\s+\S+ steps/s.*loss x1e3: (.*)$")


def training_loss(run: Path) -> dict[str, list[tuple[int, float]]]:
    """{target: [(step, loss x1e3), ...]} from the run's train.log."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for line in (run / "train.log").read_text().splitlines():
        match = LINE.search(line)
        if match:
            step = int(match.group(1))
            for target, value in re.findall(r"(\w+) ([\d.]+)", match.group(3)):
                curves.setdefault(target, []).append((step, float(value)))
    return curves


VALIDATION = re.compile(r"validation @ step (\d+) \(([\d.]+) min\): global SDR dB\s+(.*?)\s+\[")


def validation(run: Path) -> list[dict]:
    """Validation points: history.json (written at export), else the run's train.log so far."""
    path = run / "history.json"
    if path.exists():
        return json.loads(path.read_text())
    points = []
    for match in VALIDATION.finditer((run / "train.log").read_text()):
        point = {"step": int(match.group(1)), "minutes": float(match.group(2))}
        point.update({target: float(value) for target, value in re.findall(r"(\w+)\s+(-?[\d.]+)", match.group(3))})
        points.append(point)
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (train.log, history.json)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--smooth", type=int, default=10, help="minutes in the running mean of the loss")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, (loss_axes, sdr_axes) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours: dict[str, str] = {}

    def colour(label: str) -> str:  # the same curve has the same colour in both panels
        return colours.setdefault(label, f"C{len(colours) % 10}")
    for run in args.runs:
        for target, points in training_loss(run).items():
            steps, values = np.array(points).T
            width = min(args.smooth, len(values))
            smoothed = np.convolve(values, np.ones(width) / width, mode="valid")
            label = f"{run.name}: {target}"
            loss_axes.plot(steps[width - 1:], smoothed, label=label, color=colour(label))
        history = validation(run)
        targets = sorted({key for point in history for key in point
                          if key not in ("step", "minutes") and not key.endswith("_tracks")})
        for target in targets:
            points = [(p["step"], p[target]) for p in history if p.get(target) is not None]
            if points:
                steps, values = zip(*points)
                label = f"{run.name}: {target}"
                sdr_axes.plot(steps, values, marker="o", label=label, color=colour(label))
    loss_axes.set(xlabel="step (this run)", ylabel="training loss x1e3 (running mean)", title="training loss")
    sdr_axes.set(xlabel="step (this run)", ylabel="global SDR, dB", title="held-out validation (middle 20 s)")
    for axes in (loss_axes, sdr_axes):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
        else:  # a run still short of its first validation
            axes.text(0.5, 0.5, "no points yet", transform=axes.transAxes, ha="center", va="center")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
