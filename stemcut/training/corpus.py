"""The training corpus: build every source into one folder, resumably, with a manifest.

A **source** (a Debian package, a pair of them, or the shared real data) builds one or more
**pools**: a folder of stem folders, of vocal-free backing tracks, of MIDI arrangements or
of renderer assets, each with one licence tag. :func:`build_corpus` runs the chosen
sources in order; each writes into ``<out>/.staging/<source>/`` (a mirror of the final
layout), and only when it has finished are its pools renamed into place and recorded in
``<out>/corpus.json``. A source recorded as built whose folders exist is skipped, so an
interrupted build resumes where it stopped. Pools marked ``in_place`` (the renders) are
written straight into their final folder one complete item at a time, so even a source
interrupted halfway keeps what it finished. A source that cannot be had on this machine
(:class:`SourceUnavailable`: apt-get fails, the shared data folder is missing) is skipped
with a one-line note and tried again next time.

``corpus.json`` holds, per pool: kind, path (relative to the corpus, or absolute for the
shared data, which is recorded by reference and never copied), source, tracks, hours,
``hours_per_target`` (hours in which that target is its own isolated file), the targets
that are ``inside_other``, the licences with their tracks and hours, and ``commercial_ok``
(every licence is CC0/PD/MIT/CC-BY/BSD-style).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from stemcut.atomic import write_json
from stemcut.training.split import DATA_ROOT_ENV

from stemcut.training.corpus_debian import DebianFetcher, Package, SourceUnavailable
from stemcut.training.corpus_licences import all_commercial_ok, is_commercial_ok

MANIFEST = "corpus.json"
MANIFEST_FORMAT = 1
STAGING = ".staging"
DOWNLOADS = ".downloads"
OUT_ENV = "STEMCUT_CORPUS"
DATA_ENV = DATA_ROOT_ENV  # the shared real data, as everywhere in training

__all__ = [
    "BuildContext", "Pool", "Source", "SourceUnavailable", "build_corpus", "load_manifest", "MANIFEST",
    "OUT_ENV", "DATA_ENV",
]


@dataclass
class Pool:
    """One manifest entry: a folder of material with one kind and its licence tags.

    ``licences`` maps each licence to ``{"tracks": n, "hours": h}``; ``licence`` and
    ``commercial_ok`` are derived from it by :meth:`finish`.
    """

    name: str
    kind: str  # "stems", "backing", "midi", "assets" or "reference"
    path: str
    source: str
    tracks: int = 0
    hours: float = 0.0
    hours_per_target: dict[str, float] = field(default_factory=dict)
    inside_other: list[str] = field(default_factory=list)
    known_silent: list[str] = field(default_factory=list)
    licences: dict[str, dict] = field(default_factory=dict)
    licence: str = ""
    commercial_ok: bool = False
    commercial_ok_hours: float = 0.0
    commercial_ok_tracks: int = 0
    by_reference: bool = False
    in_place: bool = False  # written straight into ``<out>/<path>`` item by item (resumable renders), not staged
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def add(self, licence: str, seconds: float = 0.0, targets: Iterable[str] = ()) -> None:
        """Count one track of ``seconds`` under ``licence``, with its own file for each of ``targets``."""
        entry = self.licences.setdefault(licence, {"tracks": 0, "hours": 0.0})
        entry["tracks"] += 1
        entry["hours"] += seconds / 3600
        self.tracks += 1
        self.hours += seconds / 3600
        for target in targets:
            self.hours_per_target[target] = self.hours_per_target.get(target, 0.0) + seconds / 3600

    def finish(self) -> "Pool":
        """Derive ``licence``/``commercial_ok`` from ``licences`` and round the hours."""
        self.licence = "; ".join(sorted({part.strip() for key in self.licences for part in key.split(";")}))
        self.commercial_ok = all_commercial_ok(self.licences)
        clean = [v for k, v in self.licences.items() if is_commercial_ok(k)]
        self.commercial_ok_hours = sum(v["hours"] for v in clean)
        self.commercial_ok_tracks = sum(v["tracks"] for v in clean)
        self.hours = round(self.hours, 6)
        self.commercial_ok_hours = round(self.commercial_ok_hours, 6)
        self.hours_per_target = {k: round(v, 6) for k, v in sorted(self.hours_per_target.items())}
        for entry in self.licences.values():
            entry["hours"] = round(entry["hours"], 6)
        return self


@dataclass
class BuildContext:
    """What a source builder gets: where to write, the shared data, a package fetcher, a logger."""

    out: Path
    staging: Path
    data_root: Path | None
    fetch: Callable[[str], Package]
    log: Callable[[str], None]

    def staged(self, relative: str) -> Path:
        """The staging folder for the final path ``<out>/<relative>`` (created)."""
        path = self.staging / relative
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class Source:
    """A named way to build pools; ``packages`` are the Debian packages it needs."""

    name: str
    kind: str
    summary: str
    build: Callable[[BuildContext], list[Pool]]
    packages: tuple[str, ...] = ()


def load_manifest(out: Path) -> dict:
    """The corpus manifest of ``out`` (an empty one when there is none yet)."""
    path = Path(out) / MANIFEST
    if path.exists():
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    else:
        manifest = {}
    manifest.setdefault("format", MANIFEST_FORMAT)
    for key in ("sources", "pools", "skipped", "failed"):
        manifest.setdefault(key, {})
    return manifest


def _is_built(manifest: dict, out: Path, source: Source) -> bool:
    record = manifest["sources"].get(source.name)
    if not record or record.get("status") != "built":
        return False
    for name in record.get("pools", []):
        pool = manifest["pools"].get(name)
        if pool is None:
            return False
        path = Path(pool["path"]) if pool.get("by_reference") else out / pool["path"]
        if not path.exists():
            return False
    return True


def _promote(staging: Path, out: Path, pools: list[Pool]) -> None:
    """Rename each pool's staged folder over its final place."""
    for pool in pools:
        if pool.by_reference or pool.in_place:
            continue
        staged, final = staging / pool.path, out / pool.path
        if not staged.exists():
            raise RuntimeError(f"source wrote no folder for pool {pool.name} ({staged})")
        if final.exists():
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)


