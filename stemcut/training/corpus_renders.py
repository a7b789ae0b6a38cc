"""Corpus sources that render the MIDI arrangements into five-stem songs (``renders-<set>``).

``renders/<set>/<song>/{vocals,drums,bass,guitar,other}.flac`` + ``meta.json``, one song folder
at a time, written whole (:func:`stemcut.training.render.write_song`) straight into place: a
build that stops keeps every finished song and the next one renders only the rest. Song
``<midi>_v<k>`` is variant ``k`` of ``midi/<set>/<midi>.mid`` (variant 0 as written, others
with a tempo change and transposition), seeded by a hash of its name.

Needs the ``midi-<set>`` pool and the assets (``drumgizmo-muldjord``, ``karoryfer-guitars``,
``musescore-general``; ``guitarix-irs`` optional) built first; vocals come from the shared
data (``--data-root``) when there is one. Limits, from the environment (``prepare_data.py``
has options for them):

- ``STEMCUT_RENDER_VARIANTS`` (default 1): renders per arrangement;
- ``STEMCUT_RENDER_SONGS``: at most this many songs in the set (variant by variant);
- ``STEMCUT_RENDER_SECONDS``: a random excerpt of at most this long per song;
- ``STEMCUT_RENDER_MINUTES``: stop starting new songs after this much wall time;
- ``STEMCUT_RENDER_COMMERCIAL=1``: only commercial-clean ingredients (no GPL impulse
  responses, no research-only vocals).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from stemcut.training.corpus import BuildContext, Pool, SourceUnavailable, load_manifest
from stemcut.training.render import RenderAssets, RenderConfig, SongRenderer, is_complete, write_song
from stemcut.training.targets import TARGETS

RENDER_SETS = ("freedoom", "openmsx")
ENV_PREFIX = "STEMCUT_RENDER_"


@dataclass(frozen=True)
class RenderLimits:
    """How much of a set to render (see the module doc)."""

    variants: int = 1
    songs: int | None = None
    seconds: float | None = None
    minutes: float | None = None
    commercial_only: bool = False

    @staticmethod
    def from_env(environ: Mapping[str, str] = os.environ) -> "RenderLimits":
        def get(name: str) -> str | None:
            value = environ.get(ENV_PREFIX + name, "").strip()
            return value or None

        songs, seconds, minutes = get("SONGS"), get("SECONDS"), get("MINUTES")
        return RenderLimits(
            variants=max(int(get("VARIANTS") or 1), 1),
            songs=int(songs) if songs else None,
            seconds=float(seconds) if seconds else None,
            minutes=float(minutes) if minutes else None,
            commercial_only=(get("COMMERCIAL") or "0") not in ("0", "false", "no"),
        )


def song_seed(set_name: str, song: str) -> int:
    """The seed of a song: a stable hash of ``<set>/<song>``."""
    return zlib.crc32(f"{set_name}/{song}".encode())


def plan(midis: list[Path], limits: RenderLimits) -> list[tuple[Path, int, str]]:
    """(MIDI file, variant, song name) in render order: every arrangement's variant 0 first, then 1, ..."""
    songs = [(midi, variant, f"{midi.stem}_v{variant}") for variant in range(limits.variants) for midi in sorted(midis)]
    return songs[: limits.songs] if limits.songs is not None else songs


def find_assets(out: Path, data_root: Path | None) -> RenderAssets:
    """The render assets inside corpus ``out`` (raises :class:`SourceUnavailable` naming what is missing)."""
    kit = out / "assets/drumgizmo-muldjord"
    guitars = out / "assets/karoryfer-guitars"
    soundfonts = sorted((out / "assets/soundfonts/musescore-general").glob("*.sf[23]"))
    missing = [name for name, ok in (("drumgizmo-muldjord", (kit / "kit.json").is_file()),
                                     ("karoryfer-guitars", (guitars / "Samples").is_dir()),
                                     ("musescore-general", bool(soundfonts))) if not ok]
    if missing:
        raise SourceUnavailable(f"build these sources first: {', '.join(missing)}")
    impulses = out / "assets/guitarix-irs"
    vocals = Path(data_root) if data_root is not None and Path(data_root).is_dir() else None
    return RenderAssets(kit, guitars, soundfonts[0], impulses=impulses if impulses.is_dir() else None, vocals_root=vocals)


