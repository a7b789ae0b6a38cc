"""Debian packages as corpus sources: fetch (``apt-get download``), unpack (``dpkg -x``), licences.

Nothing is installed system-wide: a package's ``.deb`` is downloaded into a cache folder
(kept, so a rebuild does not download again) and unpacked into a folder of its own.
A package that cannot be had raises :class:`SourceUnavailable` with a one-line reason.

Licences come from the package's ``usr/share/doc/<package>/copyright``: when it is in the
machine-readable DEP-5 format, :class:`CopyrightFile` tells the licence of any file by
its ``Files:`` patterns (the last matching stanza wins, as the format says).
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


class SourceUnavailable(Exception):
    """A source that cannot be had on this machine; ``str()`` is a one-line reason."""


def _run(command: list[str], cwd: Path | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run a command at the lowest CPU priority, capturing its output."""
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    return subprocess.run(nice + command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@dataclass(frozen=True)
class Package:
    """An unpacked package: its name, version and the root of its file tree."""

    name: str
    version: str
    root: Path

    @cached_property
    def copyright(self) -> "CopyrightFile | None":
        """The package's parsed copyright file (read once), or None when it has none."""
        path = self.root / "usr/share/doc" / self.name / "copyright"
        return CopyrightFile.parse(path.read_text(encoding="utf-8", errors="replace")) if path.exists() else None


class DebianFetcher:
    """Downloads packages into ``cache`` and unpacks each into ``<unpack_root>/<name>``."""

    def __init__(self, cache: Path):
        self.cache = Path(cache)

    def deb_file(self, name: str) -> Path:
        """The package's ``.deb`` in the cache, downloaded with ``apt-get download`` when absent."""
        self.cache.mkdir(parents=True, exist_ok=True)
        found = sorted(self.cache.glob(f"{name}_*.deb"))
        if found:
            return found[-1]
        if shutil.which("apt-get") is None:
            raise SourceUnavailable(f"{name}: apt-get is not available on this machine")
        try:
            result = _run(["apt-get", "download", name], cwd=self.cache)
        except subprocess.TimeoutExpired:
            raise SourceUnavailable(f"{name}: apt-get download timed out") from None
        found = sorted(self.cache.glob(f"{name}_*.deb"))
        if result.returncode != 0 or not found:
            raise SourceUnavailable(f"{name}: apt-get download failed: {_last_line(result.stderr + result.stdout)}")
        return found[-1]

    def fetch(self, name: str, unpack_root: Path) -> Package:
        """Download (if needed) and unpack ``name`` with ``dpkg -x`` under ``unpack_root``."""
        deb = self.deb_file(name)
        if shutil.which("dpkg-deb") is None:
            raise SourceUnavailable(f"{name}: dpkg-deb is not available on this machine")
        target = Path(unpack_root) / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        result = _run(["dpkg-deb", "-x", str(deb), str(target)])
        if result.returncode != 0:
            raise SourceUnavailable(f"{name}: dpkg -x failed: {_last_line(result.stderr)}")
        version = _run(["dpkg-deb", "-f", str(deb), "Version"])
        return Package(name, version.stdout.strip() or "unknown", target)


@dataclass(frozen=True)
class _Stanza:
    patterns: tuple[str, ...]
    licence: str


class CopyrightFile:
    """A Debian copyright file: DEP-5 ``Files:`` stanzas, or free text (no stanzas)."""

    def __init__(self, stanzas: list[_Stanza], machine_readable: bool):
        self.stanzas = stanzas
        self.machine_readable = machine_readable

    @classmethod
    def parse(cls, text: str) -> "CopyrightFile":
        """Parse the text of a copyright file (free-text files give no stanzas)."""
        machine_readable = text.lstrip().lower().startswith("format:")
        stanzas: list[_Stanza] = []
        if machine_readable:
            for paragraph in re.split(r"\n\s*\n", text):
                fields = _fields(paragraph)
                if "files" in fields and "license" in fields:
                    licence = fields["license"].splitlines()[0].strip()
                    stanzas.append(_Stanza(tuple(fields["files"].split()), licence))
        return cls(stanzas, machine_readable)

    def licence_of(self, path: str) -> str | None:
        """Licence of ``path`` (any trailing part of it may match a pattern), or None."""
        parts = Path(path).as_posix().strip("/").split("/")
        tails = ["/".join(parts[i:]) for i in range(len(parts))]
        licence = None
        for stanza in self.stanzas:
            if any(fnmatch.fnmatchcase(tail, pattern) for pattern in stanza.patterns for tail in tails):
                licence = stanza.licence
        return licence


def _fields(paragraph: str) -> dict[str, str]:
    """Fields of one DEP-5 paragraph; continuation lines (leading space) are joined with newlines."""
    fields: dict[str, str] = {}
    key = None
    for line in paragraph.splitlines():
        if line[:1].isspace() and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields
