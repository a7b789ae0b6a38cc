"""Which training-material licences allow a commercial-clean model.

A pool is ``commercial_ok`` when every licence in it is CC0, public domain, MIT, CC-BY
(without ShareAlike or NonCommercial) or BSD-style. Copyleft data (GPL, CC-BY-SA) and
research-only material are not: they are tagged so a commercial-clean set can be
trained later without them.
"""

from __future__ import annotations

import re
from typing import Iterable

# Conditions that rule a licence out, and the names of the licences that are clean.
_CONDITIONS = re.compile(r"\b(NC|SA|ND)\b|GPL|share-?alike|non-?commercial|research|unknown", re.IGNORECASE)
_CLEAN = re.compile(
    r"\bCC0\b|\bCC[- ]?BY\b|\bMIT\b|\bExpat\b|\bBSD|\bpublic[- ]domain\b|\bPD\b|\bfreedoom-license\b|\bzlib\b|\bISC\b",
    re.IGNORECASE,
)


def is_commercial_ok(licence: str) -> bool:
    """True when ``licence`` (e.g. ``CC-BY-3.0``) permits commercial-clean training.

    ``A or B`` is clean when one alternative is; ``A; B`` or ``A and B`` when every part is.
    A part is clean when it names a clean licence (text in parentheses is a comment) and no
    ShareAlike/NonCommercial/NoDerivatives/GPL/research-only condition; anything else is not.
    """
    alternatives = re.split(r"\s+or\s+", licence.strip(), flags=re.IGNORECASE)
    if len(alternatives) > 1:
        return any(is_commercial_ok(a) for a in alternatives)
    parts = [p.split("(")[0].strip() for p in re.split(r";|\s+and\s+", licence)]
    return all(part and not _CONDITIONS.search(part) and _CLEAN.search(part) for part in parts)


def all_commercial_ok(licences: Iterable[str]) -> bool:
    """True when there is at least one licence and every one is commercial-clean."""
    licences = list(licences)
    return bool(licences) and all(is_commercial_ok(name) for name in licences)
