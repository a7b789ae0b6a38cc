"""The one file loop: read, resample, chunk, separate, write, clean up.

:func:`separate_file` streams one input through a :class:`stemcut.separator.Separator`
into a :class:`Sink`. Sinks only encode: a sink names the blocks it wants
(``sources``: per output track, the stems or derived outputs summed into it) and
gets exactly those, block by block; the loop owns reading (a read-ahead thread),
progress, the writer thread and what happens on an error (the sink is aborted, so
nothing half-written is left where a finished file belongs). Sinks: :class:`stemcut.audio.StemFilesSink`
(one WAV/FLAC/OGG/MP3 per output) and :class:`stemcut.nistems.StemContainerSink`
(one NI ``.stem.mp4``); an output spec makes its own with ``spec.sink(outputs)``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from .audio import AudioError, AudioInfo, AudioReader
from .separator import READ_BLOCK, Separator
from .targets import MIXTURE, derive_output


class Sink(Protocol):
    """Where one input's outputs go. ``sources[k]`` names what is summed into track k."""

    sources: Sequence[tuple[str, ...]]
    clipped_samples: int

    def open(self, sample_rate: int, channels: int, frames_hint: int) -> None: ...

    def write(self, blocks: list[np.ndarray]) -> None: ...

    def commit(self) -> dict[str, Path]: ...

    def abort(self) -> None: ...


@dataclass
class FileResult:
    """What separating one file produced."""

    input: Path
    outputs: dict[str, Path]
    sample_rate: int
    channels: int
    frames: int
    clipped_samples: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def separate_file(separator: Separator, path: os.PathLike | str, sink: Sink,
                  progress: Callable[[int], None] | None = None, source: "ReadAhead | None" = None) -> FileResult:
    """Separate ``path`` into ``sink``; ``progress`` gets the input frames done after each block.
    ``source``: ``path`` already opened and decoding ahead (the batch runner opens the next
    file while this one computes); it is closed here either way.

    Every output is complete when this returns; on any error (and on Ctrl-C) the
    sink is aborted and the error goes on to the caller."""
    started = time.perf_counter()
    names = {name for group in sink.sources for name in group} - {MIXTURE}
    unknown = names - set(separator.available_outputs())
    if unknown:
        if source is not None:
            source.close()
        raise ValueError(f"this model set cannot produce {', '.join(sorted(unknown))} "
                         f"(it gives {', '.join(separator.available_outputs())})")
    stems_order = separator.stems
    # Decoding runs on its own thread too, a few blocks ahead of the compute.
    with source if source is not None else ReadAhead(path) as reader:
        info = reader.info
        sink.open(info.sample_rate, info.channels, info.frames)
        try:
            def write(mixture: np.ndarray, stems: np.ndarray) -> None:
                sink.write([_sum(derive_output(name, stems_order, mixture, stems) for name in group)
                            for group in sink.sources])
                if progress is not None:
                    progress(mixture.shape[1])

            # Encoding runs on its own thread, overlapping the next segments' compute;
            # at most one block waits for it, so memory stays bounded.
            with _BackgroundWriter(write, depth=1) as background:
                for mixture, stems in separator.stream(reader.blocks(), info.sample_rate, info.channels):
                    background.put(mixture, stems)
            if reader.frames_read == 0:
                raise AudioError(path, "contains no audio samples")
            written = sink.commit()
        except BaseException:
            sink.abort()
            raise
    warnings = []
    if reader.shortfall:
        warnings.append(f"the header promises {reader.promised_frames} frames but the file holds {reader.frames_read}: "
                        "separated what is there (a cut-off file?)")
    return FileResult(Path(path), written, info.sample_rate, info.channels, reader.frames_read,
                      clipped_samples=sink.clipped_samples, seconds=time.perf_counter() - started,
                      warnings=warnings)


def _sum(blocks) -> np.ndarray:
    blocks = list(blocks)
    return blocks[0] if len(blocks) == 1 else np.sum(blocks, axis=0)


READ_AHEAD = 4  # blocks decoded ahead of the compute (4 x 64k frames: 1.5 s of 44.1 kHz stereo, 2 MiB)


class ReadAhead:
    """Opens ``path`` and decodes its blocks on one thread, at most ``depth`` blocks ahead.

    Reads like an :class:`AudioReader` (``info``, ``blocks()``, ``frames_read``,
    ``shortfall``, ``promised_frames``), the thread starting at once. An error of the
    file (an :class:`AudioError` names it) is raised in the caller where the reader met
    it: ``info`` for one that cannot be opened, ``blocks()`` for one that breaks off.
    ``close()`` (or leaving the ``with``) stops the thread, waits for it and closes
    the file: nothing is left running."""

    _END = object()

    def __init__(self, path: os.PathLike | str, depth: int = READ_AHEAD, block_frames: int = READ_BLOCK):
        self.path = Path(path)
        self.frames_read = 0
        self.shortfall = 0
        self.promised_frames: int | None = None
        self._block_frames = block_frames
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._info = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stemcut-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with AudioReader(self.path) as reader:
                self._info = reader.info
                self._opened.set()
                for block in reader.blocks(self._block_frames):
                    if not self._put(block):
                        return
                self.frames_read, self.shortfall = reader.frames_read, reader.shortfall
                self.promised_frames = reader.promised_frames
            self._put(self._END)
        except BaseException as error:  # handed to the caller
            self._error = error
            self._opened.set()
            self._put(self._END)

    def _put(self, item) -> bool:
        """Queue ``item`` unless stopped first; False once stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    @property
    def info(self) -> AudioInfo:
        self._opened.wait()
        if self._info is None:
            raise self._error
        return self._info

    def blocks(self) -> Iterator[np.ndarray]:
        """The file's blocks in order, ``block_frames`` long (the last may be shorter)."""
        while True:
            item = self._queue.get()
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _BackgroundWriter:
    """Runs ``write(*item)`` for each ``put`` item on one thread, in order.

    ``put`` blocks while ``depth`` items wait. An exception raised by ``write`` is
    re-raised in the caller (at the next ``put`` or on leaving the ``with``)."""

    _STOP = object()

    def __init__(self, write: Callable[..., None], depth: int = 1):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stemcut-writer", daemon=True)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            if self._error is None:
                try:
                    self._write(*item)
                except BaseException as error:  # handed to the caller
                    self._error = error

    def put(self, *item) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def __enter__(self) -> "_BackgroundWriter":
        self._thread.start()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self._queue.put(self._STOP)
        self._thread.join()
        if kind is None and self._error is not None:
            raise self._error
