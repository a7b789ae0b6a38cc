"""The separator end to end on generated audio: tiny random models, and a band-pass oracle
set that really separates a known mixture (so a broken model step fails here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import band_sources, make_model_set, sine_mixture
from stemcut import Separator
from stemcut.metrics import global_sdr
from stemcut.settings import SeparationSettings, SettingsError


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


@pytest.mark.parametrize("wiener", [False, True])
def test_band_oracle_set_separates_a_known_mixture(band_models, wiener):
    """Each stem of the band-pass set must come out as its own source, in its own slot."""
    sources = band_sources()
    mixture = sum(sources.values())
    with Separator(band_models, device="cpu", segment=1.0, wiener=wiener, threads=2) as separator:
        stems = separator.separate(mixture, 44100)
    for name, source in sources.items():
        assert global_sdr(source, stems[name]) > 20, name
    np.testing.assert_allclose(sum(stems.values()), mixture, atol=1e-4)


def test_band_oracle_set_through_resampling_and_mono(band_models):
    sources = {k: v[:1] for k, v in band_sources(seconds=1.5, seed=3).items()}
    mixture = sum(sources.values())
    import soxr

    at_48k = soxr.resample(mixture.T, 44100, 48000).T.astype(np.float32)
    with Separator(band_models, device="cpu", segment=0.7, overlap=0.25) as separator:
        stems = separator.separate(at_48k, 48000)
    back = {k: soxr.resample(v.T, 48000, 44100).T for k, v in stems.items()}
    length = min(v.shape[1] for v in back.values())
    for name in ("vocals", "bass", "guitar"):
        assert global_sdr(sources[name][:, 1000:length - 1000], back[name][:, 1000:length - 1000]) > 15, name


def test_settings_are_validated(tiny_models):
    with pytest.raises(SettingsError, match="--overlap"):
        Separator(tiny_models, overlap=0.7)
    for bad in (0, 0.001, float("nan"), float("inf")):
        with pytest.raises(SettingsError, match="--segment"):
            Separator(tiny_models, segment=bad)
    with pytest.raises(SettingsError, match="--batch-size"):
        SeparationSettings(batch_size=0)
    with pytest.raises(SettingsError, match="--wiener-iterations"):
        SeparationSettings(wiener_iterations=-1)


def test_settings_keep_their_units():
    settings = SeparationSettings(segment=2.5, overlap=0.2, wiener=False, wiener_iterations=3)
    assert settings.fingerprint() == {"segment": 2.5, "overlap": 0.2, "wiener": False, "wiener_iterations": 0}
    assert settings.describe()["segment"] == 2.5
    chunking = settings.chunking(44100, 1024)
    assert (chunking.segment, chunking.overlap) == (110250, 22050)
    assert settings.segment == 2.5  # resolving never converts the setting itself


def test_two_separators_keep_their_own_settings_and_leave_torch_alone(tiny_models):
    before = torch.get_num_threads()
    first = Separator(tiny_models, device="cpu", threads=2, segment=0.5)
    second = Separator(tiny_models, device="cpu", threads=2, segment=1.0, wiener=True)
    assert torch.get_num_threads() == before  # the calling thread's torch threads are untouched
    assert first.workers == second.workers == 2
    assert first.settings.segment == 0.5 and second.settings.segment == 1.0 and not first.settings.wiener
    audio = sine_mixture(1.0, 44100, 2)
    a = first.separate(audio, 44100)
    b = second.separate(audio, 44100)
    assert torch.get_num_threads() == before
    assert np.abs(a["vocals"] - b["vocals"]).max() > 1e-4  # Wiener only on the second
    default = Separator(tiny_models, device="cpu")
    assert default.workers == min(len(__import__("os").sched_getaffinity(0)), before)


def test_cuda_without_gpu_is_a_clear_error(tiny_models):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        Separator(tiny_models, device="cuda:0")
