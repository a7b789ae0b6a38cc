"""Separator: a model set on a device, streaming audio of any rate and length.

    blocks at the file's rate -> resample to the model rate -> chunk (OverlapAdd)
    -> MaskSeparator (STFT, masks, ratio or Wiener, iSTFT) -> overlap-add
    -> resample back -> exact length -> remainder into ``other``

The stems themselves are formed in :class:`stemcut.core.MaskSeparator`; this
module only feeds it segments (channels paired for stereo models, spread over
worker threads) and streams. Files are :mod:`stemcut.jobs`'s business.

Stems always sum to the input: whatever the models leave unexplained (content
above the model's Nyquist frequency in a 96 kHz file, resampling error, the
Wiener filter's small mismatch) is added to ``other``, never spread by rescaling
stems one by one.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import numpy as np
import soxr
import torch

from .chunking import OverlapAdd
from .core import MaskSeparator, Spread
from .settings import SeparationSettings, resolve_batch_size
from .targets import OTHER, available_outputs
from .weights import ModelError, ModelSet, load_model_set

READ_BLOCK = 65536


def resolve_device(device: str) -> torch.device:
    """'auto' -> first CUDA GPU if there is one, else CPU; 'cpu', 'cuda', 'cuda:N' as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but no CUDA GPU is available")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    elif resolved.type != "cpu":
        raise ValueError(f"unsupported device {device!r} (use auto, cpu, cuda or cuda:N)")
    return resolved


