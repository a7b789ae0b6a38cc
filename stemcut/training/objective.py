"""The training objective: the separator's own ratio-mask combination, scored per target.

Inference (``stemcut.separator``) turns the per-target magnitude estimates
``V_j = mask_j * |X|`` into stems ``X * V_j / sum_k V_k`` (a set without an
``other`` model gets ``other = relu(|X| - sum V)``). Training scores exactly
those outputs, so the targets learn to share the mixture the way they will
share it at run time.

Guitar/other consistency rule: a target is *scored separately* on an example
only if it is trained and its slot is known there (``known``). Everything else
belongs to ``other``: the reference ``other`` is the mixture minus the
separately scored references, and the estimated ``other`` is the ``other``
output plus the outputs of every target not scored separately
(:func:`stemcut.training.dataset.fold_unknown_into_other`). So on MUSDB-style
material (guitar inside ``other``) the guitar and other models are scored on
their sum, and on material with a real guitar stem ``other`` is scored without
the guitar: the shipped ``other`` learns not to contain what ``guitar`` takes.
"""

from __future__ import annotations

import torch

from ..targets import TARGETS
from .dataset import fold_unknown_into_other

OTHER = TARGETS.index("other")
_FLOOR = 1e-10


def ratio_outputs(masks: dict[str, torch.Tensor], magnitude: torch.Tensor) -> torch.Tensor:
    """Per-target output magnitudes [B, 5, C, F, T] as the separator forms them.

    ``masks``: {target: [B, C, F, T]} for the trained targets; untrained slots are
    zero, and without an ``other`` model ``other`` is the relu residual."""
    estimates = torch.zeros((magnitude.shape[0], len(TARGETS)) + magnitude.shape[1:], device=magnitude.device,
                            dtype=magnitude.dtype)
    present = [TARGETS.index(t) for t in masks]
    stacked = torch.stack([masks[t] * magnitude for t in masks], dim=1)
    estimates[:, present] = stacked
    if "other" not in masks:
        estimates[:, OTHER] = torch.relu(magnitude - stacked.sum(dim=1))
    estimates = estimates + _FLOOR * torch.tensor([t in masks or i == OTHER for i, t in enumerate(TARGETS)],
                                                  device=magnitude.device, dtype=magnitude.dtype
                                                  ).reshape(1, -1, 1, 1, 1)
    return magnitude.unsqueeze(1) * estimates / estimates.sum(dim=1, keepdim=True)


def scored_mask(known: torch.Tensor, trained: list[str]) -> torch.Tensor:
    """[B, 5] bool: targets scored separately (trained and known); ``other`` always."""
    trained_mask = torch.tensor([t in trained for t in TARGETS], device=known.device)
    scored = known.bool() & trained_mask
    scored[:, OTHER] = True
    return scored


def reference_stems(mixture: torch.Tensor, stems: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """Time-domain references [B, 5, C, N]: scored targets as given, ``other`` = mixture minus them."""
    weights = scored.to(stems.dtype).reshape(scored.shape + (1, 1))
    kept = stems * weights
    separate = kept.clone()
    separate[:, OTHER] = 0
    kept[:, OTHER] = mixture - separate.sum(dim=1)
    return kept


def masked_magnitude_loss(outputs: torch.Tensor, references: torch.Tensor, scored: torch.Tensor,
                          trained: list[str]) -> dict[str, torch.Tensor]:
    """Per trained target: mean squared error of folded output vs reference magnitude over scored examples.

    ``outputs`` [B, 5, C, F, T] from :func:`ratio_outputs`; ``references`` the reference magnitudes."""
    folded = fold_unknown_into_other(outputs, scored)
    losses = {}
    for target in trained:
        index = TARGETS.index(target)
        weight = scored[:, index].to(outputs.dtype)
        per_example = ((folded[:, index] - references[:, index]) ** 2).mean(dim=(1, 2, 3))
        losses[target] = (per_example * weight).sum() / weight.sum().clamp(min=1.0)
    return losses
