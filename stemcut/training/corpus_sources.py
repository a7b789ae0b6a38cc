"""The corpus sources: what each Debian package (or the shared data) becomes in the corpus.

Layouts written (relative to the corpus folder):

- ``fof/<pack>/<song>/{guitar,other}.flac`` + ``meta.json``: Frets on Fire songs. The
  guitar is its own track; ``song.ogg`` (the rest of the band) becomes ``other``, so
  ``meta.json`` lists ``inside_other: [vocals, drums, bass]`` and ``bass_separate: false``.
- ``backing/<package>/<track>/other.flac`` + ``meta.json``: vocal-free game music, every
  track screened as instrumental: vocals are known silence (``known_silent: [vocals]``),
  drums, bass and guitar are ``inside_other``.
- ``midi/<set>/<name>.mid``: arrangements to render later (Freedoom WAD lumps, OpenMSX).
- ``assets/...``: renderer assets (guitarix impulse responses, the MuseScore General
  SoundFont, hydrogen drum kits), copied as they are; the Karoryfer guitars and the
  MuldjordKit from repository snapshots (:mod:`stemcut.training.corpus_snapshots`).
- ``renders/<set>/<song>/{vocals,drums,bass,guitar,other}.flac`` + ``meta.json``: the MIDI
  arrangements rendered with real samples (:mod:`stemcut.training.corpus_renders`).
- ``lmms/<song>/{drums,bass,other}.flac`` (+ ``guitar.flac``) + ``meta.json``: the LMMS demo
  songs rendered track by track, each track mapped to a stem (:mod:`stemcut.training.corpus_lmms`).
- the shared real data (``--data-root``) is recorded by reference, never copied.

Audio is 44.1 kHz stereo 16-bit FLAC. Licences are read per file from the package's
DEP-5 copyright file where it has one, else from the table here (checked by hand against
each package's copyright file).
"""

from __future__ import annotations

import configparser
import hashlib
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemcut.atomic import write_json
from stemcut.audio import SOUNDFILE_EXTENSIONS

from stemcut.training.corpus import BuildContext, Pool, Source, SourceUnavailable
from stemcut.training.corpus_audio import convert_to_flac, duration_seconds, read_stereo, write_flac
from stemcut.training.corpus_debian import Package
from stemcut.training.corpus_lmms import build_lmms
from stemcut.training.corpus_midi import midi_seconds, wad_midi_lumps
from stemcut.training.corpus_renders import RENDER_SETS, build_renders
from stemcut.training.corpus_snapshots import build_karoryfer, build_muldjord
from stemcut.training.targets import SAMPLE_RATE, TARGETS

MUSIC_SUFFIXES = tuple(sorted(SOUNDFILE_EXTENSIONS))  # music files in the packages: what soundfile reads
ARCHIVE_SUFFIXES = (".pk3", ".zip")
MIN_TRACK_SECONDS = 5.0
SILENT_PEAK = 1e-3  # a track whose peak stays below -60 dBFS is silence, not music
BACKING_INSIDE_OTHER = ["drums", "bass", "guitar"]
FOF_INSIDE_OTHER = ["vocals", "drums", "bass"]


