"""MaskSeparator: the one torch module that turns mixtures into stems.

    audio (B, 2, L) --STFT--> X (B, 2, T, F) --models--> V_j = mask_j(|X|) * |X|
        --ratio shares or Wiener--> Y_j --iSTFT--> stems (S, B, 2, L)

Training, training-time validation, ``stemcut eval``, the benchmarks and ``stemcut
separate`` all form their stems here: the training loss scores
:meth:`MaskSeparator.ratio_magnitudes`, which is ``|Y_j|`` of the forward pass
without Wiener. Chunking and files stay outside (``chunking``, ``separator``,
``jobs``), as Demucs keeps ``apply.py`` apart from its models.

Stems come in :func:`stemcut.targets.output_stems` order; a set without an
``other`` model gets ``other`` as the remainder (``relu(|X| - sum V)`` as its
magnitude estimate, and the time-domain remainder under the ratio mask).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .filtering import apply_mask, ratio_shares, wiener
from .targets import OTHER, output_stems
from .transforms import STFT, istft


class MaskSeparator(nn.Module):
    """Per-target mask models sharing one STFT, and the step that combines them.

    ``models``: {target: module mapping a magnitude (B, C, F, T) to a mask in [0, 1]}."""

    def __init__(self, models: Mapping[str, nn.Module], n_fft: int, hop: int):
        super().__init__()
        if not models:
            raise ValueError("a MaskSeparator needs at least one target model")
        self.stems = output_stems(list(models))
        self.targets = [t for t in self.stems if t in models]
        self.models = nn.ModuleDict({t: models[t] for t in self.targets})
        self.stft = STFT(n_fft, hop)

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> complex (B, C, T, F)."""
        return self.stft(audio)

    def estimates(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Mixture magnitude (B, C, T, F) -> per-stem magnitude estimates (S, B, C, T, F)."""
        masks = [self.models[t](magnitude.transpose(-1, -2)).transpose(-1, -2).float() for t in self.targets]
        if torch.is_grad_enabled():
            estimates = [mask * magnitude for mask in masks]
            if OTHER not in self.models:
                estimates.append(torch.relu(magnitude - sum(estimates)))
            return torch.stack(estimates)
        # Inference: one (S, ...) tensor filled in place, no per-target temporaries kept.
        out = torch.empty((len(self.stems),) + magnitude.shape, device=magnitude.device)
        for index, mask in enumerate(masks):
            torch.mul(mask, magnitude, out=out[index])
        if OTHER not in self.models:
            out[-1] = torch.relu(magnitude - out[:-1].sum(dim=0))
        return out

    def ratio_magnitudes(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> ``|Y_j|`` (S, B, C, T, F) under the ratio mask: what training scores."""
        magnitude = self.spectrogram(audio).abs()
        return magnitude.unsqueeze(0) * ratio_shares(self.estimates(magnitude))

    def forward(self, audio: torch.Tensor, wiener_iterations: int | None = None) -> torch.Tensor:
        """(B, C, L) -> stems (S, B, C, L): ratio mask, or with ``wiener_iterations``
        (0 or more) the multichannel Wiener filter."""
        length = audio.shape[-1]
        spectrogram = self.spectrogram(audio)
        estimates = self.estimates(spectrogram.abs())
        n_fft, hop, window = self.stft.n_fft, self.stft.hop, self.stft.window

        def inverse(spec: torch.Tensor) -> torch.Tensor:
            return istft(spec, n_fft, hop, window, length)

        if wiener_iterations is not None:
            stems = wiener(estimates.transpose(-1, -2), spectrogram.transpose(-1, -2),
                           wiener_iterations).transpose(-1, -2)
            del estimates
            if torch.is_grad_enabled():
                return torch.stack([inverse(stem) for stem in stems])
            out = torch.empty((len(self.stems),) + audio.shape, device=audio.device)
            for index in range(len(self.stems)):
                out[index] = inverse(stems[index])
            return out
        # Ratio mask, one complex stem spectrogram at a time; `other` is the time-domain
        # remainder, which is what the shares summing to one give it anyway (to rounding).
        shares = ratio_shares(estimates)
        other = self.stems.index(OTHER)
        if torch.is_grad_enabled():
            parts = {index: inverse(apply_mask(shares[index], spectrogram))
                     for index in range(len(self.stems)) if index != other}
            parts[other] = audio - sum(parts.values())
            return torch.stack([parts[index] for index in range(len(self.stems))])
        out = torch.empty((len(self.stems),) + audio.shape, device=audio.device)
        for index in range(len(self.stems)):
            if index != other:
                out[index] = inverse(apply_mask(shares[index], spectrogram))
        out[other] = 0.0
        out[other] = audio - out.sum(dim=0)
        return out
