"""Audio files in and out, block by block.

Reading: libsndfile (via soundfile) for WAV/FLAC/OGG/MP3/AIFF; FFmpeg's libraries
(via PyAV) for M4A/AAC/MP4 and the NI ``.stem.mp4`` container. Both read in blocks,
so memory does not grow with the file's length.

Writing: every file is written under a temporary name in its final folder and
renamed into place by :meth:`AudioWriter.commit`; :meth:`AudioWriter.abort`
removes it. A finished name therefore only ever holds a finished file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from .atomic import partial_file

# Containers libsndfile reads itself; everything else goes through FFmpeg (PyAV).
SOUNDFILE_EXTENSIONS = {
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
    ".w64", ".rf64", ".caf", ".au", ".snd",
}
FFMPEG_EXTENSIONS = {".m4a", ".aac", ".mp4", ".m4b", ".mov", ".mkv", ".webm", ".wma", ".ac3", ".alac"}
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS

# Output formats: name -> (libsndfile format, file extension).
OUTPUT_FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}
WAV_SUBTYPES = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
FLAC_SUBTYPES = {16: "PCM_16", 24: "PCM_24"}
# Plain RIFF WAV stops at 4 GiB; beyond that the writer switches to RF64.
WAV_LIMIT_BYTES = 4 * 1024**3 - 1024**2

# Frames an AAC stream may decode past its container's declared length (encoder padding).
PADDING_GUARD = 4096
PYAV_HINT = "install PyAV (`pip install av`, a wheel that ships FFmpeg's libraries)"


class AudioError(Exception):
    """A file that cannot be read or written; ``str()`` is one line: 'path: reason'."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds. ``frames`` is exact for PCM containers and an estimate
    for compressed ones; readers count the samples they actually decode."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    codec: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def track_name(path: os.PathLike | str) -> str:
    """'song.mp3' -> 'song', 'set.stem.mp4' -> 'set'."""
    name = Path(path).name
    if name.lower().endswith(".stem.mp4"):
        return name[: -len(".stem.mp4")]
    return Path(name).stem


def is_audio_path(path: os.PathLike | str) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


class AudioReader:
    """Reads a file as float32 blocks of shape (channels, frames).

    Use as a context manager; iterate :meth:`blocks`. ``frames_read`` counts the
    samples per channel delivered so far. Non-finite samples raise AudioError.
    """

    def __init__(self, path: os.PathLike | str, stream: int = 0):
        self.path = Path(path)
        self.stream = stream
        self.frames_read = 0
        problem = input_file_problem(self.path)
        if problem:
            raise AudioError(self.path, problem)
        with _native_stderr_silenced():  # decoder libraries' own notes never reach the terminal raw
            self._decoder = self._open()
        self.info = self._decoder.info
        if self.info.channels < 1:
            self.close()
            raise AudioError(self.path, NOT_AUDIO)
        if self.info.sample_rate < 1:
            self.close()
            raise AudioError(self.path, f"invalid sample rate {self.info.sample_rate}")

    @property
    def shortfall(self) -> int:
        """Frames the header promised but the file did not hold (0 if the container's
        length is only an estimate, or once every promised frame was read)."""
        promised = getattr(self._decoder, "promised_frames", None)
        return max(0, promised - self.frames_read) if promised is not None else 0

    @property
    def promised_frames(self) -> int | None:
        """The frame count the file's header states, where it states one."""
        return getattr(self._decoder, "promised_frames", None)

    def _open(self) -> "_SoundfileDecoder | _PyAVDecoder":
        suffix = self.path.suffix.lower()
        if suffix in FFMPEG_EXTENSIONS or self.stream != 0:
            return _PyAVDecoder(self.path, self.stream)
        try:
            return _SoundfileDecoder(self.path)
        except sf.LibsndfileError as error:
            soundfile_reason = _libsndfile_reason(error)
        # libsndfile could not read it: let FFmpeg try (an AAC file named .wav, say).
        try:
            return _PyAVDecoder(self.path, self.stream)
        except AudioError:
            raise AudioError(self.path, soundfile_reason) from None

    def blocks(self, block_frames: int = 65536) -> Iterator[np.ndarray]:
        for block in self._decoder.blocks(block_frames):
            if not np.isfinite(block).all():
                bad = int(np.argmin(np.isfinite(block).all(axis=0)))
                seconds = (self.frames_read + bad) / self.info.sample_rate
                raise AudioError(self.path, f"contains NaN or infinite samples (first at {seconds:.3f} s)")
            self.frames_read += block.shape[1]
            yield block

    def close(self) -> None:
        self._decoder.close()

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


