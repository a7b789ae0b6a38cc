"""Training checkpoints as a folder of files of at most ``part_bytes`` each (16 MiB by default).

``<run>/checkpoint/`` holds ``part-000.bin``, ``part-001.bin``, ... (the bytes of one
``torch.save``) and ``index.json`` (sizes and sha256 of every part). Small files travel
from and to a lent machine where a single big file would not; the sha256s catch a part
that did not come back whole. A new checkpoint is written beside the old one and swapped
in, so a crash never leaves half of one. ``load`` also reads a single-file ``checkpoint.pt``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import torch

PART_BYTES = 16 * 1024 * 1024
FOLDER = "checkpoint"
LEGACY_FILE = "checkpoint.pt"


def exists(run: Path) -> bool:
    return (run / FOLDER / "index.json").is_file() or (run / LEGACY_FILE).is_file()


def save(state: dict, run: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """Write ``state`` as ``run/checkpoint/``; returns the part files."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    temp = run / (FOLDER + ".partial")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    parts = []
    for number, offset in enumerate(range(0, len(data), part_bytes)):
        chunk = data[offset: offset + part_bytes]
        name = f"part-{number:03d}.bin"
        (temp / name).write_bytes(chunk)
        parts.append({"file": name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    (temp / "index.json").write_text(json.dumps({"bytes": len(data), "parts": parts}, indent=1) + "\n")
    final, old = run / FOLDER, run / (FOLDER + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    temp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return [final / p["file"] for p in parts]


def load(run: Path, map_location: torch.device | str = "cpu") -> dict:
    """The state saved by :func:`save` (or a single-file ``checkpoint.pt``); ValueError if a part is damaged."""
    folder = run / FOLDER
    if not (folder / "index.json").is_file():
        return torch.load(run / LEGACY_FILE, map_location=map_location, weights_only=True)
    index = json.loads((folder / "index.json").read_text())
    chunks = []
    for part in index["parts"]:
        chunk = (folder / part["file"]).read_bytes()
        if len(chunk) != part["bytes"] or hashlib.sha256(chunk).hexdigest() != part["sha256"]:
            raise ValueError(f"{folder / part['file']}: damaged checkpoint part (size or sha256 differs)")
        chunks.append(chunk)
    return torch.load(io.BytesIO(b"".join(chunks)), map_location=map_location, weights_only=True)
