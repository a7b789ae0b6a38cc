"""SeparationSettings: how a separation runs, in the units a person gives them.

``segment`` is seconds and ``overlap`` a fraction of a segment everywhere: on the
command line, here, in the resume record and in the JSON report. Only
:meth:`SeparationSettings.chunking` turns them into samples, once, where the
chunker is built. Nothing reads a setting back out of an object that converted it.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace


class SettingsError(ValueError):
    """A setting out of its range; the message names the option and the allowed range."""


# Settings that change the stems written (the resume fingerprint); the others only
# change how fast they are made.
OUTPUT_AFFECTING = ("segment", "overlap", "wiener", "wiener_iterations")
MAX_SEGMENT_SECONDS = 3600.0
# Segments per model call on a GPU when --batch-size is not given. A 10 s stereo segment
# at n_fft 4096, hop 1024 holds ~14 MB of complex spectrogram; with five targets' estimates,
# shares, the Wiener filter's covariances and the stems one item peaks at a few hundred MB,
# so 16 fit any GPU with a few GB free, while a 10-minute song (67 segments) still makes five batches
# (the pipeline overlaps one batch's copies and overlap-add with the next one's compute).
GPU_BATCH_SIZE = 16


@dataclass(frozen=True)
class Chunking:
    """Segment and overlap in samples at the model rate."""

    segment: int
    overlap: int


@dataclass(frozen=True)
class SeparationSettings:
    """Everything but the models and the output format that decides a separation.

    segment: seconds of audio the models see at once; overlap: cross-fade as a
    fraction of a segment (0-0.5); batch_size: segments through the models at
    once (per worker; None: by device, see :func:`resolve_batch_size`); wiener /
    wiener_iterations: the multichannel post-filter; device: 'auto', 'cpu',
    'cuda' or 'cuda:N'; threads: CPU worker threads (None: torch's choice, see
    :meth:`workers`)."""

    segment: float = 10.0
    overlap: float = 0.1
    batch_size: int | None = None
    wiener: bool = False
    wiener_iterations: int = 1
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        _check_number("segment", self.segment, 0.05, MAX_SEGMENT_SECONDS, "seconds")
        _check_number("overlap", self.overlap, 0.0, 0.5, "of a segment")
        if self.batch_size is not None:
            _check_int("batch-size", self.batch_size, 1, 4096)
        _check_int("wiener-iterations", self.wiener_iterations, 0, 100)
        if self.threads is not None:
            _check_int("threads", self.threads, 1, 1024)

    def with_changes(self, **changes) -> "SeparationSettings":
        return replace(self, **changes)

    def chunking(self, sample_rate: int, hop: int) -> Chunking:
        """Segment and overlap in samples at ``sample_rate``; a segment spans at least two STFT hops."""
        segment = max(int(round(self.segment * sample_rate)), 2 * hop)
        return Chunking(segment, int(round(self.overlap * segment)))

    def workers(self, device_type: str) -> int:
        """Worker threads for the model step: on the CPU ``threads``, else torch's own thread
        count (its choice of cores) capped by the CPUs this process may use; one on a GPU."""
        if device_type != "cpu":
            return 1
        if self.threads is not None:
            return self.threads
        import torch

        try:
            usable = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            usable = os.cpu_count() or 1
        return max(1, min(usable, torch.get_num_threads()))

    def describe(self) -> dict:
        """All settings, in their own units (the JSON report)."""
        return asdict(self)

    def fingerprint(self) -> dict:
        """The settings that change the stems (the resume record); iterations count only with Wiener on."""
        data = {name: getattr(self, name) for name in OUTPUT_AFFECTING}
        if not self.wiener:
            data["wiener_iterations"] = 0
        return data


def resolve_batch_size(batch_size: int | None, device_type: str) -> int:
    """The one place 'auto' (None) becomes a batch size: one on the CPU (where worker threads
    run segments in parallel instead), :data:`GPU_BATCH_SIZE` on a GPU; batching never
    changes the stems."""
    if batch_size is not None:
        return batch_size
    return 1 if device_type == "cpu" else GPU_BATCH_SIZE


def _check_number(option: str, value: float, low: float, high: float, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise SettingsError(f"--{option} must be a number from {low:g} to {high:g} {unit}, got {value!r}")


def _check_int(option: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"--{option} must be a whole number from {low} to {high}, got {value!r}")