NOT_AUDIO = "not a recognised audio file (unknown or corrupt header)"


def write_failure(path: Path, error: BaseException, what: str = "write failed") -> str:
    """'write failed (<the system's words>)' for an error while writing ``path``.

    libsndfile reports a full disk as 'System error.'; the folder's free space says what
    it was, so the reason reads the same for every format."""
    import errno
    import shutil

    why = error.strerror if isinstance(error, OSError) and error.strerror else str(error).strip()
    why = why.splitlines()[0] if why else type(error).__name__
    if not isinstance(error, OSError) or not error.strerror:
        try:
            full = shutil.disk_usage(path.parent).free < 1024 * 1024
        except OSError:
            full = False
        if full:
            why = os.strerror(errno.ENOSPC)
        elif "system error" in why.lower() or why.lower().startswith("error"):
            why = why.split(":")[-1].strip().rstrip(".") or why
    return f"{what} ({why})"


def input_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file, in plain words (None if it can be tried)."""
    import errno
    import stat

    try:
        info = path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop"
        if error.errno == errno.ENOENT:
            return "broken symbolic link (its target does not exist)" if path.is_symlink() else "no such file"
        if error.errno == errno.ENAMETOOLONG:
            return "file name too long"
        if error.errno == errno.EACCES:
            return "permission denied"
        return (error.strerror or str(error)).lower()
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not an audio file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a pipe, socket or device)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    if info.st_size == 0:
        return "empty file (0 bytes)"
    return None


class _native_stderr_silenced:
    """Send file descriptor 2 to nowhere while a decoder opens a file (mpg123 inside
    libsndfile prints notes such as 'Illegal Audio-MPEG-Header' straight to it).
    Only from the main thread, so a worker's output is never swallowed."""

    def __enter__(self):
        import threading

        self._saved = None
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            import sys

            sys.stderr.flush()
            self._saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            self._saved = None
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)


def _promised_frames(log: str, frames: int) -> int:
    """The frame count a header promised, from libsndfile's parse log: AIFF's 'Frames : N',
    or a data chunk 'data : N (should be M)' bytes that the file is too short for."""
    import re

    stated = re.search(r"^\s*Frames\s*:\s*(\d+)", log, re.M)
    if stated:
        return max(int(stated.group(1)), frames)
    short = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", log, re.M)
    if short and int(short.group(2)) > 0:
        return max(frames, int(round(frames * int(short.group(1)) / int(short.group(2)))))
    return frames


def _libsndfile_reason(error: Exception) -> str:
    text = str(error)
    lowered = text.lower()
    if ("format not recognised" in lowered or "unknown format" in lowered
            or "not a regular file" in lowered or "does not exist" in lowered):
        return NOT_AUDIO  # what libsndfile says of data it cannot parse (the file itself was checked)
    return f"cannot decode ({text.split(':')[-1].strip() or text})"


class _SoundfileDecoder:
    def __init__(self, path: Path):
        self._file = sf.SoundFile(str(path))
        self.info = AudioInfo(path, self._file.samplerate, self._file.channels, self._file.frames,
                              f"{self._file.format}/{self._file.subtype}")
        self.promised_frames = _promised_frames(self._file.extra_info, self._file.frames)

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        while True:
            try:
                data = self._file.read(block_frames, dtype="float32", always_2d=True)
            except sf.LibsndfileError as error:
                raise AudioError(self.info.path, f"decoding failed mid-file ({error})") from None
            if data.shape[0] == 0:
                return
            yield np.ascontiguousarray(data.T)

    def close(self) -> None:
        self._file.close()


