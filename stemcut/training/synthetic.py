"""Synthetic five-stem songs: compose, render each stem on its own, add per-stem effects, mix levels.

``generate_song(seed, ...)`` is a pure function of its arguments: the same seed gives
byte-identical stems (one renderer per process is reused, and it is reset per part).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from stemcut.training import composer
from stemcut.training.effects import apply_chain, pan, random_chain, soft_limit
from stemcut.training.instruments import BuiltinRenderer, Instrument, SoundfontRenderer
from stemcut.training.singing import VocalClipBank, Voice, sing
from stemcut.training.targets import SAMPLE_RATE, TARGETS

BASS = [Instrument("acoustic bass", 32, "bass"), Instrument("finger bass", 33, "bass"),
        Instrument("pick bass", 34, "bass"), Instrument("fretless bass", 35, "bass"),
        Instrument("slap bass", 36, "bass"), Instrument("synth bass 1", 38, "bass"),
        Instrument("synth bass 2", 39, "bass")]
GUITAR_CLEAN = [Instrument("jazz guitar", 26, "guitar"), Instrument("clean guitar", 27, "guitar"),
                Instrument("muted guitar", 28, "guitar")]
GUITAR_ACOUSTIC = [Instrument("nylon guitar", 24, "guitar"), Instrument("steel guitar", 25, "guitar")]
GUITAR_DRIVEN_SAMPLES = [Instrument("overdriven guitar", 29, "guitar"), Instrument("distortion guitar", 30, "guitar")]
OTHER_PAD = [Instrument("strings", 48, "strings"), Instrument("slow strings", 49, "strings"),
             Instrument("synth strings", 50, "strings"), Instrument("warm pad", 89, "pad"),
             Instrument("polysynth pad", 90, "pad"), Instrument("bowed pad", 92, "pad"),
             Instrument("halo pad", 94, "pad"), Instrument("drawbar organ", 16, "keys"),
             Instrument("rock organ", 18, "keys")]
OTHER_COMP = [Instrument("grand piano", 0, "keys"), Instrument("bright piano", 1, "keys"),
              Instrument("electric grand", 2, "keys"), Instrument("rhodes", 4, "keys"),
              Instrument("chorused piano", 5, "keys"), Instrument("clavinet", 7, "keys"),
              Instrument("vibraphone", 11, "keys"), Instrument("percussive organ", 17, "keys")]
OTHER_LEAD = [Instrument("trumpet", 56, "brass"), Instrument("trombone", 57, "brass"),
              Instrument("brass section", 61, "brass"), Instrument("synth brass", 62, "brass"),
              Instrument("alto sax", 65, "lead"), Instrument("tenor sax", 66, "lead"),
              Instrument("flute", 73, "lead"), Instrument("square lead", 80, "lead"),
              Instrument("saw lead", 81, "lead"), Instrument("violin", 40, "strings"),
              Instrument("clarinet", 71, "lead")]
CHOIR = [Instrument("choir aahs", 52, "choir"), Instrument("voice oohs", 53, "choir")]
DRUM_KITS = [Instrument("standard kit", 0, "drums", 128), Instrument("room kit", 8, "drums", 128),
             Instrument("power kit", 16, "drums", 128), Instrument("electronic kit", 24, "drums", 128),
             Instrument("TR-808 kit", 25, "drums", 128), Instrument("jazz kit", 32, "drums", 128),
             Instrument("brush kit", 40, "drums", 128)]
# Peaks are softly limited to this far above a stem's RMS, so one stray transient cannot force
# the shared anti-clip gain to turn the whole song down.
CREST_LIMIT_DB = 18.0
# Relative stem loudness (dB RMS) before the random per-stem offsets.
STEM_LEVEL_DB = {"vocals": -16.0, "drums": -17.0, "bass": -18.0, "guitar": -20.0, "other": -21.0}
PROJECT_CODE_LICENCE = "MIT (stemcut built-in synth)"


@dataclass
class GeneratorConfig:
    """What ``generate_song`` needs besides a seed."""

    seconds: float = 30.0
    soundfont: Path | None = None
    vocal_clips: Path | None = None
    real_vocal_probability: float = 0.5


_RENDERERS: dict[str, Any] = {}


def _renderer(config: GeneratorConfig, seed: int) -> SoundfontRenderer | BuiltinRenderer:
    if config.soundfont is None:
        return BuiltinRenderer(seed)
    key = str(config.soundfont)
    if key not in _RENDERERS:  # loading an sf3 decodes its samples: once per process
        _RENDERERS[key] = SoundfontRenderer(config.soundfont)
    return _RENDERERS[key]


def _choose(rng: np.random.Generator, options: list[Instrument], renderer: Any) -> Instrument:
    if isinstance(renderer, SoundfontRenderer):
        options = [i for i in options if renderer.has_program(i.bank, i.program)] or options[:1]
    return options[int(rng.integers(len(options)))]


def generate_song(seed: int, config: GeneratorConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Compose and render one song. Returns ``{target: [2, T] float32}`` and its metadata."""
    rng = np.random.default_rng(seed)
    n_samples = int(config.seconds * SAMPLE_RATE)
    renderer = _renderer(config, seed)
    plan = composer.plan_song(rng, config.seconds)
    parts: dict[str, list[tuple[np.ndarray, dict[str, Any]]]] = {t: [] for t in TARGETS}

    def render(target: str, notes: list[composer.Note], instrument: Instrument, amp: bool = False,
               role: str = "") -> None:
        audio = renderer.render(notes, instrument, n_samples)
        chain = random_chain(rng, amp=amp)
        audio = apply_chain(_normalise(audio), chain)
        description = {"instrument": instrument.name, "program": instrument.program, "bank": instrument.bank,
                       "notes": len(notes), "effects": chain}
        if role:
            description["role"] = role
        parts[target].append((audio, description))

    drums, drum_style = composer.drum_part(plan, rng)
    render("drums", drums, _choose(rng, DRUM_KITS, renderer), role=drum_style)
    bass, bass_style = composer.bass_part(plan, rng)
    render("bass", bass, _choose(rng, BASS, renderer), role=bass_style)

    guitar_kind = str(rng.choice(["clean", "driven", "acoustic", "none"], p=[0.3, 0.35, 0.25, 0.1]))
    if guitar_kind != "none":
        style = {"driven": str(rng.choice(["power", "strum"])), "acoustic": "strum"}.get(
            guitar_kind, str(rng.choice(["strum", "arpeggio"])))
        pool = {"clean": GUITAR_CLEAN, "acoustic": GUITAR_ACOUSTIC}.get(guitar_kind, GUITAR_CLEAN)
        if guitar_kind == "driven" and rng.random() < 0.2:
            pool = GUITAR_DRIVEN_SAMPLES
        render("guitar", composer.guitar_part(plan, rng, style), _choose(rng, pool, renderer),
               amp=guitar_kind == "driven", role=f"{guitar_kind} {style}")

    for role, pool in (("pad", OTHER_PAD), ("comp", OTHER_COMP), ("lead", OTHER_LEAD)):
        if rng.random() < {"pad": 0.7, "comp": 0.7, "lead": 0.5}[role]:
            render("other", composer.other_part(plan, rng, role), _choose(rng, pool, renderer), role=role)

    vocal_meta = _render_vocals(plan, rng, config, renderer, n_samples, parts)
    stems = {t: _sum_parts(parts[t], n_samples) for t in TARGETS}
    gains = _level_stems(stems, rng)
    meta = {
        "seed": seed, "seconds": config.seconds, "sample_rate": SAMPLE_RATE,
        "tempo": round(plan.tempo, 2), "key": plan.key_name, "swing": plan.swing,
        "sections": [{"name": s.name, "start_bar": s.start_bar, "bars": s.bars, "progression": list(s.progression)}
                     for s in plan.sections],
        "stems": {t: [d for _, d in parts[t]] for t in TARGETS},
        "stem_gain_db": gains, "vocals": vocal_meta, "guitar": guitar_kind,
        "renderer": "soundfont" if isinstance(renderer, SoundfontRenderer) else "builtin",
        "assets": _assets(renderer, vocal_meta),
    }
    return stems, meta


