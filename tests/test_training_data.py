"""Training data: readers for every layout, the synthetic generator, remixing and augmentation.

All inputs are tiny signals written to tmp dirs here; nothing needs /work/shared, a
SoundFont, the network or a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from stemcut.training import augment
from stemcut.training.dataset import (AugmentConfig, MixtureSampler, SourcePool, StemMixDataset)
from stemcut.training.effects import apply_chain, apply_filters, biquad, random_chain
from stemcut.training.sources import (read_musdb_mp4_dir, read_solo_clips, read_stem_folder, read_stem_folders,
                                      read_vocals_accompaniment)
from stemcut.training.synthetic import GeneratorConfig, generate_song
from stemcut.training.targets import SAMPLE_RATE, TARGETS

REPO = Path(__file__).resolve().parents[1]
FREQS = {"vocals": 440.0, "drums": 110.0, "bass": 55.0, "guitar": 330.0, "other": 880.0, "accompaniment": 220.0}


def sine(freq: float, seconds: float = 0.5, rate: int = SAMPLE_RATE, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.repeat((0.2 * np.sin(2 * np.pi * freq * t))[:, None], channels, axis=1).astype(np.float32)


def dominant_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio.mean(axis=0)))
    return float(np.argmax(spectrum) * SAMPLE_RATE / audio.shape[-1])


def write_folder(folder: Path, stems: list[str], suffix: str = ".wav", rate: int = SAMPLE_RATE, channels: int = 2,
                 meta: dict | None = None) -> None:
    folder.mkdir(parents=True)
    for stem in stems:
        sf.write(folder / f"{stem}{suffix}", sine(FREQS[stem], rate=rate, channels=channels), rate)
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps(meta))


# ------------------------------------------------------------------ readers

def test_musdb_hq_folder_puts_guitar_inside_other(tmp_path: Path) -> None:
    write_folder(tmp_path / "song", ["vocals", "drums", "bass", "other"], ".flac")
    track = read_stem_folders(tmp_path)[0]
    stems = track.load()
    assert stems.shape == (5, 2, SAMPLE_RATE // 2) and stems.dtype == np.float32
    assert track.known == (True, True, True, False, True) and not track.has_guitar
    assert not np.any(stems[TARGETS.index("guitar")])
    for name in ("vocals", "drums", "bass", "other"):
        assert dominant_hz(stems[TARGETS.index(name)]) == pytest.approx(FREQS[name], abs=3)


def test_folder_meta_bass_inside_other_moves_bass_audio_into_other(tmp_path: Path) -> None:
    meta = {"bass_separate": False, "licence": "CC0-1.0", "parts_below_44k": ["x"]}
    write_folder(tmp_path / "song", ["vocals", "drums", "bass", "other"], ".ogg", meta=meta)
    track = read_stem_folder(tmp_path / "song")
    stems = track.load()
    assert track.known == (True, True, False, False, True)
    assert track.licence == "CC0-1.0" and track.band_limited_hz == 12000.0
    assert not np.any(stems[TARGETS.index("bass")])
    other = np.abs(np.fft.rfft(stems[TARGETS.index("other")].mean(axis=0)))
    for name in ("bass", "other"):  # both tones now live in "other"
        assert other[int(FREQS[name] * stems.shape[-1] / SAMPLE_RATE)] > 0.1 * other.max()


def test_five_stem_mono_folder_is_duplicated_to_stereo(tmp_path: Path) -> None:
    write_folder(tmp_path / "mdb", list(TARGETS), ".flac", channels=1)
    track = read_stem_folder(tmp_path / "mdb")
    stems = track.load()
    assert track.known == (True,) * 5 and track.has_guitar and track.was_mono
    np.testing.assert_array_equal(stems[:, 0], stems[:, 1])
    assert dominant_hz(stems[TARGETS.index("guitar")]) == pytest.approx(330, abs=3)


def test_vocals_accompaniment_16k_mono_is_resampled_and_flagged(tmp_path: Path) -> None:
    write_folder(tmp_path / "clip_1", ["vocals", "accompaniment"], ".ogg", rate=16000, channels=1)
    track = read_vocals_accompaniment(tmp_path)[0]
    stems = track.load()
    assert stems.shape[-1] == pytest.approx(SAMPLE_RATE // 2, abs=50)
    assert track.was_mono and track.band_limited_hz == 8000.0
    assert track.known == (True, False, False, False, True)
    assert dominant_hz(stems[0]) == pytest.approx(440, abs=5)
    assert dominant_hz(stems[TARGETS.index("other")]) == pytest.approx(220, abs=5)


def test_solo_clips_fill_their_category_and_take_licence_from_manifest(tmp_path: Path) -> None:
    (tmp_path / "vocals").mkdir()
    (tmp_path / "guitar").mkdir()
    sf.write(tmp_path / "vocals" / "sing.ogg", sine(440, rate=48000, channels=1), 48000)
    sf.write(tmp_path / "guitar" / "di.wav", sine(330), SAMPLE_RATE)
    (tmp_path / "MANIFEST.csv").write_text("category,file,licence\nvocals,vocals/sing.ogg,CC BY 4.0\n")
    tracks = {t.solo_target: t for t in read_solo_clips(tmp_path)}
    assert set(tracks) == {"vocals", "guitar"}
    assert tracks["vocals"].licence == "CC BY 4.0"
    vocals = tracks["vocals"].load()
    assert tracks["vocals"].was_mono and vocals.shape[-1] == pytest.approx(SAMPLE_RATE // 2, abs=50)
    assert np.any(vocals[0]) and not np.any(vocals[1:])
    assert all(tracks["guitar"].known)


def write_stem_mp4(path: Path, seconds: float = 0.5) -> None:
    """A tiny NI-Stems-like file: 5 stereo AAC streams (mixture, drums, bass, other, vocals)."""
    order = ["mixture", "drums", "bass", "other", "vocals"]
    signals = {name: sine(FREQS.get(name, 0.0), seconds).T.copy() for name in order[1:]}
    signals["mixture"] = sum(signals.values())
    with av.open(str(path), "w", format="mp4") as container:
        streams = [container.add_stream("aac", rate=SAMPLE_RATE) for _ in order]
        for stream in streams:
            stream.layout = "stereo"
        for stream, name in zip(streams, order):
            audio = signals[name]
            for start in range(0, audio.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start : start + 1024]),
                                                   format="fltp", layout="stereo")
                frame.sample_rate = SAMPLE_RATE
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)


def test_musdb_stem_mp4_maps_streams_to_targets(tmp_path: Path) -> None:
    write_stem_mp4(tmp_path / "Artist - Song.stem.mp4")
    track = read_musdb_mp4_dir(tmp_path)[0]
    stems = track.load()
    assert track.name == "Artist - Song" and track.known == (True, True, True, False, True)
    assert stems.shape[:2] == (5, 2) and stems.shape[-1] >= SAMPLE_RATE // 2
    for name in ("vocals", "drums", "bass", "other"):
        assert dominant_hz(stems[TARGETS.index(name)]) == pytest.approx(FREQS[name], abs=4)
    assert not np.any(stems[TARGETS.index("guitar")])


# ------------------------------------------------------------------ generator

def test_generator_is_deterministic_by_seed_and_mix_is_sum() -> None:
    config = GeneratorConfig(seconds=3.0, soundfont=None)
    stems_a, meta_a = generate_song(7, config)
    stems_b, meta_b = generate_song(7, config)
    stems_c, _ = generate_song(8, config)
    assert meta_a == meta_b
    for target in TARGETS:
        assert stems_a[target].shape == (2, 3 * SAMPLE_RATE) and stems_a[target].dtype == np.float32
        np.testing.assert_array_equal(stems_a[target], stems_b[target])
    assert not np.array_equal(stems_a["drums"], stems_c["drums"])
    assert np.any(stems_a["drums"]) and np.any(stems_a["bass"]) and np.any(stems_a["vocals"])
    assert np.abs(sum(stems_a.values())).max() <= 0.96
    json.dumps(meta_a)
    assert {"tempo", "key", "sections", "stems", "assets"} <= set(meta_a)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_make_synthetic_writes_byte_identical_songs_for_a_seed(tmp_path: Path) -> None:
    script = load_script("make_synthetic")
    for out in ("a", "b"):
        assert script.main(["--out", str(tmp_path / out), "--songs", "2", "--seconds", "1.5", "--seed", "5",
                            "--builtin-synth"]) == 0
    songs = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(songs) == 2
    for song in songs:
        for file in [f"{t}.flac" for t in TARGETS] + ["meta.json"]:
            assert (tmp_path / "a" / song / file).read_bytes() == (tmp_path / "b" / song / file).read_bytes()
        info = sf.info(tmp_path / "a" / song / "vocals.flac")
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 2)
    track = read_stem_folder(tmp_path / "a" / songs[0])
    assert track.known == (True,) * 5 and track.load().shape == (5, 2, int(1.5 * SAMPLE_RATE))


def test_show_data_draws_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    write_folder(tmp_path / "song", list(TARGETS), ".flac")
    load_script("show_data").main([str(tmp_path / "song"), "--png", str(tmp_path / "out.png")])
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ effects and augmentation

def test_effect_chain_keeps_shape_and_is_seeded() -> None:
    audio = np.random.default_rng(0).standard_normal((2, SAMPLE_RATE // 4)).astype(np.float32) * 0.1
    chain = random_chain(np.random.default_rng(1), amp=True, reverb_probability=1.0)
    out = apply_chain(audio, chain)
    assert out.shape == audio.shape and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out, apply_chain(audio, chain))


def test_lowpass_filter_attenuates_above_cutoff() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    audio = (np.sin(2 * np.pi * 200 * t) + np.sin(2 * np.pi * 12000 * t)).astype(np.float32)
    out = apply_filters(audio, [biquad("lowpass", 2000)])
    spectrum = np.abs(np.fft.rfft(out))
    # 2nd-order low-pass: about -12 dB/octave, so 12 kHz sits ~36 dB down; 200 Hz passes untouched
    assert spectrum[12000] < 0.03 * spectrum[200]
    assert spectrum[200] == pytest.approx(SAMPLE_RATE / 2, rel=0.02)


def test_augmentations_keep_shapes_and_sums() -> None:
    rng = np.random.default_rng(0)
    stems = rng.standard_normal((5, 2, 4000)).astype(np.float32)
    for transform in (augment.random_band_limit, augment.random_tone):
        out = transform(stems, rng)
        assert out.shape == stems.shape and out.dtype == np.float32
    swapped = augment.maybe_swap_channels(stems, rng, probability=1.0)
    np.testing.assert_array_equal(swapped[:, 0], stems[:, 1])
    short = augment.random_excerpt(stems, 6000, rng)
    assert short.shape == (5, 2, 6000) and np.abs(short).sum() == pytest.approx(np.abs(stems).sum(), rel=1e-5)
    assert augment.random_excerpt(stems, 1000, rng).shape == (5, 2, 1000)
    loud = stems * 10
    rescaled, gain = augment.rescale_to_avoid_clipping(loud)
    assert gain < 1 and np.abs(augment.mix(rescaled)).max() <= 0.99 + 1e-6
    np.testing.assert_allclose(rescaled, loud * np.float32(gain), rtol=1e-6)


def test_band_limit_filter_commutes_with_mixing() -> None:
    stems = np.random.default_rng(3).standard_normal((5, 2, 3000)).astype(np.float32)
    filtered = augment.random_band_limit(stems, np.random.default_rng(9))
    mixture_filtered = augment.random_band_limit(augment.mix(stems)[None], np.random.default_rng(9))[0]
    np.testing.assert_allclose(augment.mix(filtered), mixture_filtered, atol=1e-4)


# ------------------------------------------------------------------ sampler

@pytest.fixture()
def pools(tmp_path: Path) -> list[SourcePool]:
    write_folder(tmp_path / "musdb" / "s1", ["vocals", "drums", "bass", "other"])
    write_folder(tmp_path / "musdb" / "s2", ["vocals", "drums", "bass", "other"])
    write_folder(tmp_path / "five" / "s1", list(TARGETS), ".flac", channels=1)
    write_folder(tmp_path / "mir" / "c1", ["vocals", "accompaniment"], ".ogg", rate=16000, channels=1)
    (tmp_path / "solo" / "guitar").mkdir(parents=True)
    sf.write(tmp_path / "solo" / "guitar" / "riff.wav", sine(330, 0.3), SAMPLE_RATE)
    return [SourcePool("musdb", read_stem_folders(tmp_path / "musdb"), 1.0, dynamic_mix=0.5),
            SourcePool("five", read_stem_folders(tmp_path / "five"), 1.0, dynamic_mix=0.5),
            SourcePool("mir", read_vocals_accompaniment(tmp_path / "mir"), 1.0),
            SourcePool("solo", read_solo_clips(tmp_path / "solo"), 1.0, backing="five")]


def test_sampler_batches_have_shapes_sums_and_masks(pools: list[SourcePool]) -> None:
    sampler = MixtureSampler(pools, segment_seconds=0.4, seed=1, augment_config=AugmentConfig(band_limit=0.5))
    batch = sampler.sample_batch(24)
    length = int(0.4 * SAMPLE_RATE)
    assert batch.mixture.shape == (24, 2, length) and batch.stems.shape == (24, 5, 2, length)
    assert batch.known.shape == (24, 5) and batch.known.dtype == bool
    np.testing.assert_array_equal(batch.mixture, batch.stems.sum(axis=1, dtype=np.float32))
    assert np.abs(batch.mixture).max() <= 0.99 + 1e-6
    expected = {"musdb": [True, True, True, False, True], "five": [True] * 5, "solo": [True] * 5,
                "mir": [True, False, False, False, True]}
    for source, known in zip(batch.sources, batch.known):
        assert known.tolist() == expected[source]
    assert set(batch.sources) == set(expected)
    for source, stems, known in zip(batch.sources, batch.stems, batch.known):
        assert not np.any(stems[~known])  # unknown slots are silence


def test_sampler_is_reproducible_by_seed(pools: list[SourcePool]) -> None:
    a = MixtureSampler(pools, segment_seconds=0.2, seed=4).sample_batch(4)
    b = MixtureSampler(pools, segment_seconds=0.2, seed=4).sample_batch(4)
    np.testing.assert_array_equal(a.stems, b.stems)


def test_torch_dataset_batches_through_dataloader(pools: list[SourcePool]) -> None:
    dataset = StemMixDataset(MixtureSampler(pools, segment_seconds=0.2, seed=0))
    mixture, stems, known = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert mixture.shape == (3, 2, int(0.2 * SAMPLE_RATE)) and stems.shape == (3, 5, 2, int(0.2 * SAMPLE_RATE))
    assert known.shape == (3, 5) and known.dtype == torch.bool
    torch.testing.assert_close(mixture, stems.sum(dim=1))
