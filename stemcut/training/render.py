"""Render human-written MIDI arrangements into five-stem songs with real-sample timbres.

Per song (a pure function of the MIDI file, the assets and the seed):

1. **Score**: the MIDI notes by GM stem (:mod:`stemcut.training.render_midi`); variants other
   than 0 change the tempo by up to 8 % and transpose pitched parts by up to 3 semitones;
   ``seconds`` cuts a random excerpt of long songs; every note is humanised (+-6 ms, +-6 velocity).
2. **Drums**: the multi-mic kit (:mod:`stemcut.training.render_drums`); percussion it has no
   instrument for is played by the SoundFont's GM kit into the same stem.
3. **Guitar**: every guitar channel is its own track of real samples re-amped clean or
   distorted (:mod:`stemcut.training.render_guitar`), distorted ones often double-tracked
   and panned hard left/right.
4. **Bass, other**: the SoundFont (:mod:`stemcut.training.render_soundfont`), programs
   sometimes swapped within their GM family.
5. **Vocals**: on some songs, real sung phrases (:mod:`stemcut.training.render_vocals`).
6. **Mix**: per stem an EQ / compressor / reverb chain (:func:`stemcut.training.effects.random_chain`),
   a level around a typical balance, then the **bus**: one compressor gain envelope computed
   on the mixture and applied to every stem, and one overflow-avoiding gain on all stems.
   The mixture is exactly the sum of the stems.

``meta.json`` lists every ingredient with its licence; ``commercial_ok`` only when all are.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf


from stemcut.training.corpus_audio import write_stem_folder
from stemcut.training.corpus_licences import all_commercial_ok
from stemcut.training.drumkit import load_kit
from stemcut.training.effects import apply_chain, compressor_gain, pan, random_chain, soft_limit
from stemcut.training.render_drums import DrumKitRenderer
from stemcut.training.render_guitar import GuitarBank, load_impulse, pick_tone, reamp
from stemcut.training.render_midi import MidiNote, Score, excerpt, humanize, notes_by_stem, read_score
from stemcut.training.render_soundfont import SoundfontPlayer, family_swaps
from stemcut.training.render_vocals import VocalTrack, find_vocal_clips, process_vocals
from stemcut.training.targets import SAMPLE_RATE, TARGETS

TAIL_S = 1.5
STEM_LEVEL_DB = {"vocals": -16.0, "drums": -17.0, "bass": -18.0, "guitar": -20.0, "other": -21.0}
CREST_LIMIT_DB = 18.0
PEAK_CEILING = 0.98
SILENT_RMS = 1e-6
REVERB_PROBABILITY = {"vocals": 0.8, "drums": 0.35, "bass": 0.05, "guitar": 0.5, "other": 0.6}
BASS_DRIVE_PROBABILITY = 0.4
CODE_LICENCE = "MIT (stemcut renderer)"
META = "meta.json"


@dataclass(frozen=True)
class RenderAssets:
    """Where the renderer's ingredients are: kit and guitar sample folders, a SoundFont, optional
    impulse responses (``*.wav`` searched recursively) and optional shared data with real vocals."""

    kit: Path
    guitars: Path
    soundfont: Path
    soundfont_licence: str = "MIT (parts CC0/PD)"
    impulses: Path | None = None
    impulse_licence: str = "GPL-2+"
    vocals_root: Path | None = None


@dataclass(frozen=True)
class RenderConfig:
    """Song-level choices: excerpt length, how often vocals and impulse responses are used."""

    seconds: float | None = None
    vocals_probability: float = 0.75
    impulse_probability: float = 0.7
    program_swap_probability: float = 0.3
    double_probability: float = 0.6
    commercial_only: bool = False  # leave out ingredients that are not commercial-clean


class NotePlayer(Protocol):
    """What plays bass, other and extra percussion (:class:`SoundfontPlayer`)."""

    def render(self, score: Score, notes: list[MidiNote], n_samples: int,
               programs: dict[int, int] | None = None) -> np.ndarray: ...


class SongRenderer:
    """Loads the assets once; :meth:`render` makes one song."""

    def __init__(self, assets: RenderAssets, config: RenderConfig = RenderConfig(),
                 player: NotePlayer | None = None) -> None:
        self.assets, self.config = assets, config
        self.kit = load_kit(assets.kit)
        self.drums = DrumKitRenderer(self.kit)
        self.guitars = GuitarBank(assets.guitars)
        self.soundfont: NotePlayer = player or SoundfontPlayer(assets.soundfont)
        use_impulses = assets.impulses is not None and not (config.commercial_only and not all_commercial_ok([assets.impulse_licence]))
        self.impulses = sorted(Path(assets.impulses).rglob("*.wav")) if use_impulses else []
        clips = find_vocal_clips(assets.vocals_root, config.commercial_only) if assets.vocals_root else []
        self.vocals = VocalTrack(clips) if clips else None

    def render(self, midi: Path, midi_licence: str, seed: int, variant: int = 0) -> tuple[dict[str, np.ndarray], dict]:
        """(``{target: [2, T]}``, meta) for one song; the same arguments give the same samples."""
        rng = np.random.default_rng(seed)
        tempo = 1.0 if variant == 0 else float(rng.uniform(0.92, 1.08))
        transpose = 0 if variant == 0 else int(rng.integers(-3, 4))
        score = read_score(Path(midi), tempo, transpose)
        start = 0.0
        if self.config.seconds and score.seconds > self.config.seconds:
            start = float(rng.uniform(0, score.seconds - self.config.seconds))
            score = excerpt(score, start, self.config.seconds)
        score = humanize(score, rng)
        n = int((score.seconds + TAIL_S) * SAMPLE_RATE)
        groups = notes_by_stem(score)
        ingredients: list[dict[str, str]] = [
            {"asset": f"MIDI {Path(midi).name}", "licence": midi_licence},
            {"asset": "stemcut renderer (mixing, effects)", "licence": CODE_LICENCE},
        ]
        parts: dict[str, Any] = {}
        stems = {t: np.zeros((2, n), np.float32) for t in TARGETS}

        stems["drums"], parts["drums"] = self._drums(score, groups.get("drums", []), n, rng, ingredients)
        stems["guitar"], parts["guitar"] = self._guitar(groups.get("guitar", []), n, rng, ingredients)
        for target in ("bass", "other"):
            notes = groups.get(target, [])
            swaps = family_swaps({note.program for note in notes}, rng, 0.5 if target == "bass" else self.config.program_swap_probability)
            if notes:
                stems[target] = self.soundfont.render(score, notes, n, swaps)
                parts[target] = {"notes": len(notes), "programs": sorted({note.program for note in notes}),
                                 "swapped": {str(k): v for k, v in swaps.items()}}
                _add(ingredients, f"SoundFont {self.assets.soundfont.name}", self.assets.soundfont_licence)
        if self.vocals is not None and rng.random() < self.config.vocals_probability:
            vocals, used = self.vocals.render(n, rng)
            if used:
                stems["vocals"], parts["vocals"] = process_vocals(vocals, rng)
                parts["vocals"]["clips"] = used
                for clip in used:
                    _add(ingredients, f"vocals {clip['file']}", clip["licence"])

        effects = {}
        for target in TARGETS:
            if _rms(stems[target]) > SILENT_RMS:
                chain = random_chain(rng, reverb_probability=REVERB_PROBABILITY[target])
                if target == "bass" and rng.random() < BASS_DRIVE_PROBABILITY:  # amp grit: upper harmonics
                    chain = [{"type": "drive", "gain_db": round(float(rng.uniform(4, 16)), 2),
                              "asymmetry": round(float(rng.uniform(0, 0.2)), 3)}] + chain
                stems[target] = apply_chain(stems[target], chain)
                effects[target] = chain
        levels = _level(stems, rng)
        bus = _bus(stems, rng)
        licences = sorted({i["licence"] for i in ingredients})
        meta = {
            "layout": "render",
            "midi": Path(midi).name,
            "midi_licence": midi_licence,
            "seed": int(seed),
            "variant": int(variant),
            "tempo_scale": round(tempo, 4),
            "transpose": transpose,
            "excerpt_start_s": round(start, 3),
            "seconds": round(n / SAMPLE_RATE, 3),
            "licence": "; ".join(licences),
            "commercial_ok": all_commercial_ok(licences),
            "ingredients": ingredients,
            "bass_separate": True,
            "inside_other": [],
            "known_silent": [t for t in TARGETS if _rms(stems[t]) <= SILENT_RMS],
            "has_vocals": "vocals" in parts,
            "parts": parts,
            "effects": effects,
            "levels_db": levels,
            "bus": bus,
            "note": "five separate stems; the mixture is their sum",
        }
        return stems, meta

    def _drums(self, score: Score, notes: list[MidiNote], n: int, rng: np.random.Generator,
               ingredients: list[dict[str, str]]) -> tuple[np.ndarray, dict]:
        if not notes:
            return np.zeros((2, n), np.float32), {}
        audio, unplayed, info = self.drums.render(notes, n, rng)
        if info["hits"]:
            _add(ingredients, self.kit.name, self.kit.licence)
        if unplayed:
            extra = self.soundfont.render(score, unplayed, n)
            audio = audio + extra * np.float32(10 ** (float(rng.uniform(-6, 0)) / 20) * _ratio(audio, extra))
            info["soundfont_percussion"] = sorted({note.pitch for note in unplayed})
            _add(ingredients, f"SoundFont {self.assets.soundfont.name}", self.assets.soundfont_licence)
        return audio, info

    def _guitar(self, notes: list[MidiNote], n: int, rng: np.random.Generator,
                ingredients: list[dict[str, str]]) -> tuple[np.ndarray, list[dict]]:
        out = np.zeros((2, n), np.float32)
        tracks: list[dict] = []
        by_channel: dict[int, list[MidiNote]] = {}
        for note in notes:
            by_channel.setdefault(note.channel, []).append(note)
        for channel, part in sorted(by_channel.items()):
            program = Counter(note.program for note in part).most_common(1)[0][0]
            guitar = self.guitars.guitars[int(rng.integers(len(self.guitars.guitars)))]
            tone = pick_tone(program, rng)
            impulse_path = None
            if self.impulses and rng.random() < self.config.impulse_probability:
                impulse_path = self.impulses[int(rng.integers(len(self.impulses)))]
            impulse = load_impulse(impulse_path) if impulse_path else None
            doubled = tone == "distorted" and rng.random() < self.config.double_probability
            tone_seed = int(rng.integers(2**31))
            takes = []
            for take in range(2 if doubled else 1):
                di = self.guitars.render_di(part, guitar, n, np.random.default_rng([tone_seed, take]))
                audio, chain = reamp(di, tone, impulse, np.random.default_rng(tone_seed))
                takes.append(_normalise(audio))
            level = float(10 ** (rng.uniform(-3, 3) / 20))
            if doubled:
                spread = float(rng.uniform(0.7, 1.0))
                stereo = pan(takes[0], -spread) + pan(takes[1], spread)
                position = spread
            else:
                position = float(rng.uniform(-0.6, 0.6))
                stereo = pan(takes[0], position)
            out += level * stereo
            tracks.append({"channel": channel, "program": program, "guitar": guitar, "tone": tone, "notes": len(part),
                           "impulse": impulse_path.name if impulse_path else None, "doubled": doubled,
                           "pan": round(position, 3), "chain": chain})
            _add(ingredients, "Karoryfer Black and Green Guitars", "CC0-1.0")
            if impulse_path:
                _add(ingredients, f"impulse response {impulse_path.name}", self.assets.impulse_licence)
        return out, tracks


def _add(ingredients: list[dict[str, str]], asset: str, licence: str) -> None:
    if not any(i["asset"] == asset for i in ingredients):
        ingredients.append({"asset": asset, "licence": licence})


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if audio.size else 0.0


def _ratio(reference: np.ndarray, other: np.ndarray) -> float:
    """Gain that brings ``other`` to ``reference``'s RMS (1 when either is silent)."""
    a, b = _rms(reference), _rms(other)
    return a / b if a > SILENT_RMS and b > SILENT_RMS else 1.0