class _PyAVDecoder:
    promised_frames = None  # compressed streams' lengths are estimates

    def __init__(self, path: Path, stream: int):
        try:
            import av
        except ImportError:
            raise AudioError(path, f"reading {path.suffix or 'this format'} needs FFmpeg: {PYAV_HINT}") from None
        self._av = av
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
            raise AudioError(path, NOT_AUDIO) from None
        streams = self._container.streams.audio
        if not streams:
            self._container.close()
            raise AudioError(path, "contains no audio stream")
        if stream >= len(streams):
            self._container.close()
            raise AudioError(path, f"has {len(streams)} audio stream(s), stream {stream} asked for")
        self._stream = streams[stream]
        context = self._stream.codec_context
        if context is None:  # FFmpeg found the stream but has no decoder for its codec
            self._container.close()
            raise AudioError(path, "unsupported audio codec (FFmpeg has no decoder for it)")
        rate = int(context.sample_rate or 0)
        channels = int(context.channels or 0)
        frames = 0
        if self._stream.duration is not None and self._stream.time_base is not None:
            frames = int(round(float(self._stream.duration * self._stream.time_base) * rate))
        elif self._container.duration is not None:
            frames = int(round(self._container.duration / 1_000_000 * rate))
        self.info = AudioInfo(path, rate, channels, frames, context.name or "unknown")

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        """Float blocks of exactly ``block_frames`` (the last one shorter), cut at the
        container's declared length when the decoder runs a little past it (the AAC
        encoder's end padding: up to ``PADDING_GUARD`` frames)."""
        av = self._av
        # FFmpeg's own converter and FIFO: any sample format to float planar, any
        # frame size to blocks of exactly `block_frames`.
        to_float = av.AudioResampler(format="fltp")
        fifo = av.AudioFifo()
        declared = self.info.frames
        emitted = 0

        def push(frames) -> None:
            for converted in frames:
                converted.pts = None  # the FIFO only counts samples
                fifo.write(converted)

        try:
            for frame in self._container.decode(self._stream):
                push(to_float.resample(frame))
                # Hold back the guard, so the end can still be cut to the declared length.
                while fifo.samples >= block_frames + PADDING_GUARD:
                    block = fifo.read(block_frames).to_ndarray()
                    emitted += block.shape[1]
                    yield block
            push(to_float.resample(None))
        except av.FFmpegError as error:
            raise AudioError(self.info.path, f"decoding failed mid-file ({_first_line(error)})") from None
        rest = fifo.samples
        if declared and declared >= emitted and 0 < emitted + rest - declared <= PADDING_GUARD:
            rest = declared - emitted
        while rest > 0:
            block = fifo.read(min(block_frames, rest)).to_ndarray()
            rest -= block.shape[1]
            yield block

    def close(self) -> None:
        self._container.close()


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def probe(path: os.PathLike | str, stream: int = 0) -> AudioInfo:
    """Sample rate, channels and (estimated) length of a file, without decoding it."""
    with AudioReader(path, stream) as reader:
        return reader.info


def load_audio(path: os.PathLike | str, stream: int = 0) -> tuple[np.ndarray, int]:
    """Whole file as float32 (channels, frames) and its sample rate. For short files
    (tests, training, evaluation); separation streams with :class:`AudioReader`."""
    with AudioReader(path, stream) as reader:
        blocks = list(reader.blocks())
        rate = reader.info.sample_rate
        channels = reader.info.channels
    if not blocks:
        return np.zeros((channels, 0), np.float32), rate
    return np.concatenate(blocks, axis=1), rate


@dataclass(frozen=True)
class OutputSpec:
    """How stems are encoded: ``format`` in OUTPUT_FORMATS, ``bit_depth`` 16/24/32
    (32 = float; WAV and FLAC), ``bitrate`` in kbit/s (MP3), ``quality`` 0-1 (OGG)."""

    format: str = "wav"
    bit_depth: int = 16
    bitrate: int = 320
    quality: float = 0.6

    def __post_init__(self) -> None:
        if self.format not in OUTPUT_FORMATS:
            raise ValueError(f"--format: unknown output format {self.format!r}; choose from {', '.join(OUTPUT_FORMATS)} or stem.mp4")
        if self.format == "wav" and self.bit_depth not in WAV_SUBTYPES:
            raise ValueError(f"--bit-depth for WAV must be 16, 24 or 32 (float), got {self.bit_depth}")
        if self.format == "flac" and self.bit_depth not in FLAC_SUBTYPES:
            raise ValueError(f"--bit-depth for FLAC must be 16 or 24, got {self.bit_depth}")
        if self.format == "mp3" and not 32 <= self.bitrate <= 320:
            raise ValueError(f"--bitrate for MP3 must be from 32 to 320 kbit/s, got {self.bitrate}")
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"OGG quality must be from 0 to 1, got {self.quality}")

    @property
    def extension(self) -> str:
        return self.format

    single_file = False  # one file per stem (NI stem files hold them all in one)

    def describe(self) -> dict:
        """The settings that change the files' content (for resume fingerprints)."""
        return {"format": self.format, "bit_depth": self.bit_depth, "bitrate": self.bitrate, "quality": self.quality}

    def sink(self, outputs: dict[str, os.PathLike | str]) -> "StemFilesSink":
        """Where a track's outputs ({output name: file}) are written."""
        return StemFilesSink(outputs, self)

    @property
    def clips(self) -> bool:
        """Whether samples beyond [-1, 1] must be clamped (all but float WAV)."""
        return not (self.format == "wav" and self.bit_depth == 32)

    def soundfile_args(self, frames_hint: int, channels: int) -> dict:
        if self.format == "wav":
            size = frames_hint * channels * self.bit_depth // 8
            container = "RF64" if size > WAV_LIMIT_BYTES else "WAV"
            return {"format": container, "subtype": WAV_SUBTYPES[self.bit_depth]}
        if self.format == "flac":
            return {"format": "FLAC", "subtype": FLAC_SUBTYPES[self.bit_depth]}
        if self.format == "ogg":
            return {"format": "OGG", "subtype": "VORBIS", "compression_level": 1.0 - self.quality}
        # libsndfile maps compression level 0..1 linearly onto 320..32 kbit/s for CBR MP3.
        level = (320 - self.bitrate) / (320 - 32)
        return {"format": "MP3", "subtype": "MPEG_LAYER_III", "compression_level": level,
                "bitrate_mode": "CONSTANT"}


