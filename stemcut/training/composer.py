"""Procedural songs: tempo, key, sections, chords, and the notes of each part."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4), (0, 3, 0, 4), (1, 4, 0, 0), (0, 6, 5, 4),
                (5, 4, 3, 4), (0, 2, 3, 4))
# GM percussion keys
KICK, SNARE, RIM, CLAP, HAT, HAT_OPEN, PEDAL_HAT, CRASH, RIDE, TOM_LOW, TOM_MID, TOM_HIGH = (
    36, 38, 37, 39, 42, 46, 44, 49, 51, 45, 47, 50)


@dataclass(frozen=True)
class Note:
    """One note: start and duration in seconds, MIDI pitch, MIDI velocity (1-127)."""

    start: float
    duration: float
    pitch: int
    velocity: int


@dataclass
class Section:
    """A run of bars sharing a chord progression and an arrangement density."""

    name: str
    start_bar: int
    bars: int
    progression: tuple[int, ...]
    energy: float  # 0..1: sparse intro .. full chorus


@dataclass
class SongPlan:
    """The skeleton of a song: everything the parts are written against."""

    tempo: float
    key: int
    minor: bool
    swing: float
    sections: list[Section] = field(default_factory=list)

    @property
    def beat(self) -> float:
        return 60.0 / self.tempo

    @property
    def bar(self) -> float:
        return 4 * self.beat

    @property
    def scale(self) -> tuple[int, ...]:
        return MINOR if self.minor else MAJOR

    @property
    def key_name(self) -> str:
        return KEY_NAMES[self.key] + (" minor" if self.minor else " major")

    def bar_chords(self) -> list[tuple[int, Section]]:
        """(scale degree, section) for every bar of the song."""
        return [(s.progression[i % len(s.progression)], s) for s in self.sections for i in range(s.bars)]

    def chord(self, degree: int, octave: int = 4) -> list[int]:
        """Triad on a scale degree as MIDI pitches, root in the given octave."""
        pitches = []
        for step in (0, 2, 4):
            index = degree + step
            pitches.append(12 * (octave + 1) + self.key + self.scale[index % 7] + 12 * (index // 7))
        return pitches

    def time(self, bar: int, beat: float) -> float:
        """Seconds at a bar and beat (beats may be fractional; off-beat eighths swing)."""
        whole, frac = divmod(beat, 1.0)
        if abs(frac - 0.5) < 1e-6:
            frac += self.swing
        return (bar * 4 + whole + frac) * self.beat


def plan_song(rng: np.random.Generator, seconds: float) -> SongPlan:
    """Random tempo, key, mode, swing and a section layout covering ``seconds``."""
    plan = SongPlan(tempo=float(rng.uniform(72, 168)), key=int(rng.integers(12)), minor=bool(rng.random() < 0.45),
                    swing=float(rng.choice([0.0, 0.0, 0.0, 0.08, 0.16])))
    total_bars = math.ceil(seconds / plan.bar) + 1
    order = [("intro", 0.3), ("verse", 0.6), ("chorus", 1.0), ("verse", 0.6), ("bridge", 0.5), ("chorus", 1.0)]
    progressions = {name: PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))] for name, _ in order}
    bar, i = 0, int(rng.integers(0, 3))  # excerpts may start anywhere in the form
    while bar < total_bars:
        name, energy = order[i % len(order)]
        bars = 4 if name in ("intro", "bridge") else int(rng.choice([4, 8]))
        plan.sections.append(Section(name, bar, bars, progressions[name], energy))
        bar, i = bar + bars, i + 1
    return plan


def _velocity(rng: np.random.Generator, base: float, energy: float) -> int:
    return int(np.clip(base * (0.75 + 0.25 * energy) + rng.normal(0, 6), 20, 127))


def drum_part(plan: SongPlan, rng: np.random.Generator) -> tuple[list[Note], str]:
    """Kick/snare/hat patterns per section with crashes and fills; returns (notes, style)."""
    style = str(rng.choice(["rock", "four-on-floor", "half-time", "breakbeat", "shuffle"]))
    kicks = {"rock": [0, 2, 2.5], "four-on-floor": [0, 1, 2, 3], "half-time": [0, 1.75],
             "breakbeat": [0, 0.75, 2.5], "shuffle": [0, 2, 2.5]}[style]
    snares = {"half-time": [2]}.get(style, [1, 3])
    notes: list[Note] = []
    for bar, (_, section) in enumerate(plan.bar_chords()):
        if section.energy < 0.4 and rng.random() < 0.5:
            continue  # sparse intros sometimes leave the drums out
        hat = RIDE if section.name == "bridge" else (HAT_OPEN if section.energy > 0.9 and rng.random() < 0.3 else HAT)
        step = 0.25 if section.energy > 0.9 and style != "shuffle" and rng.random() < 0.5 else 0.5
        for beat in np.arange(0, 4, step):
            notes.append(Note(plan.time(bar, beat), 0.1, hat, _velocity(rng, 80 if beat % 1 == 0 else 60, section.energy)))
        for beat in kicks:
            notes.append(Note(plan.time(bar, beat), 0.2, KICK, _velocity(rng, 110, section.energy)))
        for beat in snares:
            notes.append(Note(plan.time(bar, beat), 0.2, CLAP if style == "four-on-floor" and rng.random() < 0.5
                              else SNARE, _velocity(rng, 105, section.energy)))
        if bar == section.start_bar and section.energy > 0.5:
            notes.append(Note(plan.time(bar, 0), 1.5, CRASH, _velocity(rng, 110, 1)))
        if bar == section.start_bar + section.bars - 1 and rng.random() < 0.6:  # fill into the next section
            for k, beat in enumerate(np.arange(3, 4, 0.25)):
                notes.append(Note(plan.time(bar, beat), 0.2, (TOM_HIGH, TOM_MID, TOM_LOW, SNARE)[k],
                                  _velocity(rng, 100, section.energy)))
    return notes, style


def bass_part(plan: SongPlan, rng: np.random.Generator) -> tuple[list[Note], str]:
    """Root-based bass lines (steady eighths, root-fifth, syncopated, walking)."""
    style = str(rng.choice(["eighths", "root-fifth", "syncopated", "walking"]))
    notes: list[Note] = []
    for bar, (degree, section) in enumerate(plan.bar_chords()):
        root = plan.chord(degree, octave=1)[0]
        if root < 28:
            root += 12
        fifth = root + 7
        if style == "eighths":
            hits = [(b, 0.45, root) for b in np.arange(0, 4, 0.5)]
        elif style == "root-fifth":
            hits = [(0, 0.9, root), (1, 0.9, fifth), (2, 0.9, root), (3, 0.9, fifth if rng.random() < 0.5 else root + 12)]
        elif style == "syncopated":
            hits = [(0, 0.7, root), (0.75, 0.4, root), (1.5, 0.4, root + 12), (2.5, 0.9, root), (3.5, 0.4, fifth)]
        else:
            scale_notes = [root + (plan.scale[i % 7] - plan.scale[degree % 7]) % 12 for i in range(degree, degree + 4)]
            hits = [(b, 0.9, p) for b, p in zip(range(4), scale_notes)]
        if section.energy < 0.4:
            hits = hits[:1]
        for beat, length, pitch in hits:
            notes.append(Note(plan.time(bar, beat), length * plan.beat, int(pitch), _velocity(rng, 100, section.energy)))
    return notes, style


def guitar_part(plan: SongPlan, rng: np.random.Generator, style: str) -> list[Note]:
    """Guitar in one of the styles "strum", "power" (for driven amps) or "arpeggio"."""
    notes: list[Note] = []
    rhythm = [[0, 1, 2, 3], [0, 1.5, 2, 3], [0, 0.5, 1.5, 2.5, 3, 3.5], [0, 2]][int(rng.integers(4))]
    for bar, (degree, section) in enumerate(plan.bar_chords()):
        if section.name == "intro" and rng.random() < 0.4:
            continue
        chord = plan.chord(degree, octave=3)
        if chord[0] < 40:
            chord = [p + 12 for p in chord]
        if style == "power":
            voicing = [chord[0], chord[0] + 7, chord[0] + 12]
            for beat in np.arange(0, 4, 0.5):
                notes += [Note(plan.time(bar, beat) + 0.004 * i, 0.45 * plan.beat, p,
                               _velocity(rng, 100, section.energy)) for i, p in enumerate(voicing)]
        elif style == "arpeggio":
            voicing = chord + [chord[0] + 12, chord[1] + 12]
            for k, beat in enumerate(np.arange(0, 4, 0.5)):
                notes.append(Note(plan.time(bar, beat), 1.2 * plan.beat, voicing[k % len(voicing)],
                                  _velocity(rng, 85, section.energy)))
        else:
            voicing = sorted(chord + [chord[0] + 12, chord[2] - 12 if chord[2] - 12 >= 40 else chord[1] + 12])
            for k, beat in enumerate(rhythm):
                down = k % 2 == 0
                order = voicing if down else voicing[::-1]
                spread = float(rng.uniform(0.008, 0.02))
                notes += [Note(plan.time(bar, beat) + spread * i, 0.95 * plan.beat, p,
                               _velocity(rng, 90 if down else 70, section.energy)) for i, p in enumerate(order)]
    return notes


def other_part(plan: SongPlan, rng: np.random.Generator, role: str) -> list[Note]:
    """Keys/strings/synth parts: "pad" (held chords), "comp" (rhythmic chords), "lead" (stabs and lines)."""
    notes: list[Note] = []
    for bar, (degree, section) in enumerate(plan.bar_chords()):
        chord = plan.chord(degree, octave=4 if role != "pad" else int(rng.choice([3, 4])))
        if role == "pad":
            notes += [Note(plan.time(bar, 0), plan.bar * 0.98, p, _velocity(rng, 75, section.energy)) for p in chord]
        elif role == "comp":
            for beat in ([0, 1.5, 2.5] if rng.random() < 0.5 else [0, 1, 2, 3]):
                notes += [Note(plan.time(bar, beat), 0.4 * plan.beat, p, _velocity(rng, 85, section.energy))
                          for p in chord]
        elif section.energy > 0.5 and rng.random() < 0.7:
            for beat in np.arange(0, 4, 1.0 if rng.random() < 0.5 else 0.5):
                if rng.random() < 0.6:
                    pitch = chord[int(rng.integers(3))] + 12 * int(rng.integers(0, 2))
                    notes.append(Note(plan.time(bar, beat), 0.45 * plan.beat, pitch, _velocity(rng, 90, section.energy)))
    return notes


def vocal_melody(plan: SongPlan, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    """Sung phrases: two-bar phrases with rests, chord tones on strong beats, stepwise elsewhere."""
    notes: list[Note] = []
    bars = plan.bar_chords()
    scale_pitches = [p for p in range(low, high + 1) if (p - plan.key) % 12 in plan.scale]
    current = scale_pitches[len(scale_pitches) // 2]
    for bar, (degree, section) in enumerate(bars):
        if section.name == "intro" or (bar - section.start_bar) % 2 == 1 and rng.random() < 0.35:
            continue
        chord_classes = {p % 12 for p in plan.chord(degree)}
        beat = float(rng.choice([0, 0.5, 1]))
        while beat < 3.5:
            length = float(rng.choice([0.5, 0.5, 1, 1, 1.5, 2]))
            length = min(length, 4 - beat)
            strong = beat % 1 == 0
            candidates = [p for p in scale_pitches if abs(p - current) <= (4 if strong else 2)]
            if strong:
                candidates = [p for p in candidates if p % 12 in chord_classes] or candidates
            current = int(rng.choice(candidates))
            notes.append(Note(plan.time(bar, beat), length * plan.beat * 0.92, current,
                              _velocity(rng, 95, section.energy)))
            beat += length + (0.5 if rng.random() < 0.15 else 0)
    return notes
