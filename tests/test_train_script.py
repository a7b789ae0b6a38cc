"""Training end to end on tiny generated stem folders: train, resume, export, load; every script's --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

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
    corpus = tmp_path / "corpus"  # as scripts/prepare_data.py writes it: one render sings the held-out song2
    for i, clip in enumerate(["cc0-album/x/vocals.ogg", "musdb18-preview/train/song2/vocals.wav"]):
        _song(corpus / "renders" / "set" / f"render{i}", 20 + i)
        meta = {"seconds": 3.0, "parts": {"vocals": {"clips": [{"file": clip}]}}}
        (corpus / "renders" / "set" / f"render{i}" / "meta.json").write_text(json.dumps(meta))
    (corpus / "corpus.json").write_text(json.dumps({"pools": {"renders-set": {
        "name": "renders-set", "kind": "stems", "path": "renders/set", "licence": "MIT (test)"}}}))
    common = ["--targets", "vocals,guitar,other", "--arch", "tcn", "--params", '{"hidden": 16, "blocks": 2}',
              "--data-root", str(data), "--synthetic", str(tmp_path / "synth"), "--corpus", str(corpus),
              "--mix", "musdb=0.4,synthetic=0.3,renders=0.3", "--bank-windows", "16",
              "--split", str(split), "--segment", "1", "--batch", "2", "--steps", "3", "--workers", "0",
              "--threads", "1", "--run", str(tmp_path / "run")]
    assert train.main(common + ["--session-steps", "2"]) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "stopping this invocation at step 2" in log
    assert train.main(common + ["--resume", "--export", str(tmp_path / "w")]) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resumed from" in log and "musdb18-preview/train: 2 training tracks, 1 held out" in log
    assert "renders: 1 songs left out (they sing held-out vocals)" in log and "pool renders: 1 tracks" in log
    parts = sorted((tmp_path / "run" / "checkpoint").glob("part-*.bin"))
    assert parts and all(p.stat().st_size <= 16 * 2**20 for p in parts)
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
    assert entry["training"]["data_hours"] == {"musdb": pytest.approx(6 / 3600, abs=1e-3),
                                               "synthetic": pytest.approx(6 / 3600, abs=1e-3),
                                               "renders": pytest.approx(3 / 3600, abs=1e-3)}
    assert entry["training"]["data"]["renders"] == "MIT (test)"

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


def test_plot_scaling_extrapolates_dB_per_doubling_to_the_goal(tmp_path):
    points = []
    for steps, vocals, drums in ((1000, 4.0, 3.0), (2000, 4.5, 3.0), (4000, 5.0, 2.9)):
        path = tmp_path / f"{steps}.json"
        overall = {"global_sdr": {"vocals": 0.0, "drums": 0.0},
                   "museval_sdr": {"vocals": vocals, "drums": drums}}
        path.write_text(json.dumps({"model": {"overall": overall}}))
        points.append(f"{steps}={path}")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "plot_scaling.py"), *points[::-1],
                             "--goal", "vocals=6.0,drums=4.0", "--steps-per-hour", "1000"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("| ") and "steps |" not in line}
    # vocals: +0.5 dB per doubling, 1 dB short: two more doublings, 4000 -> 16000 steps = 12 more hours
    assert rows["vocals"] == ["4.00", "4.50", "5.00", "+0.50", "6.00", "2.0", "12,000", "12"]
    assert rows["drums"][3] == "-0.05" and rows["drums"][5] == "never at this slope"


def test_checkpoints_are_parts_of_bounded_size_that_load_back_and_catch_damage(tmp_path):
    import torch

    from stemcut.training import checkpoint

    state = {"weights": torch.arange(100_000, dtype=torch.float32), "step": 7}
    parts = checkpoint.save(state, tmp_path, part_bytes=100_000)
    assert len(parts) >= 4 and all(p.stat().st_size <= 100_000 for p in parts)
    assert checkpoint.exists(tmp_path) and not (tmp_path / "checkpoint.partial").exists()
    loaded = checkpoint.load(tmp_path)
    assert loaded["step"] == 7 and torch.equal(loaded["weights"], state["weights"])
    checkpoint.save({"step": 8}, tmp_path, part_bytes=100_000)  # replaces the old one whole
    assert checkpoint.load(tmp_path)["step"] == 8 and len(list((tmp_path / "checkpoint").glob("part-*"))) == 1
    part = tmp_path / "checkpoint" / "part-000.bin"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged checkpoint part"):
        checkpoint.load(tmp_path)


def _trainer_at(step: int, **plan):
    from stemcut.training.trainer import TrainConfig, Trainer

    config = TrainConfig(targets=["vocals"], arch="tcn", params={"hidden": 8, "blocks": 1}, n_fft=512, hop=128,
                         threads=1, **plan)
    trainer = Trainer(config, torch.device("cpu"))
    for _ in range(step):
        trainer.optimizer.step()
        trainer.scheduler.step()
    return trainer


@pytest.mark.parametrize("new_plan", [
    {"steps": 400, "lr": 1e-3, "decay_from": 0.25},  # shorter: decay already under way at step 150
    {"steps": 4000, "lr": 1e-3, "decay_from": 0.5},  # longer: back to the constant part
    {"steps": 1000, "lr": 3e-4, "decay_from": 0.2},  # another rate and decay point
])
def test_a_run_resumed_with_a_new_plan_follows_the_new_schedule(new_plan):
    """Resuming with other --steps/--lr/--decay-from gives the new plan's learning rate at the
    step reached, step after step, not the saved schedule's; the same plan keeps the saved one."""
    old = _trainer_at(150, steps=1000, lr=1e-3, decay_from=0.5)
    saved = {"steps": 1000, "lr": 1e-3, "decay_from": 0.5}
    resumed = _trainer_at(0, **new_plan)
    changes = resumed.load_state(old.state(), 150, saved)
    assert set(changes) == {k for k in new_plan if new_plan[k] != saved[k]}
    fresh = _trainer_at(150, **new_plan)
    for _ in range(500):
        assert resumed.lr == pytest.approx(fresh.lr, rel=1e-9)
        for trainer in (resumed, fresh):
            trainer.optimizer.step()
            trainer.scheduler.step()
    later = _trainer_at(700, **saved)  # in the decay: the saved schedule goes on as it was
    same = _trainer_at(0, **saved)
    assert same.load_state(later.state(), 700, saved) == {} and same.lr == later.lr < 1e-3


def test_plot_curves_reads_validation_points_from_the_log_of_a_run_still_going(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import plot_curves
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    (tmp_path / "train.log").write_text(
        "19:09:00 step   1980/30000    70.0 min  lr 1.00e-03  0.50 steps/s (data 9 ms/step)  loss x1e3: vocals 2.000\n"
        "19:09:04 validation @ step 1984 (70.1 min): global SDR dB  vocals  5.20  drums  -2.47  [9 s]\n")
    assert plot_curves.validation(tmp_path) == [{"step": 1984, "minutes": 70.1, "vocals": 5.20, "drums": -2.47}]
    assert plot_curves.training_loss(tmp_path) == {"vocals": [(1980, 2.0)]}
