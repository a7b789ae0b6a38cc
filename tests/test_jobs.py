"""The one file loop (stemcut.jobs.separate_file) into both sinks: exact files, nothing left on error."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import band_sources, sine_mixture
from stemcut import Separator
from stemcut.audio import AudioError, OutputSpec, StemFilesSink, load_audio, save_audio
from stemcut.jobs import separate_file
from stemcut.metrics import global_sdr
from stemcut.nistems import StemsSpec


@pytest.fixture(scope="module")
def separator(tiny_models):
    with Separator(tiny_models, device="cpu", segment=0.5, overlap=0.2, threads=2) as separator:
        yield separator


def test_file_loop_writes_exact_files(separator, tmp_path):
    audio = sine_mixture(1.1, 22050, 1)
    source = save_audio(tmp_path / "in.flac", audio, 22050, OutputSpec(format="flac", bit_depth=24))
    outputs = {"vocals": tmp_path / "out" / "vocals.wav", "instrumental": tmp_path / "out" / "instrumental.wav"}
    seen = []
    result = separate_file(separator, source, OutputSpec(format="wav", bit_depth=32).sink(outputs),
                           progress=seen.append)
    assert sum(seen) == audio.shape[1] == result.frames
    assert result.outputs == outputs
    vocals, rate = load_audio(outputs["vocals"])
    instrumental, _ = load_audio(outputs["instrumental"])
    mixture, _ = load_audio(source)
    assert rate == 22050 and vocals.shape == mixture.shape == (1, audio.shape[1])
    assert np.abs(vocals + instrumental - mixture).max() < 1e-5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["instrumental.wav", "vocals.wav"]


def test_file_loop_writes_the_separated_stems(band_models, tmp_path):
    """Through the file loop, each written stem is its own source (a broken path fails here)."""
    sources = band_sources(seconds=1.5)
    source = save_audio(tmp_path / "mix.wav", sum(sources.values()), 44100)
    outputs = {name: tmp_path / "out" / f"{name}.wav" for name in sources}
    with Separator(band_models, device="cpu", segment=1.0) as separator:
        separate_file(separator, source, OutputSpec(format="wav", bit_depth=32).sink(outputs))
    for name, reference in sources.items():
        written, _ = load_audio(outputs[name])
        assert global_sdr(reference, written) > 20, name


def test_stem_container_sink_holds_mixture_and_slots(band_models, tmp_path):
    from stemcut.nistems import read_stem_metadata

    sources = band_sources(seconds=1.0)
    source = save_audio(tmp_path / "mix.wav", sum(sources.values()), 44100)
    target = tmp_path / "song.stem.mp4"
    spec = StemsSpec()
    with Separator(band_models, device="cpu", segment=1.0) as separator:
        result = separate_file(separator, source, spec.sink({"stem.mp4": target}))
    assert result.outputs == {"stem.mp4": target}
    assert [s["name"] for s in read_stem_metadata(target)["stems"]] == ["Drums", "Bass", "Other", "Vocals"]
    bass, _ = load_audio(target, stream=2)
    assert global_sdr(sources["bass"], bass[:, :sources["bass"].shape[1]]) > 10  # AAC-coded, still the bass


def test_failed_file_leaves_no_outputs(separator, tmp_path):
    audio = sine_mixture(1.0, 8000, 2)
    audio[:, 6000] = np.inf
    sf.write(tmp_path / "bad.wav", audio.T, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="infinite"):
        separate_file(separator, tmp_path / "bad.wav", StemFilesSink({"vocals": tmp_path / "o" / "vocals.wav"},
                                                                       OutputSpec()))
    assert list((tmp_path / "o").iterdir()) == []


def test_unknown_output_is_refused_before_reading(separator, tmp_path):
    with pytest.raises(ValueError, match="cannot produce piano"):
        separate_file(separator, tmp_path / "missing.wav", OutputSpec().sink({"piano": tmp_path / "p.wav"}))
