"""Training data: readers for every layout, the synthetic generator, remixing and augmentation.

All inputs are tiny signals written to tmp dirs here; nothing needs /work/shared, a
SoundFont, the network or a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from stemcut.training import augment
from stemcut.training.augment import AugmentConfig
from stemcut.training.bank import BankConfig, TrainingBank
from stemcut.training.pools import SourcePool
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


def test_augmentations_keep_shapes_sums_and_linearity() -> None:
    generator = torch.Generator().manual_seed(0)
    stems = torch.randn(3, 5, 2, 4000)
    gained = augment.gains_and_swaps(stems, generator, AugmentConfig(channel_swap=1.0, gain_db=(0.0, 0.0)))
    torch.testing.assert_close(gained, stems.flip(2))
    loud = stems * 10
    rescaled = augment.rescale_to_avoid_clipping(loud)
    assert augment.mix(rescaled).abs().max() <= 0.99 + 1e-6 and rescaled.abs().max() <= 0.99 + 1e-6
    ratio = rescaled / loud  # one gain per example
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio), rtol=1e-4)


def test_equaliser_commutes_with_mixing_and_cuts_highs() -> None:
    config = AugmentConfig(band_limit=1.0, band_limit_hz=(2000.0, 2000.0), tone=1.0)
    stems = torch.randn(2, 5, 2, 8000)
    filtered = augment.equalise(stems, torch.Generator().manual_seed(9), config, SAMPLE_RATE)
    mixture = augment.equalise(stems.sum(1, keepdim=True), torch.Generator().manual_seed(9), config, SAMPLE_RATE)
    torch.testing.assert_close(filtered.sum(1), mixture[:, 0], atol=1e-4, rtol=1e-4)
    spectrum = torch.fft.rfft(filtered, dim=-1).abs().mean(dim=(0, 1, 2))
    hz = torch.fft.rfftfreq(8000, 1 / SAMPLE_RATE)
    assert spectrum[hz > 8000].mean() < 0.02 * spectrum[hz < 1000].mean()  # 4th order: -48 dB two octaves up


def test_excerpts_read_windows_at_their_offset_and_speed() -> None:
    ramp = torch.arange(100, dtype=torch.float32).expand(3, 5, 2, 100).clone()
    ramp[1] += 1000
    index = torch.tensor([[1, 0, 2, 1, 0]])
    start = torch.tensor([[10, 0, 5, 20, 3]])
    speed = torch.tensor([[1.0, 1.0, 0.5, 1.5, 1.0]])
    out = augment.gather_excerpts(ramp.half(), index, start, speed, 8)
    steps = torch.arange(8, dtype=torch.float32)
    expected = torch.stack([1010 + steps, steps, 5 + 0.5 * steps, 1020 + 1.5 * steps, 3 + steps])
    torch.testing.assert_close(out[0, :, 0], expected)
    torch.testing.assert_close(out[0, :, 1], expected)


# ------------------------------------------------------------------ bank

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


def frozen_bank(pools: list[SourcePool], seed: int = 1, segment: float = 0.2, **augment_options) -> TrainingBank:
    bank = TrainingBank(pools, segment, "cpu", BankConfig(windows=24, refill_per_batch=0), AugmentConfig(**augment_options),
                        seed=seed, log=lambda _: None)
    bank.fill()
    return bank


def test_bank_batches_have_shapes_sums_and_masks(pools: list[SourcePool]) -> None:
    bank = frozen_bank(pools, segment=0.4, band_limit=0.5)
    batch = bank.sample(24)
    length = int(0.4 * SAMPLE_RATE)
    assert batch.mixture.shape == (24, 2, length) and batch.stems.shape == (24, 5, 2, length)
    assert batch.known.shape == (24, 5) and batch.known.dtype == torch.bool
    torch.testing.assert_close(batch.mixture, batch.stems.sum(1))
    assert batch.mixture.abs().max() <= 0.99 + 1e-6
    expected = {"musdb": [True, True, True, False, True], "five": [True] * 5, "solo": [True] * 5,
                "mir": [True, False, False, False, True]}
    for source, known in zip(batch.pools, batch.known):
        assert known.tolist() == expected[source]
    assert set(batch.pools) == set(expected)
    for stems, known in zip(batch.stems, batch.known):
        assert not stems[~known].any()  # unknown slots are silence (their content is inside other)
    guitar = TARGETS.index("guitar")
    solo = [stems for source, stems in zip(batch.pools, batch.stems) if source == "solo"]
    assert all(stems[guitar].abs().max() > 0 for stems in solo)  # the clip over the backing song


def test_bank_is_reproducible_by_seed(pools: list[SourcePool]) -> None:
    a = frozen_bank(pools, seed=4).sample(4)
    b = frozen_bank(pools, seed=4).sample(4)
    torch.testing.assert_close(a.stems, b.stems)
    assert not torch.equal(a.stems, frozen_bank(pools, seed=5).sample(4).stems)


def test_bank_refill_threads_replace_windows_as_batches_are_drawn(pools: list[SourcePool]) -> None:
    bank = TrainingBank(pools, 0.2, "cpu", BankConfig(windows=16, loads=2, refill_per_batch=2, threads=1),
                        seed=0, log=lambda _: None)
    bank.fill()
    filled = bank.windows_loaded
    with bank:
        bank.start()
        for _ in range(10):
            bank.sample(2)
        deadline = time.monotonic() + 20
        while bank.windows_loaded < filled + 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert bank.windows_loaded >= filled + 10
    assert not any(thread.is_alive() for thread in bank._threads)


def test_bank_without_threads_refills_between_batches(pools: list[SourcePool]) -> None:
    bank = TrainingBank(pools, 0.2, "cpu", BankConfig(windows=16, loads=2, refill_per_batch=1, threads=0),
                        seed=0, log=lambda _: None)
    bank.fill()
    filled = bank.windows_loaded
    bank.start()
    for _ in range(6):
        bank.sample(2)
    assert bank.windows_loaded == filled + 6


def test_an_unreadable_track_is_left_out_with_a_line(tmp_path: Path, pools: list[SourcePool]) -> None:
    write_folder(tmp_path / "broken" / "b1", ["vocals", "other"])
    write_folder(tmp_path / "broken" / "b2", ["vocals", "other"])
    broken = read_stem_folders(tmp_path / "broken")
    (tmp_path / "broken" / "b1" / "vocals.wav").write_bytes(b"not audio at all")
    lines: list[str] = []
    bank = TrainingBank([*pools, SourcePool("broken", broken, 1.0)], 0.2, "cpu",
                        BankConfig(windows=40, loads=1, refill_per_batch=0), seed=0, log=lines.append)
    bank.fill()  # a fixed seed: b1 is drawn (and left out) while the pool's slots fill from b2
    assert len(lines) == 1 and "broken/b1" in lines[0] and "left out" in lines[0]
    assert bank.sample(8).stems.isfinite().all()
    only_broken = TrainingBank([SourcePool("broken", broken[:1], 1.0)], 0.2, "cpu",
                               BankConfig(windows=4, refill_per_batch=0), log=lambda _: None)
    with pytest.raises(RuntimeError, match="no track could be read"):
        only_broken.fill()


def test_bank_bundle_round_trip_keeps_windows_and_pools(tmp_path: Path, pools: list[SourcePool]) -> None:
    bank = frozen_bank(pools, segment=0.3)
    size = bank.save_bundle(tmp_path / "bank.zip", quality=0.6)
    assert size == (tmp_path / "bank.zip").stat().st_size and not list(tmp_path.glob("*.partial"))
    loaded = TrainingBank.from_bundle(tmp_path / "bank.zip", log=lambda _: None)
    assert loaded.slots == bank.slots and loaded.window == bank.window and loaded.length == bank.length
    assert torch.equal(loaded.known, bank.known) and torch.equal(loaded.solo, bank.solo)
    assert [(p.name, p.first, p.count, p.backing) for p in loaded.pools] == \
        [(p.name, p.first, p.count, p.backing) for p in bank.pools]
    error = (loaded.audio.float() - bank.audio.float()).pow(2).sum()
    assert 10 * torch.log10(bank.audio.float().pow(2).sum() / error) > 15  # lossy, but the same music
    batch = loaded.sample(6)
    torch.testing.assert_close(batch.mixture, batch.stems.sum(1))


def test_windowed_reads_equal_a_window_of_the_whole_track(tmp_path: Path) -> None:
    write_folder(tmp_path / "song", ["vocals", "drums", "other"], ".flac")
    track = read_stem_folders(tmp_path)[0]
    assert track.read_window is not None and track.frames == SAMPLE_RATE // 2
    np.testing.assert_array_equal(track.read_window(1000, 5000), track.load()[..., 1000:6000])
    window = track.excerpts(3, SAMPLE_RATE, np.random.default_rng(0))  # longer than the track: in silence
    assert all(w.shape == (5, 2, SAMPLE_RATE) for w in window)
