"""Shared fixtures: tiny random model sets and generated audio (no real data, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_BLSTM = {"n_fft": 512, "max_bin": 128, "hidden": 16, "layers": 1}


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
