"""MIDI arrangements for the corpus: lumps of Doom WAD files, and how long a MIDI file plays.

A WAD starts with a 12-byte header ``<4s I I>`` (magic ``IWAD``/``PWAD``, lump count,
directory offset); the directory holds 16-byte entries ``<I I 8s>`` (offset, size, name).
Freedoom keeps its music as ``D_*`` lumps, most of them standard MIDI files (``MThd``).

:func:`midi_seconds` walks a Standard MIDI File's tracks and its tempo map to tell the
playing time: enough to state a pool's hours and to reject files that are not MIDI.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MIDI_MAGIC = b"MThd"


@dataclass(frozen=True)
class Lump:
    """One WAD lump: its name and bytes."""

    name: str
    data: bytes


def read_wad(path: Path) -> list[Lump]:
    """Every lump of a WAD file, in directory order (raises ``ValueError`` if not a WAD)."""
    data = Path(path).read_bytes()
    if len(data) < 12:
        raise ValueError(f"{path}: too short for a WAD header")
    magic, count, directory = struct.unpack_from("<4sII", data, 0)
    if magic not in (b"IWAD", b"PWAD"):
        raise ValueError(f"{path}: not a WAD file (magic {magic!r})")
    if directory + 16 * count > len(data):
        raise ValueError(f"{path}: WAD directory runs past the end of the file")
    lumps = []
    for index in range(count):
        offset, size, raw = struct.unpack_from("<II8s", data, directory + 16 * index)
        name = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        if offset + size > len(data):
            raise ValueError(f"{path}: lump {name} runs past the end of the file")
        lumps.append(Lump(name, data[offset : offset + size]))
    return lumps


def wad_midi_lumps(path: Path, prefix: str = "D_") -> list[Lump]:
    """The music lumps (``prefix`` names) of a WAD that are standard MIDI files."""
    return [lump for lump in read_wad(path) if lump.name.startswith(prefix) and lump.data.startswith(MIDI_MAGIC)]


def _varlen(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos
    raise ValueError("variable-length quantity longer than 4 bytes")


def _track_events(track: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(length in ticks, [(tick, microseconds per quarter)] tempo changes) of one MTrk chunk."""
    pos, tick, status, tempos = 0, 0, 0, []
    while pos < len(track):
        delta, pos = _varlen(track, pos)
        tick += delta
        byte = track[pos]
        if byte == 0xFF:  # meta event
            kind = track[pos + 1]
            length, pos = _varlen(track, pos + 2)
            if kind == 0x51 and length == 3:
                tempos.append((tick, int.from_bytes(track[pos : pos + 3], "big")))
            pos += length
            if kind == 0x2F:
                break
        elif byte in (0xF0, 0xF7):  # sysex
            length, pos = _varlen(track, pos + 1)
            pos += length
        else:
            if byte & 0x80:
                status, pos = byte, pos + 1
            elif not status:
                raise ValueError("data byte without a running status")
            pos += 1 if status & 0xF0 in (0xC0, 0xD0) else 2
    return tick, tempos


def midi_seconds(data: bytes) -> float:
    """Playing time of a Standard MIDI File (raises ``ValueError`` when it is not one)."""
    if not data.startswith(MIDI_MAGIC) or len(data) < 14:
        raise ValueError("not a standard MIDI file")
    _, _, tracks, division = struct.unpack_from(">IHHH", data, 4)
    if division & 0x8000:  # SMPTE time: frames per second x ticks per frame
        fps, per_frame = 256 - (division >> 8), division & 0xFF
        ticks_per_second = fps * per_frame
    elif division:
        ticks_per_second = 0
    else:
        raise ValueError("MIDI header with a time division of 0")
    pos, end_tick, tempos = 8 + struct.unpack_from(">I", data, 4)[0], 0, []
    for _ in range(tracks):
        if data[pos : pos + 4] != b"MTrk":
            break
        length = struct.unpack_from(">I", data, pos + 4)[0]
        try:
            ticks, changes = _track_events(data[pos + 8 : pos + 8 + length])
        except IndexError:
            raise ValueError("MIDI track ends inside an event") from None
        end_tick, tempos = max(end_tick, ticks), tempos + changes
        pos += 8 + length
    if ticks_per_second:
        return end_tick / ticks_per_second
    seconds, last_tick, tempo = 0.0, 0, 500000
    for tick, new_tempo in sorted(tempos):
        if tick >= end_tick:
            break
        seconds += (tick - last_tick) * tempo / 1e6 / division
        last_tick, tempo = tick, new_tempo
    return seconds + (end_tick - last_tick) * tempo / 1e6 / division
