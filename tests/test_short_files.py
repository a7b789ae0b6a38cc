"""Short files: separated as if zero-padded to a full segment (the stems they always got),
without computing the padding. The reference here is the padded path itself: the same
separator with the chunker's short-stream hand-off turned off."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from conftest import TINY_BLSTM, TINY_FAMILIES, make_model_set, sine_mixture
from stemcut import Separator
from stemcut.chunking import OverlapAdd
from stemcut.core import MaskSeparator
from stemcut.models import ARCHITECTURES, BLSTMMask, TCNMask
from stemcut.recurrent import lstm_before_silence
from stemcut.weights import write_untrained_set

# Max abs difference from the padded path. Stems peak at ~0.15-0.3 here and the differences
# measured are ~1e-7: 1e-5 leaves room for other CPUs' rounding. The Wiener filter's own
# rounding is larger (see its tests).
TOLERANCE = 1e-5
WIENER_TOLERANCE = 1e-4

_HAND_OFF = OverlapAdd.__call__


@contextlib.contextmanager
def padded_as_before():
    """Every short stream goes through the padded segment, as before short streams were handed off."""
    OverlapAdd.__call__ = lambda self, blocks, process, short=None: _HAND_OFF(self, blocks, process)
    try:
        yield
    finally:
        OverlapAdd.__call__ = _HAND_OFF


def both_ways(separator: Separator, audio: np.ndarray, rate: int) -> tuple[dict, dict]:
    with padded_as_before():
        padded = separator.separate(audio, rate)
    return padded, separator.separate(audio, rate)


def assert_same(padded: dict, short: dict, audio: np.ndarray, tolerance: float = TOLERANCE) -> None:
    for stem, reference in padded.items():
        assert short[stem].shape == audio.shape == reference.shape
        assert np.abs(short[stem] - reference).max() < tolerance, stem
    assert np.abs(sum(short.values()) - audio).max() < 1e-4


def clip(seconds: float, rate: int, channels: int, seed: int = 1) -> np.ndarray:
    frames = max(1, int(round(seconds * rate)))
    audio = sine_mixture(frames / rate + 0.01, rate, channels, seed=seed)[:, :frames]
    return np.ascontiguousarray(audio * np.linspace(1.0, 0.3, frames, dtype=np.float32))


# -- the shipped models -----------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    with Separator(None, device="cpu", threads=2) as separator:
        yield separator


@pytest.fixture(scope="module")
def shipped_2s():
    with Separator(None, device="cpu", threads=2, segment=2.0) as separator:
        yield separator


def test_shipped_one_second_stereo_at_the_default_segment(shipped):
    audio = clip(1.0, 44100, 2)
    padded, short = both_ways(shipped, audio, 44100)
    assert_same(padded, short, audio)
    assert max(np.abs(s).max() for s in short.values()) > 0.05  # the stems are not all near silence


@pytest.mark.parametrize("rate,channels,seconds", [
    (44100, 1, 1 / 44100),       # one sample
    (44100, 2, 0.02),
    (8000, 2, 0.7),
    (48000, 1, 1.0),
    (48000, 6, 0.5),
    (44100, 2, 1.75),            # the cut still saves a little
    (44100, 2, 1.99),            # too close to the segment's end to cut: the padded path itself
    (44100, 2, 2.05),            # longer than a segment: unchanged
])
def test_shipped_short_files_give_the_padded_stems(shipped_2s, rate, channels, seconds):
    audio = clip(seconds, rate, channels)
    padded, short = both_ways(shipped_2s, audio, rate)
    assert_same(padded, short, audio)


def test_files_longer_than_a_segment_are_bit_identical(shipped_2s):
    audio = clip(2.3, 44100, 2)
    padded, short = both_ways(shipped_2s, audio, 44100)
    assert all(np.array_equal(padded[stem], short[stem]) for stem in padded)


@pytest.fixture(scope="module")
def shipped_wiener():
    with Separator(None, device="cpu", threads=2, segment=2.0, wiener=True, wiener_iterations=2) as separator:
        yield separator


def test_shipped_with_wiener_on_wide_stereo(shipped_wiener):
    audio = clip(0.6, 44100, 2)
    audio[1] = np.roll(audio[1], 777) * 0.5 + 0.05 * np.random.default_rng(0).standard_normal(audio.shape[1])
    padded, short = both_ways(shipped_wiener, audio, 44100)
    assert_same(padded, short, audio, tolerance=WIENER_TOLERANCE)


def test_shipped_with_wiener_on_near_mono_within_the_filters_own_rounding(shipped_wiener):
    """On near-mono input the Wiener filter's 2 x 2 inverse is ill-conditioned: moving every
    input sample by one float32 ulp changes the padded stems by ~1e-4. The cut may differ
    by that much, and no more."""
    audio = clip(0.6, 44100, 2)
    with padded_as_before():
        padded = shipped_wiener.separate(audio, 44100)
        nudged = shipped_wiener.separate(np.nextafter(audio, np.float32(2)), 44100)
    short = shipped_wiener.separate(audio, 44100)
    for stem in padded:
        rounding = np.abs(nudged[stem] - padded[stem]).max()
        assert np.abs(short[stem] - padded[stem]).max() <= max(WIENER_TOLERANCE, 4 * rounding), stem


# -- tiny random models of every family -----------------------------------------------------



@pytest.fixture(scope="module", params=["blstm-1", "blstm-3", "tcn", "unet", "mmdense"])
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param in ("tcn", "unet", "mmdense"):
        write_untrained_set(folder, request.param, TINY_FAMILIES[request.param], n_fft=512, hop=128, seed=3)
    elif request.param == "blstm-3":
        write_untrained_set(folder, "blstm", dict(TINY_BLSTM, layers=3), n_fft=512, hop=128, seed=4)
    else:
        make_model_set(folder)
    with Separator(folder, device="cpu", threads=2, segment=0.5, overlap=0.2) as separator:
        yield separator


@pytest.mark.parametrize("rate,channels,seconds", [
    (44100, 1, 1 / 44100), (44100, 2, 0.1), (8000, 6, 0.3), (48000, 2, 0.2),
    (44100, 2, 0.49), (44100, 2, 0.51),
])
def test_tiny_models_short_files_give_the_padded_stems(tiny, rate, channels, seconds):
    audio = clip(seconds, rate, channels)
    padded, short = both_ways(tiny, audio, rate)
    assert_same(padded, short, audio)


def test_segment_lengths_from_one_sample_to_a_whole_segment(tiny):
    """At the model rate, every kind of length: the cut's boundaries sit on STFT hops."""
    segment = tiny.chunking.segment
    for frames in (1, 127, 128, 129, 2000, segment - 400, segment - 300, segment - 1, segment):
        audio = clip(frames / 44100, 44100, 2, seed=frames)
        padded, short = both_ways(tiny, audio, 44100)
        assert_same(padded, short, audio)


