"""NI .stem.mp4 writing without the separator: mapping parser, MP4 boxes, temp file + rename."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from stemcut.audio import AudioError, load_audio, save_audio
from stemcut.nistems import (DEFAULT_MAPPING, StemFileWriter, StemsSpec, mapping_text, parse_stem_mapping,
                             read_stem_metadata)


def test_default_mapping_folds_guitar_into_other():
    assert parse_stem_mapping(None) == DEFAULT_MAPPING
    assert mapping_text(DEFAULT_MAPPING) == "Drums=drums,Bass=bass,Other=other+guitar,Vocals=vocals"
    custom = parse_stem_mapping("drums=drums, bass=bass, Keys & Gtr=guitar+other, vox=vocals")
    assert [slot.name for slot in custom] == ["Drums", "Bass", "Keys & Gtr", "Vox"]
    assert custom[2].sources == ("guitar", "other")
    with pytest.raises(ValueError, match="not label=stem"):
        parse_stem_mapping("drums,bass=bass,other=other,vocals=vocals")


def _tkhd_flags(data: bytes) -> list[int]:
    flags, offset = [], 0
    while (offset := data.find(b"tkhd", offset + 1)) != -1:
        flags.append(int.from_bytes(data[offset + 5:offset + 8], "big"))
    return flags


def test_writer_makes_a_stem_file_via_a_temp_name(tmp_path):
    path = tmp_path / "song.stem.mp4"
    writer = StemFileWriter(path, 48000, 2, StemsSpec(bitrate=128))
    assert writer.temp_path.name.startswith(".song.stem.mp4.") and writer.temp_path.name.endswith(".partial")
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.write([rng.uniform(-0.3, 0.3, (2, 10000)).astype(np.float32) for _ in range(5)])
    assert not path.exists()
    writer.commit()
    assert path.exists() and not writer.temp_path.exists()
    data = path.read_bytes()
    assert data[4:12] == b"ftypM4A "
    assert [flag & 1 for flag in _tkhd_flags(data)] == [1, 0, 0, 0, 0]  # only the mixture track enabled
    meta = read_stem_metadata(path)
    assert meta["version"] == 1 and [s["color"] for s in meta["stems"]] == ["#009E73", "#D55E00", "#CC79A7",
                                                                            "#56B4E9"]
    audio, rate = load_audio(path, stream=4)
    assert rate == 48000 and audio.shape[0] == 2 and 30000 <= audio.shape[1] <= 31024


def test_abort_leaves_nothing(tmp_path):
    writer = StemFileWriter(tmp_path / "x.stem.mp4", 44100, 1, StemsSpec())
    writer.write([np.zeros((1, 5000), np.float32)] * 5)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_metadata_of_a_plain_file_is_an_error(tmp_path):
    plain = save_audio(tmp_path / "plain.wav", np.zeros((2, 100), np.float32), 44100)
    with pytest.raises(AudioError, match="not a stem file"):
        read_stem_metadata(plain)
    mp4_without_stem_box = tmp_path / "plain.mp4"
    mp4_without_stem_box.write_bytes(struct.pack(">I4s", 16, b"ftyp") + b"M4A \0\0\0\0" + struct.pack(">I4s", 8, b"moov"))
    with pytest.raises(AudioError, match="no NI stem metadata"):
        read_stem_metadata(mp4_without_stem_box)
