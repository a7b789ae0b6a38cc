"""The training pools: which real and rendered sets a run draws from, with what weight and licence.

Pools come from two folders: the shared data root (``--data-root``: MUSDB18 previews, the CC0
album, MedleyDB, MIR-1K, solo clips) and the corpus that ``scripts/prepare_data.py`` builds
(``--corpus``: its ``corpus.json`` names the Frets on Fire stem folders, the vocal-free game
music, the rendered songs and the LMMS demo songs). Every track of the validation split is left out, and so is every
rendered song that sings a phrase cut from one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import soundfile as sf

from stemcut.stemfolder import list_stem_folders, read_meta, stem_files

from .sources import StemTrack, read_solo_clips, read_stem_folder, read_vocals_accompaniment
from .split import held_out, uses_held_out
from .targets import SAMPLE_RATE

# The mix the shipped set was fine-tuned on (docs/models.md). The corpus pools are opted into by --mix:
# at a fixed budget they did not beat it on the validation split (docs/data.md, the ablation).
DEFAULT_MIX = "musdb=0.35,cc0=0.12,mdb=0.08,mir1k=0.13,solo-vocals=0.12,solo-drums=0.03"
# Pools of stem folders under the data root.
FOLDER_POOLS = {"musdb": "musdb18-preview/train", "cc0": "cc0-album", "mdb": "mdb"}
# Pools of the corpus: which corpus.json pools each gathers (by name prefix, or kind "backing").
CORPUS_POOLS = {"fof": "fof-", "renders": "renders-", "lmms": "lmms-", "backing": None}
# The chance that an example of a pool takes each stem from a different song (cross-song remixing).
DYNAMIC_MIX = {"musdb": 0.5, "cc0": 0.3, "mdb": 0.3, "synthetic": 0.5, "mir1k": 0.0,
               "fof": 0.3, "renders": 0.5, "lmms": 0.3, "backing": 0.0}
# Single-source clips under <data root>/solo/<target>, mixed over a backing pool's songs.
SOLO_BACKING = {"solo-vocals": "musdb", "solo-drums": "musdb", "solo-guitar": "synthetic",
                "solo-other": "synthetic", "vocals-on-backing": "backing"}
LICENCES = {
    "musdb": "MUSDB18 previews: mostly CC BY-NC-SA, non-commercial research use",
    "cc0": "CC0 album 'Everything Is Remixed': CC0-1.0",
    "mdb": "MedleyDB MusicDelta: CC BY-NC-SA, non-commercial research use",
    "mir1k": "MIR-1K: research use only",
    "synthetic": "synthetic songs from scripts/make_synthetic.py: MIT (FluidR3Mono SoundFont, project code) "
                 "plus the licences of the vocal clips cut into them (see each meta.json)",
    "solo-vocals": "solo clips: CC BY 4.0 / CC BY-NC-SA 4.0 (GTSinger, Children's Song Dataset) per MANIFEST.csv",
    "solo-guitar": "solo clips: CC BY 4.0 / MIT per MANIFEST.csv",
    "solo-drums": "solo clips: CC BY 4.0 (StemGMD, sms-tools) per MANIFEST.csv",
    "solo-other": "solo clips: CC BY 4.0 per MANIFEST.csv",
    "vocals-on-backing": "solo vocal clips (as solo-vocals) over the game music of the backing pool",
}
POOL_NAMES = (*FOLDER_POOLS, "mir1k", "synthetic", *CORPUS_POOLS, *SOLO_BACKING)


@dataclass
class SourcePool:
    """A group of tracks drawn with a relative ``weight``.

    Attributes:
        name: pool name (other pools refer to it as ``backing``).
        tracks: the tracks.
        weight: relative probability of drawing an example from this pool.
        dynamic_mix: probability that an example takes each target from a different random
            track of the pool (with its own excerpt) instead of one coherent song.
        backing: name of a pool whose coherent excerpt is mixed under this pool's tracks
            (for single-source clips); the backing's slot for the clip's own target is dropped.
        licence: the pool's licences, as the weights manifest records them.
        hours: hours of audio in the pool.
    """

    name: str
    tracks: Sequence[StemTrack]
    weight: float = 1.0
    dynamic_mix: float = 0.0
    backing: str | None = None
    licence: str = ""
    hours: float = 0.0


def add_pool_arguments(parser) -> None:
    """The options naming the training data (argparse): every command line that builds pools takes them."""
    import os

    from .corpus import OUT_ENV as CORPUS_ENV
    from .split import DATA_ROOT_ENV, DEFAULT_SPLIT, default_data_root

    def env_path(name: str) -> Path | None:
        return Path(os.environ[name]) if os.environ.get(name) else None

    parser.add_argument("--data-root", type=Path, default=default_data_root(),
                        help=f"folder of the real sets [default: ${DATA_ROOT_ENV}]")
    parser.add_argument("--corpus", type=Path, default=env_path(CORPUS_ENV),
                        help=f"the corpus scripts/prepare_data.py built [default: ${CORPUS_ENV}]")
    parser.add_argument("--synthetic", type=Path, default=env_path("STEMCUT_SYNTHETIC"),
                        help="folder of synthetic stem folders (scripts/make_synthetic.py) [default: $STEMCUT_SYNTHETIC]")
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"pool=weight,... (pools: {', '.join(POOL_NAMES)})")
    parser.add_argument("--split", type=Path, default=DEFAULT_SPLIT, help="held-out validation split (JSON)")


def parse_mix(text: str) -> dict[str, float]:
    """'musdb=0.3,cc0=0.1' -> {'musdb': 0.3, 'cc0': 0.1} (ValueError naming an unknown pool)."""
    mix = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        name = name.strip()
        if name not in POOL_NAMES:
            raise ValueError(f"unknown pool {name!r} in the mix (known: {', '.join(POOL_NAMES)})")
        mix[name] = float(weight)
    return mix


def corpus_folders(corpus: Path) -> dict[str, tuple[list[Path], str]]:
    """``{pool: (the corpus.json pools' folders, their licences)}`` for the pools of :data:`CORPUS_POOLS`."""
    manifest = corpus / "corpus.json"
    if not manifest.is_file():
        return {}
    entries = json.loads(manifest.read_text(encoding="utf-8")).get("pools", {}).values()
    found: dict[str, tuple[list[Path], str]] = {}
    for pool, prefix in CORPUS_POOLS.items():
        chosen = [e for e in entries if (e["name"].startswith(prefix) if prefix else e.get("kind") == "backing")]
        folders = [f for e in chosen if (corpus / e["path"]).is_dir() for f in list_stem_folders(corpus / e["path"])]
        licences = sorted({part.strip() for e in chosen for part in str(e.get("licence", "")).split(";") if part.strip()})
        found[pool] = (folders, "; ".join(licences))
    return found


def track_hours(folders: Sequence[Path]) -> float:
    """Hours of audio in stem folders: ``meta.json``'s ``seconds`` or the longest stem file's length."""
    seconds = 0.0
    for folder in folders:
        meta = read_meta(folder)
        if isinstance(meta.get("seconds"), (int, float)):
            seconds += float(meta["seconds"])
            continue
        lengths = []
        for path in stem_files(folder).values():
            try:
                info = sf.info(str(path))
                lengths.append(info.frames / info.samplerate)
            except (RuntimeError, sf.LibsndfileError):
                pass
        seconds += max(lengths, default=0.0)
    return seconds / 3600


def build_pools(data_root: Path | None, synthetic: Path | None, mix: dict[str, float], split: dict[str, list[str]],
                corpus: Path | None = None, log: Callable[[str], None] = print) -> list[SourcePool]:
    """The training pools named in ``mix``, every held-out track removed; a set that is not there is empty."""
    corpus_sets = corpus_folders(corpus) if corpus is not None else {}

    def folders_of(name: str) -> tuple[list[Path], str]:
        if name in CORPUS_POOLS:
            folders, licence = corpus_sets.get(name, ([], ""))
            kept = [f for f in folders if not uses_held_out(read_meta(f), split)]
            if len(kept) < len(folders):
                log(f"  {name}: {len(folders) - len(kept)} songs left out (they sing held-out vocals)")
            return kept, licence
        if name == "synthetic":
            return (list_stem_folders(synthetic) if synthetic and synthetic.is_dir() else []), LICENCES[name]
        relative = "mir1k" if name == "mir1k" else FOLDER_POOLS[name]
        if data_root is None or not (data_root / relative).is_dir():
            return [], LICENCES[name]
        folders = list_stem_folders(data_root / relative)
        names = held_out(split, relative)
        kept = [f for f in folders if f.name not in names]
        log(f"  {relative}: {len(kept)} training tracks, {len(folders) - len(kept)} held out")
        return kept, LICENCES[name]

    def read(name: str) -> SourcePool:
        folders, licence = folders_of(name)
        if name == "mir1k":
            tracks = read_vocals_accompaniment(data_root / "mir1k") if folders else []
            tracks = [t for t in tracks if t.name in {f.name for f in folders}]
        else:
            tracks = [read_stem_folder(folder) for folder in folders]
        return SourcePool(name, tracks, weight=0.0, dynamic_mix=DYNAMIC_MIX.get(name, 0.0), licence=licence,
                          hours=track_hours(folders))

    needed = {name for name in mix if name not in SOLO_BACKING} | {SOLO_BACKING[n] for n in mix if n in SOLO_BACKING}
    whole = {name: read(name) for name in sorted(needed)}
    pools: list[SourcePool] = []
    for name, weight in mix.items():
        if name in SOLO_BACKING:
            solo = data_root / "solo" if data_root is not None else None
            category = "vocals" if name == "vocals-on-backing" else name.split("-", 1)[1]
            tracks = read_solo_clips(solo, [category]) if solo and solo.is_dir() else []
            seconds = sum(t.frames for t in tracks) / SAMPLE_RATE
            pools.append(SourcePool(name, tracks, weight=weight, backing=SOLO_BACKING[name],
                                    licence=LICENCES[name], hours=seconds / 3600))
        else:
            pool = whole[name]
            pool.weight = weight
            pools.append(pool)
        log(f"  pool {name}: {len(pools[-1].tracks)} tracks, {pools[-1].hours:.2f} h, weight {weight}")
    for name in sorted(needed - set(mix)):
        pools.append(whole[name])  # backing only (weight 0)
    return pools