def slug(text: str) -> str:
    """A file-system-safe name: lower case, runs of other characters become ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "track"


def _licence(package: Package, path: str, fallback: str) -> str:
    """Licence of ``path`` (relative to the package root) from DEP-5, else ``fallback``."""
    copyright = package.copyright
    found = copyright.licence_of(path) if copyright is not None else None
    return found or fallback


def _band_limit(rate: int) -> float | None:
    """Half the source rate when it was below 44.1 kHz (no content above it), else None."""
    return rate / 2 if rate < SAMPLE_RATE else None


def _origin(package: Package) -> str:
    return f"debian:{package.name} {package.version}"


# --- Frets on Fire ---------------------------------------------------------------------

FOF_SONGS = "usr/share/games/fretsonfire/data/songs"


def _song_ini(folder: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(folder / "song.ini", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    return dict(parser["song"]) if parser.has_section("song") else {}


def build_fof(context: BuildContext, package_name: str, pack: str, licence: str) -> list[Pool]:
    """One Frets on Fire song pack -> ``fof/<pack>/<song>/{guitar,other}.flac`` stem folders."""
    package = context.fetch(package_name)
    songs = sorted(p.parent for p in (package.root / FOF_SONGS).rglob("guitar.ogg") if (p.parent / "song.ogg").exists())
    if not songs:
        raise SourceUnavailable(f"{package_name}: no guitar.ogg + song.ogg pairs under {FOF_SONGS}")
    relative = f"fof/{pack}"
    root = context.staged(relative)
    pool = Pool(f"fof-{pack}", "stems", relative, _origin(package), inside_other=list(FOF_INSIDE_OTHER))
    for index, folder in enumerate(songs, 1):
        guitar, guitar_rate = read_stereo(folder / "guitar.ogg")
        other, other_rate = read_stereo(folder / "song.ogg")
        length = max(len(guitar), len(other))
        guitar = np.pad(guitar, ((0, length - len(guitar)), (0, 0)))
        other = np.pad(other, ((0, length - len(other)), (0, 0)))
        peak = max(float(np.abs(guitar).max(initial=0.0)), float(np.abs(other).max(initial=0.0)))
        gain = 1.0 / peak if peak > 1.0 else 1.0  # one gain on both stems: no clipping, the sum stays the mix
        guitar, other = guitar * gain, other * gain
        name = slug(folder.name)
        out = root / name
        out.mkdir(parents=True, exist_ok=True)
        write_flac(out / "guitar.flac", guitar)
        write_flac(out / "other.flac", other)
        seconds = length / SAMPLE_RATE
        info = _song_ini(folder)
        write_json(out / "meta.json", {
            "layout": "fof",
            "title": info.get("name", folder.name),
            "artist": info.get("artist", ""),
            "licence": licence,
            "source": f"{_origin(package)}: {folder.relative_to(package.root)}",
            "seconds": round(seconds, 3),
            "source_rates": [guitar_rate, other_rate],
            "band_limited_hz": _band_limit(min(guitar_rate, other_rate)),
            "gain": round(gain, 6),
            "bass_separate": False,
            "inside_other": list(FOF_INSIDE_OTHER),
            "known_silent": [],
            "note": "other.flac is the game's backing track (song.ogg): the rest of the band; guitar + other is the mix",
        })
        pool.add(licence, seconds, ["guitar", "other"])
        context.log(f"{index}/{len(songs)} {name}: {seconds / 60:.1f} min")
    return [pool]


# --- vocal-free game soundtracks ----------------------------------------------------------


@dataclass(frozen=True)
class Soundtrack:
    """Where a game-music package keeps its tracks and the licence when its copyright file has no DEP-5 entry."""

    package: str
    music_dir: str
    licence: str


SOUNDTRACKS = (
    Soundtrack("wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music", "GPL-2+"),
    Soundtrack("warzone2100-music", "usr/share/games/warzone2100/music", "GPL-2+"),
    Soundtrack("ufoai-music", "usr/share/games/ufoai/base", "GPL-2+"),
    Soundtrack("nexuiz-music", "usr/share/games/nexuiz/data", "GPL-2+"),
    Soundtrack("singularity-music", "usr/share/games/singularity/music", "CC-BY-SA-3.0"),
    Soundtrack("drascula-music", "usr/share/scummvm/drascula/audio", "Drascula-License"),
    Soundtrack("hyperrogue-music", "usr/share/hyperrogue/music", "GPL-2+"),
    Soundtrack("asc-music", "usr/share/games/asc/music", "GPL-2+"),
)


@dataclass(frozen=True)
class _Track:
    name: str  # relative path inside the music folder or archive, suffix kept
    licence_path: str  # path as the package's copyright file names it
    file: Path | None = None  # a plain file
    archive: Path | None = None  # or a member of this zip
    member: str = ""


def _soundtrack_tracks(package: Package, music_dir: str) -> list[_Track]:
    """Every audio file under ``music_dir``, plain or inside a ``.pk3``/``.zip`` archive."""
    base = package.root / music_dir
    tracks = []
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        relative = path.relative_to(package.root).as_posix()
        if path.suffix.lower() in MUSIC_SUFFIXES:
            tracks.append(_Track(path.relative_to(base).as_posix(), relative, file=path))
        elif path.suffix.lower() in ARCHIVE_SUFFIXES:
            try:
                with zipfile.ZipFile(path) as archive:
                    members = sorted(m for m in archive.namelist() if m.lower().endswith(MUSIC_SUFFIXES))
            except zipfile.BadZipFile:
                continue
            parent = path.parent.relative_to(package.root).as_posix()
            tracks.extend(_Track(m, f"{parent}/{m}", archive=path, member=m) for m in members)
    return tracks


def _track_slug(name: str, taken: set[str]) -> str:
    base = slug(name.rsplit(".", 1)[0].replace("/", "-"))
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


def build_soundtrack(context: BuildContext, soundtrack: Soundtrack) -> list[Pool]:
    """One game-music package -> ``backing/<package>/<track>/other.flac`` (vocals known silent)."""
    package = context.fetch(soundtrack.package)
    tracks = _soundtrack_tracks(package, soundtrack.music_dir)
    if not tracks:
        raise SourceUnavailable(f"{soundtrack.package}: no audio under {soundtrack.music_dir}")
    relative = f"backing/{soundtrack.package}"
    root = context.staged(relative)
    pool = Pool(
        soundtrack.package, "backing", relative, _origin(package),
        inside_other=list(BACKING_INSIDE_OTHER), known_silent=["vocals"],
    )
    taken: set[str] = set()
    short, failed = [], []
    with tempfile.TemporaryDirectory(dir=context.staging) as scratch:
        for index, track in enumerate(tracks, 1):
            name = _track_slug(track.name, taken)
            source = track.file
            if track.archive is not None:
                source = Path(scratch) / f"member{Path(track.member).suffix}"
                with zipfile.ZipFile(track.archive) as archive, archive.open(track.member) as src, open(source, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            out = root / name
            out.mkdir(parents=True, exist_ok=True)
            try:
                converted = convert_to_flac(source, out / "other.flac")
            except Exception as error:  # one undecodable file is noted, not fatal
                shutil.rmtree(out)
                failed.append(f"{track.name}: {error}")
                context.log(f"{index}/{len(tracks)} {track.name}: not decodable, left out ({error})")
                continue
            if converted.seconds < MIN_TRACK_SECONDS or converted.peak < SILENT_PEAK:
                shutil.rmtree(out)
                short.append(track.name)
                continue
            licence = _licence(package, track.licence_path, soundtrack.licence)
            write_json(out / "meta.json", {
                "layout": "backing",
                "licence": licence,
                "source": f"{_origin(package)}: {track.licence_path}",
                "seconds": round(converted.seconds, 3),
                "source_rate": converted.source_rate,
                "source_channels": converted.source_channels,
                "band_limited_hz": _band_limit(converted.source_rate),
                "source_peak": round(converted.peak, 4),
                "gain": round(converted.gain, 6),
                "bass_separate": False,
                "inside_other": list(BACKING_INSIDE_OTHER),
                "known_silent": ["vocals"],
                "note": "instrumental game music (screened: no singing): vocals are known silence, the rest is inside other",
            })
            pool.add(licence, converted.seconds, ["other"])
            context.log(f"{index}/{len(tracks)} {name}: {converted.seconds / 60:.1f} min, {licence}")
    if short:
        pool.notes.append(f"{len(short)} tracks under {MIN_TRACK_SECONDS:g} s or silent left out: {', '.join(short)}")
    if failed:
        pool.notes.append(f"{len(failed)} tracks not decodable: {'; '.join(failed)}")
    return [pool]


# --- MIDI arrangements ------------------------------------------------------------------------


def _midi_pool(context: BuildContext, package: Package, set_name: str, items: list[tuple[str, bytes, str]]) -> Pool:
    """Write ``(name, data, licence)`` MIDI files to ``midi/<set_name>/`` as one pool."""
    relative = f"midi/{set_name}"
    root = context.staged(relative)
    pool = Pool(f"midi-{set_name}", "midi", relative, _origin(package))
    bad = []
    for name, data, licence in items:
        try:
            seconds = midi_seconds(data)
        except ValueError as error:
            bad.append(f"{name}: {error}")
            continue
        (root / f"{name}.mid").write_bytes(data)
        pool.add(licence, seconds)
    if bad:
        pool.notes.append(f"{len(bad)} files not readable as MIDI: {'; '.join(bad)}")
    pool.extra["hours_are"] = "playing time of the arrangements (not rendered yet)"
    context.log(f"{pool.tracks} MIDI files, {pool.hours * 60:.0f} min")
    return pool


def build_freedoom(context: BuildContext) -> list[Pool]:
    """Freedoom's ``D_*`` MIDI lumps (both WADs, identical lumps once) -> ``midi/freedoom/``."""
    package = context.fetch("freedoom")
    wads = sorted((package.root / "usr/share/games/doom").glob("*.wad"))
    if not wads:
        raise SourceUnavailable("freedoom: no .wad files under usr/share/games/doom")
    seen: dict[str, str] = {}
    items: list[tuple[str, bytes, str]] = []
    names: set[str] = set()
    for wad in wads:
        licence = _licence(package, wad.relative_to(package.root).as_posix(), "BSD-3-Clause")
        for lump in wad_midi_lumps(wad):
            digest = hashlib.sha1(lump.data).hexdigest()
            if digest in seen:
                continue
            name = slug(lump.name)
            if name in names:
                name = f"{slug(wad.stem)}_{name}"
            seen[digest] = name
            names.add(name)
            items.append((name, lump.data, licence))
    return [_midi_pool(context, package, "freedoom", items)]


