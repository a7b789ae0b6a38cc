"""Training end to end on tiny generated stem folders: train, resume, export, load; every script's --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemcut.targets import TARGETS

ROOT = Path(__file__).resolve().parents[1]


def _song(folder: Path, seed: int, seconds: float = 3.0, guitar: bool = True) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * 44100)) / 44100
    for index, target in enumerate(TARGETS):
        if target == "guitar" and not guitar:
            continue
        tone = 0.1 * np.sin(2 * np.pi * (80 * (index + 1) + 10 * rng.random()) * t)
        audio = np.stack([tone, tone]) + 0.005 * rng.standard_normal((2, t.size))
        sf.write(folder / f"{target}.wav", audio.T.astype(np.float32), 44100, subtype="FLOAT")


def test_train_resume_export(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train  # the thin command line over stemcut.training.trainer
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    data = tmp_path / "data"
    for i in range(3):
        _song(data / "musdb18-preview" / "train" / f"song{i}", i, guitar=False)
    for i in range(2):
        _song(tmp_path / "synth" / f"synth{i}", 10 + i)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"description": "test", "musdb18-preview/train": ["song2"]}))
    common = ["--targets", "vocals,guitar,other", "--arch", "tcn", "--params", '{"hidden": 16, "blocks": 2}',
              "--data-root", str(data), "--synthetic", str(tmp_path / "synth"), "--mix", "musdb=0.5,synthetic=0.5",
              "--split", str(split), "--segment", "1", "--batch", "2", "--steps", "3", "--workers", "0",
              "--threads", "1", "--run", str(tmp_path / "run")]
    assert train.main(common + ["--session-steps", "2"]) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "stopping this invocation at step 2" in log
    assert train.main(common + ["--resume", "--export", str(tmp_path / "w")]) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resumed from" in log and "musdb18-preview/train: 2 training tracks, 1 held out" in log
    assert "done: 3 of 3 steps" in log
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["step"] == 3 and history[-1]["vocals_tracks"] == 1
    assert np.isfinite(history[-1]["vocals"]) and np.isfinite(history[-1]["other"])

    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert list(manifest["models"]) == ["vocals", "guitar", "other"]
    entry = manifest["models"]["guitar"]
    assert entry["training"]["steps"] == 3 and "non-commercial" in entry["training"]["licence_note"]
    assert entry["quality"]["validation_tracks"] == 0  # the held-out song has no guitar stem
    assert entry["quality"]["validation_global_sdr_db"] is None

    # A new run can start from an exported set (same family and parameters).
    assert train.main(common[:-1] + [str(tmp_path / "run2"), "--init", str(tmp_path / "w"), "--steps", "1"]) == 0
    assert "initialised from the model set" in (tmp_path / "run2" / "train.log").read_text()

    from stemcut.separator import Separator

    separator = Separator(tmp_path / "w", device="cpu")
    audio = np.random.default_rng(0).standard_normal((2, 44100)).astype(np.float32) * 0.1
    stems = separator.separate(audio, 44100)
    assert list(stems) == ["vocals", "guitar", "other"]
    np.testing.assert_allclose(sum(stems.values()), audio, atol=1e-4)


def test_validation_scores_are_those_of_stemcut_eval(tmp_path):
    """The SDR a training run records is the SDR `stemcut eval` gives for the same models and tracks."""
    from stemcut.evaluation import evaluate
    from stemcut.training.trainer import TrainConfig, Trainer
    from stemcut.training.validation import validate, validation_tracks

    for i in range(2):
        _song(tmp_path / "data" / "set" / f"song{i}", i, guitar=i == 0)
    config = TrainConfig(targets=["vocals", "bass", "guitar", "other"], arch="tcn",
                         params={"hidden": 16, "blocks": 2}, steps=2, threads=1)
    import torch

    trainer = Trainer(config, torch.device("cpu"))
    with trainer.separator() as separator:
        recorded = validate(separator, validation_tracks(tmp_path / "data", {"set": ["song0", "song1"]}))
        measured = evaluate(tmp_path / "data" / "set", separator)
    assert recorded.global_sdr == pytest.approx(measured.global_sdr)
    assert recorded.counts == measured.counts == {"vocals": 2, "bass": 2, "guitar": 1, "other": 2}


SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_record_quality_writes_held_out_scores_into_the_manifest(tmp_path):
    from conftest import make_model_set
    from stemcut.weights import model_specs, sha256_of

    models = make_model_set(tmp_path / "set", targets=["vocals", "other"])
    overall = {"global_sdr": {"vocals": 4.123, "other": 2.0}, "museval_sdr": {"vocals": 4.5},
               "counts": {"vocals": 3, "other": 3}}
    (tmp_path / "model.json").write_text(json.dumps({"command": "python scripts/evaluate_split.py --model-dir set",
                                                     "split": "validation_split.json", "model": {"overall": overall}}))
    oracle = {"global_sdr": {"vocals": 9.0, "other": 7.0}, "museval_sdr": {}, "counts": {}}
    (tmp_path / "oracle.json").write_text(json.dumps({"command": "python scripts/evaluate_split.py --oracle",
                                                      "oracle": {"overall": oracle}}))
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "record_quality.py"), str(models),
                             str(tmp_path / "model.json"), str(tmp_path / "oracle.json")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    specs = {spec.target: spec for spec in model_specs(models)}
    held = specs["vocals"].quality["held_out"]
    assert held["global_sdr_db"] == 4.12 and held["museval_sdr_db"] == 4.5 and held["oracle_global_sdr_db"] == 9.0
    assert specs["vocals"].quality["sdr"] == 4.5 and specs["other"].quality["sdr"] == 2.0
    assert all(sha256_of(spec.path) == spec.sha256 for spec in specs.values())  # weights untouched
