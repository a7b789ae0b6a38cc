"""The shipped models give the same stems as before the engine redesign (to float tolerance).

``tests/data/shipped_stems_reference.json`` holds, per case, each stem's energy and
32 random projections, computed by the code before the redesign (commit in the file)
from the mixture :func:`mixture` makes. Any change in how stems are formed (STFT,
masks, shares, Wiener, iSTFT, chunking, resampling) moves them. When new weights
ship, regenerate the file with ``python tests/test_redesign_reference.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).with_name("data") / "shipped_stems_reference.json"
CASES = {
    "stereo-44100": (44100, 2, {}),
    "mono-48000-wiener": (48000, 1, {"wiener": True}),
    "stereo-22050-short-segment": (22050, 2, {"segment": 2.0, "overlap": 0.25}),
}


def mixture(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """Kick, hats, a vibrato voice and a square bass: something each model reacts to."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-((t % 0.5) * 18))
    hat = rng.standard_normal(t.size) * np.exp(-((t % 0.25) * 60)) * 0.15
    voice = 0.25 * np.sin(2 * np.pi * (330 + 20 * np.sin(2 * np.pi * 5 * t)) * t) * (np.sin(2 * np.pi * 0.7 * t) > -0.2)
    bass = 0.3 * np.sign(np.sin(2 * np.pi * 82.4 * t)) * 0.5
    out = np.stack([kick * 0.6 + hat + voice * (0.9 + 0.1 * c) + bass + 0.005 * rng.standard_normal(t.size)
                    for c in range(channels)])
    return (out * 0.7).astype(np.float32)


def projections(stems: dict[str, np.ndarray], seed: int = 1234, count: int = 32) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, audio in stems.items():
        flat = audio.astype(np.float64).ravel()
        basis = rng.standard_normal((count, flat.size)) / np.sqrt(flat.size)
        out[name] = {"energy": float((flat ** 2).sum()), "projections": (basis @ flat).tolist()}
    return out


def separate_case(name: str) -> dict:
    from stemcut import Separator

    rate, channels, options = CASES[name]
    with Separator(device="cpu", threads=2, **options) as separator:
        return projections(separator.separate(mixture(7.0, rate, channels, 3), rate))


@pytest.mark.parametrize("case", list(CASES))
def test_shipped_models_give_the_stems_they_gave_before(case):
    reference = json.loads(REFERENCE.read_text())["cases"][case]["stems"]
    measured = separate_case(case)
    assert list(measured) == list(reference)
    for stem, expected in reference.items():
        scale = np.sqrt(expected["energy"]) + 1e-9
        got = measured[stem]
        assert abs(got["energy"] - expected["energy"]) <= 1e-4 * expected["energy"] + 1e-6, stem
        np.testing.assert_allclose(got["projections"], expected["projections"], atol=1e-4 * scale, err_msg=stem)


def test_stemcut_separate_writes_the_stems_it_wrote_before(tmp_path):
    from typer.testing import CliRunner

    from stemcut.audio import load_audio, save_audio
    from stemcut.cli import app

    rate, channels, _ = CASES["stereo-44100"]
    source = save_audio(tmp_path / "song.wav", mixture(7.0, rate, channels, 3), rate)
    result = CliRunner().invoke(app, ["separate", str(source), "-o", str(tmp_path / "out"), "--bit-depth", "32",
                                      "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    written = {stem: load_audio(tmp_path / "out" / "song" / f"{stem}.wav")[0]
               for stem in ("vocals", "drums", "bass", "guitar", "other")}
    measured = projections(written)
    reference = json.loads(REFERENCE.read_text())["cases"]["stereo-44100"]["stems"]
    for stem, expected in reference.items():
        scale = np.sqrt(expected["energy"]) + 1e-9
        np.testing.assert_allclose(measured[stem]["projections"], expected["projections"], atol=1e-4 * scale,
                                   err_msg=stem)


if __name__ == "__main__":
    commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent).decode().strip()
    data = {"made_with": commit, "seconds": 7.0, "seed": 3,
            "cases": {name: {"rate": CASES[name][0], "channels": CASES[name][1], "options": CASES[name][2],
                             "stems": separate_case(name)} for name in CASES}}
    REFERENCE.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {REFERENCE}", file=sys.stderr)