def _active_rms(audio: np.ndarray, frame: int = 4096, floor_db: float = 40.0) -> float:
    """RMS over the frames within ``floor_db`` of the loudest: a sparse part is levelled where it plays."""
    frames = audio.shape[-1] // frame
    if frames == 0:
        return _rms(audio)
    power = (audio[..., : frames * frame].astype(np.float64).reshape(-1, frames, frame) ** 2).mean(axis=(0, 2))
    loud = power[power >= power.max() * 10 ** (-floor_db / 10)]
    return float(np.sqrt(loud.mean())) if loud.size else 0.0


def _normalise(audio: np.ndarray, rms_db: float = -20.0) -> np.ndarray:
    rms = _rms(audio)
    return audio if rms <= SILENT_RMS else (audio * np.float32(10 ** (rms_db / 20) / rms)).astype(np.float32)


def _level(stems: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, float]:
    """Each sounding stem (its RMS where it plays) to its typical level +-4 dB, peaks softly limited 18 dB above its RMS."""
    levels = {}
    for target, audio in stems.items():
        rms = _active_rms(audio)
        if _rms(audio) <= SILENT_RMS:
            stems[target] = np.zeros_like(audio)
            continue
        level_db = STEM_LEVEL_DB[target] + float(rng.uniform(-4, 4))
        gain_db = level_db - 20 * math.log10(rms)
        stems[target] = soft_limit(audio * np.float32(10 ** (gain_db / 20)), 10 ** ((level_db + CREST_LIMIT_DB) / 20))
        levels[target] = round(gain_db, 2)
    return levels


