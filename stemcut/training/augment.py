"""Augmentations of training batches in torch, on the training device.

Every one is linear per stem (gains, channel swaps, resampling, zero-phase EQ, one shared
rescale), and the mixture is formed afterwards as the stems' sum, so it stays exactly their sum.
Batches are ``stems [B, S, 2, T]``; random numbers come from a CPU ``torch.Generator`` (the
same draws on any device) and are moved to the batch's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the augmentations."""

    gain_db: tuple[float, float] = (-6.0, 3.0)
    channel_swap: float = 0.5
    speed: tuple[float, float] = (0.94, 1.06)  # resampling: pitch and tempo together, about +-1 semitone
    speed_probability: float = 0.5
    band_limit: float = 0.25  # low-pass the whole example (hides band-limited sources' missing highs)
    band_limit_hz: tuple[float, float] = (7000.0, 20000.0)
    tone: float = 0.3  # a random low/high-shelf tilt of the whole example (a different "master EQ")
    tone_db: float = 4.0
    clip_limit: float = 0.99


def uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def chance(generator: torch.Generator, shape: tuple[int, ...], probability: float) -> torch.Tensor:
    return torch.rand(shape, generator=generator) < probability


def gather_excerpts(bank: torch.Tensor, index: torch.Tensor, start: torch.Tensor, speed: torch.Tensor,
                    length: int) -> torch.Tensor:
    """Excerpts ``[B, S, C, length]`` (float32) of bank windows ``[N, S, C, W]``.

    Slot ``s`` of example ``b`` reads window ``index[b, s]``'s stem ``s`` from sample ``start[b, s]``
    at ``speed[b, s]`` samples per output sample (linear interpolation: a resampling, so pitch and
    tempo change together). The caller keeps ``start + speed * (length - 1) + 1 < W``.
    """
    device = bank.device
    steps = torch.arange(length, device=device, dtype=torch.float32)
    position = start.to(device, torch.float32)[..., None] + speed.to(device, torch.float32)[..., None] * steps
    left = position.floor().long()
    fraction = (position - left).unsqueeze(2)  # [B, S, 1, L]
    rows = index.to(device)[..., None]
    stems = torch.arange(bank.shape[1], device=device)[None, :, None]
    # Advanced indices around a slice: the result is [B, S, L, C].
    low = bank[rows, stems, :, left].permute(0, 1, 3, 2).float()
    high = bank[rows, stems, :, left + 1].permute(0, 1, 3, 2).float()
    return torch.lerp(low, high, fraction)


def gains_and_swaps(stems: torch.Tensor, generator: torch.Generator, config: AugmentConfig) -> torch.Tensor:
    """Each stem of each example at its own random gain, its channels swapped with ``channel_swap``."""
    batch, count = stems.shape[:2]
    gain = 10 ** (uniform(generator, (batch, count), *config.gain_db) / 20)
    swap = chance(generator, (batch, count), config.channel_swap).to(stems.device)
    stems = torch.where(swap[..., None, None], stems.flip(2), stems)
    return stems * gain.to(stems.device)[..., None, None]


def equalise(stems: torch.Tensor, generator: torch.Generator, config: AugmentConfig, sample_rate: int) -> torch.Tensor:
    """The same random zero-phase EQ on every stem of an example: sometimes a low-pass (4th-order
    Butterworth magnitude), sometimes low and high shelves; applied in the frequency domain."""
    batch, length = stems.shape[0], stems.shape[-1]
    lowpass = chance(generator, (batch,), config.band_limit)
    tilt = chance(generator, (batch,), config.tone)
    log_low, log_high = math.log(config.band_limit_hz[0]), math.log(config.band_limit_hz[1])
    cutoff = torch.exp(uniform(generator, (batch,), log_low, log_high))
    low_freq, high_freq = uniform(generator, (batch,), 80, 300), uniform(generator, (batch,), 3000, 9000)
    low_db = uniform(generator, (batch,), -config.tone_db, config.tone_db)
    high_db = uniform(generator, (batch,), -config.tone_db, config.tone_db)
    chosen = (lowpass | tilt).nonzero().flatten()
    if len(chosen) == 0:
        return stems
    freqs = torch.fft.rfftfreq(length, 1 / sample_rate)[None, :]
    response = torch.ones(len(chosen), freqs.shape[1])
    c = chosen
    response = torch.where(lowpass[c, None], response / torch.sqrt(1 + (freqs / cutoff[c, None]) ** 8), response)
    low_shelf = low_db[c, None] / (1 + (freqs / low_freq[c, None]) ** 2)
    ratio = (freqs / high_freq[c, None]) ** 2
    high_shelf = high_db[c, None] * ratio / (1 + ratio)
    response = torch.where(tilt[c, None], response * 10 ** ((low_shelf + high_shelf) / 20), response)
    chosen = chosen.to(stems.device)
    spectrum = torch.fft.rfft(stems[chosen], dim=-1) * response.to(stems.device)[:, None, None, :]
    stems = stems.clone()
    stems[chosen] = torch.fft.irfft(spectrum, n=length, dim=-1)
    return stems


def rescale_to_avoid_clipping(stems: torch.Tensor, limit: float = 0.99) -> torch.Tensor:
    """One gain per example on all its stems so that neither their sum nor any stem exceeds ``limit``."""
    peak = torch.maximum(stems.sum(1).abs().amax(dim=(1, 2)), stems.abs().amax(dim=(1, 2, 3)))
    gain = torch.where(peak > limit, limit / peak.clamp_min(1e-12), torch.ones_like(peak))
    return stems * gain[:, None, None, None]


def mix(stems: torch.Tensor) -> torch.Tensor:
    """The mixture of ``[B, S, 2, T]`` stems: their sum over the stem axis."""
    return stems.sum(1)
