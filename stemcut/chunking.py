"""Chunked overlap-add: run a model on fixed-length segments of an endless stream.

Kept apart from the models (as Demucs keeps ``apply.py`` apart): this module knows
nothing about spectrograms or stems beyond the array shapes it passes through.

Segments of ``segment`` samples start every ``hop = segment - overlap`` samples.
Each result is multiplied by a window whose linear fade-in and fade-out over the
``overlap`` samples sum to exactly one with the neighbouring windows (COLA), then
added up. The sum is divided by the accumulated window weight, which is one
everywhere but at the very start and end of the stream, where only one segment
contributes; so an identity process gives back its input, for any length.

A stream no longer than one segment is one zero-padded segment, whose window
divides out. Given ``short``, the chunker hands such a stream over unpadded, with
the segment length, and ``short`` returns what ``process`` would have given on the
padded segment (the separator computes that without the padding).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

# process(segments[K, C, L]) -> results[K, S, C, L], or a function that waits for them
# (the work still running: a GPU's queue, worker threads)
SegmentProcess = Callable[[np.ndarray], "np.ndarray | Callable[[], np.ndarray]"]
# short(stream[1, C, n], segment) -> results[1, S, C, n]: process's result on the stream
# zero-padded to `segment` samples, cut back to n
ShortProcess = Callable[[np.ndarray, int], np.ndarray]


def cola_window(segment: int, overlap: int) -> np.ndarray:
    """Trapezoid window: linear fades of ``overlap`` samples, flat in between.
    Fade values are taken at sample centres, so no weight is ever zero."""
    window = np.ones(segment, dtype=np.float64)
    if overlap:
        fade = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap
        window[:overlap] = fade
        window[segment - overlap:] = 1.0 - fade
    return window


class OverlapAdd:
    """Streams (channels, frames) blocks through ``process`` in overlapping segments.

    ``batch_size`` segments are handed to ``process`` at once when the stream has
    them, which lets a model run them as one batch. A ``process`` that returns a
    function to wait on, rather than the results, is pipelined one batch deep: the
    next batch is cut and handed over before the last one's results are awaited and
    added. Memory holds about ``segment + batch_size * hop`` frames of input and
    output, plus one batch of results in flight, whatever the stream's length.
    """

    def __init__(self, segment: int, overlap: int, batch_size: int = 1):
        if segment < 1:
            raise ValueError("segment must be at least one sample")
        if not 0 <= overlap <= segment // 2:
            raise ValueError("overlap must be between 0 and half a segment")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.segment = segment
        self.overlap = overlap
        self.hop = segment - overlap
        self.batch_size = batch_size
        self.window = cola_window(segment, overlap)
        self._window32 = self.window.astype(np.float32)

    def __call__(self, blocks: Iterable[np.ndarray], process: SegmentProcess,
                 short: ShortProcess | None = None) -> Iterator[np.ndarray]:
        """Yield result blocks of shape (S, C, n); together they span exactly the input.
        A stream of at most one segment goes to ``short`` instead, if given."""
        segment, hop = self.segment, self.hop
        pending: list[np.ndarray] = []   # input not yet cut, from the next segment's start
        pending_frames = 0
        # Weighted results from `emitted` onwards, in float32 (the window weights sum to
        # one, so float32 keeps an identity process exact to ~1e-7). `acc` is allocated
        # once for a full batch and reused: emitted frames are dropped by moving the
        # short unfinished tail to the front, not by concatenating new arrays.
        acc: np.ndarray | None = None
        filled = 0                        # frames of `acc` (and `weight`) in use
        weight = np.zeros(segment + self.batch_size * hop, dtype=np.float32)
        window = self._window32
        emitted = 0                       # absolute frame where `acc` starts
        next_start = 0                    # absolute frame where the next segment starts
        total = 0
        in_flight: tuple[int, int, Callable[[], np.ndarray]] | None = None  # start, count, wait

        def run(segments: list[np.ndarray]) -> Iterator[np.ndarray]:
            nonlocal next_start, in_flight
            start, count = next_start, len(segments)
            results = process(np.stack(segments))
            next_start += hop * count
            previous, in_flight = in_flight, None
            if previous is not None:
                yield from add(previous[0], previous[1], previous[2]())
            if callable(results):
                in_flight = (start, count, results)
            else:
                yield from add(start, count, results)

        def land() -> Iterator[np.ndarray]:
            nonlocal in_flight
            if in_flight is not None:
                start, count, wait = in_flight
                in_flight = None
                yield from add(start, count, wait())

        def add(start: int, count: int, results: np.ndarray) -> Iterator[np.ndarray]:
            nonlocal acc, filled
            needed = start - emitted + hop * (count - 1) + segment
            if acc is None or acc.shape[:2] != results.shape[1:3] or acc.shape[-1] < needed:
                grown = np.zeros(results.shape[1:3] + (max(needed, weight.shape[0]),), dtype=np.float32)
                if acc is not None:
                    grown[..., :filled] = acc[..., :filled]
                acc = grown
            if weight.shape[0] < acc.shape[-1]:
                grow_weight(acc.shape[-1])
            scratch = np.empty(results.shape[1:], dtype=np.float32)
            for index, result in enumerate(results):
                offset = start - emitted + index * hop
                acc[..., offset:offset + segment] += np.multiply(result, window, out=scratch)
                weight[offset:offset + segment] += window
                filled = max(filled, offset + segment)
            # Frames before the next batch's first segment are complete.
            yield from emit(min(start + hop * count, total) - emitted)

        def grow_weight(size: int) -> None:
            nonlocal weight
            grown = np.zeros(size, dtype=np.float32)
            grown[:weight.shape[0]] = weight
            weight = grown

        def emit(count: int) -> Iterator[np.ndarray]:
            nonlocal filled, emitted
            if count <= 0:
                return
            if acc is None:  # nothing was processed: only possible for an empty result
                return
            yield acc[..., :count] / weight[:count]
            rest = filled - count
            if rest > 0:
                acc[..., :rest] = acc[..., count:filled]
                weight[:rest] = weight[count:filled]
            acc[..., max(rest, 0):filled] = 0.0
            weight[max(rest, 0):filled] = 0.0
            filled = max(rest, 0)
            emitted += count

        def cut(count: int) -> list[np.ndarray]:
            nonlocal pending, pending_frames
            joined = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
            segments = []
            for index in range(count):
                piece = joined[:, index * hop:index * hop + segment]
                if piece.shape[1] < segment:
                    piece = np.pad(piece, ((0, 0), (0, segment - piece.shape[1])))
                segments.append(piece)
            rest = joined[:, count * hop:]
            pending, pending_frames = [rest], rest.shape[1]
            return segments

        for block in blocks:
            pending.append(np.asarray(block, dtype=np.float32))
            pending_frames += block.shape[1]
            total += block.shape[1]
            # A batch of k segments needs segment + (k - 1) * hop frames.
            while pending_frames >= segment + (self.batch_size - 1) * hop:
                yield from run(cut(self.batch_size))

        if total == 0:
            return
        if short is not None and next_start == 0 and total <= segment:
            joined = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
            yield np.ascontiguousarray(short(joined[None, :, :total], segment)[0])
            return
        # Tail: cover every remaining frame with at least one (zero-padded) segment.
        remaining = total - next_start
        count = 0
        while (next_start == 0 and count == 0) or remaining - count * hop > self.overlap:
            count += 1
        if count:
            segments = cut(count)
            for start in range(0, count, self.batch_size):
                yield from run(segments[start:start + self.batch_size])
        yield from land()
        yield from emit(total - emitted)
