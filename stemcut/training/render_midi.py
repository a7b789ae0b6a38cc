"""A MIDI arrangement as notes and controller events in seconds, each note assigned to a stem.

General MIDI mapping: channel 10 (index 9) is drums; programs 32-39 are bass, 24-31 guitar;
everything else is ``other``. Tempo changes are applied by ``mido``; ``tempo_scale`` and
``transpose`` make variants of one arrangement (drums are never transposed).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import mido
import numpy as np

DRUM_CHANNEL = 9


@dataclass(frozen=True)
class MidiNote:
    """One note: onset and release in seconds, key, velocity, channel and the program then active."""

    start: float
    end: float
    pitch: int
    velocity: int
    channel: int
    program: int

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Control:
    """A channel event other than notes: ``kind`` is ``cc`` (a=controller, b=value), ``program`` (a) or ``bend`` (a)."""

    time: float
    channel: int
    kind: str
    a: int
    b: int = 0


@dataclass(frozen=True)
class Score:
    """Notes and controls sorted by time, and the playing time in seconds."""

    notes: tuple[MidiNote, ...]
    controls: tuple[Control, ...]
    seconds: float


def stem_of(channel: int, program: int) -> str:
    """The GM stem of a note on ``channel`` with ``program`` active."""
    if channel == DRUM_CHANNEL:
        return "drums"
    if 32 <= program <= 39:
        return "bass"
    if 24 <= program <= 31:
        return "guitar"
    return "other"


def read_score(source: Path | bytes, tempo_scale: float = 1.0, transpose: int = 0) -> Score:
    """Parse a Standard MIDI File (path or bytes) into a :class:`Score` (tempo scaled, pitched notes transposed)."""
    if isinstance(source, (bytes, bytearray)):
        midi = mido.MidiFile(file=io.BytesIO(source), clip=True)
    else:
        midi = mido.MidiFile(str(source), clip=True)
    now = 0.0
    programs = [0] * 16
    pending: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
    notes: list[MidiNote] = []
    controls: list[Control] = []
    for message in midi:
        now += message.time / tempo_scale
        kind = message.type
        if kind == "note_on" and message.velocity > 0:
            pending.setdefault((message.channel, message.note), []).append((now, message.velocity, programs[message.channel]))
        elif kind in ("note_off", "note_on"):
            started = pending.get((message.channel, message.note))
            if started:
                start, velocity, program = started.pop(0)
                notes.append(_note(start, now, message.note, velocity, message.channel, program, transpose))
        elif kind == "program_change":
            programs[message.channel] = message.program
            controls.append(Control(now, message.channel, "program", message.program))
        elif kind == "control_change":
            controls.append(Control(now, message.channel, "cc", message.control, message.value))
        elif kind == "pitchwheel":
            controls.append(Control(now, message.channel, "bend", message.pitch + 8192))
    for (channel, pitch), started in pending.items():  # notes never released end with the song
        for start, velocity, program in started:
            notes.append(_note(start, max(now, start + 0.1), pitch, velocity, channel, program, transpose))
    notes.sort(key=lambda n: (n.start, n.channel, n.pitch))
    seconds = max([now] + [n.end for n in notes])
    return Score(tuple(notes), tuple(controls), seconds)


def _note(start: float, end: float, pitch: int, velocity: int, channel: int, program: int, transpose: int) -> MidiNote:
    if channel != DRUM_CHANNEL:
        pitch = min(max(pitch + transpose, 0), 127)
    return MidiNote(start, max(end, start + 0.01), pitch, velocity, channel, program)


def excerpt(score: Score, start: float, seconds: float) -> Score:
    """The notes starting in ``[start, start + seconds)``, shifted to 0; controls before it apply at 0."""
    end = start + seconds
    notes = tuple(replace(n, start=n.start - start, end=min(n.end, end + 2.0) - start)
                  for n in score.notes if start <= n.start < end)
    controls = tuple(replace(c, time=max(c.time - start, 0.0)) for c in score.controls if c.time < end)
    return Score(notes, controls, min(seconds, max(score.seconds - start, 0.0)))


def humanize(score: Score, rng: np.random.Generator, timing_ms: float = 6.0, velocity: int = 6) -> Score:
    """Every note moved by a random +-``timing_ms`` and its velocity by +-``velocity`` (sequenced parts breathe)."""
    shifts = rng.uniform(-timing_ms, timing_ms, len(score.notes)) / 1000
    pushes = rng.integers(-velocity, velocity + 1, len(score.notes))
    notes = tuple(replace(n, start=max(n.start + float(dt), 0.0), end=max(n.end + float(dt), n.start + float(dt) + 0.01),
                          velocity=int(min(max(n.velocity + int(dv), 1), 127)))
                  for n, dt, dv in zip(score.notes, shifts, pushes))
    return Score(notes, score.controls, score.seconds)


def notes_by_stem(score: Score) -> dict[str, list[MidiNote]]:
    """The score's notes grouped by GM stem."""
    groups: dict[str, list[MidiNote]] = {}
    for note in score.notes:
        groups.setdefault(stem_of(note.channel, note.program), []).append(note)
    return groups
