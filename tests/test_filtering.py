"""The post-filters: ratio shares, the fast iSTFT and the torch Wiener filter against norbert."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemcut.filtering import apply_mask, ratio_shares, wiener
from stemcut.transforms import STFT, istft


def norbert_wiener(estimates: torch.Tensor, mixture: torch.Tensor, iterations: int) -> torch.Tensor:
    """norbert's own multichannel Wiener filter, one item at a time: the reference."""
    import norbert

    v = estimates.permute(1, 4, 3, 2, 0).numpy().astype(np.float32)  # B, T, F, C, S
    x = mixture.permute(0, 3, 2, 1).numpy().astype(np.complex64)     # B, T, F, C
    out = np.empty(v.shape, dtype=np.complex64)
    for item in range(v.shape[0]):
        # norbert rescales its mixture argument in place: hand it a copy.
        out[item] = norbert.wiener(v[item], x[item].copy(), iterations=iterations, use_softmask=True)
    return torch.from_numpy(out).permute(4, 0, 3, 2, 1)


def random_case(seed: int = 0, stems: int = 5, channels: int = 2, bins: int = 65, frames: int = 40):
    generator = torch.Generator().manual_seed(seed)
    mixture = torch.complex(torch.randn(1, channels, bins, frames, generator=generator),
                            torch.randn(1, channels, bins, frames, generator=generator))
    estimates = torch.rand(stems, 1, channels, bins, frames, generator=generator) * mixture.abs()
    return estimates, mixture


def test_ratio_shares_sum_to_one_and_masks_sum_to_mixture():
    estimates, mixture = random_case()
    estimates[:, :, :, 0] = 0.0  # bins with no estimate at all still share the mixture
    shares = ratio_shares(estimates.clone())
    stems = torch.stack([apply_mask(share, mixture) for share in shares])
    assert torch.allclose(stems.sum(dim=0), mixture, atol=1e-5)
    assert torch.allclose(shares.sum(dim=0), torch.ones_like(shares[0]), atol=1e-6)
    assert torch.allclose(apply_mask(shares[0], mixture), shares[0] * mixture, atol=1e-6)


@pytest.mark.parametrize("n_fft,hop,length", [(512, 128, 4000), (4096, 1024, 44100), (400, 160, 1601)])
def test_fast_istft_matches_torch(n_fft, hop, length):
    audio = torch.randn(3, length)
    window = torch.hann_window(n_fft)
    spec = torch.stft(audio, n_fft, hop, window=window, center=True, return_complex=True)
    expected = torch.istft(spec, n_fft, hop, window=window, center=True, length=length)
    assert torch.allclose(istft(spec.transpose(-1, -2), n_fft, hop, window, length), expected, atol=1e-5)
    stft = STFT(n_fft, hop)
    torch.testing.assert_close(stft(audio), spec.transpose(-1, -2))  # frames-major layout
    assert torch.allclose(stft.inverse(stft(audio), length), audio, atol=1e-5)


@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_torch_wiener_agrees_with_norbert(iterations):
    estimates, mixture = random_case(seed=iterations)
    ours = wiener(estimates, mixture, iterations)
    reference = norbert_wiener(estimates, mixture, iterations)
    assert ours.shape == reference.shape == (5,) + mixture.shape
    relative = (ours - reference).abs().max() / reference.abs().max()
    assert relative < 5e-3


def test_wiener_takes_stereo_items_only():
    estimates, mixture = random_case(channels=3, bins=17, frames=9)
    with pytest.raises(ValueError, match="stereo"):
        wiener(estimates, mixture, 1)


class _FixedMask(torch.nn.Module):
    """A mask model that gives every frame and channel the same random mask per bin."""

    padded_frames_supported = True

    def __init__(self, bins: int, seed: int):
        super().__init__()
        self.mask = torch.rand(bins, 1, generator=torch.Generator().manual_seed(seed)) * 0.9 + 0.05

    def forward(self, magnitude: torch.Tensor, padded_frames: int | None = None) -> torch.Tensor:
        return self.mask.expand_as(magnitude)


def test_one_wiener_iteration_keeps_the_ratio_masks_shares_on_a_shared_stereo_image():
    """The models learn through the ratio mask. Where every stem has the same stereo image
    (dual mono here) the Wiener filter has nothing to add, and one iteration must give the
    ratio mask's stems, not a sharper mask (the estimates' own squares)."""
    from stemcut.core import MaskSeparator

    models = {target: _FixedMask(257, seed) for seed, target in enumerate(["vocals", "drums", "bass", "other"])}
    core = MaskSeparator(models, 512, 128).eval()
    mono = torch.randn(1, 1, 22050, generator=torch.Generator().manual_seed(3)) * 0.2
    audio = mono.expand(1, 2, 22050).contiguous()
    with torch.no_grad():
        ratio, filtered = core(audio), core(audio, wiener_iterations=1)
    assert (filtered - ratio).abs().max() < 0.01 * ratio.abs().max()
