"""scripts/train.py end to end on tiny generated stem folders: train, resume, export, load."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from stemcut.targets import TARGETS

ROOT = Path(__file__).resolve().parents[1]


def _train_module():
    spec = importlib.util.spec_from_file_location("stemcut_train_script", ROOT / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    data = tmp_path / "data"
    for i in range(3):
        _song(data / "musdb18-preview" / "train" / f"song{i}", i, guitar=False)
    for i in range(2):
        _song(tmp_path / "synth" / f"synth{i}", 10 + i)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"description": "test", "musdb18-preview/train": ["song2"]}))
    train = _train_module()
    common = ["--targets", "vocals,guitar,other", "--arch", "tcn", "--params", '{"hidden": 16, "blocks": 2}',
              "--data-root", str(data), "--synthetic", str(tmp_path / "synth"), "--mix", "musdb=0.5,synthetic=0.5",
              "--split", str(split), "--segment", "1", "--batch", "2", "--minutes", "5", "--workers", "0",
              "--threads", "1", "--run", str(tmp_path / "run")]
    assert train.main(common + ["--max-steps", "2"]) == 0
    assert train.main(common + ["--max-steps", "3", "--resume", "--export", str(tmp_path / "w")]) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resumed from" in log and "musdb18-preview/train: 2 training tracks, 1 held out" in log
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["step"] == 3 and history[-1]["vocals_tracks"] == 1

    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert list(manifest["models"]) == ["vocals", "guitar", "other"]
    entry = manifest["models"]["guitar"]
    assert entry["training"]["steps"] == 3 and "non-commercial" in entry["training"]["licence_note"]
    assert entry["quality"]["validation_tracks"] == 0  # the held-out song has no guitar stem
    assert entry["quality"]["validation_global_sdr_db"] is None

    from stemcut.separator import Separator

    separator = Separator(tmp_path / "w", device="cpu")
    audio = np.random.default_rng(0).standard_normal((2, 44100)).astype(np.float32) * 0.1
    stems = separator.separate(audio, 44100)
    assert list(stems) == ["vocals", "guitar", "other"]
    np.testing.assert_allclose(sum(stems.values()), audio, atol=1e-4)
