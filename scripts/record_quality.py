#!/usr/bin/env python
"""Record held-out scores from scripts/evaluate_split.py JSON in a model set's manifest ``quality``.

    python scripts/record_quality.py weights runs/eval-model.json runs/eval-oracle.json

Per target: global SDR (mean over tracks), museval SDR (median over tracks, the folders
evaluate_split scored with museval), the number of tracks, and the oracle's values next to
them. Weights files are not touched (their sha256 stays valid).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemcut.weights import MANIFEST_NAME, _write_json, read_manifest  # noqa: E402


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    model_dir, model_json, oracle_json = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
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
    _write_json(model_dir / MANIFEST_NAME, manifest)
    print(f"recorded held-out scores for {', '.join(manifest['models'])} in {model_dir / MANIFEST_NAME}")
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


if __name__ == "__main__":
    raise SystemExit(main())
