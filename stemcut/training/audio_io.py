"""Reading training audio into float32 stereo at 44.1 kHz (soundfile, PyAV, soxr)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from stemcut.audio import load_audio

from stemcut.training.targets import SAMPLE_RATE


@dataclass(frozen=True)
class LoadedAudio:
    """Audio as ``[2, T]`` float32 at 44.1 kHz plus what it was before conversion."""

    samples: np.ndarray
    source_rate: int
    was_mono: bool


def to_training_format(samples: np.ndarray, rate: int) -> LoadedAudio:
    """Convert ``[channels, T]`` audio to stereo 44.1 kHz float32.

    Mono is duplicated to both channels; more than two channels keep the first two.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None]
    was_mono = samples.shape[0] == 1
    if was_mono:
        samples = np.repeat(samples, 2, axis=0)
    samples = samples[:2]
    if rate != SAMPLE_RATE and samples.shape[1] > 0:
        samples = soxr.resample(samples.T, rate, SAMPLE_RATE, quality="HQ").T
    return LoadedAudio(np.ascontiguousarray(samples, dtype=np.float32), rate, was_mono)


def read_audio_file(path: str | Path) -> LoadedAudio:
    """Read a WAV/FLAC/OGG/MP3 file with soundfile into training format."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return to_training_format(data.T, rate)


def read_stem_mp4_streams(path: str | Path) -> tuple[list[np.ndarray], int]:
    """Decode every audio stream of an MP4 (e.g. NI ``.stem.mp4``) with the engine's reader.

    Returns one ``[channels, T]`` float32 array per stream, in stream order, and the
    sample rate of the first stream. Streams are cut to the shortest length (AAC
    priming makes them differ by a few samples at most).
    """
    import av  # local import: only MP4 reading needs the FFmpeg libraries

    with av.open(str(path)) as container:
        n_streams = len(container.streams.audio)
    loaded = [load_audio(path, stream=index) for index in range(n_streams)]
    decoded = [audio for audio, _ in loaded]
    length = min(a.shape[1] for a in decoded)
    return [a[:, :length] for a in decoded], loaded[0][1]