def test_a_cut_off_file_is_separated_completely(tiny, tmp_path):
    """The separator takes no length hint: a header promising more than the file holds
    changes nothing; what is there is separated, all of it, as the padded path would."""
    from stemcut.audio import OutputSpec
    from stemcut.jobs import separate_file

    full = tmp_path / "full.wav"
    audio = clip(0.4, 44100, 2)
    sf.write(full, audio.T, 44100, subtype="FLOAT")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:30000])  # the header promises 0.4 s
    held, _ = sf.read(cut, dtype="float32", always_2d=True)
    outputs = tmp_path / "out"
    outputs.mkdir()
    spec = OutputSpec("wav", bit_depth=32)
    names = {stem: outputs / f"{stem}.wav" for stem in tiny.stems}
    result = separate_file(tiny, cut, spec.sink(names))
    assert result.frames == held.shape[0] < audio.shape[1]
    with padded_as_before():
        padded = tiny.separate(np.ascontiguousarray(held.T), 44100)
    for stem, path in result.outputs.items():
        written, rate = sf.read(path, dtype="float32", always_2d=True)
        assert rate == 44100 and written.shape == held.shape
        assert np.abs(written.T - padded[stem]).max() < 1e-5


def test_streams_in_small_blocks_give_the_same_stems(tiny):
    audio = clip(0.3, 44100, 2)
    whole = tiny.separate(audio, 44100)
    blocks = [audio[:, start:start + 999] for start in range(0, audio.shape[1], 999)]
    pieces = [stems for _, stems in tiny.stream(iter(blocks), 44100, 2)]
    joined = np.concatenate(pieces, axis=-1)
    for index, stem in enumerate(tiny.stems):
        assert np.abs(joined[index] - whole[stem]).max() < 1e-6


# -- the pieces ------------------------------------------------------------------------------

@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("frames,tail", [(1, 1), (5, 40), (30, 3)])
def test_lstm_before_silence_equals_the_whole_sequence(layers, frames, tail):
    torch.manual_seed(layers)
    lstm = nn.LSTM(12, 7, layers, bidirectional=True).eval()
    sequence, silent = torch.randn(frames, 3, 12), torch.randn(12)
    with torch.no_grad():
        whole = lstm(torch.cat([sequence, silent.expand(tail, 3, 12)]))[0][:frames]
        assert torch.allclose(lstm_before_silence(lstm, sequence, silent, tail), whole, atol=1e-6)


def test_lstm_before_silence_follows_changed_weights_and_silence():
    """The cached silent backward pass is redone when the weights or the silent vector change."""
    torch.manual_seed(0)
    lstm = nn.LSTM(6, 5, 2, bidirectional=True).eval()
    sequence, silent = torch.randn(4, 2, 6), torch.randn(6)
    with torch.no_grad():
        lstm_before_silence(lstm, sequence, silent, 20)
        lstm.weight_hh_l0_reverse.mul_(1.5)
        lstm.bias_ih_l0_reverse.add_(0.3)
        for vector in (silent, silent + 1.0):
            whole = lstm(torch.cat([sequence, vector.expand(20, 2, 6)]))[0][:4]
            assert torch.allclose(lstm_before_silence(lstm, sequence, vector, 20), whole, atol=1e-6)


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
@pytest.mark.parametrize("kept,padded", [(3, 4), (10, 200), (40, 45), (7, 90)])
def test_models_with_padded_frames_equal_the_zero_padded_input(family, kept, padded):
    torch.manual_seed(7)
    model = ARCHITECTURES[family](**TINY_FAMILIES[family]).eval()
    assert model.padded_frames_supported
    magnitude = torch.rand(2, 2, 257, kept)
    with torch.no_grad():
        whole = model(torch.cat([magnitude, torch.zeros(2, 2, 257, padded - kept)], dim=-1))[..., :kept]
        assert torch.allclose(model(magnitude, padded_frames=padded), whole, atol=1e-6)


