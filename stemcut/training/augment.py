"""Augmentations on stem stacks ``[..., 2, T]``; every one is linear per stem, so sums stay sums."""

from __future__ import annotations

import numpy as np

from stemcut.training.effects import apply_filters, biquad


def random_excerpt(stems: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample window of ``stems`` (``[..., T]``).

    Clips shorter than ``length`` are placed at a random offset inside silence.
    """
    total = stems.shape[-1]
    out = np.zeros(stems.shape[:-1] + (length,), np.float32)
    if total >= length:
        start = int(rng.integers(0, total - length + 1))
        out[...] = stems[..., start : start + length]
    elif total > 0:
        start = int(rng.integers(0, length - total + 1))
        out[..., start : start + total] = stems
    return out


def random_gain(audio: np.ndarray, rng: np.random.Generator, low_db: float = -6.0, high_db: float = 3.0) -> np.ndarray:
    """Scale by a random gain in ``[low_db, high_db]`` dB."""
    return (audio * 10 ** (rng.uniform(low_db, high_db) / 20)).astype(np.float32)


def maybe_swap_channels(audio: np.ndarray, rng: np.random.Generator, probability: float = 0.5) -> np.ndarray:
    """Swap left and right (axis -2) with the given probability."""
    return audio[..., ::-1, :].copy() if rng.random() < probability else audio


def random_band_limit(stems: np.ndarray, rng: np.random.Generator, low_hz: float = 7000.0,
                      high_hz: float = 20000.0) -> np.ndarray:
    """Low-pass every stem with the same random cutoff, so band-limited sources are no giveaway."""
    cutoff = float(np.exp(rng.uniform(np.log(low_hz), np.log(high_hz))))
    return apply_filters(stems, [biquad("lowpass", cutoff, 0.707), biquad("lowpass", cutoff, 0.707)])


def random_tone(stems: np.ndarray, rng: np.random.Generator, max_db: float = 4.0) -> np.ndarray:
    """The same random low/high-shelf tilt on every stem (a different "master EQ" per example)."""
    filters = [biquad("lowshelf", float(rng.uniform(80, 300)), 0.707, float(rng.uniform(-max_db, max_db))),
               biquad("highshelf", float(rng.uniform(3000, 9000)), 0.707, float(rng.uniform(-max_db, max_db)))]
    return apply_filters(stems, filters)


def rescale_to_avoid_clipping(stems: np.ndarray, limit: float = 0.99) -> tuple[np.ndarray, float]:
    """One shared gain on all stems so neither their sum nor any stem exceeds ``limit``.

    Returns the rescaled stems (``[S, 2, T]``) and the gain applied (1.0 if none was needed).
    """
    peak = max(float(np.abs(stems.sum(axis=0)).max(initial=0.0)), float(np.abs(stems).max(initial=0.0)))
    if peak <= limit:
        return stems, 1.0
    gain = limit / peak
    return (stems * np.float32(gain)).astype(np.float32), gain


def mix(stems: np.ndarray) -> np.ndarray:
    """The mixture of ``[..., S, 2, T]`` stems: their exact float32 sum over the stem axis."""
    return stems.sum(axis=-3, dtype=np.float32)