def build_openmsx(context: BuildContext) -> list[Pool]:
    """OpenTTD's OpenMSX music set (plain ``.mid`` files) -> ``midi/openmsx/``."""
    package = context.fetch("openttd-openmsx")
    files = sorted((package.root / "usr/share/games/openttd").rglob("*.mid"))
    if not files:
        raise SourceUnavailable("openttd-openmsx: no .mid files under usr/share/games/openttd")
    items = [
        (slug(f.stem), f.read_bytes(), _licence(package, f.relative_to(package.root).as_posix(), "GPL-2"))
        for f in files
    ]
    return [_midi_pool(context, package, "openmsx", items)]


# --- renderer assets ------------------------------------------------------------------------------


def build_guitarix_irs(context: BuildContext) -> list[Pool]:
    """guitarix amp and cabinet/band impulse responses -> ``assets/guitarix-irs/{amps,bands}/``."""
    package = context.fetch("guitarix-common")
    relative = "assets/guitarix-irs"
    pool = Pool("guitarix-irs", "assets", relative, _origin(package))
    seconds = 0.0
    for group in ("amps", "bands"):
        files = sorted((package.root / "usr/share/gx_head/sounds" / group).glob("*.wav"))
        if files:
            target = context.staged(f"{relative}/{group}")
            for path in files:
                shutil.copy2(path, target / path.name)
                seconds += duration_seconds(path)
                pool.add(_licence(package, path.relative_to(package.root).as_posix(), "GPL-2+"))
            pool.extra[f"{group}_files"] = len(files)
    if not pool.tracks:
        raise SourceUnavailable("guitarix-common: no impulse responses under usr/share/gx_head/sounds/{amps,bands}")
    pool.extra["ir_seconds"] = round(seconds, 2)
    context.log(f"{pool.tracks} impulse responses")
    return [pool]


