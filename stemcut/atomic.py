"""Files that appear whole or not at all.

A file is written under a hidden temporary name in its final folder
(``.<name>.<random>.partial``) and renamed over the final name when complete:
``os.replace`` is atomic within a folder, so the final name only ever holds a
finished file. The temporary gets the permissions a plain ``open()`` would give
(0666 less the umask), not ``mkstemp``'s owner-only 0600.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def partial_file(final: os.PathLike | str) -> Path:
    """Create an empty temporary file beside ``final`` (its folder made if needed)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    try:
        os.fchmod(handle, _default_mode())
    finally:
        os.close(handle)
    return Path(temp)


def write_json(path: os.PathLike | str, data: dict) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (temporary, fsync, rename)."""
    path = Path(path)
    temp = partial_file(path)
    try:
        with open(temp, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
