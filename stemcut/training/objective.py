"""The training objective: magnitudes of the separator's own stems, scored per target.

The outputs are :meth:`stemcut.core.MaskSeparator.ratio_magnitudes`, the ``|Y_j|``
of the very forward pass ``stemcut separate`` runs (without Wiener), so the targets
learn to share the mixture the way they will share it at run time.

Guitar/other rule (:func:`stemcut.targets.fold_into_other`): a target is scored on
its own on an example when it is trained and known there (its slot holds exactly
that target). Every other target is folded into ``other``, on the reference (in the
time domain, before the STFT) and on the estimate (ratio-mask magnitudes share the
mixture's phase, so their sum is the magnitude of the summed stems). So on
MUSDB-style material (guitar inside ``other``) guitar and other are scored on their
sum, and on material with a real guitar stem ``other`` is scored without the
guitar. A known but silent target is scored too: it learns to stay silent.
"""

from __future__ import annotations

import torch

from ..core import MaskSeparator
from ..targets import OTHER, TARGETS, fold_into_other


def scored_targets(known: torch.Tensor, stems: list[str]) -> torch.Tensor:
    """[5, B] bool over :data:`TARGETS`: scored on its own (a produced stem, and known); ``other`` always."""
    produced = torch.tensor([t in stems for t in TARGETS], device=known.device)
    scored = (known.bool() & produced).T.clone()
    scored[TARGETS.index(OTHER)] = True
    return scored


def reference_magnitudes(core: MaskSeparator, stems: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """Reference ``|STFT|`` (S, B, C, T, F) for ``core.stems``: stems [B, 5, C, N] folded by ``scored``."""
    folded = fold_into_other(stems.transpose(0, 1), TARGETS, scored)  # 5, B, C, N
    rows = [TARGETS.index(t) for t in core.stems]
    with torch.no_grad():
        return core.spectrogram(folded[rows]).abs()


def magnitude_losses(core: MaskSeparator, mixture: torch.Tensor, stems: torch.Tensor, known: torch.Tensor,
                     ) -> dict[str, torch.Tensor]:
    """Per trained target: mean squared error of output vs reference magnitude over the examples
    where it is scored. ``mixture`` [B, C, N], ``stems`` [B, 5, C, N], ``known`` [B, 5]."""
    scored = scored_targets(known, core.stems)
    references = reference_magnitudes(core, stems, scored)
    rows = [TARGETS.index(t) for t in core.stems]
    outputs = fold_into_other(core.ratio_magnitudes(mixture), core.stems, scored[rows])
    losses = {}
    for position, target in enumerate(core.stems):
        if target not in core.targets:
            continue  # the remainder `other` of a set without an `other` model has no parameters
        weight = scored[TARGETS.index(target)].to(outputs.dtype)
        per_example = ((outputs[position] - references[position]) ** 2).mean(dim=(1, 2, 3))
        losses[target] = (per_example * weight).sum() / weight.sum().clamp(min=1.0)
    return losses
