"""The training bank: stem windows held in memory on the training device, cut into batches there.

Typical use::

    bank = TrainingBank(pools, segment_seconds=4.0, device=torch.device("cuda"))
    bank.fill()      # every slot, from the pools' tracks
    bank.start()     # CPU threads replace windows in the background, paced by the batches drawn
    batch = bank.sample(32)   # mixture [32, 2, T], stems [32, 5, 2, T], known [32, 5], on the device
    bank.close()

A slot holds one ``[5, 2, W]`` window of a track (float16), its ``known`` mask and, for
single-source clips, the target it belongs to. Each pool owns a share of the slots in
proportion to its weight (plus the weight of the pools it backs). A batch example is drawn
from a pool by weight, then excerpted, remixed and augmented in torch on the device
(:mod:`stemcut.training.augment`): a coherent excerpt of one window; with the pool's
``dynamic_mix`` chance each stem from a different window (cross-song remixing); or, for a
pool with ``backing``, a clip's own stem over a window of the backing pool.

``known[b, i]`` is True when ``stems[b, i]`` is exactly target i. When False, that target's
content (if any) is inside ``stems[b, OTHER]`` or in the slot itself: the objective scores
``other`` with the unknown targets folded in (:func:`stemcut.targets.fold_into_other`) and drops
their own losses. The window whose ``other`` an example uses decides what is known.

A bank also travels as a bundle (:meth:`TrainingBank.save_bundle`, :meth:`TrainingBank.from_bundle`):
one zip of 10-channel Ogg Vorbis windows and a JSON index, to train on a machine without the corpus.
"""

from __future__ import annotations

import io
import json
import math
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf
import torch

from . import augment
from .augment import AugmentConfig
from .pools import SourcePool
from .targets import OTHER, SAMPLE_RATE, TARGETS, target_index

BUNDLE_FORMAT = 1
OTHER_INDEX = OTHER  # the index of "other" in TARGETS


@dataclass
class BankConfig:
    """How big the bank is and how fast it turns over."""

    windows: int = 512               # slots in all
    loads: int = 4                   # windows cut from a track per read
    refill_per_batch: float = 1.0    # windows replaced per batch drawn (the refill threads' pace); 0: frozen
    threads: int = 1                 # refill threads
    storage: torch.dtype = torch.float16


@dataclass
class Batch:
    """``mixture [B, 2, T]``, ``stems [B, 5, 2, T]`` (float32), ``known [B, 5]`` (bool) on the bank's device;
    ``pools`` names each example's pool. ``mixture == stems.sum(1)``."""

    mixture: torch.Tensor
    stems: torch.Tensor
    known: torch.Tensor
    pools: list[str] = field(default_factory=list)


@dataclass
class PoolSlots:
    """A pool as the bank stores it: its draw settings and its range of slots."""

    name: str
    weight: float
    dynamic_mix: float
    backing: str | None
    first: int
    count: int
    tracks: Sequence = ()
    licence: str = ""
    hours: float = 0.0


def allocate(total: int, shares: Sequence[float], minimum: int = 2) -> list[int]:
    """Split ``total`` slots in proportion to ``shares``, each at least ``minimum``."""
    shares = np.asarray(shares, float)
    counts = np.maximum(minimum, np.floor(total * shares / shares.sum())).astype(int)
    order = np.argsort(-(total * shares / shares.sum() - counts))
    for i in order[: max(0, total - int(counts.sum()))]:
        counts[i] += 1
    return counts.tolist()


