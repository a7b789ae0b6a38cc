"""Training batches: excerpts of stem tracks, remixed on the fly, with a known-target mask.

Typical use::

    pools = [
        SourcePool("musdb", read_stem_folders(".../musdb18-preview/train"), weight=0.4, dynamic_mix=0.5),
        SourcePool("synthetic", read_stem_folders("data_synth"), weight=0.3, dynamic_mix=0.5),
        SourcePool("mir1k", read_vocals_accompaniment(".../mir1k"), weight=0.15),
        SourcePool("solo-vocals", read_solo_clips(".../solo", ["vocals"]), weight=0.15, backing="musdb"),
    ]
    sampler = MixtureSampler(pools, segment_seconds=6.0, seed=0)
    batch = sampler.sample_batch(8)   # batch.mixture [8,2,T], batch.stems [8,5,2,T], batch.known [8,5]

    loader = torch.utils.data.DataLoader(StemMixDataset(sampler), batch_size=8, num_workers=2)

``known[b, i]`` is True when ``stems[b, i]`` is exactly target i. When it is False the
slot is silence and that target's content (if any) is inside ``stems[b, OTHER]``: score
``other`` against the prediction of other plus the predictions of the unknown targets
(:func:`stemcut.targets.fold_into_other`, as :mod:`stemcut.training.objective` does)
and drop the unknown targets' own losses. ``known`` for
``other`` is always True.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.utils.data

from stemcut.training import augment
from stemcut.training.sources import StemTrack
from stemcut.training.targets import OTHER, SAMPLE_RATE, TARGETS, target_index


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
            (for single-source clips); the backing's slots for this track's own target are dropped.
    """

    name: str
    tracks: Sequence[StemTrack]
    weight: float = 1.0
    dynamic_mix: float = 0.0
    backing: str | None = None


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the per-example augmentations."""

    gain_db: tuple[float, float] = (-6.0, 3.0)
    channel_swap: float = 0.5
    band_limit: float = 0.25  # low-pass the whole example (hides band-limited sources' missing highs)
    band_limit_hz: tuple[float, float] = (7000.0, 20000.0)
    tone: float = 0.3
    clip_limit: float = 0.99


@dataclass
class TrainingBatch:
    """``mixture`` [B, 2, T], ``stems`` [B, 5, 2, T] (float32), ``known`` [B, 5] (bool); mixture == stems.sum(1)."""

    mixture: np.ndarray
    stems: np.ndarray
    known: np.ndarray
    sources: list[str] = field(default_factory=list)


class MixtureSampler:
    """Draws remixed training examples from weighted pools of :class:`StemTrack`.

    Tracks are loaded on first use and kept in memory when ``cache`` is True (whole
    clips; set it False for long-form sets such as full songs if memory is short).
    """

    def __init__(self, pools: Sequence[SourcePool], segment_seconds: float = 6.0, seed: int = 0,
                 augment_config: AugmentConfig | None = None, cache: bool = True) -> None:
        self.pools = [p for p in pools if p.tracks and p.weight > 0]
        if not self.pools:
            raise ValueError("no pool has tracks and a positive weight")
        self.by_name = {p.name: p for p in pools}
        for pool in self.pools:
            if pool.backing is not None and pool.backing not in self.by_name:
                raise ValueError(f"pool {pool.name!r}: unknown backing pool {pool.backing!r}")
        weights = np.array([p.weight for p in self.pools], float)
        self.probabilities = weights / weights.sum()
        self.length = int(round(segment_seconds * SAMPLE_RATE))
        self.rng = np.random.default_rng(seed)
        self.augment = augment_config or AugmentConfig()
        self.cache = cache

    def reseed(self, seed: int) -> None:
        """Restart the random stream (e.g. per DataLoader worker)."""
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """One example: mixture ``[2, T]``, stems ``[5, 2, T]``, known ``[5]`` and the pool name."""
        rng = self.rng
        pool = self.pools[int(rng.choice(len(self.pools), p=self.probabilities))]
        stems = np.zeros((len(TARGETS), 2, self.length), np.float32)
        known = np.ones(len(TARGETS), bool)
        if rng.random() < pool.dynamic_mix:
            for target in range(len(TARGETS)):
                self._add(stems, known, pool.tracks[int(rng.integers(len(pool.tracks)))], [target])
        else:
            track = pool.tracks[int(rng.integers(len(pool.tracks)))]
            self._add(stems, known, track, range(len(TARGETS)))
            if pool.backing is not None:
                backing = self.by_name[pool.backing]
                own = {target_index(track.solo_target)} if track.solo_target else set()
                slots = [i for i in range(len(TARGETS)) if i not in own]
                self._add(stems, known, backing.tracks[int(rng.integers(len(backing.tracks)))], slots)
        stems = self._augment_example(stems)
        stems, _ = augment.rescale_to_avoid_clipping(stems, self.augment.clip_limit)
        return augment.mix(stems), stems, known, pool.name

    def sample_batch(self, batch_size: int) -> TrainingBatch:
        """``batch_size`` examples stacked into a :class:`TrainingBatch`."""
        examples = [self.sample() for _ in range(batch_size)]
        return TrainingBatch(np.stack([e[0] for e in examples]), np.stack([e[1] for e in examples]),
                             np.stack([e[2] for e in examples]), [e[3] for e in examples])

    def _add(self, stems: np.ndarray, known: np.ndarray, track: StemTrack, slots: Sequence[int]) -> None:
        """Add the given target slots of a random excerpt of ``track``, with per-stem gains and swaps."""
        slots = list(slots)
        excerpt = augment.random_excerpt(track.load(cache=self.cache)[slots], self.length, self.rng)
        for k, slot in enumerate(slots):
            audio = augment.random_gain(excerpt[k], self.rng, *self.augment.gain_db)
            stems[slot] += augment.maybe_swap_channels(audio, self.rng, self.augment.channel_swap)
        if OTHER in slots:
            # This track's unknown targets are hidden inside its "other": they are now unknown here too.
            known &= np.array(track.known, bool) | (np.arange(len(TARGETS)) == OTHER)

    def _augment_example(self, stems: np.ndarray) -> np.ndarray:
        config = self.augment
        if self.rng.random() < config.band_limit:
            stems = augment.random_band_limit(stems, self.rng, *config.band_limit_hz)
        if self.rng.random() < config.tone:
            stems = augment.random_tone(stems, self.rng)
        return stems.astype(np.float32, copy=False)


class StemMixDataset(torch.utils.data.IterableDataset):
    """Endless torch ``IterableDataset`` over a :class:`MixtureSampler`.

    Yields ``(mixture [2, T], stems [5, 2, T], known [5])`` as float32/float32/bool tensors;
    a ``DataLoader(batch_size=B)`` turns them into ``[B, 2, T]``, ``[B, 5, 2, T]``, ``[B, 5]``.
    Each worker reseeds the sampler with ``seed + worker id`` so workers do not repeat.
    """

    def __init__(self, sampler: MixtureSampler, seed: int = 0) -> None:
        super().__init__()
        self.sampler = sampler
        self.seed = seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            self.sampler.reseed(self.seed + info.id)
        while True:
            mixture, stems, known, _ = self.sampler.sample()
            yield torch.from_numpy(mixture), torch.from_numpy(stems), torch.from_numpy(known)