def _render_vocals(plan: composer.SongPlan, rng: np.random.Generator, config: GeneratorConfig, renderer: Any,
                   n_samples: int, parts: dict[str, list]) -> dict[str, Any]:
    voice = Voice.random(rng)
    melody = composer.vocal_melody(plan, rng, voice.low, voice.high)
    use_real = config.vocal_clips is not None and rng.random() < config.real_vocal_probability
    if use_real:
        audio, clips = VocalClipBank(config.vocal_clips).phrases(melody, n_samples, rng)
        description: dict[str, Any] = {"lead": "real cut-ups", "clips": clips}
    else:
        audio = pan(sing(melody, voice, n_samples, rng), float(rng.uniform(-0.1, 0.1)))
        description = {"lead": "formant synth", "voice": voice.__dict__, "notes": len(melody)}
    chain = random_chain(rng, reverb_probability=0.8)
    parts["vocals"].append((apply_chain(_normalise(audio), chain), {**description, "effects": chain}))
    if rng.random() < 0.35:  # backing "aahs": real sampled voices from the SoundFont (or a synth pad)
        backing = [composer.Note(n.start, n.duration, n.pitch - 12 + 7 * int(rng.integers(0, 2)), n.velocity)
                   for n in melody]
        instrument = _choose(rng, CHOIR, renderer)
        audio = renderer.render(backing, instrument, n_samples)
        chain = random_chain(rng, reverb_probability=0.9)
        gain = 10 ** (rng.uniform(-12, -5) / 20)
        parts["vocals"].append((gain * apply_chain(_normalise(audio), chain),
                                {"backing": instrument.name, "effects": chain}))
        description["backing"] = instrument.name
    return description


