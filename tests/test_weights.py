"""Model sets: manifest, checksums, safe loading."""

from __future__ import annotations

import json

import pytest

from conftest import make_model_set
from stemcut.weights import ModelError, load_model, model_specs, read_manifest, sha256_of


def test_manifest_records_everything(tmp_path):
    folder = make_model_set(tmp_path / "set", targets=["vocals", "drums"])
    manifest = read_manifest(folder)
    entry = manifest["models"]["vocals"]
    for key in ("file", "sha256", "arch", "params", "sample_rate", "stft", "training"):
        assert key in entry
    assert entry["sha256"] == sha256_of(folder / entry["file"])
    assert [spec.target for spec in model_specs(folder)] == ["vocals", "drums"]


def test_checksum_mismatch_is_a_clear_error(tmp_path):
    folder = make_model_set(tmp_path / "set", targets=["vocals"])
    weights = folder / "vocals.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError) as caught:
        load_model(model_specs(folder)[0])
    message = str(caught.value)
    assert "checksum mismatch" in message and str(weights) in message and "\n" not in message


def test_missing_manifest(tmp_path):
    with pytest.raises(ModelError, match="no model manifest"):
        model_specs(tmp_path)


def test_unknown_target_and_incomplete_entry(tmp_path):
    folder = make_model_set(tmp_path / "set", targets=["vocals"])
    manifest = read_manifest(folder)
    manifest["models"]["kazoo"] = manifest["models"]["vocals"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="unknown target 'kazoo'"):
        model_specs(folder)
    del manifest["models"]["kazoo"]
    del manifest["models"]["vocals"]["stft"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="incomplete"):
        model_specs(folder)


def test_pickles_are_never_loaded(tmp_path):
    """A weights file that is a torch pickle, not safetensors, is refused, not executed."""
    import torch

    folder = make_model_set(tmp_path / "set", targets=["vocals"])
    weights = folder / "vocals.safetensors"
    torch.save({"x": torch.zeros(1)}, weights)
    manifest = read_manifest(folder)
    manifest["models"]["vocals"]["sha256"] = sha256_of(weights)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="cannot load"):
        load_model(model_specs(folder)[0])


def test_wrong_shapes_are_refused(tmp_path):
    folder = make_model_set(tmp_path / "set", targets=["vocals"])
    manifest = read_manifest(folder)
    manifest["models"]["vocals"]["params"]["hidden"] = 32
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="cannot load blstm weights"):
        load_model(model_specs(folder)[0])


def test_shipped_weights_load_and_fit_the_size_limits():
    """The committed model set: all five targets, checksums match, sizes within the limits,
    training provenance recorded."""
    from pathlib import Path

    from stemcut.targets import TARGETS

    shipped = Path(__file__).resolve().parents[1] / "weights"
    specs = model_specs(shipped)
    assert [spec.target for spec in specs] == list(TARGETS)
    total = 0
    for spec in specs:
        size = spec.path.stat().st_size
        total += size
        assert size <= 16 * 2**20
        assert spec.training.get("command", "").startswith("python scripts/train.py")
        load_model(spec)
    assert total <= 80 * 2**20


def test_compose_set_takes_each_target_from_its_source(tmp_path):
    from stemcut.weights import compose_set, load_model_set

    base = make_model_set(tmp_path / "base", seed=0)
    other = make_model_set(tmp_path / "other", targets=["drums"], seed=1)
    out = compose_set(tmp_path / "out", {**{spec.target: base for spec in model_specs(base)}, "drums": other})
    composed = read_manifest(out)["models"]
    assert composed["drums"]["sha256"] == read_manifest(other)["models"]["drums"]["sha256"]
    assert composed["vocals"]["sha256"] == read_manifest(base)["models"]["vocals"]["sha256"]
    assert composed["drums"]["sha256"] != read_manifest(base)["models"]["drums"]["sha256"]
    assert load_model_set(out).checksums()["drums"] == composed["drums"]["sha256"]
    with pytest.raises(ModelError, match="no bass model"):
        compose_set(tmp_path / "bad", {"bass": other})


def test_compose_set_refuses_mixed_stfts_and_damaged_files(tmp_path):
    from stemcut.weights import compose_set, write_untrained_set

    base = make_model_set(tmp_path / "base")
    wide = write_untrained_set(tmp_path / "wide", "blstm", {"hidden": 8, "layers": 1}, targets=("drums",),
                               n_fft=1024, hop=256)
    before = (base / "manifest.json").read_text()
    with pytest.raises(ModelError, match="sample rate and STFT"):
        compose_set(base, {"drums": wide})
    assert (base / "manifest.json").read_text() == before  # nothing written
    damaged = make_model_set(tmp_path / "damaged", targets=["drums"], seed=2)
    data = bytearray((damaged / "drums.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (damaged / "drums.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        compose_set(tmp_path / "out", {"drums": damaged})
