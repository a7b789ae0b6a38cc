"""MaskSeparator: the one torch module that turns mixtures into stems.

    audio (B, 2, L) --STFT--> X (B, 2, T, F) --models--> V_j = mask_j(|X|) * |X|
        --ratio shares or Wiener--> Y_j --iSTFT--> stems (S, B, 2, L)

Training, training-time validation, ``stemcut eval``, the benchmarks and ``stemcut
separate`` all form their stems here: the training loss scores
:meth:`MaskSeparator.ratio_magnitudes`, which is ``|Y_j|`` of the forward pass
without Wiener. Chunking and files stay outside (``chunking``, ``separator``,
``jobs``), as Demucs keeps ``apply.py`` apart from its models.

``forward(audio, padded_length=N)`` gives the stems of ``audio`` zero-padded to N
samples (a short file in a full segment), cut back to its length, computed on
just enough samples and frames to be the same to float rounding (see
:meth:`MaskSeparator.silence_cut`).

Stems come in :func:`stemcut.targets.output_stems` order; a set without an
``other`` model gets ``other`` as the remainder (``relu(|X| - sum V)`` as its
magnitude estimate, and the time-domain remainder under the ratio mask).
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .filtering import apply_mask, ratio_shares, wiener
from .targets import OTHER, output_stems
from .transforms import STFT, istft

# spread(function, targets) -> [function(target) for target in targets], perhaps on other threads
Spread = Callable[[Callable[[str], torch.Tensor], Iterable[str]], list]


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

    def silence_cut(self, length: int, padded_length: int) -> int:
        """Samples of ``length`` real ones zero-padded to ``padded_length`` that give the
        same stems on the real ones, computed with ``padded_frames``: ``padded_length``
        itself when the models cannot skip silent frames or nothing would be saved.

        The cut leaves at least ``n_fft // 2 + 1`` zeros after the audio, so the STFT's
        reflected end reads only zeros and every frame of the cut signal equals the padded
        signal's; all the padded signal's frames after them are silent (exactly zero). The
        frames that reach a real sample are all inside the cut, so the iSTFT agrees there."""
        n_fft, hop = self.stft.n_fft, self.stft.hop
        cut = -(-(length + n_fft // 2 + 1) // hop) * hop
        if cut + n_fft // 2 > padded_length or not all(
                getattr(model, "padded_frames_supported", False) for model in self.models.values()):
            return padded_length
        return cut

    def estimates(self, magnitude: torch.Tensor, padded_frames: int | None = None,
                  spread: Spread | None = None) -> torch.Tensor:
        """Mixture magnitude (B, C, T, F) -> per-stem magnitude estimates (S, B, C, T, F);
        with ``padded_frames``, as if ``padded_frames - T`` silent frames followed.
        ``spread`` may run the target models on other threads (the separator's idle workers)."""
        extra = {} if padded_frames is None else {"padded_frames": padded_frames}
        spectra = magnitude.transpose(-1, -2)

        def mask(target: str) -> torch.Tensor:
            return self.models[target](spectra, **extra).transpose(-1, -2).float()

        masks = spread(mask, self.targets) if spread is not None else [mask(t) for t in self.targets]
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

    def forward(self, audio: torch.Tensor, wiener_iterations: int | None = None,
                padded_length: int | None = None, spread: Spread | None = None) -> torch.Tensor:
        """(B, C, L) -> stems (S, B, C, L): ratio mask, or with ``wiener_iterations``
        (0 or more) the multichannel Wiener filter. With ``padded_length`` > L: the first L
        samples of the stems of ``audio`` zero-padded to ``padded_length`` samples.

        Silent frames change neither filter: their mixture and estimates are exactly zero,
        so they add nothing to the Wiener filter's sums over frames. ``spread``: see
        :meth:`estimates`."""
        length = audio.shape[-1]
        if padded_length is None or padded_length <= length:
            return self._separate(audio, wiener_iterations, None, spread)
        cut = self.silence_cut(length, padded_length)
        frames = 1 + padded_length // self.stft.hop if cut < padded_length else None
        return self._separate(F.pad(audio, (0, cut - length)), wiener_iterations, frames, spread)[..., :length]

    def _separate(self, audio: torch.Tensor, wiener_iterations: int | None, padded_frames: int | None,
                  spread: Spread | None) -> torch.Tensor:
        length = audio.shape[-1]
        spectrogram = self.spectrogram(audio)
        estimates = self.estimates(spectrogram.abs(), padded_frames, spread)
        n_fft, hop, window = self.stft.n_fft, self.stft.hop, self.stft.window

        def inverse(spec: torch.Tensor) -> torch.Tensor:
            return istft(spec, n_fft, hop, window, length)

        if wiener_iterations is not None:
            # The models learn through the ratio mask, so only their estimates' ratios are
            # fitted. Each EM iteration's gains are ratios of powers (squares of its start):
            # given the estimates' square roots, its first gains keep the ratio mask's shares
            # and add each stem's stereo image; the estimates themselves would give squared
            # shares, a sharper mask than the models learnt (docs/models.md, "The Wiener filter and these models").
            if wiener_iterations:
                estimates = estimates.sqrt() if torch.is_grad_enabled() else estimates.sqrt_()
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
