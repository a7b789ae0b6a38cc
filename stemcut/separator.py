"""The separator: one code path from mixture blocks to stem blocks.

    decode -> resample to the model rate -> chunk -> STFT -> masks -> (Wiener)
    -> iSTFT -> overlap-add -> resample back -> exact length -> stems

The CLI, batch jobs, evaluation and benchmarks all go through
:meth:`Separator.stream`. Stems always sum to the input mixture: whatever the
models leave unexplained (content above the model's Nyquist frequency in a
96 kHz file, resampling error, the Wiener filter's small mismatch) is added to
``other``, never spread by rescaling stems one by one.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import soxr
import torch

from .audio import AudioError, AudioReader, AudioWriter, OutputSpec
from .chunking import OverlapAdd
from .filtering import apply_mask, istft, ratio_shares, wiener
from .models import STFT
from .targets import KARAOKE_STEM, TARGETS
from .weights import ModelError, default_model_dir, load_model, model_specs

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
    extra: dict = field(default_factory=dict)


class Separator:
    """Loads a model set and separates audio with bounded memory.

    ``segment`` (seconds) and ``overlap`` (fraction of a segment, at most 0.5)
    set the chunking; ``batch_size`` segments run through the models at once.
    """

    def __init__(self, model_dir: os.PathLike | str | None = None, *, device: str = "auto",
                 wiener: bool = False, wiener_iterations: int = 1, segment: float = 10.0,
                 overlap: float = 0.1, batch_size: int = 1, threads: int | None = None):
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        if segment <= 0:
            raise ValueError("segment must be positive")
        if not 0.0 <= overlap <= 0.5:
            raise ValueError("overlap must be between 0 and 0.5")
        if wiener_iterations < 0:
            raise ValueError("wiener iterations must be 0 or more")
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.device = resolve_device(device)
        self.use_wiener = wiener
        self.wiener_iterations = wiener_iterations
        specs = model_specs(self.model_dir)
        first = specs[0]
        for spec in specs[1:]:
            if (spec.sample_rate, spec.n_fft, spec.hop) != (first.sample_rate, first.n_fft, first.hop):
                raise ModelError(f"{spec.path}: sample rate/STFT differ from {first.path}; a set must share them")
        self.specs = specs
        self.sample_rate = first.sample_rate
        self.stft = STFT(first.n_fft, first.hop).to(self.device)
        self.models = [load_model(spec).to(self.device) for spec in specs]
        self.model_channels = int(first.params.get("channels", 2))
        # `other` is the catch-all stem; a set without an `other` model gets it as the remainder.
        self.targets = [spec.target for spec in specs]
        self.stems = self.targets + ([] if "other" in self.targets else ["other"])
        self.segment = max(int(round(segment * self.sample_rate)), 2 * first.hop)
        self.overlap = int(round(overlap * self.segment))
        self.batch_size = batch_size
        # On the CPU, segments run in parallel on `workers` threads of one torch thread
        # each: small LSTM/FFT kernels scale far better that way than with intra-op
        # threads, and idle OpenMP threads do not spin against other busy processes.
        # Elsewhere (GPU), one worker with torch's own threading.
        if self.device.type == "cpu":
            self.workers = threads or max(1, min(os.cpu_count() or 1, torch.get_num_threads()))
            torch.set_num_threads(1)
        else:
            self.workers = 1
            if threads:
                torch.set_num_threads(threads)
        self._pool = (ThreadPoolExecutor(self.workers, thread_name_prefix="stemcut", initializer=torch.set_num_threads,
                                         initargs=(1,)) if self.workers > 1 else None)

    # -- the model step: segments at the model rate --------------------------------

    def process_segments(self, segments: np.ndarray) -> np.ndarray:
        """segments (K, C, L) at the model rate -> stems (K, S, C, L).

        Channels are paired to fit stereo models; a lone channel (mono input, or
        the last of an odd count) is doubled and its two results averaged. On the
        CPU the stereo items are shared out between ``self.workers`` threads (one
        torch thread each), each running up to ``batch_size`` items at once."""
        count, channels, length = segments.shape
        pairs = [(c, min(c + 1, channels - 1)) for c in range(0, channels, 2)]
        grouped = np.stack([segments[:, list(pair)] for pair in pairs], axis=1)  # K, G, 2, L
        items = grouped.reshape(-1, 2, length)
        out = np.empty((count, len(self.stems), channels, length), dtype=np.float32)

        def work(start: int, stop: int) -> None:
            # Each worker writes its items' stems straight into `out` (no batch-sized copies).
            with torch.inference_mode():
                stems = self._separate(torch.from_numpy(items[start:stop]).to(self.device)).cpu().numpy()
            for position, item in enumerate(range(start, stop)):
                segment, group = divmod(item, len(pairs))
                left, right = pairs[group]
                if left == right:
                    out[segment, :, left] = stems[:, position].mean(axis=1)
                else:
                    out[segment, :, left] = stems[:, position, 0]
                    out[segment, :, right] = stems[:, position, 1]

        step = self.batch_size
        if self.workers > 1 and items.shape[0] > 1:
            step = min(step, -(-items.shape[0] // self.workers))
        spans = [(start, min(start + step, items.shape[0])) for start in range(0, items.shape[0], step)]
        if len(spans) > 1 and self._pool is not None:
            for future in [self._pool.submit(work, *span) for span in spans]:
                future.result()
        else:
            for span in spans:
                work(*span)
        return out

    def _separate(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, 2, L) -> (S, B, 2, L).

        Spectrograms are held frames-major, (B, 2, T, F): the layout the mask models
        produce and the inverse FFT reads, so no full-size transposed copies are
        made. One magnitude estimate per stem is kept, and one complex stem
        spectrogram at a time (not S of them)."""
        length = audio.shape[-1]
        spectrogram = self.stft(audio).transpose(-1, -2).contiguous()   # B, 2, T, F
        magnitude = spectrogram.abs()
        estimates = torch.empty((len(self.stems),) + magnitude.shape, device=magnitude.device)
        for index, model in enumerate(self.models):
            torch.mul(model(magnitude.transpose(-1, -2)).transpose(-1, -2), magnitude, out=estimates[index])
        if "other" not in self.targets:
            estimates[-1] = torch.relu(magnitude - estimates[:-1].sum(dim=0))
        del magnitude
        n_fft, hop, window = self.stft.n_fft, self.stft.hop, self.stft.window
        out = torch.empty((len(self.stems),) + audio.shape, device=audio.device)
        if self.use_wiener:
            stems = wiener(estimates.transpose(-1, -2), spectrogram.transpose(-1, -2), self.wiener_iterations)
            del estimates
            for index in range(len(self.stems)):
                out[index] = istft(stems[index].transpose(-1, -2), n_fft, hop, window, length, frames_major=True)
            return out
        # Ratio mask, one stem at a time; `other` is the time-domain remainder, which
        # is what the shares summing to one give it anyway (to float rounding).
        shares = ratio_shares(estimates)
        other = self.stems.index("other")
        for index in range(len(self.stems)):
            if index != other:
                out[index] = istft(apply_mask(shares[index], spectrogram), n_fft, hop, window, length,
                                   frames_major=True)
        out[other] = 0.0
        out[other] = audio - out.sum(dim=0)
        return out

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
        other = self.stems.index("other")
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

        chunker = OverlapAdd(self.segment, self.overlap, self.batch_size * self.workers)
        to_input = (soxr.ResampleStream(self.sample_rate, sample_rate, stem_count * channels, dtype="float32")
                    if resample else None)
        for stems in chunker(model_rate_blocks(), self.process_segments):
            if to_input is not None:
                flat = to_input.resample_chunk(np.ascontiguousarray(stems.reshape(-1, stems.shape[-1]).T), last=False)
                stems = np.ascontiguousarray(flat.T).reshape(stem_count, channels, -1)
            yield from finish(stems)
        if to_input is not None:
            flat = to_input.resample_chunk(np.zeros((0, stem_count * channels), np.float32), last=True)
            yield from finish(np.ascontiguousarray(flat.T).reshape(stem_count, channels, -1))
        if emitted < counted:  # resampling came up a few samples short: the mixture goes to `other`
            yield from finish(np.zeros((stem_count, channels, counted - emitted), np.float32))

    # -- conveniences over the stream ---------------------------------------------------

    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Separate a whole (C, N) array; returns {stem: (C, N)}. For short audio."""
        audio = np.asarray(audio, dtype=np.float32)
        blocks = (audio[:, start:start + READ_BLOCK] for start in range(0, audio.shape[1], READ_BLOCK))
        pieces = [stems for _, stems in self.stream(blocks, sample_rate, audio.shape[0])]
        if not pieces:
            return {stem: np.zeros_like(audio) for stem in self.stems}
        joined = np.concatenate(pieces, axis=-1)
        return {stem: joined[index] for index, stem in enumerate(self.stems)}

    def available_outputs(self) -> list[str]:
        return self.stems + ([KARAOKE_STEM] if "vocals" in self.stems else [])

    def separate_file(self, path: os.PathLike | str, outputs: Mapping[str, os.PathLike | str], spec: OutputSpec,
                      progress: Callable[[int], None] | None = None) -> FileResult:
        """Separate ``path`` and write the stems named in ``outputs`` ({stem: file}).

        ``instrumental`` is the mixture minus ``vocals``. Each file is written under
        a temporary name and renamed when the whole input has been processed; on
        any error, nothing is left behind. ``progress`` gets input frames done."""
        import time

        started = time.perf_counter()
        unknown = set(outputs) - set(self.available_outputs())
        if unknown:
            raise ValueError(f"unknown stem(s) {', '.join(sorted(unknown))}; this model set gives "
                             f"{', '.join(self.available_outputs())}")
        with AudioReader(path) as reader:
            info = reader.info
            writers: dict[str, AudioWriter] = {}
            try:
                for name, target in outputs.items():
                    writers[name] = AudioWriter(target, info.sample_rate, info.channels, spec, frames_hint=info.frames)
                vocals = self.stems.index("vocals") if "vocals" in self.stems else None

                def write(mixture: np.ndarray, stems: np.ndarray) -> None:
                    for name, writer in writers.items():
                        writer.write(mixture - stems[vocals] if name == KARAOKE_STEM else stems[self.stems.index(name)])
                    if progress is not None:
                        progress(mixture.shape[1])

                # Encoding runs on its own thread, overlapping the next segments' compute;
                # at most one block waits for it, so memory stays bounded.
                with _BackgroundWriter(write, depth=1) as background:
                    for mixture, stems in self.stream(reader.blocks(READ_BLOCK), info.sample_rate, info.channels):
                        background.put(mixture, stems)
                if reader.frames_read == 0:
                    raise AudioError(path, "contains no audio samples")
                written = {name: writer.commit() for name, writer in writers.items()}
            except BaseException:
                for writer in writers.values():
                    writer.abort()
                raise
        return FileResult(Path(path), written, info.sample_rate, info.channels, reader.frames_read,
                          clipped_samples=sum(w.clipped_samples for w in writers.values()),
                          seconds=time.perf_counter() - started)


class _BackgroundWriter:
    """Runs ``write(*item)`` for each ``put`` item on one thread, in order.

    ``put`` blocks while ``depth`` items wait. An exception raised by ``write`` is
    re-raised in the caller (at the next ``put`` or on leaving the ``with``)."""

    _STOP = object()

    def __init__(self, write: Callable[..., None], depth: int = 1):
        import queue

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


__all__ = ["Separator", "FileResult", "KARAOKE_STEM", "TARGETS", "resolve_device"]