def build_musescore_soundfont(context: BuildContext) -> list[Pool]:
    """The MuseScore General SoundFont (``.sf3``/``.sf2``) -> ``assets/soundfonts/musescore-general/``."""
    package = context.fetch("musescore-general-soundfont")
    files = sorted(p for p in (package.root / "usr/share/sounds").rglob("*") if p.suffix.lower() in (".sf2", ".sf3"))
    if not files:
        raise SourceUnavailable("musescore-general-soundfont: no .sf2/.sf3 under usr/share/sounds")
    relative = "assets/soundfonts/musescore-general"
    target = context.staged(relative)
    pool = Pool("musescore-general-soundfont", "assets", relative, _origin(package))
    for path in files:
        shutil.copy2(path, target / path.name)
        pool.add("MIT (parts CC0/PD)")
    pool.extra["files"] = [p.name for p in files]
    pool.extra["bytes"] = sum(p.stat().st_size for p in files)
    return [pool]


def build_hydrogen_kits(context: BuildContext) -> list[Pool]:
    """Hydrogen drum kits (``drumkit.xml`` + samples) -> ``assets/hydrogen-drumkits/<kit>/``, licence per kit."""
    package = context.fetch("hydrogen-drumkits")
    kits = sorted(p.parent for p in (package.root / "usr/share/hydrogen/data/drumkits").glob("*/drumkit.xml"))
    if not kits:
        raise SourceUnavailable("hydrogen-drumkits: no drumkit.xml under usr/share/hydrogen/data/drumkits")
    relative = "assets/hydrogen-drumkits"
    root = context.staged(relative)
    pool = Pool("hydrogen-drumkits", "assets", relative, _origin(package))
    copyright = package.copyright
    kit_licences = {}
    for kit in kits:
        licence = None
        for candidate in (kit.name, kit.name.split()[0]):
            if copyright is not None and licence is None:
                licence = copyright.licence_of(f"drumkits/{candidate}.h2drumkit")
        licence = licence or "unknown (see the package's copyright file)"
        shutil.copytree(kit, root / kit.name)
        (root / kit.name / "LICENCE.txt").write_text(f"{licence}\n(from {_origin(package)} copyright file)\n")
        kit_licences[kit.name] = licence
        pool.add(licence)
    pool.extra["kits"] = kit_licences
    context.log(f"{len(kits)} kits")
    return [pool]


