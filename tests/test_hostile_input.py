"""Hostile input, each with its expected outcome: the batch reports and goes on.

Every case runs through the batch library (plan_jobs + run_jobs) with tiny random
models; a failed file must leave no output and no temp file behind. A 3-hour file
is a benchmark (scripts/bench_long.py), not a test.
"""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import sine_mixture
from stemcut import Separator
from stemcut.audio import OutputSpec, load_audio, probe, save_audio
from stemcut.batch import plan_jobs, run_jobs
from stemcut.cli import app

FLOAT = OutputSpec(format="wav", bit_depth=32)
STEMS = ["vocals", "drums", "bass", "guitar", "other"]


@pytest.fixture(scope="module")
def separator(tiny_models):
    return Separator(tiny_models, device="cpu", segment=0.5, overlap=0.1, threads=1)


def run(separator, inputs, out: Path, spec: OutputSpec = FLOAT):
    plan = plan_jobs(inputs, out, STEMS, spec)
    result = run_jobs(separator, plan.jobs, spec, stems=STEMS)
    return plan, result.outcomes


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.partial")] if folder.exists() else []


def riff_wav(tag: int, data: bytes, channels: int = 2, rate: int = 44100, bits: int = 16) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_float_wav(path: Path, audio: np.ndarray, rate: int = 44100) -> Path:
    """Raw float WAV, NaN and Inf kept (save_audio would refuse nothing, but be explicit)."""
    sf.write(str(path), audio.T, rate, subtype="FLOAT")
    return path


# -- files that must fail, with the reason reported ---------------------------------------------

def _zero_length(folder: Path) -> Path:
    path = folder / "empty.wav"
    path.write_bytes(b"")
    return path


def _text_as_wav(folder: Path) -> Path:
    path = folder / "notes.wav"
    path.write_text("these are my lyrics, not audio\n" * 20)
    return path


def _truncated_header(folder: Path) -> Path:
    good = save_audio(folder / "full.wav", sine_mixture(0.2, 44100, 2), 44100)
    path = folder / "truncated.wav"
    path.write_bytes(good.read_bytes()[:20])
    good.unlink()
    return path


def _corrupt_header(folder: Path) -> Path:
    good = save_audio(folder / "full.wav", sine_mixture(0.2, 44100, 2), 44100)
    data = bytearray(good.read_bytes())
    data[8:16] = b"garbage!"
    good.unlink()
    path = folder / "corrupt.wav"
    path.write_bytes(bytes(data))
    return path


def _unsupported_codec(folder: Path) -> Path:
    path = folder / "codec.wav"
    path.write_bytes(riff_wav(0x1234, b"\x01\x02" * 4000))
    return path


def _nan_samples(folder: Path) -> Path:
    audio = sine_mixture(0.3, 44100, 2)
    audio[1, 5000] = np.nan
    return write_float_wav(folder / "nan.wav", audio)


def _inf_samples(folder: Path) -> Path:
    audio = sine_mixture(0.3, 44100, 2)
    audio[0, 100] = np.inf
    return write_float_wav(folder / "inf.wav", audio)


def _nan_mid_file(folder: Path) -> Path:
    """Fails mid-way: the first blocks decode and are separated, then a NaN."""
    audio = sine_mixture(2.0, 44100, 2)
    audio[0, 80000] = np.nan  # past the first 65536-frame read block
    return write_float_wav(folder / "nan late.wav", audio)


@pytest.mark.parametrize("make, reason", [
    (_zero_length, "empty file"),
    (_text_as_wav, "not a recognised audio file"),
    (_truncated_header, "cannot decode"),
    (_corrupt_header, "not a recognised audio file"),
    (_unsupported_codec, "cannot decode"),
    (_nan_samples, "NaN or infinite samples (first at 0.113 s)"),
    (_inf_samples, "NaN or infinite samples (first at 0.002 s)"),
    (_nan_mid_file, "NaN or infinite samples (first at 1.814 s)"),
], ids=["zero-length", "text-named-wav", "truncated-header", "corrupt-header", "unsupported-codec",
        "nan", "inf", "nan-mid-file"])
