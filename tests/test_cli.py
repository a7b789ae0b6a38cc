"""The stemcut command end to end (tiny random models, generated audio)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from conftest import sine_mixture
from stemcut import __version__
from stemcut.audio import OutputSpec, load_audio, probe, save_audio
from stemcut.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"stemcut {__version__}"


def test_help_does_not_import_torch():
    code = "import sys; from stemcut.cli import app; app(['--help'])"
    check = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True)
    assert "separate" in check.stdout
    probe_torch = subprocess.run(
        [sys.executable, "-c", "import sys, stemcut.cli; print('torch' in sys.modules)"], capture_output=True, text=True)
    assert probe_torch.stdout.strip() == "False"


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "stemcut", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout


def test_help_groups_options_in_panels():
    result = runner.invoke(app, ["separate", "--help"], env={"COLUMNS": "120"})
    for panel in ("Output", "Model", "Processing", "Device"):
        assert panel in result.stdout


def test_models_lists_the_set(tiny_models):
    result = runner.invoke(app, ["models", "--model-dir", str(tiny_models)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for target in ("vocals", "drums", "bass", "guitar", "other"):
        assert target in result.stdout
    assert "untrained" in result.stdout


def test_models_without_manifest_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["models", "--model-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no model manifest" in result.stderr


def test_separate_subset_flac(tiny_models, tmp_path):
    a = save_audio(tmp_path / "a.wav", sine_mixture(0.6, 44100, 2), 44100)
    b = save_audio(tmp_path / "b song.flac", sine_mixture(0.4, 48000, 1), 48000, OutputSpec(format="flac"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["separate", str(a), str(b), "-o", str(out), "--stems", "vocals,drums",
                                 "--format", "flac", "--model-dir", str(tiny_models), "--segment", "0.5", "-q"])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.is_file() and not p.name.startswith("."))  # .stemcut.json: resume records
    assert written == ["a/drums.flac", "a/vocals.flac", "b song/drums.flac", "b song/vocals.flac"]
    assert sorted(result.stdout.split("\n")[:-1]) == sorted(str(out / w) for w in written)
    info = probe(out / "b song" / "vocals.flac")
    assert (info.sample_rate, info.channels, info.frames) == (48000, 1, int(0.4 * 48000))


def test_separate_karaoke_sums_to_mixture(tiny_models, tmp_path):
    mixture = sine_mixture(0.7, 44100, 2)
    song = save_audio(tmp_path / "song.wav", mixture, 44100)
    result = runner.invoke(app, ["separate", str(song), "-o", str(tmp_path / "k"), "--karaoke", "--bit-depth", "32",
                                 "--model-dir", str(tiny_models), "--segment", "0.5"])
    assert result.exit_code == 0, result.output
    vocals, _ = load_audio(tmp_path / "k" / "song" / "vocals.wav")
    instrumental, _ = load_audio(tmp_path / "k" / "song" / "instrumental.wav")
    assert np.abs(vocals + instrumental - mixture).max() < 1e-5


def test_bad_file_does_not_stop_the_batch(tiny_models, tmp_path):
    good = save_audio(tmp_path / "good.wav", sine_mixture(0.3, 44100, 2), 44100)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    result = runner.invoke(app, ["separate", str(bad), str(good), "-o", str(tmp_path / "o"),
                                 "--model-dir", str(tiny_models), "--segment", "0.5"])
    assert result.exit_code == 1
    assert f"{bad}: not a recognised audio file" in result.stderr
    assert (tmp_path / "o" / "good" / "other.wav").exists()
    assert not (tmp_path / "o" / "bad").exists()


def test_all_failed_and_usage_errors(tiny_models, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    all_failed = runner.invoke(app, ["separate", str(bad), "--model-dir", str(tiny_models), "-o", str(tmp_path)])
    assert all_failed.exit_code == 3 and "empty file" in all_failed.stderr
    unknown_stem = runner.invoke(app, ["separate", str(bad), "--stems", "kazoo", "--model-dir", str(tiny_models)])
    assert unknown_stem.exit_code == 2 and "unknown stem" in unknown_stem.stderr
    bad_format = runner.invoke(app, ["separate", str(bad), "--format", "flac", "--bit-depth", "32"])
    assert bad_format.exit_code == 2
    no_models = runner.invoke(app, ["separate", str(bad), "--model-dir", str(tmp_path / "none")])
    assert no_models.exit_code == 2 and "no model manifest" in no_models.stderr


def _reference_folder(root, with_guitar: bool):
    stems = ["vocals", "drums", "bass", "other"] + (["guitar"] if with_guitar else [])
    for index, stem in enumerate(stems):
        save_audio(root / "track" / f"{stem}.wav", sine_mixture(1.0, 44100, 2, seed=index) * 0.3, 44100)
    return root


def test_eval_table_json_and_guitar_folding(tiny_models, tmp_path):
    import json

    reference = _reference_folder(tmp_path / "ref", with_guitar=False)
    result = runner.invoke(app, ["eval", str(reference), "--model-dir", str(tiny_models), "--no-museval",
                                 "--json", "-", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "model"
    assert set(report["global_sdr"]) == {"vocals", "drums", "bass", "other"}  # guitar has no reference
    assert report["tracks"][0]["folded_into_other"] == ["guitar"]
    oracle = runner.invoke(app, ["eval", str(reference), "--oracle", "--no-museval", "-q"], env={"COLUMNS": "200"})
    assert oracle.exit_code == 0 and "oracle" in oracle.stdout and "vocals" in oracle.stdout


def test_eval_missing_reference_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "none"), "--oracle", "--no-museval"])
    assert result.exit_code == 2
