"""Native Instruments Stems (``.stem.mp4``): the mixture plus four stems in one MP4.

Layout (what Traktor and the NI Stem Creator write): five AAC audio tracks, track 1
the full mixture (enabled, default), tracks 2-5 the four stems (disabled), and a
``moov/udta/stem`` box whose payload is JSON naming the four stems, their colours
and the mastering DSP Traktor applies (stemcut writes it switched off: the stems
already sum to the mixture).

stemcut separates five stems; a :class:`StemSlot` mapping folds them into NI's four.
The default is drums, bass, other (+ guitar), vocals, NI's own order and colours.
AAC is encoded with FFmpeg's native ``aac`` encoder through PyAV; the ``stem`` box
is added afterwards by rewriting the ``moov`` box, which FFmpeg writes last.
Like every output, the file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import partial_file
from .audio import PYAV_HINT, AudioError, write_failure
from .targets import MIXTURE, TARGETS

EXTENSION = "stem.mp4"
# AAC rates Traktor plays; anything else is resampled to 44.1 kHz.
NATIVE_RATES = (44100, 48000)
FALLBACK_RATE = 44100
DEFAULT_BITRATE = 256  # kbit/s per stereo track
# FFmpeg channel layouts by channel count, for the downmix to stereo.
LAYOUTS = {3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
# NI's stem metadata defaults, mastering DSP off.
MASTERING_DSP = {
    "compressor": {"enabled": False, "ratio": 3, "output_gain": 0.5, "release": 0.3, "attack": 0.003,
                   "input_gain": 0.5, "threshold": 0, "hp_cutoff": 300, "dry_wet": 50},
    "limiter": {"enabled": False, "release": 0.05, "threshold": 0, "ceiling": -0.35},
}
SLOT_COLORS = ("#009E73", "#D55E00", "#CC79A7", "#56B4E9")


@dataclass(frozen=True)
class StemSlot:
    """One of the four NI stems: its label, colour and the stemcut stems summed into it."""

    name: str
    color: str
    sources: tuple[str, ...]


DEFAULT_MAPPING = (
    StemSlot("Drums", SLOT_COLORS[0], ("drums",)),
    StemSlot("Bass", SLOT_COLORS[1], ("bass",)),
    StemSlot("Other", SLOT_COLORS[2], ("other", "guitar")),
    StemSlot("Vocals", SLOT_COLORS[3], ("vocals",)),
)
DEFAULT_MAPPING_TEXT = "drums=drums,bass=bass,other=other+guitar,vocals=vocals"


def parse_stem_mapping(text: str | None) -> tuple[StemSlot, ...]:
    """'drums=drums,bass=bass,melody=guitar+other,vocals=vocals' -> four slots.

    Exactly four ``label=stem[+stem...]`` entries, in NI order (slot colours follow
    NI's drums, bass, other, vocals); each of the five stems used at most once."""
    if not text:
        return DEFAULT_MAPPING
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if len(entries) != 4:
        raise ValueError(f"--stem-mapping needs exactly 4 entries (label=stem+stem), got {len(entries)}")
    slots, used = [], set()
    for index, entry in enumerate(entries):
        label, sep, sources_text = entry.partition("=")
        label = label.strip()
        sources = tuple(s.strip().lower() for s in sources_text.split("+") if s.strip())
        if not sep or not label or not sources:
            raise ValueError(f"--stem-mapping entry {entry!r} is not label=stem[+stem...]")
        for source in sources:
            if source not in TARGETS:
                raise ValueError(f"--stem-mapping: unknown stem {source!r} (known: {', '.join(TARGETS)})")
            if source in used:
                raise ValueError(f"--stem-mapping: stem {source!r} is used twice")
            used.add(source)
        slots.append(StemSlot(label.capitalize() if label.islower() else label, SLOT_COLORS[index], sources))
    return tuple(slots)


def mapping_text(mapping: Sequence[StemSlot]) -> str:
    return ",".join(f"{slot.name}={'+'.join(slot.sources)}" for slot in mapping)


@dataclass(frozen=True)
class StemsSpec:
    """Output settings for ``--format stem.mp4`` (the counterpart of OutputSpec)."""

    mapping: tuple[StemSlot, ...] = DEFAULT_MAPPING
    bitrate: int = DEFAULT_BITRATE
    format: str = EXTENSION

    def __post_init__(self) -> None:
        if not 32 <= self.bitrate <= 512:
            raise ValueError(f"--bitrate for stem.mp4 (AAC) must be from 32 to 512 kbit/s, got {self.bitrate}")

    @property
    def extension(self) -> str:
        return EXTENSION

    single_file = True  # the mixture and every stem in one file per track

    def sink(self, outputs: dict[str, os.PathLike | str]) -> "StemContainerSink":
        """Where a track's one stem file (``outputs[EXTENSION]``) is written."""
        return StemContainerSink(outputs[EXTENSION], self)

    def describe(self) -> dict:
        """The settings that change the file's content (for resume fingerprints)."""
        return {"format": self.format, "bitrate": self.bitrate, "codec": "aac",
                "mapping": [{"name": s.name, "color": s.color, "sources": list(s.sources)} for s in self.mapping]}


def stem_metadata(mapping: Sequence[StemSlot]) -> dict:
    """The JSON stored in ``moov/udta/stem``."""
    return {"mastering_dsp": MASTERING_DSP, "version": 1,
            "stems": [{"name": slot.name, "color": slot.color} for slot in mapping]}


class StemFileWriter:
    """Encodes the mixture and four stems to ``path`` (AAC in MP4) via a temp file.

    :meth:`write` takes (channels, n) float blocks at ``sample_rate``; they are
    folded to stereo and, unless 44.1/48 kHz, resampled to 44.1 kHz."""

    def __init__(self, path: os.PathLike | str, sample_rate: int, channels: int, spec: StemsSpec):
        try:
            import av
        except ImportError:
            raise AudioError(path, f"writing .stem.mp4 needs FFmpeg: {PYAV_HINT}") from None
        self._av = av
        self.path = Path(path)
        self.spec = spec
        self.channels = channels
        self.in_rate = sample_rate
        self.rate = sample_rate if sample_rate in NATIVE_RATES else FALLBACK_RATE
        self.clipped_samples = 0
        self.temp_path = partial_file(self.path)
        self._container = None
        try:
            self._container = av.open(str(self.temp_path), "w", format="mp4")
            self._streams = []
            for _ in range(1 + len(spec.mapping)):
                stream = self._container.add_stream("aac", rate=self.rate, layout="stereo")
                stream.bit_rate = spec.bitrate * 1000
                self._streams.append(stream)
            layout = LAYOUTS.get(channels)
            needs_swr = self.rate != sample_rate or layout is not None
            self._resamplers = [av.AudioResampler(format="fltp", layout="stereo", rate=self.rate)
                                if needs_swr else None for _ in self._streams]
            self._in_layout = layout or "stereo"
            self._pts = [0] * len(self._streams)
        except (av.FFmpegError, OSError, ValueError) as error:
            self.abort()
            raise AudioError(self.path, write_failure(self.path, error, "cannot write")) from None

    def _to_frame_input(self, block: np.ndarray) -> np.ndarray:
        if self.channels == 1:
            return np.repeat(block, 2, axis=0)
        if self.channels == 2 or self.channels in LAYOUTS:
            return block
        # An unusual channel count: even channels left, odd channels right.
        return np.stack([block[0::2].mean(axis=0), block[1::2].mean(axis=0)])

    def write(self, tracks: Sequence[np.ndarray]) -> None:
        """Append one block per track: the mixture first, then the four stems."""
        av = self._av
        try:
            for index, block in enumerate(tracks):
                block = self._to_frame_input(np.asarray(block, dtype=np.float32))
                over = np.abs(block) > 1.0
                if over.any():
                    self.clipped_samples += int(over.sum())
                    block = np.clip(block, -1.0, 1.0)
                layout = "stereo" if block.shape[0] == 2 else self._in_layout
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=layout)
                frame.sample_rate = self.in_rate
                self._encode(index, frame)
        except OSError as error:  # PyAV's I/O errors (a full disk) are OSErrors too
            raise AudioError(self.path, write_failure(self.path, error)) from None
        except av.FFmpegError as error:
            raise AudioError(self.path, f"AAC encoding failed ({error})") from None

    def _encode(self, index: int, frame) -> None:
        resampler = self._resamplers[index]
        frames = resampler.resample(frame) if resampler is not None else ([frame] if frame is not None else [])
        for out in frames:
            out.pts = self._pts[index]
            self._pts[index] += out.samples
            for packet in self._streams[index].encode(out):
                self._container.mux(packet)

    def commit(self) -> Path:
        """Flush the encoders, add the NI metadata and move the file into place."""
        av = self._av
        try:
            for index, stream in enumerate(self._streams):
                if self._resamplers[index] is not None:
                    self._encode(index, None)
                for packet in stream.encode(None):
                    self._container.mux(packet)
            self._container.close()
            add_stem_box(self.temp_path, stem_metadata(self.spec.mapping))
            os.replace(self.temp_path, self.path)
        except (av.FFmpegError, OSError, ValueError) as error:
            self.abort()
            raise AudioError(self.path, write_failure(self.path, error)) from None
        return self.path

    def abort(self) -> None:
        """Drop the partial file; safe to call more than once."""
        try:
            if self._container is not None:
                self._container.close()
        except Exception:  # the file is being thrown away; a close error changes nothing
            pass
        self.temp_path.unlink(missing_ok=True)


