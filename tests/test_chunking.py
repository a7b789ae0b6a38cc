"""Chunked overlap-add: COLA windows and exact reconstruction through the whole path."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import sine_mixture
from stemcut.chunking import OverlapAdd, cola_window


@pytest.mark.parametrize("segment,overlap", [(100, 25), (64, 32), (50, 0), (4096, 410)])
def test_windows_sum_to_one(segment, overlap):
    window = cola_window(segment, overlap)
    hop = segment - overlap
    total = np.zeros(hop * 6 + segment)
    for start in range(0, hop * 6 + 1, hop):
        total[start:start + segment] += window
    interior = total[segment:hop * 6]
    assert np.allclose(interior, 1.0, atol=1e-12)
    assert window.min() > 0


def identity(segments: np.ndarray) -> np.ndarray:
    return segments[:, None].copy()


@pytest.mark.parametrize("segment,overlap,batch", [(100, 25, 1), (100, 50, 3), (64, 0, 2), (1000, 100, 4)])
@pytest.mark.parametrize("length_rule", ["one", "two", "segment", "segment+1", "multiple", "hop-multiple", "long"])
def test_identity_reconstruction_any_length(segment, overlap, batch, length_rule):
    hop = segment - overlap
    length = {"one": 1, "two": 2, "segment": segment, "segment+1": segment + 1, "multiple": 3 * segment,
              "hop-multiple": overlap + 5 * hop, "long": 10 * segment + 17}[length_rule]
    audio = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    blocks = [audio[:, i:i + 37] for i in range(0, length, 37)]
    out = np.concatenate(list(OverlapAdd(segment, overlap, batch)(blocks, identity)), axis=-1)
    assert out.shape == (1, 2, length)
    assert np.abs(out[0] - audio).max() < 1e-5


def test_segments_have_fixed_length_and_batches_respect_size():
    seen = []

    def record(segments):
        seen.append(segments.shape)
        return segments[:, None]

    list(OverlapAdd(100, 20, 3)([np.zeros((2, 1234), np.float32)], record))
    assert all(shape[1:] == (2, 100) for shape in seen)
    assert max(shape[0] for shape in seen) == 3


def test_empty_stream_gives_nothing():
    assert list(OverlapAdd(100, 10)([], identity)) == []
    assert list(OverlapAdd(100, 10)([], identity, lambda stream, segment: 1 / 0)) == []


@pytest.mark.parametrize("length", [1, 37, 99, 100])
def test_a_stream_of_at_most_one_segment_goes_to_short_unpadded(length):
    calls = []

    def short(stream, segment):
        calls.append((stream.shape, segment))
        return stream[:, None] * 2.0

    audio = np.random.default_rng(length).standard_normal((3, length)).astype(np.float32)
    blocks = [audio[:, i:i + 10] for i in range(0, length, 10)]
    out = np.concatenate(list(OverlapAdd(100, 20, 2)(blocks, lambda segments: 1 / 0, short)), axis=-1)
    assert calls == [((1, 3, length), 100)]
    assert np.array_equal(out[0], audio * 2.0)


@pytest.mark.parametrize("length", [101, 180, 181, 1234])
def test_longer_streams_never_go_to_short(length):
    audio = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    blocks = [audio[:, i:i + 64] for i in range(0, length, 64)]
    out = np.concatenate(list(OverlapAdd(100, 20, 2)(blocks, identity, lambda stream, segment: 1 / 0)), axis=-1)
    assert np.abs(out[0] - audio).max() < 1e-5


@pytest.mark.parametrize("frames", [1, 2, 511, 4410, 4410 * 3, 22050 + 7])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_identity_model_through_separator_stream(tiny_models, frames, channels):
    """The separator's whole stream (channel pairing, chunking, overlap-add, exact
    length, residual policy) reconstructs the input when the model step is identity."""
    from stemcut import Separator

    separator = Separator(tiny_models, device="cpu", segment=0.1, overlap=0.25)
    count = len(separator.stems)
    separator.process_segments = lambda segments, padded_length=None: np.repeat(segments[:, None], count, axis=1) / count
    # Long streams go through the pipelined entry (a function to wait on), short ones through process_segments.
    separator.submit_segments = lambda segments, padded_length=None: lambda: separator.process_segments(segments)
    audio = sine_mixture(frames / 44100, 44100, channels)[:, :frames]
    stems = separator.separate(audio, 44100)
    for stem in separator.stems:
        assert stems[stem].shape == audio.shape
    vocals = stems["vocals"] * len(separator.stems)
    assert np.abs(vocals - audio).max() < 1e-5