# --- the shared real data (by reference) --------------------------------------------------------


@dataclass(frozen=True)
class SharedSet:
    """A folder of ``--data-root``: its reader layout and licence."""

    folder: str
    layout: str  # "stem-folders", "vocals-accompaniment" or "solo"
    licence: str


SHARED_SETS = (
    SharedSet("musdb18-preview/train", "stem-folders", "MUSDB18 (CC BY-NC-SA, research use)"),
    SharedSet("cc0-album", "stem-folders", "CC0-1.0"),
    SharedSet("mdb", "stem-folders", "CC BY-NC-SA 4.0 (MedleyDB)"),
    SharedSet("mir1k", "vocals-accompaniment", "research use (MIR-1K)"),
    SharedSet("solo", "solo", "per file (solo/MANIFEST.csv)"),
)


def _longest(files: list[Path]) -> float:
    return max((duration_seconds(f) for f in files), default=0.0)


def _shared_pool(root: Path, shared: SharedSet) -> Pool:
    """One shared set as a by-reference pool; known masks come from the readers that train on it."""
    from stemcut.training import sources as readers

    folder = root / shared.folder
    name = f"shared-{slug(shared.folder.split('/')[0])}"
    pool = Pool(name, "reference", str(folder.resolve()), f"data-root:{shared.folder}", by_reference=True)
    if shared.layout == "stem-folders":
        inside: set[str] = set()
        for track in readers.read_stem_folders(folder):
            files = {p.stem: p for p in (folder / track.name).iterdir() if p.stem in TARGETS and p.suffix != ".json"}
            known = [t for t, k in zip(TARGETS, track.known) if k and t in files]
            inside |= {t for t, k in zip(TARGETS, track.known) if not k}
            licence = track.licence if track.licence != "see dataset" else shared.licence
            pool.add(licence, _longest(list(files.values())), known)
        pool.inside_other = sorted(inside, key=TARGETS.index)
    elif shared.layout == "vocals-accompaniment":
        for track in readers.read_vocals_accompaniment(folder, licence=shared.licence):
            pool.add(track.licence, _longest([p for p in (folder / track.name).iterdir() if p.is_file()]), ["vocals", "other"])
        pool.inside_other = ["drums", "bass", "guitar"]
    else:
        for track in readers.read_solo_clips(folder):
            clip = next(p for p in (folder / track.solo_target).iterdir() if p.stem == track.name)
            pool.add(track.licence, duration_seconds(clip), [track.solo_target])
    return pool