def _bus(stems: dict[str, np.ndarray], rng: np.random.Generator) -> dict:
    """Bus compression (one envelope from the mixture on every stem) and one overflow-avoiding gain."""
    mixture = sum(stems.values())
    info: dict[str, Any] = {}
    rms = _rms(mixture)
    if rms > SILENT_RMS:
        settings = {"threshold_db": round(20 * math.log10(rms) + float(rng.uniform(0, 6)), 2),
                    "ratio": round(float(rng.uniform(1.5, 3)), 2), "attack_ms": round(float(rng.uniform(10, 30)), 2),
                    "release_ms": round(float(rng.uniform(100, 300)), 2)}
        envelope = compressor_gain(mixture, **settings)
        for target in stems:
            stems[target] = (stems[target] * envelope).astype(np.float32)
        info["compressor"] = settings
    mixture = sum(stems.values())
    peak = max([float(np.abs(mixture).max(initial=0))] + [float(np.abs(a).max(initial=0)) for a in stems.values()])
    gain = PEAK_CEILING / peak if peak > PEAK_CEILING else 1.0
    for target in stems:
        stems[target] = (stems[target] * np.float32(gain)).astype(np.float32)
    info["gain"] = round(gain, 6)
    return info


def is_complete(folder: Path) -> bool:
    """A song folder is complete when its ``meta.json`` is there (folders appear whole, by rename)."""
    return (Path(folder) / META).is_file()


def write_song(folder: Path, stems: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``<folder>/{target}.flac`` (16-bit 44.1 kHz stereo) and ``meta.json`` atomically: all or nothing."""
    write_stem_folder(folder, {target: stems[target].T for target in TARGETS}, meta)