class AudioWriter:
    """Writes (channels, frames) float blocks to ``path`` via a temporary file in
    the same folder; :meth:`commit` renames it into place, :meth:`abort` deletes it."""

    def __init__(self, path: os.PathLike | str, sample_rate: int, channels: int, spec: OutputSpec,
                 frames_hint: int = 0):
        self.path = Path(path)
        self.spec = spec
        self.frames_written = 0
        self.clipped_samples = 0
        self.temp_path = partial_file(self.path)
        try:
            self._file = sf.SoundFile(str(self.temp_path), "w", samplerate=sample_rate, channels=channels,
                                      **spec.soundfile_args(frames_hint, channels))
        except (sf.LibsndfileError, OSError) as error:
            self.temp_path.unlink(missing_ok=True)
            raise AudioError(self.path, write_failure(self.path, error, "cannot write")) from None

    def write(self, block: np.ndarray) -> None:
        """Append a (channels, frames) block."""
        if self.spec.clips:
            over = np.abs(block) > 1.0
            if over.any():
                self.clipped_samples += int(over.sum())
                block = np.clip(block, -1.0, 1.0)
        try:
            self._file.write(np.ascontiguousarray(block.T))
        except (sf.LibsndfileError, OSError) as error:
            raise AudioError(self.path, write_failure(self.path, error)) from None
        self.frames_written += block.shape[1]

    def commit(self) -> Path:
        """Finish the file and move it to its final name."""
        try:
            self._file.close()
            os.replace(self.temp_path, self.path)
        except (sf.LibsndfileError, OSError) as error:
            self.abort()
            raise AudioError(self.path, write_failure(self.path, error)) from None
        return self.path

    def abort(self) -> None:
        """Drop the partial file; safe to call more than once."""
        try:
            if not self._file.closed:
                self._file.close()
        except Exception:  # the file is being thrown away; a close error changes nothing
            pass
        self.temp_path.unlink(missing_ok=True)


class StemFilesSink:
    """One audio file per output ({name: path}), each via its own :class:`AudioWriter`."""

    def __init__(self, outputs: dict[str, os.PathLike | str], spec: OutputSpec):
        self.paths = {name: Path(path) for name, path in outputs.items()}
        self.spec = spec
        self.sources = [(name,) for name in self.paths]
        self._writers: list[AudioWriter] = []

    @property
    def clipped_samples(self) -> int:
        return sum(writer.clipped_samples for writer in self._writers)

    def open(self, sample_rate: int, channels: int, frames_hint: int) -> None:
        for path in self.paths.values():
            self._writers.append(AudioWriter(path, sample_rate, channels, self.spec, frames_hint=frames_hint))

    def write(self, blocks: list[np.ndarray]) -> None:
        for writer, block in zip(self._writers, blocks):
            writer.write(block)

    def commit(self) -> dict[str, Path]:
        """Move every file into place; if one cannot be, none stays."""
        done: dict[str, Path] = {}
        try:
            for name, writer in zip(self.paths, self._writers):
                done[name] = writer.commit()
        except BaseException:
            for path in done.values():
                path.unlink(missing_ok=True)
            raise
        return done

    def abort(self) -> None:
        for writer in self._writers:
            writer.abort()


def save_audio(path: os.PathLike | str, audio: np.ndarray, sample_rate: int,
               spec: OutputSpec = OutputSpec(format="wav", bit_depth=32)) -> Path:
    """Write a whole (channels, frames) array at once (tests, demos, data tools)."""
    writer = AudioWriter(path, sample_rate, audio.shape[0], spec, frames_hint=audio.shape[1])
    try:
        writer.write(audio)
    except BaseException:
        writer.abort()
        raise
    return writer.commit()