def test_tcn_reach_is_half_its_receptive_field():
    assert TCNMask(**TINY_FAMILIES["tcn"]).reach == 1 + 2 + 4 + 8


def _measured_reach(model: nn.Module, frames: int) -> int:
    """The furthest input frame (either side) any middle output frame's mask has a gradient from."""
    magnitude = torch.rand(1, 2, 257, frames, requires_grad=True)
    furthest = 0
    for frame in range(frames // 3, 2 * frames // 3, 5):
        grad, = torch.autograd.grad(model(magnitude)[..., frame].sum(), magnitude)
        used = (grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero().flatten()
        furthest = max(furthest, int(used.max()) - frame, frame - int(used.min()))
    return furthest


@pytest.mark.parametrize("family,params", [
    ("tcn", TINY_FAMILIES["tcn"]), ("unet", TINY_FAMILIES["unet"]), ("unet", dict(TINY_FAMILIES["unet"], depth=5)),
    ("mmdense", TINY_FAMILIES["mmdense"]), ("mmdense", dict(TINY_FAMILIES["mmdense"], layers=3, depth=3)),
])
def test_reach_bounds_what_a_mask_depends_on(family, params):
    """The silence a model leaves out must lie beyond everything a kept frame's mask sees;
    the bound is tight (a frame further would be left out wrongly)."""
    torch.manual_seed(5)
    model = ARCHITECTURES[family](**params).eval()
    measured = _measured_reach(model, 3 * model.reach + 64)
    assert model.reach - 1 <= measured <= model.reach


class _PlainMask(nn.Module):
    """A model that knows nothing of padded frames (a family added without it)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(257, 257, 9, padding=4)

    def forward(self, magnitude):
        batch, channels, bins, frames = magnitude.shape
        mixed = self.conv(magnitude.reshape(batch * channels, bins, frames))
        return torch.sigmoid(mixed.cumsum(-1)).reshape(magnitude.shape)  # depends on every earlier frame


def test_models_without_padded_frames_are_padded_in_full():
    torch.manual_seed(2)
    core = MaskSeparator({"vocals": _PlainMask().eval()}, 512, 128).eval()
    audio = torch.from_numpy(clip(0.05, 44100, 2))[None]
    assert core.silence_cut(audio.shape[-1], 22050) == 22050
    with torch.no_grad():
        padded = core(torch.nn.functional.pad(audio, (0, 22050 - audio.shape[-1])))[..., :audio.shape[-1]]
        assert torch.equal(core(audio, padded_length=22050), padded)


def test_the_cut_is_short_for_short_audio():
    torch.manual_seed(0)
    core = MaskSeparator({"vocals": BLSTMMask(**TINY_BLSTM)}, 512, 128)
    assert core.silence_cut(1, 22050) == 384             # 1 + 256 + 1 samples, rounded up to hops
    assert core.silence_cut(4410, 22050) == 4736
    assert core.silence_cut(22050 - 300, 22050) == 22050  # no room left to cut


def test_idle_workers_sharing_the_models_change_nothing(tmp_path):
    """A short stereo file is one item: the second worker takes some of the target models.
    One worker alone gives the same stems, bit for bit."""
    folder = write_untrained_set(tmp_path / "models", "blstm", dict(TINY_BLSTM, layers=2), n_fft=512, hop=128)
    audio = clip(0.2, 44100, 2)
    with Separator(folder, device="cpu", threads=1, segment=0.5) as one, \
            Separator(folder, device="cpu", threads=3, segment=0.5) as three:
        alone, shared = one.separate(audio, 44100), three.separate(audio, 44100)
        lent = []
        original = three._spread
        three._spread = lambda helpers: lent.append(helpers) or original(helpers)
        three.separate(audio, 44100)
    assert lent == [2]
    assert all(np.array_equal(alone[stem], shared[stem]) for stem in alone)


def test_concurrent_short_files_on_one_separator_do_not_deadlock(tiny):
    """Three callers at once fill every worker; the helpers they lend are then never started."""
    import threading

    audio = [clip(0.1 + 0.01 * k, 44100, 2, seed=k) for k in range(6)]
    alone = [tiny.separate(a, 44100) for a in audio]
    together: dict[int, dict] = {}

    def caller(first: int) -> None:
        for index in range(first, len(audio), 3):
            together[index] = tiny.separate(audio[index], 44100)

    callers = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(3)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in callers), "deadlock: callers still waiting"
    for index, one in enumerate(alone):
        assert all(np.array_equal(one[stem], together[index][stem]) for stem in one)
