#!/usr/bin/env python
"""Record held-out scores from scripts/evaluate_split.py JSON in a model set's manifest ``quality``.

    python scripts/record_quality.py weights runs/eval-model.json runs/eval-oracle.json

Per target: global SDR (mean over tracks), museval SDR (median over tracks, the folders
evaluate_split scored with museval), the number of tracks, and the oracle's values next to
them. Weights files are not touched (their sha256 stays valid).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stemcut.atomic import write_json
from stemcut.weights import MANIFEST_NAME, read_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="the model set whose manifest gets the scores")
    parser.add_argument("model_json", type=Path, help="evaluate_split.py --model-dir ... --json output")
    parser.add_argument("oracle_json", type=Path, help="evaluate_split.py --oracle --json output")
    args = parser.parse_args(argv)
    model_dir, model_json, oracle_json = args.model_dir, args.model_json, args.oracle_json
    model_results = json.loads(model_json.read_text())
    model = model_results["model"]["overall"]
    oracle = json.loads(oracle_json.read_text())["oracle"]["overall"]
    manifest = read_manifest(model_dir)
    for target, entry in manifest["models"].items():
        quality = dict(entry.get("quality", {}))
        quality["held_out"] = {
            "split": f"{Path(model_results['split']).name} (real songs never used in training)",
            "tracks": model["counts"].get(target, 0),
            "global_sdr_db": _round(model["global_sdr"].get(target)),
            "museval_sdr_db": _round(model["museval_sdr"].get(target)),
            "oracle_global_sdr_db": _round(oracle["global_sdr"].get(target)),
            "oracle_museval_sdr_db": _round(oracle["museval_sdr"].get(target)),
            "commands": [model_results["command"], json.loads(oracle_json.read_text())["command"]],
        }
        museval, overall = quality["held_out"]["museval_sdr_db"], quality["held_out"]["global_sdr_db"]
        # What `stemcut models` shows: the held-out museval median, else the global SDR.
        quality["sdr"] = museval if museval is not None else overall
        entry["quality"] = quality
    write_json(model_dir / MANIFEST_NAME, manifest)
    print(f"recorded held-out scores for {', '.join(manifest['models'])} in {model_dir / MANIFEST_NAME}")
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


if __name__ == "__main__":
    raise SystemExit(main())