class Separator:
    """Separates audio with a :class:`MaskSeparator`, in bounded memory.

    ``models``: a model-set folder (default: the shipped ``weights/``), a loaded
    :class:`stemcut.weights.ModelSet`, or a :class:`MaskSeparator` at
    ``sample_rate`` (training validation passes its own). ``settings`` (or
    keyword overrides such as ``segment=5.0``) say how it runs.

    On the CPU the model step runs on ``settings.workers()`` threads of one torch
    thread each: small LSTM and FFT kernels scale far better that way than with
    intra-op threads. Those threads are the separator's own; the calling thread's
    torch settings are left as they were."""

    def __init__(self, models: MaskSeparator | ModelSet | os.PathLike | str | None = None,
                 settings: SeparationSettings | None = None, *, sample_rate: int | None = None, **overrides):
        settings = (settings or SeparationSettings()).with_changes(**overrides) if overrides else \
            (settings or SeparationSettings())
        self.device = resolve_device(settings.device)
        self.model_set: ModelSet | None = None
        if isinstance(models, MaskSeparator):
            if sample_rate is None:
                raise ValueError("a MaskSeparator needs its sample_rate")
            core = models
        else:
            self.model_set = models if isinstance(models, ModelSet) else load_model_set(models)
            sample_rate = self.model_set.sample_rate
            core = self.model_set.mask_separator()
        self.core = core.to(self.device).eval()
        self._wiener_iterations = settings.wiener_iterations if settings.wiener else None
        self.sample_rate = int(sample_rate)
        self.stems = list(core.stems)
        self.chunking = settings.chunking(self.sample_rate, core.stft.hop)
        self.workers = settings.workers(self.device.type)
        # `settings` as run: the batch size resolved for this device (the report shows it).
        self.settings = settings.with_changes(batch_size=resolve_batch_size(settings.batch_size, self.device.type))
        # Keeps no state between streams: built once (its window is a segment long).
        self._chunker = OverlapAdd(self.chunking.segment, self.chunking.overlap,
                                   self.settings.batch_size * self.workers)
        threads = 1 if self.device.type == "cpu" else settings.threads
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="stemcut",
                                        initializer=_init_worker, initargs=(threads, self.device))

    @property
    def model_dir(self):
        return self.model_set.folder if self.model_set is not None else None

    @property
    def model_ids(self) -> dict[str, str]:
        """{target: sha256 of its weights} (empty for an in-memory MaskSeparator)."""
        return self.model_set.checksums() if self.model_set is not None else {}

    def available_outputs(self) -> list[str]:
        return available_outputs(self.stems)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "Separator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the model step: segments at the model rate --------------------------------

    def process_segments(self, segments: np.ndarray, padded_length: int | None = None) -> np.ndarray:
        """segments (K, C, L) at the model rate -> stems (K, S, C, L); with ``padded_length``,
        the stems the segments would get zero-padded to that many samples."""
        return self.submit_segments(segments, padded_length)()

    def submit_segments(self, segments: np.ndarray, padded_length: int | None = None
                        ) -> Callable[[], np.ndarray]:
        """Start the model step on segments (K, C, L); returns a function that waits for
        their stems (K, S, C, L). The chunker hands over the next batch before waiting.

        Channels are paired to fit stereo models; a lone channel (mono input, or
        the last of an odd count) is doubled and its two results averaged. The
        stereo items are shared out between the worker threads, each running up to
        ``batch_size`` items at once. Workers left without items (a short stereo file
        is one item) take a share of the target models instead."""
        count, channels, length = segments.shape
        pairs = [(c, min(c + 1, channels - 1)) for c in range(0, channels, 2)]
        grouped = np.stack([segments[:, list(pair)] for pair in pairs], axis=1)  # K, G, 2, L
        items = grouped.reshape(-1, 2, length)
        step = self.settings.batch_size
        if self.workers > 1 and items.shape[0] > 1:
            step = min(step, -(-items.shape[0] // self.workers))
        spans = [(start, min(start + step, items.shape[0])) for start in range(0, items.shape[0], step)]
        idle = self.workers - len(spans)
        spread = self._spread(-(-idle // len(spans))) if idle > 0 else None
        futures = [self._pool.submit(self._run_items, items[start:stop], padded_length, spread)
                   for start, stop in spans]

        def wait() -> np.ndarray:
            out = np.empty((count, len(self.stems), channels, length), dtype=np.float32)
            for (start, stop), future in zip(spans, futures):
                host, ready = future.result()
                if ready is not None:
                    ready.synchronize()  # the copy into pinned memory has landed
                stems = host.numpy()
                for position, item in enumerate(range(start, stop)):
                    segment, group = divmod(item, len(pairs))
                    left, right = pairs[group]
                    if left == right:
                        out[segment, :, left] = stems[:, position].mean(axis=1)
                    else:
                        out[segment, :, left] = stems[:, position, 0]
                        out[segment, :, right] = stems[:, position, 1]
            return out
        return wait

    def _run_items(self, items: np.ndarray, padded_length: int | None, spread: Spread | None
                   ) -> tuple[torch.Tensor, "torch.cuda.Event | None"]:
        """Stereo items (B, 2, L) -> their stems (S, B, 2, L) on the host, and on a GPU the
        event that says they have arrived. A worker's job; on a GPU it only queues work:
        the upload from pinned memory, the models and the copy back all run without
        blocking, so the next batch is queued while this one computes."""
        gpu = self.device.type == "cuda"
        with torch.inference_mode(), _full_float32(gpu):
            batch = torch.from_numpy(items)
            if gpu:
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            stems = self.core(batch, self._wiener_iterations, padded_length, spread)
            if not gpu:
                return stems, None
            host = torch.empty(stems.shape, dtype=stems.dtype, pin_memory=True)
            host.copy_(stems, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record()
            return host, ready

    def _spread(self, helpers: int) -> Spread:
        """A map for the target models: the calling worker and up to ``helpers`` idle ones
        each take the next target until none is left. A helper that has not started by
        the time the caller ran out of targets is cancelled, not waited for: so it cannot
        deadlock, even when other calls keep every worker busy."""
        def spread(function, targets):
            targets = list(targets)
            results: list = [None] * len(targets)
            claim = itertools.count()  # next() on it is atomic: each target is taken once

            def drain() -> None:
                with torch.inference_mode():
                    for index in iter(lambda: next(claim), None):
                        if index >= len(targets):
                            return
                        results[index] = function(targets[index])

            lent = [self._pool.submit(drain) for _ in range(min(helpers, len(targets) - 1))]
            drain()
            for future in lent:
                if not future.cancel():
                    future.result()
            return results
        return spread

    # -- the stream: any rate, any length --------------------------------------------

    def stream(self, blocks: Iterable[np.ndarray], sample_rate: int, channels: int
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Separate a stream of (C, n) float32 blocks at ``sample_rate``.

        Yields (mixture (C, m), stems (S, C, m)) pairs that together span exactly
        the input, stems in the order of ``self.stems``, summing to the mixture."""
        resample = sample_rate != self.sample_rate
        mixture_queue: deque[np.ndarray] = deque()
        counted = 0

        def model_rate_blocks() -> Iterator[np.ndarray]:
            nonlocal counted
            to_model = soxr.ResampleStream(sample_rate, self.sample_rate, channels, dtype="float32") if resample else None
            for block in blocks:
                mixture_queue.append(block)
                counted += block.shape[1]
                if to_model is None:
                    yield block
                else:
                    converted = to_model.resample_chunk(np.ascontiguousarray(block.T), last=False)
                    if converted.shape[0]:
                        yield np.ascontiguousarray(converted.T)
            if to_model is not None:
                tail = to_model.resample_chunk(np.zeros((0, channels), np.float32), last=True)
                if tail.shape[0]:
                    yield np.ascontiguousarray(tail.T)

        def take_mixture(frames: int) -> np.ndarray:
            parts, needed = [], frames
            while needed:
                head = mixture_queue[0]
                if head.shape[1] <= needed:
                    parts.append(mixture_queue.popleft())
                    needed -= head.shape[1]
                else:
                    parts.append(head[:, :needed])
                    mixture_queue[0] = head[:, needed:]
                    needed = 0
            return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

        stem_count = len(self.stems)
        other = self.stems.index(OTHER)
        emitted = 0

        def finish(stems: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            # Never run past the input's length (resampling may round up a few samples).
            nonlocal emitted
            stems = stems[..., : counted - emitted]
            if stems.shape[-1] == 0:
                return
            mixture = take_mixture(stems.shape[-1])
            # `stems` is always a fresh array from the chunker or the resampler: add in place.
            stems[other] += mixture - stems.sum(axis=0)
            emitted += stems.shape[-1]
            yield mixture, stems

        to_input = (soxr.ResampleStream(self.sample_rate, sample_rate, stem_count * channels, dtype="float32")
                    if resample else None)
        # A stream shorter than a segment is separated as if padded to one (today's stems),
        # without computing the padding: no length hint is needed, the chunker knows at the end.
        for stems in self._chunker(model_rate_blocks(), self.submit_segments, self.process_segments):
            if to_input is not None:
                flat = to_input.resample_chunk(np.ascontiguousarray(stems.reshape(-1, stems.shape[-1]).T), last=False)
                stems = np.ascontiguousarray(flat.T).reshape(stem_count, channels, -1)
            yield from finish(stems)
        if to_input is not None:
            flat = to_input.resample_chunk(np.zeros((0, stem_count * channels), np.float32), last=True)
            yield from finish(np.ascontiguousarray(flat.T).reshape(stem_count, channels, -1))
        if emitted < counted:  # resampling came up a few samples short: the mixture goes to `other`
            yield from finish(np.zeros((stem_count, channels, counted - emitted), np.float32))

    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Separate a whole (C, N) array; returns {stem: (C, N)}. For short audio."""
        audio = np.asarray(audio, dtype=np.float32)
        blocks = (audio[:, start:start + READ_BLOCK] for start in range(0, audio.shape[1], READ_BLOCK))
        pieces = [stems for _, stems in self.stream(blocks, sample_rate, audio.shape[0])]
        if not pieces:
            return {stem: np.zeros_like(audio) for stem in self.stems}
        joined = np.concatenate(pieces, axis=-1)
        return {stem: joined[index] for index, stem in enumerate(self.stems)}


def _init_worker(count: int | None, device: torch.device) -> None:
    # torch's thread count (OpenMP's) and current CUDA device are per thread: the worker's own only.
    if count:
        torch.set_num_threads(count)
    if device.type == "cuda" and device.index is not None:  # plain 'cuda' is the current device already
        torch.cuda.set_device(device)


@contextmanager
def _full_float32(active: bool) -> Iterator[None]:
    """Float32 kernels in full precision while the models run on a GPU. torch lets cuDNN
    (LSTMs, convolutions) use TF32 by default, whose 10-bit mantissa moves stems far beyond
    float32 rounding. The flags are process-wide: only set on a GPU, whose one worker
    thread is the only one changing them."""
    if not active:
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


__all__ = ["Separator", "SeparationSettings", "ModelError", "resolve_device", "READ_BLOCK"]
