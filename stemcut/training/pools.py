"""The training pools: which real and synthetic sets a run draws from, with what weight and licence."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .dataset import SourcePool
from .sources import StemTrack, read_solo_clips, read_stem_folders, read_vocals_accompaniment
from .split import held_out, partition

DEFAULT_MIX = ("musdb=0.30,cc0=0.12,mdb=0.08,synthetic=0.18,mir1k=0.10,"
               "solo-vocals=0.10,solo-guitar=0.07,solo-drums=0.03,solo-other=0.02")
# Pools of stem folders under the data root.
FOLDER_POOLS = {"musdb": "musdb18-preview/train", "cc0": "cc0-album", "mdb": "mdb"}
# The chance that an example of a pool takes each stem from a different song (cross-song remixing).
DYNAMIC_MIX = {"musdb": 0.5, "cc0": 0.3, "mdb": 0.3, "synthetic": 0.5, "mir1k": 0.0}
# Single-source clips under <data root>/solo/<target>, mixed over a backing pool's songs.
SOLO_BACKING = {"solo-vocals": "musdb", "solo-drums": "musdb", "solo-guitar": "synthetic", "solo-other": "synthetic"}
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
}
POOL_NAMES = (*FOLDER_POOLS, "mir1k", "synthetic", *SOLO_BACKING)


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


def build_pools(data_root: Path | None, synthetic: Path | None, mix: dict[str, float], split: dict[str, list[str]],
                log: Callable[[str], None] = print) -> list[SourcePool]:
    """The training pools named in ``mix``, every held-out track removed; a set that is not there is empty."""

    def held_out_removed(folder: str, tracks: list[StemTrack]) -> list[StemTrack]:
        train, held = partition(tracks, held_out(split, folder))
        log(f"  {folder}: {len(train)} training tracks, {len(held)} held out")
        return train

    def read(name: str) -> list[StemTrack]:
        if name == "synthetic":
            return read_stem_folders(synthetic) if synthetic and synthetic.is_dir() else []
        if data_root is None:
            return []
        if name == "mir1k":
            path = data_root / "mir1k"
            return held_out_removed("mir1k", read_vocals_accompaniment(path)) if path.is_dir() else []
        folder = FOLDER_POOLS[name]
        path = data_root / folder
        return held_out_removed(folder, read_stem_folders(path)) if path.is_dir() else []

    needed = set(mix) | {SOLO_BACKING[name] for name in mix if name in SOLO_BACKING}
    tracks = {name: read(name) for name in needed if name not in SOLO_BACKING}
    pools: list[SourcePool] = []
    for name, weight in mix.items():
        if name in SOLO_BACKING:
            solo = data_root / "solo" if data_root is not None else None
            pool_tracks = read_solo_clips(solo, [name.split("-", 1)[1]]) if solo and solo.is_dir() else []
            pools.append(SourcePool(name, pool_tracks, weight=weight, backing=SOLO_BACKING[name]))
        else:
            pool_tracks = tracks[name]
            pools.append(SourcePool(name, pool_tracks, weight=weight, dynamic_mix=DYNAMIC_MIX[name]))
        log(f"  pool {name}: {len(pool_tracks)} tracks, weight {weight}")
    for name in sorted(set(SOLO_BACKING.values()) & needed - set(mix)):
        pools.append(SourcePool(name, tracks[name], weight=0.0))  # backing only
    return pools
