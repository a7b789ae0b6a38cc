"""Audio for the corpus: decode anything, write 44.1 kHz stereo 16-bit FLAC, block by block.

Decoding uses the engine's reader (:class:`stemcut.audio.AudioReader`: libsndfile for
Ogg/Opus/MP3/WAV/FLAC, FFmpeg for the rest), resampling a streaming soxr resampler, and
writing soundfile; memory stays bounded whatever the track's length. Files are written
under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from stemcut.atomic import partial_file, write_json
from stemcut.audio import AudioReader

from stemcut.training.targets import SAMPLE_RATE


@dataclass(frozen=True)
class Converted:
    """What one conversion wrote: its length in seconds at 44.1 kHz, the source rate and
    channels, the decoded peak and the gain applied (below 1 only when the peak was over
    full scale: the whole track is scaled down rather than clipped)."""

    seconds: float
    source_rate: int
    source_channels: int
    peak: float
    gain: float


def _stereo(block: np.ndarray) -> np.ndarray:
    """``(channels, frames)`` -> ``(frames, 2)``: mono duplicated, extra channels dropped."""
    if block.shape[0] == 1:
        block = np.repeat(block, 2, axis=0)
    return np.ascontiguousarray(block[:2].T, dtype=np.float32)


def convert_to_flac(source: Path, dest: Path, block_frames: int = 1 << 16) -> Converted:
    """Decode ``source``, resample to 44.1 kHz stereo and write ``dest`` as 16-bit FLAC.

    Two passes over a temporary 32-bit float WAV beside ``dest``: decoding and resampling
    find the peak, then the track is written with one gain that keeps it under full scale
    (lossy codecs decode a little over it; 16-bit PCM would clip there).
    """
    dest = Path(dest)
    floats, temp = partial_file(dest.with_suffix(".wav")), partial_file(dest)
    frames, peak = 0, 0.0
    try:
        with AudioReader(source) as reader:
            rate, channels = reader.info.sample_rate, reader.info.channels
            resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 2, dtype="float32", quality="HQ") if rate != SAMPLE_RATE else None
            with sf.SoundFile(floats, "w", SAMPLE_RATE, 2, subtype="FLOAT", format="WAV") as out:

                def write(chunk: np.ndarray) -> None:
                    nonlocal frames, peak
                    if chunk.size:
                        peak = max(peak, float(np.abs(chunk).max()))
                        out.write(chunk)
                        frames += chunk.shape[0]

                for block in reader.blocks(block_frames):
                    stereo = _stereo(block)
                    write(resampler.resample_chunk(stereo) if resampler else stereo)
                if resampler is not None:
                    write(resampler.resample_chunk(np.zeros((0, 2), np.float32), last=True))
        gain = 1.0 / peak if peak > 1.0 else 1.0
        with sf.SoundFile(floats) as inp, sf.SoundFile(temp, "w", SAMPLE_RATE, 2, subtype="PCM_16", format="FLAC") as out:
            for block in inp.blocks(block_frames, dtype="float32"):
                out.write(np.clip(block * gain, -1.0, 1.0))
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        floats.unlink(missing_ok=True)
    return Converted(frames / SAMPLE_RATE, rate, channels, peak, gain)


def write_flac(dest: Path, samples: np.ndarray) -> None:
    """Write ``(frames, 2)`` float samples at 44.1 kHz as 16-bit FLAC (clipped at full scale), atomically."""
    dest = Path(dest)
    temp = partial_file(dest)
    try:
        sf.write(temp, np.clip(samples, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="FLAC")
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_stem_folder(folder: Path, stems: dict[str, np.ndarray], meta: dict) -> None:
    """``<folder>/<stem>.flac`` for every ``(frames, 2)`` stem (16-bit 44.1 kHz) + ``meta.json``, written
    beside and renamed into place: the folder appears whole or not at all (an old one is replaced)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        for stem, audio in stems.items():
            sf.write(str(temp / f"{stem}.flac"), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16",
                     format="FLAC")
        write_json(temp / "meta.json", meta)
        os.chmod(temp, 0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temp, folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def read_stereo(path: Path) -> tuple[np.ndarray, int]:
    """Whole file as ``(frames, 2)`` float32 at 44.1 kHz and its source rate (short files only)."""
    blocks = []
    with AudioReader(path) as reader:
        rate = reader.info.sample_rate
        blocks = [_stereo(block) for block in reader.blocks()]
    samples = np.concatenate(blocks) if blocks else np.zeros((0, 2), np.float32)
    if rate != SAMPLE_RATE and len(samples):
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return samples, rate


def duration_seconds(path: Path) -> float:
    """Length of an audio file in seconds from its header (libsndfile)."""
    info = sf.info(str(path))
    return info.frames / info.samplerate if info.samplerate else 0.0
