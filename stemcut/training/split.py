"""The real held-out validation split: which tracks training must never see.

The split is a readable JSON file (``validation_split.json`` beside this module) mapping a
data-root-relative folder (``musdb18-preview/train``, ``mdb``, ``cc0-album``,
``mir1k``) to the track folder names held out of training. Keys that do not
name a folder (``description``, notes) are ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Sequence

from .sources import StemTrack

DATA_ROOT_ENV = "STEMCUT_DATA"

DEFAULT_SPLIT = Path(__file__).resolve().with_name("validation_split.json")


def load_split(path: str | Path = DEFAULT_SPLIT) -> dict[str, list[str]]:
    """``{folder relative to the data root: [held-out track names]}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {key: list(value) for key, value in data.items()
            if isinstance(value, list) and not key.endswith("_singers")}


def held_out(split: dict[str, list[str]], folder: str) -> set[str]:
    """The held-out track names of ``folder`` (empty if the split does not mention it)."""
    return set(split.get(folder.strip("/"), []))


def partition(tracks: Sequence[StemTrack], names: set[str]) -> tuple[list[StemTrack], list[StemTrack]]:
    """(training tracks, held-out tracks) by track name."""
    train = [t for t in tracks if t.name not in names]
    held = [t for t in tracks if t.name in names]
    return train, held


def is_held_out_file(split: dict[str, list[str]], relative_path: str) -> bool:
    """True when a file, given by its path relative to the data root, belongs to a held-out track
    (``cc0-album/Sodium/vocals.ogg``, ``musdb18-preview/train/<song>/vocals.wav``)."""
    parts = PurePosixPath(relative_path).parts
    return any(parts[i] in split.get("/".join(parts[:i]), ()) for i in range(1, len(parts)))


def uses_held_out(meta: dict, split: dict[str, list[str]]) -> bool:
    """True when a rendered song (its ``meta.json``) sings phrases cut from a held-out track:
    training on it would show the validation vocals."""
    clips = (meta.get("parts") or {}).get("vocals", {}).get("clips", []) if isinstance(meta.get("parts"), dict) else []
    return any(is_held_out_file(split, str(clip.get("file", ""))) for clip in clips if isinstance(clip, dict))


def validation_dirs(split: dict[str, list[str]], data_root: str | Path) -> list[Path]:
    """Every held-out track folder under ``data_root``, in split order (missing ones skipped)."""
    root = Path(data_root)
    return [root / folder / name for folder, names in split.items() for name in names
            if (root / folder / name).is_dir()]


def default_data_root() -> Path | None:
    """``$STEMCUT_DATA``: the folder holding the real multitrack sets (musdb18-preview, mdb, ...)."""
    value = os.environ.get(DATA_ROOT_ENV)
    return Path(value) if value else None
