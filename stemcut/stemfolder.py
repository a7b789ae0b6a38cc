"""What a stem folder is: ``<track>/<stem>.<ext>``, the one layout for references and training.

A track folder holds one audio file per stem it has, named after the stem
(``vocals.wav``, ``drums.flac``, ...; any extension of
:data:`stemcut.audio.SOUNDFILE_EXTENSIONS`), optionally ``mixture.<ext>`` (else the
mixture is the sum of the stems) and ``meta.json``. MIR-1K-style folders name
``other`` ``accompaniment``: every stem but vocals is inside it. A stem without
a file is either silent or inside ``other``; :func:`inside_other` says which.

``meta.json`` keys read here: ``licence``; ``bass_separate: false`` (bass is
inside ``other``); ``inside_other: [stems...]`` (those stems are inside ``other``).
Used by :mod:`stemcut.evaluation` (references, at their own rate) and
:mod:`stemcut.training.sources` (training tracks, converted to 44.1 kHz stereo).
"""

from __future__ import annotations

import json
from pathlib import Path

from .audio import SOUNDFILE_EXTENSIONS
from .targets import OTHER, TARGETS

MIXTURE_NAME = "mixture"
ACCOMPANIMENT_NAME = "accompaniment"  # MIR-1K style: everything but vocals, standing for `other`
META_NAME = "meta.json"
# Preferred first when a folder holds the same stem twice.
_ORDER = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
EXTENSIONS = _ORDER + tuple(sorted(SOUNDFILE_EXTENSIONS - set(_ORDER)))


def find_file(folder: Path, name: str) -> Path | None:
    """``folder/<name>.<ext>`` for the first audio extension that exists."""
    for suffix in EXTENSIONS:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def stem_files(folder: str | Path) -> dict[str, Path]:
    """{stem: file} for the stems the folder has a file for, canonical order;
    ``accompaniment`` stands for ``other`` when there is no ``other`` file."""
    folder = Path(folder)
    files = {t: p for t in TARGETS if (p := find_file(folder, t)) is not None}
    if OTHER not in files and (p := find_file(folder, ACCOMPANIMENT_NAME)) is not None:
        files[OTHER] = p
    return files


def mixture_file(folder: str | Path) -> Path | None:
    return find_file(Path(folder), MIXTURE_NAME)


def is_stem_folder(folder: str | Path) -> bool:
    folder = Path(folder)
    return folder.is_dir() and bool(stem_files(folder))


def list_stem_folders(root: str | Path) -> list[Path]:
    """The stem folders directly under ``root``, sorted by name (FileNotFoundError if no folder)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    return [p for p in sorted(root.iterdir()) if is_stem_folder(p)]


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META_NAME
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as handle:
        meta = json.load(handle)
    return meta if isinstance(meta, dict) else {}


def inside_other(folder: str | Path) -> set[str]:
    """The stems whose content is part of ``other`` in this folder rather than silent or separate.

    Bass and guitar without a file are inside ``other`` (MUSDB keeps guitar there);
    vocals and drums without a file are silence. An ``accompaniment`` file holds
    everything but vocals. ``meta.json`` may add to the set."""
    folder = Path(folder)
    files = stem_files(folder)
    meta = read_meta(folder)
    if find_file(folder, OTHER) is None and find_file(folder, ACCOMPANIMENT_NAME) is not None:
        return {t for t in TARGETS if t not in ("vocals", OTHER)}
    hidden = {t for t in ("bass", "guitar") if t not in files}
    if meta.get("bass_separate") is False:
        hidden.add("bass")
    hidden.update(t for t in meta.get("inside_other", []) if t in TARGETS and t != OTHER)
    return hidden