def _count(pool: Pool, folder: Path, sounding: dict[str, float]) -> None:
    """Add one finished song to ``pool`` and its seconds to ``sounding`` for each stem that is not silence."""
    with open(folder / "meta.json", encoding="utf-8") as f:
        meta = json.load(f)
    seconds = float(meta["seconds"])
    pool.add(meta["licence"], seconds, TARGETS)
    for target in TARGETS:
        if target not in meta.get("known_silent", []):
            sounding[target] = sounding.get(target, 0.0) + seconds


def build_renders(context: BuildContext, set_name: str, limits: RenderLimits | None = None,
                  renderer: Callable[[RenderAssets, RenderConfig], SongRenderer] = SongRenderer) -> list[Pool]:
    """Render ``midi/<set_name>/*.mid`` into ``renders/<set_name>/`` (resumable, in place).

    ``renderer`` makes the song renderer from the assets found and the limits' config."""
    limits = limits or RenderLimits.from_env()
    midi_pool = load_manifest(context.out)["pools"].get(f"midi-{set_name}")
    midis = sorted((context.out / "midi" / set_name).glob("*.mid"))
    if midi_pool is None or not midis:
        raise SourceUnavailable(f"no MIDI arrangements in midi/{set_name} (build the {set_name} source first)")
    assets = find_assets(context.out, context.data_root)
    relative = f"renders/{set_name}"
    root = context.out / relative
    for stale in root.glob(".*.partial") if root.is_dir() else ():  # songs a killed build was writing
        shutil.rmtree(stale, ignore_errors=True)
    todo = [(m, v, name) for m, v, name in plan(midis, limits) if not is_complete(root / name)]
    started = time.monotonic()
    cpu_started = time.process_time()
    rendered, rendered_seconds = 0, 0.0
    if todo:
        config = RenderConfig(seconds=limits.seconds, commercial_only=limits.commercial_only)
        songs = renderer(assets, config)
        for index, (midi, variant, name) in enumerate(todo, 1):
            if limits.minutes is not None and time.monotonic() - started > 60 * limits.minutes:
                context.log(f"time limit of {limits.minutes:g} min reached: {len(todo) - index + 1} songs left for next time")
                break
            song_cpu = time.process_time()
            try:
                stems, meta = songs.render(midi, midi_pool["licence"], song_seed(set_name, name), variant)
            except (ValueError, OSError, EOFError, KeyError, IndexError) as error:  # one unreadable MIDI file is noted
                context.log(f"{index}/{len(todo)} {name}: not rendered ({type(error).__name__}: {error})")
                continue
            meta["set"] = set_name
            meta["cpu_s"] = round(time.process_time() - song_cpu, 2)
            write_song(root / name, stems, meta)
            rendered += 1
            rendered_seconds += meta["seconds"]
            context.log(f"{index}/{len(todo)} {name}: {meta['seconds']:.0f} s in {meta['cpu_s']:.1f} s CPU"
                        f"{', vocals' if meta['has_vocals'] else ''}")
    pool = Pool(f"renders-{set_name}", "stems", relative, f"render of midi-{set_name} ({midi_pool['source']})", in_place=True)
    root.mkdir(parents=True, exist_ok=True)
    sounding: dict[str, float] = {}
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and is_complete(folder):
            _count(pool, folder, sounding)
    cpu = time.process_time() - cpu_started
    pool.extra.update({
        "songs": pool.tracks,
        "hours_sounding": {t: round(sounding.get(t, 0.0) / 3600, 6) for t in TARGETS},  # stem not silent
        "rendered_now": rendered,
        "rendered_now_hours": round(rendered_seconds / 3600, 6),
        "cpu_s_now": round(cpu, 1),
        "hours_per_cpu_hour_now": round(rendered_seconds / cpu, 2) if rendered and cpu > 0 else None,
        "limits": {"variants": limits.variants, "songs": limits.songs, "seconds": limits.seconds,
                   "commercial_only": limits.commercial_only},
        "assets": {"kit": assets.kit.name, "guitars": assets.guitars.name, "soundfont": assets.soundfont.name,
                   "impulses": bool(assets.impulses), "vocals": bool(assets.vocals_root)},
    })
    return [pool]
