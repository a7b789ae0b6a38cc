"""The five stems stemcut separates, and the rules that relate them.

This module owns three rules that training, inference and evaluation share:

* :func:`output_stems`: which stems a set of trained targets produces (``other``
  is always one: the remainder when no model is trained for it).
* :func:`fold_into_other`: the guitar/other rule. A stem that is not scored on its
  own on an example (no reference for it, or its content is known only as part of
  ``other``, as MUSDB keeps guitar inside ``other``) is added into ``other``, on
  the estimate and the reference alike, and its own slot is emptied.
* :func:`derive_output`: the outputs that are not stems (``instrumental`` = the
  mixture minus ``vocals``; ``no_<stem>`` = the mixture minus that stem; ``mixture``,
  the input itself).
"""

from __future__ import annotations

from typing import Sequence, TypeVar

TARGETS = ("vocals", "drums", "bass", "guitar", "other")
OTHER = "other"

# The karaoke output: the mixture minus the vocals.
KARAOKE_STEM = "instrumental"
# The input itself, as an output track (NI stem files carry it).
MIXTURE = "mixture"
# `no_<stem>` is the mixture minus that stem (demucs' --two-stems naming).
COMPLEMENT_PREFIX = "no_"


def complement_name(stem: str) -> str:
    return COMPLEMENT_PREFIX + stem

Array = TypeVar("Array")  # numpy.ndarray or torch.Tensor


def output_stems(trained: Sequence[str]) -> list[str]:
    """The stems a set of trained targets produces, in canonical order, ``other`` always last."""
    unknown = [t for t in trained if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    return [t for t in TARGETS if t in trained or t == OTHER]


def fold_into_other(stems: Array, names: Sequence[str], separate: Array) -> Array:
    """Add every stem not scored separately into ``other`` and zero its own slot.

    ``stems``: (S, ...) numpy or torch, stems on the first axis in the order of
    ``names`` (which must include ``other``). ``separate``: bool, (S,) or (S, B) for
    a batch whose second axis is B; True where that stem is scored on its own.
    ``other`` is always kept. Returns a new array (differentiable for torch)."""
    other = list(names).index(OTHER)
    keep = _bool_like(separate, stems)
    keep[other] = True
    keep = keep.reshape(tuple(keep.shape) + (1,) * (stems.ndim - keep.ndim))
    kept = stems * keep
    hidden = (stems * ~keep).sum(0)
    if _is_torch(stems):
        import torch

        return torch.cat([kept[:other], (kept[other] + hidden).unsqueeze(0), kept[other + 1:]], dim=0)
    kept[other] += hidden
    return kept


def derive_output(name: str, names: Sequence[str], mixture: Array, stems: Array) -> Array:
    """The output ``name`` from a block: a stem of ``stems`` (S, C, n), ``instrumental``,
    ``no_<stem>`` (the mixture minus that stem) or ``mixture``."""
    if name == MIXTURE:
        return mixture
    if name == KARAOKE_STEM:
        return mixture - stems[list(names).index("vocals")]
    if name.startswith(COMPLEMENT_PREFIX):
        return mixture - stems[list(names).index(name[len(COMPLEMENT_PREFIX):])]
    return stems[list(names).index(name)]


def available_outputs(names: Sequence[str]) -> list[str]:
    """What a separator producing ``names`` can write: its stems, ``no_<stem>`` for each, and
    ``instrumental`` given vocals."""
    return (list(names) + [complement_name(n) for n in names]
            + ([KARAOKE_STEM] if "vocals" in names else []))


def _is_torch(value) -> bool:
    return type(value).__module__.startswith("torch")


def _bool_like(mask, like):
    if _is_torch(like):
        import torch

        return torch.as_tensor(mask, device=like.device).to(torch.bool).clone()
    import numpy as np

    return np.array(mask, dtype=bool)
