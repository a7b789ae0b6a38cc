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
output plus the outputs of every target not scored separately (the same fold as
:func:`stemcut.training.dataset.fold_unknown_into_other`; because the outputs sum
to the mixture it is computed as the mixture minus the scored outputs). So on
MUSDB-style material (guitar inside ``other``) guitar and other are scored on
their sum, and on material with a real guitar stem ``other`` is scored without
the guitar: the shipped ``other`` learns not to contain what ``guitar`` takes.

Tensors are kept to the *slots* in play: the trained targets in canonical order,
plus ``other`` when it has no model (the residual), never all five when fewer
are trained.
"""

from __future__ import annotations

import torch

from ..targets import TARGETS

OTHER = TARGETS.index("other")
_FLOOR = 1e-10


def slots(trained: list[str]) -> list[str]:
    """The stems a set of trained targets produces, canonical order (``other`` always last)."""
    return [t for t in TARGETS if t in trained or t == "other"]


def scored_mask(known: torch.Tensor, trained: list[str]) -> torch.Tensor:
    """[B, 5] bool: targets scored separately (trained and known); ``other`` always."""
    trained_mask = torch.tensor([t in trained for t in TARGETS], device=known.device)
    scored = known.bool() & trained_mask
    scored[:, OTHER] = True
    return scored


def reference_slots(mixture: torch.Tensor, stems: torch.Tensor, scored: torch.Tensor,
                    trained: list[str]) -> torch.Tensor:
    """Time-domain references [B, S, C, N] for :func:`slots`: scored targets as given (unscored ones
    zero), ``other`` = mixture minus every scored target."""
    refs = []
    for target in slots(trained)[:-1]:
        index = TARGETS.index(target)
        refs.append(stems[:, index] * scored[:, index].to(stems.dtype).reshape(-1, 1, 1))
    separate = torch.stack(refs, dim=1).sum(dim=1) if refs else torch.zeros_like(mixture)
    return torch.stack(refs + [mixture - separate], dim=1)


def ratio_outputs(masks: dict[str, torch.Tensor], magnitude: torch.Tensor) -> torch.Tensor:
    """Output magnitudes [B, S, C, F, T] for :func:`slots` of ``masks`` as the separator forms them.

    ``masks``: {target: [B, C, F, T]}; without an ``other`` model ``other`` is the relu residual."""
    trained = list(masks)
    estimates = [masks[t] * magnitude for t in slots(trained) if t in masks]
    if "other" not in masks:
        estimates.append(torch.relu(magnitude - torch.stack(estimates).sum(dim=0)))
    estimates = torch.stack(estimates, dim=1) + _FLOOR
    return magnitude.unsqueeze(1) * (estimates / estimates.sum(dim=1, keepdim=True))


def masked_magnitude_loss(outputs: torch.Tensor, references: torch.Tensor, scored: torch.Tensor,
                          trained: list[str]) -> dict[str, torch.Tensor]:
    """Per trained target: mean squared error of output vs reference magnitude over the examples
    where it is scored; ``other``'s output is folded (mixture minus the scored outputs).

    ``outputs`` from :func:`ratio_outputs`, ``references`` the magnitudes of :func:`reference_slots`,
    both [B, S, C, F, T]."""
    names = slots(trained)
    weights = torch.stack([scored[:, TARGETS.index(t)] for t in names], dim=1).to(outputs.dtype)
    losses = {}
    for position, target in enumerate(names):
        if target == "other":
            if "other" not in trained:
                continue
            separate = (outputs[:, :-1] * weights[:, :-1].reshape(weights.shape[0], -1, 1, 1, 1)).sum(dim=1)
            estimate = outputs.sum(dim=1) - separate
        else:
            estimate = outputs[:, position]
        per_example = ((estimate - references[:, position]) ** 2).mean(dim=(1, 2, 3))
        weight = weights[:, position]
        losses[target] = (per_example * weight).sum() / weight.sum().clamp(min=1.0)
    return losses