class TrainingBank:
    """Stem windows on ``device``, refilled from ``pools`` by background threads; see the module doc."""

    def __init__(self, pools: Sequence[SourcePool], segment_seconds: float, device: torch.device | str = "cpu",
                 config: BankConfig | None = None, augment_config: AugmentConfig | None = None, seed: int = 0,
                 log: Callable[[str], None] = print) -> None:
        self.config = config or BankConfig()
        self.augment = augment_config or AugmentConfig()
        self.device = torch.device(device)
        self.length = int(round(segment_seconds * SAMPLE_RATE))
        self.window = int(math.ceil(self.length * self.augment.speed[1])) + 2
        self.log = log
        by_name = {p.name: p for p in pools}
        drawn = [p for p in pools if p.tracks and p.weight > 0]
        if not drawn:
            raise ValueError("no pool has tracks and a positive weight")
        for pool in drawn:
            if pool.backing is not None and not (pool.backing in by_name and by_name[pool.backing].tracks):
                raise ValueError(f"pool {pool.name!r}: its backing pool {pool.backing!r} has no tracks")
        stored = drawn + [by_name[name] for name in dict.fromkeys(p.backing for p in drawn if p.backing)
                          if by_name[name] not in drawn]
        shares = [p.weight + sum(q.weight for q in drawn if q.backing == p.name) for p in stored]
        counts = allocate(max(self.config.windows, 2 * len(stored)), shares)
        firsts = np.cumsum([0] + counts[:-1]).tolist()
        self.pools = [PoolSlots(p.name, p.weight if p in drawn else 0.0, p.dynamic_mix, p.backing, first, count,
                                p.tracks, p.licence, p.hours) for p, first, count in zip(stored, firsts, counts)]
        self._allocate_storage(sum(counts))
        self._start_state(seed)
        self.windows_loaded = 0

    def _start_state(self, seed: int) -> None:
        """Random streams, locks and refill bookkeeping (the same for a filled and a bundled bank)."""
        self.rng = np.random.default_rng(seed)             # batch composition
        self.generator = torch.Generator().manual_seed(seed)  # augmentations
        self._seed = seed
        self._refill_rng = np.random.default_rng([seed, 0])
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._allowance = 0.0
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._failed: set[tuple[str, str]] = set()

    def _allocate_storage(self, slots: int) -> None:
        self.audio = torch.zeros((slots, len(TARGETS), 2, self.window), dtype=self.config.storage, device=self.device)
        self.known = torch.ones((slots, len(TARGETS)), dtype=torch.bool)
        self.solo = torch.full((slots,), -1, dtype=torch.long)
        drawn = [p for p in self.pools if p.weight > 0]
        self._drawn = [self.pools.index(p) for p in drawn]
        weights = np.array([p.weight for p in drawn], float)
        self._probabilities = weights / weights.sum()
        self._by_name = {p.name: i for i, p in enumerate(self.pools)}

    @property
    def slots(self) -> int:
        return self.audio.shape[0]

    @property
    def nbytes(self) -> int:
        return self.audio.element_size() * self.audio.nelement()

    # ------------------------------------------------------------------ filling

    def fill(self) -> None:
        """Fill every slot (in this thread), pool by pool."""
        for index, pool in enumerate(self.pools):
            filled = 0
            while filled < pool.count:
                written = self._load_into(index, range(pool.first + filled, pool.first + pool.count), self._refill_rng)
                if written == 0 and self._all_failed(pool):
                    raise RuntimeError(f"pool {pool.name!r}: no track could be read")
                filled += written

    def start(self) -> None:
        """Start the refill threads (none when ``refill_per_batch`` is 0 or no pool has tracks; with
        ``threads`` 0 :meth:`sample` refills in the caller's thread)."""
        if self.config.refill_per_batch <= 0 or not any(p.tracks for p in self.pools):
            self.config.refill_per_batch = 0.0
            return
        for number in range(self.config.threads):
            rng = np.random.default_rng([self._seed, number + 1])
            thread = threading.Thread(target=self._refill_loop, args=(rng,), name=f"bank-refill-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def __enter__(self) -> "TrainingBank":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _refill_loop(self, rng: np.random.Generator) -> None:
        while True:
            with self._wake:
                while self._allowance < 1 and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
            self._refill_once(rng)

    def _refill_once(self, rng: np.random.Generator) -> None:
        """Replace ``loads`` random slots of a pool (chosen by its share of the slots) with new windows."""
        with self._wake:
            self._allowance -= self.config.loads
            weights = np.array([p.count if p.tracks else 0 for p in self.pools], float)
            index = int(rng.choice(len(self.pools), p=weights / weights.sum()))
            pool = self.pools[index]
            slots = pool.first + rng.choice(pool.count, size=min(self.config.loads, pool.count), replace=False)
        self._load_into(index, slots.tolist(), rng)

    def _load_into(self, index: int, slots: Sequence[int], rng: np.random.Generator) -> int:
        """Read windows of a random track of pool ``index`` into ``slots`` (at most ``loads``); how many were written."""
        pool = self.pools[index]
        slots = list(slots)[: self.config.loads]
        track = pool.tracks[int(rng.integers(len(pool.tracks)))]
        if (pool.name, track.name) in self._failed:
            return 0
        try:
            windows = track.excerpts(len(slots), self.window, rng)
        except Exception as error:  # noqa: BLE001 - one unreadable track must not stop training
            self._failed.add((pool.name, track.name))
            self.log(f"bank: {pool.name}/{track.name}: left out ({type(error).__name__}: {error})")
            return 0
        solo = target_index(track.solo_target) if track.solo_target else -1
        with self._lock:
            for slot, window in zip(slots, windows):
                self.audio[slot] = torch.from_numpy(window).to(self.device, self.config.storage)
                self.known[slot] = torch.as_tensor(track.known)
                self.solo[slot] = solo
            self.windows_loaded += len(windows)
        return len(windows)

    def _all_failed(self, pool: PoolSlots) -> bool:
        return all((pool.name, t.name) in self._failed for t in pool.tracks)

    # ------------------------------------------------------------------ drawing

    def sample(self, batch_size: int) -> Batch:
        """A batch of remixed, augmented examples on the device (see the module doc)."""
        rng, config = self.rng, self.augment
        count = len(TARGETS)
        index = np.zeros((batch_size, count), np.int64)
        start = np.zeros((batch_size, count), np.int64)
        speed = np.ones((batch_size, count))
        chosen = rng.choice(len(self._drawn), size=batch_size, p=self._probabilities)
        names = []
        for b, which in enumerate(chosen):
            pool = self.pools[self._drawn[which]]
            names.append(pool.name)
            per_stem = pool.backing is None and rng.random() < pool.dynamic_mix
            if per_stem:
                index[b] = self._slots(pool, count)
                speed[b] = self._speeds(count)
                start[b] = [self._start(s) for s in speed[b]]
                continue
            speed[b] = self._speeds(1)[0]
            start[b] = self._start(speed[b, 0])
            if pool.backing is None:
                index[b] = self._slots(pool)
            else:
                clip = int(self._slots(pool))
                index[b] = self._slots(self.pools[self._by_name[pool.backing]])
                own = int(self.solo[clip])
                if own >= 0:  # the clip's own stem, from anywhere in its window, over the backing song
                    index[b, own], start[b, own] = clip, self._start(speed[b, own])
        with self._lock:  # a refill thread may be rewriting a slot: read its mask and audio together
            known = self.known[torch.from_numpy(index[:, OTHER_INDEX])].clone()
            stems = augment.gather_excerpts(self.audio, torch.from_numpy(index), torch.from_numpy(start),
                                            torch.from_numpy(speed).float(), self.length)
        known[:, OTHER_INDEX] = True
        stems = augment.gains_and_swaps(stems, self.generator, config)
        stems = augment.equalise(stems, self.generator, config, SAMPLE_RATE)
        stems = augment.rescale_to_avoid_clipping(stems, config.clip_limit)
        if self.config.refill_per_batch > 0:
            with self._wake:
                self._allowance = min(self._allowance + self.config.refill_per_batch, 4.0 * self.slots)
                self._wake.notify()
            if not self._threads and self.config.threads == 0:
                while self._allowance >= 1:  # no refill threads: refill here, between batches
                    self._refill_once(self._refill_rng)
        return Batch(augment.mix(stems), stems, known.to(self.device), names)

    def _slots(self, pool: PoolSlots, size: int | None = None):
        """Random slot(s) of ``pool``."""
        return pool.first + self.rng.integers(pool.count, size=size)

    def _speeds(self, size: int) -> np.ndarray:
        low, high = self.augment.speed
        speeds = self.rng.uniform(low, high, size)
        return np.where(self.rng.random(size) < self.augment.speed_probability, speeds, 1.0)

    def _start(self, speed: float) -> int:
        span = int(math.ceil(speed * (self.length - 1))) + 2
        return int(self.rng.integers(0, max(0, self.window - span) + 1))

    # ------------------------------------------------------------------ bundles

    def save_bundle(self, path: str | Path, quality: float = 0.5) -> int:
        """Write the bank as a zip of 10-channel Ogg Vorbis windows (``quality`` 0 worst .. 1 best) plus
        ``index.json``; returns the file's size in bytes. Written beside and renamed, never half-written."""
        path = Path(path)
        index = {"format": BUNDLE_FORMAT, "sample_rate": SAMPLE_RATE, "length": self.length, "window": self.window,
                 "targets": list(TARGETS), "slots": self.slots,
                 "pools": [{"name": p.name, "weight": p.weight, "dynamic_mix": p.dynamic_mix, "backing": p.backing,
                            "first": p.first, "count": p.count, "licence": p.licence, "hours": p.hours}
                           for p in self.pools],
                 "known": self.known.int().tolist(), "solo": self.solo.tolist()}
        temp = path.with_name(path.name + ".partial")
        with zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("index.json", json.dumps(index))
            with self._lock:
                audio = self.audio.float().cpu().numpy()
            for slot in range(self.slots):
                buffer = io.BytesIO()
                frames = audio[slot].reshape(len(TARGETS) * 2, self.window).T
                sf.write(buffer, np.clip(frames, -1, 1), SAMPLE_RATE, format="OGG", subtype="VORBIS",
                         compression_level=1.0 - quality)
                archive.writestr(f"windows/{slot:06d}.ogg", buffer.getvalue())
        temp.replace(path)
        return path.stat().st_size

    @classmethod
    def from_bundle(cls, path: str | Path, device: torch.device | str = "cpu", config: BankConfig | None = None,
                    augment_config: AugmentConfig | None = None, seed: int = 0,
                    log: Callable[[str], None] = print) -> "TrainingBank":
        """A frozen bank (no refills) from a bundle written by :meth:`save_bundle`."""
        with zipfile.ZipFile(path) as archive:
            index = json.loads(archive.read("index.json"))
            if index.get("format") != BUNDLE_FORMAT or index.get("targets") != list(TARGETS):
                raise ValueError(f"{path}: not a stemcut training bank bundle of format {BUNDLE_FORMAT}")
            bank = cls.__new__(cls)
            bank.config = config or BankConfig()
            bank.config.refill_per_batch = 0.0
            bank.augment = augment_config or AugmentConfig()
            bank.device = torch.device(device)
            bank.length, bank.window, bank.log = index["length"], index["window"], log
            bank.pools = [PoolSlots(p["name"], p["weight"], p["dynamic_mix"], p["backing"], p["first"], p["count"],
                                    (), p.get("licence", ""), p.get("hours", 0.0)) for p in index["pools"]]
            bank._allocate_storage(index["slots"])
            for slot in range(index["slots"]):
                frames, _ = sf.read(io.BytesIO(archive.read(f"windows/{slot:06d}.ogg")), dtype="float32",
                                    always_2d=True)
                window = np.zeros((len(TARGETS) * 2, bank.window), np.float32)
                window[:, : min(bank.window, frames.shape[0])] = frames.T[:, : bank.window]
                bank.audio[slot] = torch.from_numpy(window.reshape(len(TARGETS), 2, bank.window)).to(
                    bank.device, bank.config.storage)
        bank.known = torch.tensor(index["known"], dtype=torch.bool)
        bank.solo = torch.tensor(index["solo"], dtype=torch.long)
        bank._start_state(seed)
        bank.windows_loaded = index["slots"]
        return bank