def test_bad_file_fails_alone_and_leaves_nothing(separator, tmp_path, make, reason):
    src = tmp_path / "in"
    src.mkdir()
    bad = make(src)
    good = save_audio(src / "good.wav", sine_mixture(0.3, 44100, 2), 44100)
    out = tmp_path / "out"
    _, outcomes = run(separator, [bad, good], out)
    by_input = {o.input: o for o in outcomes}
    assert by_input[bad].status == "failed"
    assert reason in by_input[bad].reason
    assert "\n" not in by_input[bad].reason and "Error:" not in by_input[bad].reason
    assert by_input[good].status == "done"
    assert not (out / bad.stem).exists()
    assert leftovers(out) == []


def test_unreadable_file(separator, tmp_path, monkeypatch):
    """chmod 000 does not stop root (tests run as root), so the permission check is simulated."""
    locked = save_audio(tmp_path / "locked.wav", sine_mixture(0.3, 44100, 2), 44100)
    real_access = os.access
    monkeypatch.setattr("stemcut.audio.os.access",
                        lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    _, outcomes = run(separator, [locked], tmp_path / "out")
    assert (outcomes[0].status, outcomes[0].reason) == ("failed", "permission denied")


def test_read_only_output_folder(separator, tmp_path, monkeypatch):
    """Creating the temp output fails with EACCES (simulated: root ignores permissions)."""
    import stemcut.atomic

    song = save_audio(tmp_path / "song.wav", sine_mixture(0.3, 44100, 2), 44100)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(stemcut.atomic.tempfile, "mkstemp", refuse)
    _, outcomes = run(separator, [song], tmp_path / "out")
    assert outcomes[0].status == "failed" and outcomes[0].reason.startswith("Permission denied")
    assert not list((tmp_path / "out").rglob("*.wav"))


def test_full_output_disk(separator, tmp_path, monkeypatch):
    """ENOSPC while writing: the file fails, its temp files are removed, the next file is tried too."""
    songs = [save_audio(tmp_path / f"s{i}.wav", sine_mixture(0.3, 44100, 2), 44100) for i in range(2)]

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", full)
    out = tmp_path / "out"
    _, outcomes = run(separator, songs, out)
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert all("No space left on device" in o.reason for o in outcomes)
    assert not [p for p in out.rglob("*") if p.is_file()]


# -- files that must work -------------------------------------------------------------------------

@pytest.mark.parametrize("channels, rate", [(1, 44100), (6, 44100), (2, 8000), (2, 192000)],
                         ids=["mono", "6-channels", "8kHz", "192kHz"])
def test_channels_and_rates_are_kept(separator, tmp_path, channels, rate):
    audio = sine_mixture(0.4, rate, channels)
    song = save_audio(tmp_path / "song.wav", audio, rate, FLOAT)
    _, outcomes = run(separator, [song], tmp_path / "out")
    assert outcomes[0].status == "done", outcomes[0].reason
    stems = [load_audio(path)[0] for path in outcomes[0].outputs.values()]
    for path in outcomes[0].outputs.values():
        info = probe(path)
        assert (info.sample_rate, info.channels, info.frames) == (rate, channels, audio.shape[1])
    assert np.abs(sum(stems) - audio).max() < 1e-4


def test_one_sample_file(separator, tmp_path):
    song = save_audio(tmp_path / "one.wav", np.full((2, 1), 0.25, np.float32), 44100, FLOAT)
    _, outcomes = run(separator, [song], tmp_path / "out")
    assert outcomes[0].status == "done"
    stems = [load_audio(p)[0] for p in outcomes[0].outputs.values()]
    assert all(s.shape == (2, 1) for s in stems)
    assert abs(sum(stems)[0, 0] - 0.25) < 1e-5


def test_silence_gives_silent_stems(separator, tmp_path):
    song = save_audio(tmp_path / "silence.wav", np.zeros((2, 30000), np.float32), 44100, OutputSpec())
    _, outcomes = run(separator, [song], tmp_path / "out")
    assert outcomes[0].status == "done" and outcomes[0].reason == ""
    for path in outcomes[0].outputs.values():
        audio, _ = load_audio(path)
        assert np.isfinite(audio).all() and np.abs(audio).max() < 1e-6


def test_full_scale_square_wave(separator, tmp_path):
    """Clipping input: finishes, finite output; 16-bit output reports clamped samples if any."""
    t = np.arange(30000) / 44100
    square = np.sign(np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    square[square == 0] = 1.0
    song = save_audio(tmp_path / "square.wav", np.stack([square, -square]), 44100, FLOAT)
    _, outcomes = run(separator, [song], tmp_path / "float")
    assert outcomes[0].status == "done"
    stems = [load_audio(p)[0] for p in outcomes[0].outputs.values()]
    assert all(np.isfinite(s).all() for s in stems)
    assert np.abs(sum(stems) - np.stack([square, -square])).max() < 1e-4
    _, pcm = run(separator, [song], tmp_path / "pcm", OutputSpec(format="wav", bit_depth=16))
    assert pcm[0].status == "done"
    assert pcm[0].reason == "" or pcm[0].reason.endswith("samples clipped to [-1, 1]")


def test_truncated_data_is_read_as_far_as_it_goes(separator, tmp_path):
    good = save_audio(tmp_path / "full.wav", sine_mixture(0.5, 44100, 2), 44100, OutputSpec())
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[:4000])  # the header says 0.5 s; the data stops after ~1000 frames
    present = len(sf.read(str(cut))[0])
    assert 900 < present < 1000
    _, outcomes = run(separator, [cut], tmp_path / "out")
    assert outcomes[0].status == "done"
    assert probe(outcomes[0].outputs["vocals"]).frames == present


def test_unicode_and_spaces_in_names(separator, tmp_path):
    folder = tmp_path / "Sigur Rós" / "Ágætis byrjun"
    folder.mkdir(parents=True)
    song = save_audio(folder / "Svefn-g-englar (live) 日本.wav", sine_mixture(0.3, 44100, 2), 44100)
    out = tmp_path / "out put"
    _, outcomes = run(separator, [tmp_path / "Sigur Rós"], out)
    assert outcomes[0].status == "done" and outcomes[0].input == song
    assert outcomes[0].outputs["vocals"] == out / "Ágætis byrjun" / "Svefn-g-englar (live) 日本" / "vocals.wav"
    assert outcomes[0].outputs["vocals"].exists()


def test_same_file_twice_is_separated_once(separator, tmp_path):
    song = save_audio(tmp_path / "song.wav", sine_mixture(0.3, 44100, 2), 44100)
    (tmp_path / "link.wav").symlink_to(song)
    plan, outcomes = run(separator, [song, song, tmp_path / "link.wav"], tmp_path / "out")
    assert [o.status for o in outcomes] == ["done"]
    assert plan.duplicates == [song, tmp_path / "link.wav"]


def test_the_whole_matrix_through_the_cli(tiny_models, tmp_path):
    """One folder of good and bad files: one stderr line per bad file, exit code 1."""
    src = tmp_path / "in"
    src.mkdir()
    bad = [make(src) for make in (_zero_length, _text_as_wav, _nan_samples, _unsupported_codec)]
    save_audio(src / "good song.wav", sine_mixture(0.3, 44100, 2), 44100)
    result = CliRunner().invoke(app, ["separate", str(src), "-o", str(tmp_path / "out"), "--model-dir",
                                      str(tiny_models), "--segment", "0.5", "--threads", "1", "-q"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line]
    assert sorted(lines) == sorted(line for line in lines if line.startswith("stemcut: "))
    assert len(lines) == len(bad)
    for path in bad:
        assert any(line.startswith(f"stemcut: {path}: ") for line in lines)
    assert len(result.stdout.splitlines()) == 5  # the good song's stems