def _normalise(audio: np.ndarray, rms_db: float = -20.0) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    return audio if rms < 1e-7 else (audio * (10 ** (rms_db / 20) / rms)).astype(np.float32)


def _sum_parts(parts: list[tuple[np.ndarray, dict]], n_samples: int) -> np.ndarray:
    out = np.zeros((2, n_samples), np.float32)
    for audio, _ in parts:
        out += audio[:, :n_samples]
    return out


def _level_stems(stems: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, float]:
    """Set each stem to a random level around a typical mix balance, then share one anti-clip gain."""
    gains = {}
    for target, audio in stems.items():
        rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
        if rms < 1e-7:
            gains[target] = 0.0
            continue
        level_db = STEM_LEVEL_DB[target] + float(rng.uniform(-4, 4))
        gain_db = level_db - 20 * np.log10(rms)
        stems[target] = soft_limit(audio * 10 ** (gain_db / 20), 10 ** ((level_db + CREST_LIMIT_DB) / 20))
        gains[target] = round(float(gain_db), 2)
    peak = max(float(np.abs(sum(stems.values())).max()), max(float(np.abs(a).max()) for a in stems.values()))
    if peak > 0.95:
        for target in stems:
            stems[target] *= np.float32(0.95 / peak)
    return gains


def _assets(renderer: Any, vocal_meta: dict[str, Any]) -> list[dict[str, str]]:
    if isinstance(renderer, SoundfontRenderer):
        assets = [{"asset": renderer.path.name, "licence": _soundfont_licence(renderer.path)}]
    else:
        assets = [{"asset": "built-in synth", "licence": PROJECT_CODE_LICENCE}]
    assets.append({"asset": "formant singing synth, effects", "licence": PROJECT_CODE_LICENCE})
    for clip in vocal_meta.get("clips", []):
        assets.append({"asset": clip["file"], "licence": clip["licence"]})
    return assets


def _soundfont_licence(path: Path) -> str:
    known = {"FluidR3Mono_GM.sf3": "MIT (Debian fluidr3mono-gm-soundfont)",
             "FluidR3_GM.sf2": "MIT (Debian fluid-soundfont-gm)"}
    return known.get(path.name, "see the SoundFont's licence")


def write_song(folder: Path, stems: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``<folder>/<target>.flac`` (16-bit, 44.1 kHz stereo) and ``meta.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    for target, audio in stems.items():
        sf.write(folder / f"{target}.flac", np.clip(audio.T, -1, 1), SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    with open(folder / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, default=float)
