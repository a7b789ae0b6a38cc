"""Bass, keys and everything else from a SoundFont (``tinysoundfont``), one stem per pass.

A pass plays the chosen notes with every program, controller and pitch-bend event of their
channels, so MIDI volume, pan, expression, sustain and bends are heard as written. Programs
can be swapped for another of the same GM family (eight programs each) to vary timbres.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stemcut.training.instruments import load_soundfont
from stemcut.training.render_midi import DRUM_CHANNEL, Control, MidiNote, Score
from stemcut.training.targets import SAMPLE_RATE

TAIL_S = 1.0


class SoundfontPlayer:
    """One ``tinysoundfont`` synth per process, reset before every pass."""

    def __init__(self, soundfont: Path) -> None:
        self.path = Path(soundfont)
        self._synth, self._sfid = load_soundfont(self.path)

    def has_program(self, program: int, drums: bool = False) -> bool:
        return bool(self._synth.sfpreset_name(self._sfid, 128 if drums else 0, program))

    def _select(self, channel: int, program: int) -> None:
        drums = channel == DRUM_CHANNEL
        for candidate in (program, program - program % 8, 0):
            if self.has_program(candidate, drums):
                self._synth.program_select(channel, self._sfid, 128 if drums else 0, candidate, drums)
                return

    def render(self, score: Score, notes: list[MidiNote], n_samples: int,
               programs: dict[int, int] | None = None) -> np.ndarray:
        """``[2, n_samples]`` of ``notes`` with their channels' controls; ``programs`` maps old -> new program."""
        out = np.zeros((n_samples, 2), np.float32)
        if not notes:
            return np.ascontiguousarray(out.T)
        programs = programs or {}
        channels = {n.channel for n in notes}
        synth = self._synth
        synth.sounds_off()
        for channel in range(16):
            for controller, value in ((121, 0), (7, 100), (10, 64), (11, 127), (64, 0)):  # reset, then GM defaults
                synth.control_change(channel, controller, value)
            synth.pitchbend(channel, 8192)
        for channel in channels:
            self._select(channel, programs.get(0, 0) if channel != DRUM_CHANNEL else 0)
        events: list[tuple[int, int, object]] = []  # (sample, order, event): controls before notes at one time
        for control in score.controls:
            if control.channel in channels:
                events.append((int(control.time * SAMPLE_RATE), 0, control))
        for note in notes:
            events.append((int(note.start * SAMPLE_RATE), 2, ("on", note)))
            events.append((int(note.end * SAMPLE_RATE), 1, ("off", note)))
        events.sort(key=lambda e: (e[0], e[1]))
        position = 0
        for sample, _, event in events:
            sample = min(max(sample, 0), n_samples)
            if sample > position:
                out[position:sample] = np.frombuffer(synth.generate(sample - position), np.float32).reshape(-1, 2)
                position = sample
            if isinstance(event, Control):
                self._control(event, programs)
            else:
                kind, note = event
                if kind == "on":
                    synth.noteon(note.channel, note.pitch, note.velocity)
                else:
                    synth.noteoff(note.channel, note.pitch)
        if position < n_samples:
            out[position:] = np.frombuffer(synth.generate(n_samples - position), np.float32).reshape(-1, 2)
        synth.sounds_off()
        return np.ascontiguousarray(out.T)

    def _control(self, control: Control, programs: dict[int, int]) -> None:
        if control.kind == "program":
            self._select(control.channel, programs.get(control.a, control.a) if control.channel != DRUM_CHANNEL else control.a)
        elif control.kind == "cc":
            if control.a in (0, 32):  # bank select: every pass stays in the GM bank
                return
            self._synth.control_change(control.channel, control.a, control.b)
        elif control.kind == "bend":
            self._synth.pitchbend(control.channel, min(max(control.a, 0), 16383))


def family_swaps(programs: set[int], rng: np.random.Generator, probability: float) -> dict[int, int]:
    """Per program: with ``probability`` another program of its GM family of eight."""
    swaps = {}
    for program in sorted(programs):
        if rng.random() < probability:
            swaps[program] = int(program - program % 8 + rng.integers(8))
    return swaps
