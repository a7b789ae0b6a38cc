"""The five separation targets and the sample rate all training audio uses."""

from __future__ import annotations

from stemcut.targets import TARGETS

__all__ = ["TARGETS", "SAMPLE_RATE", "OTHER", "target_index"]

SAMPLE_RATE = 44100
OTHER = TARGETS.index("other")


def target_index(name: str) -> int:
    """Index of a target name in :data:`TARGETS` (raises ``ValueError`` if unknown)."""
    try:
        return TARGETS.index(name)
    except ValueError:
        raise ValueError(f"unknown target {name!r}; expected one of {TARGETS}") from None
