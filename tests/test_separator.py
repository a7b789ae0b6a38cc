"""The separator end to end on generated audio, with tiny random models."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_model_set, sine_mixture
from stemcut import Separator
from stemcut.audio import OutputSpec, load_audio, save_audio


@pytest.fixture(scope="module")
def separator(tiny_models):
    return Separator(tiny_models, device="cpu", segment=0.5, overlap=0.2, threads=2)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_stems_keep_shape_and_sum_to_mixture(separator, rate, channels):
    audio = sine_mixture(1.3, rate, channels)
    stems = separator.separate(audio, rate)
    assert list(stems) == ["vocals", "drums", "bass", "guitar", "other"]
    for stem in stems.values():
        assert stem.shape == audio.shape and stem.dtype == np.float32
    assert np.abs(sum(stems.values()) - audio).max() < 1e-4


def test_models_change_the_signal(separator):
    """Not an identity in disguise: stems differ from each other and from the mix."""
    audio = sine_mixture(1.0, 44100, 2)
    stems = separator.separate(audio, 44100)
    assert np.abs(stems["vocals"] - stems["drums"]).max() > 1e-3
    assert np.abs(stems["vocals"] - audio).max() > 1e-3


def test_wiener_runs_jointly_and_sums(tiny_models):
    plain = Separator(tiny_models, device="cpu", segment=0.5, overlap=0.2)
    filtered = Separator(tiny_models, device="cpu", segment=0.5, overlap=0.2, wiener=True, wiener_iterations=1)
    audio = sine_mixture(1.0, 44100, 2)
    a, b = plain.separate(audio, 44100), filtered.separate(audio, 44100)
    assert np.abs(a["vocals"] - b["vocals"]).max() > 1e-4  # the filter does change the estimates
    assert np.abs(sum(b.values()) - audio).max() < 1e-4    # the residual policy keeps the sum


def test_output_is_deterministic(separator):
    audio = sine_mixture(0.8, 48000, 2, seed=5)
    first = separator.separate(audio, 48000)
    second = separator.separate(audio, 48000)
    assert all(np.array_equal(first[k], second[k]) for k in first)


def test_set_without_other_gets_the_remainder(tmp_path):
    folder = make_model_set(tmp_path / "voc", targets=["vocals"])
    separator = Separator(folder, device="cpu", segment=0.5)
    assert separator.stems == ["vocals", "other"]
    audio = sine_mixture(0.7, 44100, 2)
    stems = separator.separate(audio, 44100)
    assert np.abs(stems["vocals"] + stems["other"] - audio).max() < 1e-4


def test_separate_file_writes_exact_files(separator, tmp_path):
    audio = sine_mixture(1.1, 22050, 1)
    source = save_audio(tmp_path / "in.flac", audio, 22050, OutputSpec(format="flac", bit_depth=24))
    outputs = {"vocals": tmp_path / "out" / "vocals.wav", "instrumental": tmp_path / "out" / "instrumental.wav"}
    seen = []
    result = separator.separate_file(source, outputs, OutputSpec(format="wav", bit_depth=32), progress=seen.append)
    assert sum(seen) == audio.shape[1] == result.frames
    vocals, rate = load_audio(outputs["vocals"])
    instrumental, _ = load_audio(outputs["instrumental"])
    mixture, _ = load_audio(source)
    assert rate == 22050 and vocals.shape == mixture.shape == (1, audio.shape[1])
    assert np.abs(vocals + instrumental - mixture).max() < 1e-5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["instrumental.wav", "vocals.wav"]


def test_failed_file_leaves_no_outputs(separator, tmp_path):
    import soundfile as sf

    audio = sine_mixture(1.0, 8000, 2)
    audio[:, 6000] = np.inf
    sf.write(tmp_path / "bad.wav", audio.T, 8000, subtype="FLOAT")
    from stemcut.audio import AudioError

    with pytest.raises(AudioError, match="infinite"):
        separator.separate_file(tmp_path / "bad.wav", {"vocals": tmp_path / "o" / "vocals.wav"}, OutputSpec())
    assert list((tmp_path / "o").iterdir()) == []


def test_settings_are_validated(tiny_models):
    with pytest.raises(ValueError, match="overlap"):
        Separator(tiny_models, overlap=0.7)
    with pytest.raises(ValueError, match="segment"):
        Separator(tiny_models, segment=0)


def test_cuda_without_gpu_is_a_clear_error(tiny_models):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        Separator(tiny_models, device="cuda:0")
