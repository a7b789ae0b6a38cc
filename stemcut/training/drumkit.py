"""A multi-microphone drum kit as an index: instruments, velocity layers, round robins, microphones.

The DrumGizmo MuldjordKit snapshot ships as SFZ data (``Data/macro.txt`` defines the velocity
ranges, ``Data/region/<instrument>.txt`` lists each layer's hits) over
``Samples/<instrument>/<hit>-<instrument>-<mic>.flac``: one mono file per hit and microphone,
every microphone's bleed and the room included. :func:`index_sfz_kit` reads that into
``kit.json``; the renderer (:mod:`stemcut.training.render_drums`) needs only ``kit.json`` and
the sample files, so tests can build a tiny kit by hand.

``kit.json``::

    {"name": ..., "licence": ..., "pattern": "Samples/{instrument}/{hit}-{instrument}-{mic}.flac",
     "mics": ["AmbL", ...],
     "instruments": {"Snare": [{"lovel": 1, "hivel": 25, "hits": [1, 2, ...]}, ...], ...}}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

KIT_INDEX = "kit.json"
SAMPLE_PATTERN = "Samples/{instrument}/{hit}-{instrument}-{mic}.flac"
IGNORED_MICS = ("Trigger",)  # a contact trigger, not a microphone

_DEFINE = re.compile(r"#define\s+\$(\w+)\s+(\S+)")
_REGION = re.compile(r"<region>([^<]*)")


@dataclass(frozen=True)
class Layer:
    """One velocity layer of an instrument: its MIDI velocity range and its round-robin hits."""

    lovel: int
    hivel: int
    hits: tuple[int, ...]


@dataclass(frozen=True)
class Kit:
    """A kit index loaded from ``kit.json``; ``root`` is the folder the pattern is relative to."""

    root: Path
    name: str
    licence: str
    pattern: str
    mics: tuple[str, ...]
    instruments: dict[str, tuple[Layer, ...]]

    def sample_path(self, instrument: str, hit: int, mic: str) -> Path:
        return self.root / self.pattern.format(instrument=instrument, hit=hit, mic=mic)

    def layer(self, instrument: str, velocity: int) -> Layer:
        """The layer whose range holds ``velocity`` (the nearest one when none does)."""
        layers = self.instruments[instrument]
        for layer in layers:
            if layer.lovel <= velocity <= layer.hivel:
                return layer
        return min(layers, key=lambda l: min(abs(velocity - l.lovel), abs(velocity - l.hivel)))


def _macros(text: str) -> dict[str, str]:
    return {name: value for name, value in _DEFINE.findall(text)}


def _resolve(value: str, macros: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: macros.get(m.group(1), m.group(0)), value)


def parse_region_file(text: str, macros: dict[str, str]) -> tuple[str, list[Layer]]:
    """(instrument, layers) of one ``Data/region/<instrument>.txt`` (``macros`` from ``macro.txt``)."""
    local = {**macros, **_macros(text)}
    instrument = local.get("instr", "")
    by_range: dict[tuple[int, int], list[int]] = {}
    for body in _REGION.findall(text):
        fields = dict(re.findall(r"(\w+)=(\S+)", _resolve(body, local)))
        sample = fields.get("sample", "")
        match = re.search(r"/(\d+)-", sample)
        if not match:
            continue
        key = (int(fields.get("lovel", 1)), int(fields.get("hivel", 127)))
        by_range.setdefault(key, []).append(int(match.group(1)))
    layers = [Layer(lo, hi, tuple(hits)) for (lo, hi), hits in sorted(by_range.items())]
    return instrument, layers


def index_sfz_kit(root: Path, name: str, licence: str) -> dict:
    """Read a DrumGizmo-style SFZ kit under ``root`` (``Data/``, ``Samples/``) into a ``kit.json`` dict."""
    root = Path(root)
    macros = _macros((root / "Data/macro.txt").read_text(encoding="utf-8", errors="replace"))
    instruments: dict[str, list[dict]] = {}
    for region in sorted((root / "Data/region").glob("*.txt")):
        instrument, layers = parse_region_file(region.read_text(encoding="utf-8", errors="replace"), macros)
        if not instrument or not layers or not (root / "Samples" / instrument).is_dir():
            continue
        instruments[instrument] = [{"lovel": l.lovel, "hivel": l.hivel, "hits": list(l.hits)} for l in layers]
    if not instruments:
        raise ValueError(f"{root}: no instruments with samples in Data/region/*.txt")
    first = next(iter(instruments))
    hit = instruments[first][0]["hits"][0]
    mics = sorted(
        p.name[len(f"{hit}-{first}-"):-len(".flac")]
        for p in (root / "Samples" / first).glob(f"{hit}-{first}-*.flac")
    )
    return {
        "name": name,
        "licence": licence,
        "pattern": SAMPLE_PATTERN,
        "mics": [m for m in mics if m not in IGNORED_MICS],
        "instruments": instruments,
    }


def load_kit(root: Path) -> Kit:
    """The kit indexed by ``<root>/kit.json``."""
    root = Path(root)
    with open(root / KIT_INDEX, encoding="utf-8") as f:
        data = json.load(f)
    instruments = {
        name: tuple(Layer(int(l["lovel"]), int(l["hivel"]), tuple(int(h) for h in l["hits"])) for l in layers)
        for name, layers in data["instruments"].items()
    }
    return Kit(root, data["name"], data["licence"], data.get("pattern", SAMPLE_PATTERN), tuple(data["mics"]), instruments)