def build_shared(context: BuildContext) -> list[Pool]:
    """Record the shared real data (``--data-root``) by reference, with hours and licences."""
    root = context.data_root
    if root is None or not Path(root).is_dir():
        raise SourceUnavailable(f"no shared data folder ({root or 'set --data-root or STEMCUT_DATA'})")
    pools = []
    for shared in SHARED_SETS:
        if not (Path(root) / shared.folder).is_dir():
            context.log(f"{shared.folder}: not in {root}, left out")
            continue
        pool = _shared_pool(Path(root), shared)
        context.log(f"{shared.folder}: {pool.tracks} tracks, {pool.hours:.2f} h")
        pools.append(pool)
    if not pools:
        raise SourceUnavailable(f"{root}: none of {', '.join(s.folder for s in SHARED_SETS)}")
    return pools


# --- the registry ---------------------------------------------------------------------------------


def _fof(package: str, pack: str, licence: str) -> Source:
    return Source(
        f"fof-{pack}", "stems", f"Frets on Fire {pack} songs: guitar + backing",
        lambda c: build_fof(c, package, pack, licence), (package,),
    )


def _soundtrack(soundtrack: Soundtrack) -> Source:
    return Source(
        soundtrack.package, "backing", "vocal-free game soundtrack",
        lambda c: build_soundtrack(c, soundtrack), (soundtrack.package,),
    )


def _renders(set_name: str) -> Source:
    return Source(
        f"renders-{set_name}", "stems", f"{set_name} MIDI rendered with real samples into 5 stems (+ real vocals)",
        lambda c: build_renders(c, set_name),
    )


SOURCES: tuple[Source, ...] = (
    Source("shared", "reference", "the shared real multitrack data, by reference", build_shared),
    _fof("fretsonfire-songs-muldjord", "muldjord", "CC-BY-SA-3.0"),
    _fof("fretsonfire-songs-sectoid", "sectoid", "MIT"),
    *(_soundtrack(s) for s in SOUNDTRACKS),
    Source("freedoom", "midi", "Freedoom MIDI arrangements (WAD lumps)", build_freedoom, ("freedoom",)),
    Source("openmsx", "midi", "OpenMSX MIDI arrangements", build_openmsx, ("openttd-openmsx",)),
    Source("guitarix-irs", "assets", "guitarix amp/cabinet impulse responses", build_guitarix_irs, ("guitarix-common",)),
    Source("musescore-general", "assets", "MuseScore General SoundFont", build_musescore_soundfont, ("musescore-general-soundfont",)),
    Source("hydrogen-drumkits", "assets", "hydrogen drum kits", build_hydrogen_kits, ("hydrogen-drumkits",)),
    Source("karoryfer-guitars", "assets", "Karoryfer Black and Green Guitars samples (repository snapshot)", build_karoryfer),
    Source("drumgizmo-muldjord", "assets", "DrumGizmo MuldjordKit multi-mic drum hits (repository snapshot)", build_muldjord),
    *(_renders(name) for name in RENDER_SETS),
    Source("lmms-demos", "stems", "LMMS demo songs rendered track by track into drums/bass/other (+guitar)",
           build_lmms, ("lmms-common", "lmms")),
)


def select_sources(names: list[str] | None) -> list[Source]:
    """The sources called ``names`` (all of them, in registry order, for None); unknown names raise ``KeyError``."""
    if not names:
        return list(SOURCES)
    by_name = {s.name: s for s in SOURCES}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(by_name)}")
    return [by_name[n] for n in names]
