#!/usr/bin/env python3
"""Held-out quality against training steps for one lineage of sets (each set trained on from the
one before), a log-linear fit per target, and how far that fit puts each goal.

    python scripts/plot_scaling.py 1870=../runs/museval-lineage-440cf9f.json \\
        5206=../runs/museval-lineage-b82fa0b.json 9206=../runs/museval-cand-blstm.json \\
        11806=../runs/museval-cand-r5.json --goal vocals=6.5,drums=4.5,bass=5.5,guitar=4.0,other=3.5 \\
        --steps-per-hour 2520 --out docs/img/lineage-scaling.png

Each point is an `evaluate_split.py --museval` JSON file labelled with the total training steps
behind that set; the score is the split's museval median (global SDR mean with --measure global).
The fit is SDR = a + b * log2(steps): b is dB per doubling of training. A goal above the last
point needs (goal - last) / b more doublings; with b <= 0 more of the same training does not reach
it. "More steps" go on from the last point; hours divide them by --steps-per-hour. Prints the
table as markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TARGETS = ("vocals", "drums", "bass", "guitar", "other")


def scores(path: Path, measure: str) -> dict[str, float]:
    """{target: score} of one evaluate_split.py JSON file."""
    overall = json.loads(path.read_text())["model"]["overall"]
    if not overall.get(f"{measure}_sdr"):
        raise SystemExit(f"{path}: no {measure} scores in it (evaluate_split.py --museval writes them)")
    return {target: value for target, value in overall[f"{measure}_sdr"].items() if value is not None}


def parse_goal(text: str) -> dict[str, float]:
    goal = {}
    for item in filter(None, text.split(",")):
        target, value = item.split("=")
        goal[target.strip()] = float(value)
    return goal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("points", nargs="+", help="STEPS=evaluate_split.json, in any order")
    parser.add_argument("--goal", type=parse_goal, default={}, help="target=dB,... to extrapolate to")
    parser.add_argument("--measure", choices=("museval", "global"), default="museval")
    parser.add_argument("--steps-per-hour", type=float, default=0.0,
                        help="measured training steps per wall-clock hour, to turn steps into hours")
    parser.add_argument("--out", type=Path, help="PNG to write (needs matplotlib)")
    args = parser.parse_args(argv)

    import numpy as np

    lineage = sorted((int(steps), scores(Path(path), args.measure))
                     for steps, path in (point.split("=", 1) for point in args.points))
    if len(lineage) < 2:
        parser.error("a fit needs at least two points")
    steps = np.array([point[0] for point in lineage], dtype=float)
    targets = [t for t in TARGETS if all(t in point[1] for point in lineage)]

    print("| target | " + " | ".join(f"{int(s):,} steps" for s in steps)
          + " | dB per doubling (fit) | goal | doublings to goal | more steps | more hours at this rate |")
    print("|---|" + "---|" * (len(steps) + 5))
    fits = {}
    for target in targets:
        sdr = np.array([point[1][target] for point in lineage])
        slope, intercept = np.polyfit(np.log2(steps), sdr, 1)
        fits[target] = (slope, intercept, sdr)
        cells = [f"{value:.2f}" for value in sdr] + [f"{slope:+.2f}"]
        goal = args.goal.get(target)
        if goal is None:
            cells += ["", "", "", ""]
        elif sdr[-1] >= goal:
            cells += [f"{goal:.2f}", "met", "", ""]
        elif slope <= 0:
            cells += [f"{goal:.2f}", "never at this slope", "", ""]
        else:
            doublings = (goal - sdr[-1]) / slope
            more = steps[-1] * (2 ** doublings - 1)
            hours = f"{more / args.steps_per_hour:,.0f}" if args.steps_per_hour else ""
            cells += [f"{goal:.2f}", f"{doublings:.1f}", f"{more:,.0f}", hours]
        print(f"| {target} | " + " | ".join(cells) + " |")

    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(7.5, 4.5))
        grid = np.geomspace(steps[0], steps[-1] * 16, 50)
        for index, target in enumerate(targets):
            slope, intercept, sdr = fits[target]
            colour = f"C{index}"
            axes.plot(steps, sdr, "o-", color=colour, label=f"{target} ({slope:+.2f} dB/doubling)")
            axes.plot(grid, intercept + slope * np.log2(grid), ":", color=colour)
            if target in args.goal:
                axes.axhline(args.goal[target], color=colour, lw=0.8, alpha=0.5)
        axes.set_xscale("log", base=2)
        axes.set(xlabel="training steps behind the set (batch 6 x 3 s)",
                 ylabel=f"{args.measure} SDR on the validation split, dB",
                 title="the shipped lineage: measured (o), log-linear fit (:), goals (-)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.out, dpi=110)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
