"""Shared fixtures: tiny random model sets and generated audio (no real data, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_BLSTM = {"n_fft": 512, "max_bin": 128, "hidden": 16, "layers": 1}
TINY_FAMILIES = {  # small hyper-parameters of every family in stemcut/models.py (n_fft 512)
    "blstm": dict(TINY_BLSTM, layers=2),
    "tcn": {"n_fft": 512, "max_bin": 128, "hidden": 16, "blocks": 4},
    "unet": {"n_fft": 512, "max_bin": 160, "width": 4, "depth": 3},
    "mmdense": {"n_fft": 512, "max_bin": 200, "growth": 4, "layers": 2, "depth": 2, "bands": [64, 128]},
}


def make_model_set(folder: Path, targets=None, seed: int = 0) -> Path:
    from stemcut.targets import TARGETS
    from stemcut.weights import write_untrained_set

    return write_untrained_set(folder, "blstm", TINY_BLSTM, targets=tuple(targets or TARGETS),
                               n_fft=512, hop=128, seed=seed)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A five-target model set of tiny, randomly initialised BLSTM mask models."""
    return make_model_set(tmp_path_factory.mktemp("models"))


def sine_mixture(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """A few sines plus a little noise, (channels, frames) float32, peak below 0.9."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    tones = sum(0.2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (110.0, 440.0, 1234.5))
    audio = np.stack([tones * (0.8 + 0.1 * c) + 0.01 * rng.standard_normal(t.size) for c in range(channels)])
    return audio.astype(np.float32)


# -- a synthetic-oracle model set: each target's model passes one frequency band ----------

ORACLE_RATE = 44100
ORACLE_BANDS = {"bass": (0, 300), "vocals": (600, 2600), "guitar": (3000, 4600), "drums": (5200, 12500),
                "other": (14000, 22050)}


def make_band_model_set(folder: Path) -> Path:
    """Five blstm 'models' whose mask is 1 inside their target's band of ORACLE_BANDS and 0
    outside (the output bias alone decides; every weight into it is zero)."""
    import torch

    from stemcut.models import build_model
    from stemcut.weights import save_model

    n_fft, hop = 512, 128
    params = dict(TINY_BLSTM)
    freqs = np.arange(n_fft // 2 + 1) * ORACLE_RATE / n_fft
    for target, (low, high) in ORACLE_BANDS.items():
        model = build_model("blstm", params)
        with torch.no_grad():
            model.fc3.weight.zero_()
            inside = (freqs >= low) & (freqs < high)
            model.output_bias.copy_(torch.from_numpy(np.where(inside, 30.0, -30.0)).float())
        save_model(folder, target, model.eval(), "blstm", params, ORACLE_RATE, n_fft, hop,
                   training={"untrained": "hand-set band-pass masks for tests"})
    return folder


def band_sources(seconds: float = 2.0, seed: int = 0) -> dict[str, np.ndarray]:
    """One source per target, each well inside its band of ORACLE_BANDS (stereo, 44.1 kHz)."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * ORACLE_RATE)) / ORACLE_RATE

    def noise_band(low: float, high: float) -> np.ndarray:
        sos = butter(6, [low, high], btype="bandpass", fs=ORACLE_RATE, output="sos")
        return sosfilt(sos, rng.standard_normal(t.size))

    bursts = (np.sin(2 * np.pi * 4 * t) > 0.3).astype(float)
    sources = {
        "vocals": 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.2 * np.sin(2 * np.pi * 1500 * t),
        "drums": 0.8 * noise_band(6500, 10500) * bursts,
        "bass": 0.4 * np.sin(2 * np.pi * 110 * t),
        "guitar": 0.25 * np.sin(2 * np.pi * 3800 * t),
        "other": 0.1 * np.sin(2 * np.pi * 17000 * t),
    }
    return {name: np.stack([audio, 0.7 * audio]).astype(np.float32) for name, audio in sources.items()}


@pytest.fixture(scope="session")
def band_models(tmp_path_factory) -> Path:
    return make_band_model_set(tmp_path_factory.mktemp("band-models"))