# -- MP4 boxes ----------------------------------------------------------------------

def _boxes(data: bytes, start: int, end: int):
    """(type, offset, size, header) of the boxes in data[start:end]."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise ValueError(f"malformed MP4 box {kind!r} at byte {offset}")
        yield kind, offset, size, header
        offset += size


def add_stem_box(path: Path, metadata: dict) -> None:
    """Put ``metadata`` in ``moov/udta/stem``, mark tracks 2+ disabled and brand
    the file M4A. Needs ``moov`` after ``mdat`` (FFmpeg's default), so that growing
    it moves no sample data."""
    with open(path, "r+b") as handle:
        head = handle.read(64)
        handle.seek(0, os.SEEK_END)
        file_size = handle.tell()
        top = []
        offset = 0
        while offset < file_size:
            handle.seek(offset)
            header = handle.read(16)
            size, kind = struct.unpack(">I4s", header[:8])
            if size == 1:
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:
                size = file_size - offset
            if size < 8:
                raise ValueError(f"malformed MP4 box at byte {offset}")
            top.append((kind, offset, size))
            offset += size
        kinds = [kind for kind, _, _ in top]
        if b"moov" not in kinds or b"mdat" not in kinds or kinds.index(b"moov") < kinds.index(b"mdat"):
            raise ValueError("MP4 layout unexpected (moov must follow mdat)")
        _, moov_at, moov_size = top[kinds.index(b"moov")]
        handle.seek(moov_at)
        moov = bytearray(handle.read(moov_size))
        rest = handle.read()  # whatever followed moov (normally nothing)
        new_moov = _rewrite_moov(moov, json.dumps(metadata).encode("utf-8"))
        handle.seek(moov_at)
        handle.write(new_moov)
        handle.write(rest)
        handle.truncate()
        if head[4:8] == b"ftyp":  # major brand, same size: rewrite in place
            handle.seek(8)
            handle.write(b"M4A ")


def _rewrite_moov(moov: bytearray, payload: bytes) -> bytes:
    if struct.unpack(">I", moov[:4])[0] == 1:
        raise ValueError("64-bit moov box not supported")
    track = 0
    children = []
    udta_found = False
    for kind, offset, size, header in _boxes(bytes(moov), 8, len(moov)):
        box = bytearray(moov[offset:offset + size])
        if kind == b"trak":
            track += 1
            if track > 1:
                _disable_track(box)
        if kind == b"udta":
            udta_found = True
            kept = b"".join(bytes(box[o:o + s]) for k, o, s, _ in _boxes(bytes(box), header, size) if k != b"stem")
            box = bytearray(_box(b"udta", kept + _box(b"stem", payload)))
        children.append(bytes(box))
    if not udta_found:
        children.append(_box(b"udta", _box(b"stem", payload)))
    return _box(b"moov", b"".join(children))


def _disable_track(trak: bytearray) -> None:
    for kind, offset, size, header in _boxes(bytes(trak), 8, len(trak)):
        if kind == b"tkhd":
            flags_at = offset + header + 1  # version (1 byte), then 3 bytes of flags
            trak[flags_at + 2] &= 0xFE       # clear 'track enabled'
            return


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def read_stem_metadata(path: os.PathLike | str) -> dict:
    """The JSON in a ``.stem.mp4``'s ``moov/udta/stem`` box (AudioError if absent)."""
    data = Path(path).read_bytes()
    try:
        for kind, offset, size, header in _boxes(data, 0, len(data)):
            if kind != b"moov":
                continue
            for child, c_off, c_size, c_head in _boxes(data, offset + header, offset + size):
                if child != b"udta":
                    continue
                for leaf, l_off, l_size, l_head in _boxes(data, c_off + c_head, c_off + c_size):
                    if leaf == b"stem":
                        return json.loads(data[l_off + l_head:l_off + l_size])
    except ValueError as error:
        raise AudioError(path, f"not a stem file ({error})") from None
    raise AudioError(path, "no NI stem metadata (moov/udta/stem)")


# -- the sink ---------------------------------------------------------------------------

class StemContainerSink:
    """One ``.stem.mp4`` per track: the mixture, then the four slots (each the sum of its stems)."""

    def __init__(self, path: os.PathLike | str, spec: StemsSpec):
        self.path = Path(path)
        self.spec = spec
        self.sources = [(MIXTURE,)] + [slot.sources for slot in spec.mapping]
        self._writer: StemFileWriter | None = None

    @property
    def clipped_samples(self) -> int:
        return self._writer.clipped_samples if self._writer is not None else 0

    def open(self, sample_rate: int, channels: int, frames_hint: int) -> None:
        self._writer = StemFileWriter(self.path, sample_rate, channels, self.spec)

    def write(self, blocks: list[np.ndarray]) -> None:
        self._writer.write(blocks)

    def commit(self) -> dict[str, Path]:
        return {EXTENSION: self._writer.commit()}

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
