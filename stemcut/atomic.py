"""Files that appear whole or not at all.

A file is written under a hidden temporary name in its final folder
(``.<name>.<random>.partial``) and renamed over the final name when complete:
``os.replace`` is atomic within a folder, so the final name only ever holds a
finished file. The temporary gets the permissions a plain ``open()`` would give
(0666 less the umask), not ``mkstemp``'s owner-only 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


NAME_MAX = 255      # bytes in one file name on every common file system
PARTIAL_SUFFIX = ".partial"
_RANDOM = 8         # characters mkstemp adds


def hidden_name(name: str, suffix: str, reserve: int = 0) -> str:
    """``.<name><suffix>``, with ``name`` shortened (and a hash of it kept) when the whole,
    plus ``reserve`` more bytes, would not fit in one file name. Always the same for the
    same arguments, so a later run finds the names an earlier one left."""
    full = f".{name}{suffix}"
    if len(full.encode()) + reserve <= NAME_MAX:
        return full
    tag = "~" + hashlib.sha1(name.encode()).hexdigest()[:10]
    room = NAME_MAX - reserve - len(f".{tag}{suffix}".encode())
    short = name.encode()[:max(room, 1)].decode("utf-8", errors="ignore")
    return f".{short}{tag}{suffix}"


def partial_prefix(final: os.PathLike | str) -> str:
    """The start of every temporary name :func:`partial_file` makes for ``final``."""
    return hidden_name(Path(final).name, ".", reserve=_RANDOM + len(PARTIAL_SUFFIX))


def partial_file(final: os.PathLike | str) -> Path:
    """Create an empty temporary file beside ``final`` (its folder made if needed); its
    name fits the file system whatever the length of ``final``'s."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=partial_prefix(final), suffix=PARTIAL_SUFFIX, dir=final.parent)
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
