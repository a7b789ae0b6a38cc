"""Audio I/O: every format round-trips with its rate, channel count and length."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import sine_mixture
from stemcut.audio import AudioError, AudioReader, OutputSpec, load_audio, probe, save_audio, track_name

RATES = [8000, 22050, 44100, 48000, 96000]


def write_m4a(path, audio: np.ndarray, rate: int) -> None:
    """AAC in an MP4 container, encoded with PyAV (FFmpeg's native encoder)."""
    import av

    layout = "mono" if audio.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt,depth,tolerance", [("wav", 32, 0.0), ("wav", 24, 2e-7), ("wav", 16, 4e-5),
                                                 ("flac", 24, 2e-7), ("flac", 16, 4e-5)])
def test_lossless_round_trip(tmp_path, rate, channels, fmt, depth, tolerance):
    audio = sine_mixture(0.25, rate, channels)
    path = save_audio(tmp_path / f"x.{fmt}", audio, rate, OutputSpec(format=fmt, bit_depth=depth))
    back, back_rate = load_audio(path)
    assert back_rate == rate
    assert back.shape == audio.shape
    assert np.abs(back - audio).max() <= tolerance


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt", ["ogg", "mp3"])
def test_lossy_round_trip(tmp_path, rate, channels, fmt):
    audio = sine_mixture(1.0, rate, channels)
    path = save_audio(tmp_path / f"x.{fmt}", audio, rate, OutputSpec(format=fmt, bitrate=192))
    back, back_rate = load_audio(path)
    info = probe(path)
    assert back_rate == rate and info.channels == channels
    # Lossy codecs may pad a frame; the content must still be the same signal.
    assert abs(back.shape[1] - audio.shape[1]) <= 2048
    n = min(back.shape[1], audio.shape[1])
    correlation = np.corrcoef(back[0, 4096:n - 4096], audio[0, 4096:n - 4096])[0, 1]
    assert correlation > 0.9


def test_mp3_bitrate_sets_file_size(tmp_path):
    audio = sine_mixture(4.0, 44100, 2, seed=3)
    small = save_audio(tmp_path / "a.mp3", audio, 44100, OutputSpec(format="mp3", bitrate=64))
    large = save_audio(tmp_path / "b.mp3", audio, 44100, OutputSpec(format="mp3", bitrate=320))
    assert large.stat().st_size > 3 * small.stat().st_size


@pytest.mark.parametrize("rate", [8000, 44100, 96000])
@pytest.mark.parametrize("channels", [1, 2])
def test_aiff_read(tmp_path, rate, channels):
    audio = sine_mixture(0.2, rate, channels)
    sf.write(tmp_path / "x.aiff", audio.T, rate, subtype="PCM_24")
    back, back_rate = load_audio(tmp_path / "x.aiff")
    assert back_rate == rate and back.shape == audio.shape
    assert np.abs(back - audio).max() < 2e-7


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 1), (22050, 2)])
def test_m4a_read_through_ffmpeg(tmp_path, rate, channels):
    audio = sine_mixture(1.0, rate, channels)
    write_m4a(tmp_path / "x.m4a", audio, rate)
    info = probe(tmp_path / "x.m4a")
    assert (info.sample_rate, info.channels, info.codec) == (rate, channels, "aac")
    back, _ = load_audio(tmp_path / "x.m4a")
    assert back.shape[0] == channels
    assert abs(back.shape[1] - audio.shape[1]) <= 2048  # AAC priming/padding frames
    assert np.abs(back).max() > 0.1


def test_reader_blocks_are_bounded(tmp_path):
    audio = sine_mixture(2.0, 44100, 2)
    path = save_audio(tmp_path / "x.wav", audio, 44100)
    with AudioReader(path) as reader:
        sizes = [block.shape[1] for block in reader.blocks(1000)]
    assert max(sizes) == 1000 and sum(sizes) == audio.shape[1]


@pytest.mark.parametrize("content,reason", [(b"", "empty file"), (b"just some text\n" * 10, "not a recognised audio file")])
def test_bad_files_give_one_line_reason(tmp_path, content, reason):
    path = tmp_path / "song.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as caught:
        probe(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and reason in message


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        probe(tmp_path / "nope.flac")


def test_nan_samples_are_refused(tmp_path):
    audio = sine_mixture(0.5, 8000, 2)
    audio[1, 2000] = np.nan
    sf.write(tmp_path / "nan.wav", audio.T, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite samples .first at 0.250 s"):
        load_audio(tmp_path / "nan.wav")


def test_writer_leaves_nothing_behind_on_abort(tmp_path):
    from stemcut.audio import AudioWriter

    writer = AudioWriter(tmp_path / "stem.wav", 44100, 2, OutputSpec())
    writer.write(np.zeros((2, 100), np.float32))
    assert not (tmp_path / "stem.wav").exists()  # only the temporary name exists while writing
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_integer_formats_clip_and_count(tmp_path):
    from stemcut.audio import AudioWriter

    writer = AudioWriter(tmp_path / "loud.wav", 8000, 1, OutputSpec(bit_depth=16))
    writer.write(np.array([[0.5, 1.5, -2.0]], np.float32))
    writer.commit()
    assert writer.clipped_samples == 2
    back, _ = load_audio(tmp_path / "loud.wav")
    assert np.abs(back).max() <= 1.0


def test_output_spec_validation():
    with pytest.raises(ValueError):
        OutputSpec(format="aac")
    with pytest.raises(ValueError):
        OutputSpec(format="flac", bit_depth=32)
    with pytest.raises(ValueError):
        OutputSpec(format="mp3", bitrate=500)


def test_track_names():
    assert track_name("a/b/My Song.mp3") == "My Song"
    assert track_name("set.stem.mp4") == "set"


def test_outputs_get_normal_file_permissions(tmp_path):
    """Temporary files are made owner-only by mkstemp; finished outputs follow the umask."""
    import os

    old = os.umask(0o022)
    try:
        path = save_audio(tmp_path / "x.wav", sine_mixture(0.1, 8000, 1), 8000)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
