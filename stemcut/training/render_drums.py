"""Drums from a multi-microphone kit: every hit's microphones mixed to stereo, bleed and room included.

Per song a random **microphone mix** is drawn (close mics, overheads and room at their own
levels, close mics panned where the drums stand, overhead/room width, the kit seen from the
drummer's or the audience's side); each hit is then the sum of its microphone files through
that mix, so a snare hit carries its bleed into the tom and cymbal mics and its room. Velocity
picks the layer, round robins are drawn without repeating the last hit, and an open hi-hat
is choked by the next closed or pedal hi-hat. GM drum notes the kit has no instrument for
are returned for the SoundFont to play.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from stemcut.training.drumkit import Kit
from stemcut.training.render_midi import MidiNote
from stemcut.training.targets import SAMPLE_RATE

# GM drum key -> kit instrument (first one the kit has).
GM_DRUMS: dict[int, tuple[str, ...]] = {
    35: ("KdrumL", "KdrumR"), 36: ("KdrumR", "KdrumL"),
    37: ("SnareRest", "Snare"), 38: ("Snare",), 39: ("Snare",), 40: ("Snare",),
    41: ("Tom4",), 43: ("Tom4", "Tom3"), 45: ("Tom3",), 47: ("Tom2",), 48: ("Tom1",), 50: ("Tom1",),
    42: ("HihatClosed",), 44: ("HihatClosed",), 46: ("HihatOpen",),
    49: ("CrashL",), 57: ("CrashR", "CrashL"), 52: ("China", "CrashR"), 55: ("CrashR", "CrashL"),
    51: ("RideR", "RideL"), 59: ("RideL", "RideR"), 53: ("RideRBell", "RideLBell"),
}
CHOKES = {"HihatOpen": (42, 44)}  # an open hi-hat stops at the next of these keys
CHOKE_FADE_S = 0.015
HIT_CACHE = 96  # decoded multi-mic hits kept per process


@dataclass(frozen=True)
class MicMix:
    """Per microphone: gain (linear) and pan position in [-1, 1]."""

    gains: dict[str, float]
    pans: dict[str, float]

    def matrix(self, mics: tuple[str, ...]) -> np.ndarray:
        """``[2, mics]`` equal-power stereo coefficients."""
        angles = [(self.pans.get(m, 0.0) + 1) * math.pi / 4 for m in mics]
        gains = [self.gains.get(m, 1.0) for m in mics]
        return np.array([[g * math.cos(a) for g, a in zip(gains, angles)],
                         [g * math.sin(a) for g, a in zip(gains, angles)]], np.float32)

    def describe(self) -> dict:
        return {m: {"gain_db": round(20 * math.log10(max(g, 1e-9)), 2), "pan": round(self.pans.get(m, 0.0), 3)}
                for m, g in self.gains.items()}


def random_mic_mix(mics: tuple[str, ...], rng: np.random.Generator) -> MicMix:
    """Close mics near 0 dB, overheads a little lower, room -14..-2 dB; toms spread, hats and rides to the sides."""
    side = 1.0 if rng.random() < 0.7 else -1.0  # +1: drummer's view (hi-hat left)
    width = float(rng.uniform(0.6, 1.0))
    room_width = float(rng.uniform(0.5, 1.0))
    close_db = {m: float(rng.uniform(-4, 2)) for m in mics}
    gains, pans = {}, {}
    toms = sorted(m for m in mics if m.lower().startswith("tom"))
    for mic in mics:
        name = mic.lower()
        db = close_db[mic]
        pan = 0.0
        if name in ("ohl", "ohr"):
            db, pan = float(rng.uniform(-6, 0)), (-width if name == "ohl" else width)
        elif name in ("ambl", "ambr"):
            db, pan = float(rng.uniform(-14, -2)), (-room_width if name == "ambl" else room_width)
        elif name.startswith("snare_bottom"):
            db = float(rng.uniform(-12, -4))
        elif name.startswith("hihat"):
            pan = -0.45 * side
        elif name.startswith("ride"):
            pan = 0.45 * side + (0.1 if name.endswith("l") else -0.1) * side
        elif mic in toms:
            position = toms.index(mic) / max(len(toms) - 1, 1)
            pan = (-0.5 + position) * 1.1 * side
        elif name.startswith("kdrum"):
            pan = float(rng.uniform(-0.05, 0.05))
        gains[mic] = 10 ** (db / 20)
        pans[mic] = pan
    return MicMix(gains, pans)


class DrumKitRenderer:
    """Plays GM drum notes with one :class:`Kit`, a per-song microphone mix and round robins."""

    def __init__(self, kit: Kit) -> None:
        self.kit = kit
        self._hits: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()

    def instrument_for(self, key: int) -> str | None:
        for name in GM_DRUMS.get(key, ()):
            if name in self.kit.instruments:
                return name
        return None

    def _hit(self, instrument: str, hit: int) -> np.ndarray:
        """``[mics, T]`` float32 of one hit (kit mic order; a missing mic file is silence)."""
        key = (instrument, hit)
        if key in self._hits:
            self._hits.move_to_end(key)
            return self._hits[key]
        channels = []
        for mic in self.kit.mics:
            path = self.kit.sample_path(instrument, hit, mic)
            data = sf.read(str(path), dtype="float32", always_2d=True)[0][:, 0] if path.exists() else np.zeros(1, np.float32)
            channels.append(data)
        length = max(len(c) for c in channels)
        stacked = np.zeros((len(channels), length), np.float32)
        for row, data in zip(stacked, channels):
            row[: len(data)] = data
        self._hits[key] = stacked
        if len(self._hits) > HIT_CACHE:
            self._hits.popitem(last=False)
        return stacked

    def render(self, notes: list[MidiNote], n_samples: int, rng: np.random.Generator,
               mix: MicMix | None = None) -> tuple[np.ndarray, list[MidiNote], dict]:
        """(``[2, n_samples]`` drums, notes the kit cannot play, description)."""
        mix = mix or random_mic_mix(self.kit.mics, rng)
        matrix = mix.matrix(self.kit.mics)
        out = np.zeros((2, n_samples), np.float32)
        premixed: dict[tuple[str, int], np.ndarray] = {}
        last_hit: dict[str, int] = {}
        unplayed: list[MidiNote] = []
        chokes = {name: sorted(n.start for n in notes if n.pitch in keys) for name, keys in CHOKES.items()}
        played = 0
        for note in notes:
            instrument = self.instrument_for(note.pitch)
            if instrument is None:
                unplayed.append(note)
                continue
            start = int(round(note.start * SAMPLE_RATE))
            if start >= n_samples:
                continue
            layer = self.kit.layer(instrument, note.velocity)
            choices = [h for h in layer.hits if h != last_hit.get(instrument)] or list(layer.hits)
            hit = choices[int(rng.integers(len(choices)))]
            last_hit[instrument] = hit
            key = (instrument, hit)
            if key not in premixed:
                premixed[key] = matrix @ self._hit(instrument, hit)
            sound = premixed[key]
            span = layer.hivel - layer.lovel + 1
            gain = 0.55 + 0.45 * (note.velocity - layer.lovel + 1) / span
            length = min(sound.shape[1], n_samples - start)
            if instrument in chokes:
                later = [t for t in chokes[instrument] if t > note.start + 1e-3]
                if later:
                    length = min(length, int((later[0] - note.start) * SAMPLE_RATE) + int(CHOKE_FADE_S * SAMPLE_RATE))
            piece = sound[:, :length] * np.float32(gain)
            if length < sound.shape[1]:
                fade = min(int(CHOKE_FADE_S * SAMPLE_RATE), length)
                piece[:, length - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
            out[:, start : start + length] += piece
            played += 1
        return out, unplayed, {"kit": self.kit.name, "hits": played, "mic_mix": mix.describe()}