def _totals(manifest: dict) -> dict:
    """Hours and tracks summed per kind and over all built pools."""
    by_kind: dict[str, dict] = {}
    for pool in manifest["pools"].values():
        kind = by_kind.setdefault(pool["kind"], {"pools": 0, "tracks": 0, "hours": 0.0, "commercial_ok_hours": 0.0})
        kind["pools"] += 1
        kind["tracks"] += pool["tracks"]
        kind["hours"] = round(kind["hours"] + pool["hours"], 6)
        kind["commercial_ok_hours"] = round(kind["commercial_ok_hours"] + pool["commercial_ok_hours"], 6)
    vocal_free = sum(p["hours"] for p in manifest["pools"].values() if "vocals" in p.get("known_silent", []))
    return {
        "hours_audio": round(sum(k["hours"] for n, k in by_kind.items() if n in ("stems", "backing", "reference")), 6),
        "hours_vocal_free_backing": round(vocal_free, 6),
        "by_kind": dict(sorted(by_kind.items())),
    }


def _reload(out: Path, data_root: Path | None) -> dict:
    """The manifest as it is on disk now (builds of other sources may run beside this one)."""
    manifest = load_manifest(out)
    if data_root is not None:
        manifest["data_root"] = str(data_root)
    return manifest


def _save(out: Path, manifest: dict) -> None:
    manifest["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest["totals"] = _totals(manifest)
    write_json(out / MANIFEST, manifest)


def build_corpus(
    out: Path,
    sources: list[Source],
    data_root: Path | None = None,
    fetcher: DebianFetcher | None = None,
    log: Callable[[str], None] = print,
    force: bool = False,
) -> dict:
    """Build ``sources`` into ``out`` in order; return the manifest (also in ``out/corpus.json``).

    ``fetcher`` defaults to a :class:`DebianFetcher` caching ``.deb`` files in
    ``out/.downloads``. ``force`` rebuilds sources that are already recorded.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fetcher = fetcher or DebianFetcher(out / DOWNLOADS)
    manifest = load_manifest(out)
    if data_root is not None:
        manifest["data_root"] = str(data_root)
    for index, source in enumerate(sources, 1):
        prefix = f"[{index}/{len(sources)}] {source.name}"
        if not force and _is_built(manifest, out, source):
            log(f"{prefix}: already built, skipped")
            continue
        staging = out / STAGING / source.name
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        unpacked = staging / ".unpacked"

        def fetch(package: str, unpacked: Path = unpacked) -> Package:
            log(f"{prefix}: fetching {package}")
            return fetcher.fetch(package, unpacked)

        context = BuildContext(out, staging, data_root, fetch, lambda text, p=prefix: log(f"{p}: {text}"))
        started = time.monotonic()
        log(f"{prefix}: building ({source.summary})")
        try:
            pools = [pool.finish() for pool in source.build(context)]
            _promote(staging, out, pools)
        except SourceUnavailable as reason:
            log(f"{prefix}: skipped: {reason}")
            manifest = _reload(out, data_root)
            manifest["skipped"][source.name] = str(reason)
            _save(out, manifest)
            continue
        except Exception as error:  # one broken source must not stop the others
            log(f"{prefix}: FAILED: {type(error).__name__}: {error}")
            manifest = _reload(out, data_root)
            manifest["failed"][source.name] = f"{type(error).__name__}: {error}"
            _save(out, manifest)
            continue
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        wall = time.monotonic() - started
        manifest = _reload(out, data_root)  # another build may have recorded its pools meanwhile
        old = manifest["sources"].get(source.name, {}).get("pools", [])
        for name in old:
            manifest["pools"].pop(name, None)
        for pool in pools:
            manifest["pools"][pool.name] = asdict(pool)
        manifest["sources"][source.name] = {
            "status": "built",
            "kind": source.kind,
            "packages": list(source.packages),
            "pools": [pool.name for pool in pools],
            "wall_s": round(wall, 1),
            "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        manifest["skipped"].pop(source.name, None)
        manifest["failed"].pop(source.name, None)
        _save(out, manifest)
        hours = sum(p.hours for p in pools)
        log(f"{prefix}: done: {sum(p.tracks for p in pools)} tracks, {hours:.2f} h, {wall:.0f} s")
    try:
        (out / STAGING).rmdir()
    except OSError:
        pass
    manifest = _reload(out, data_root)
    _save(out, manifest)
    return manifest
