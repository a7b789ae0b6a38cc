"""The mask families: shapes and ranges, that each can learn, and that each runs through the separator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TINY_FAMILIES
from stemcut.core import MaskSeparator
from stemcut.models import ARCHITECTURES, build_model
from stemcut.separator import Separator
from stemcut.weights import write_untrained_set



def test_every_family_is_covered() -> None:
    assert set(TINY_FAMILIES) == set(ARCHITECTURES)


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
@pytest.mark.parametrize("frames", [1, 37])
def test_masks_cover_every_bin_and_frame_in_range(family: str, frames: int) -> None:
    model = build_model(family, TINY_FAMILIES[family]).eval()
    magnitude = torch.rand(2, 2, 257, frames) * 3
    with torch.no_grad():
        mask = model(magnitude)
    assert mask.shape == magnitude.shape
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_each_family_learns_a_mask(family: str) -> None:
    """Thirty Adam steps bring the loss on a fixed example well below where it started."""
    torch.manual_seed(0)
    model = build_model(family, TINY_FAMILIES[family])
    magnitude = torch.rand(2, 2, 257, 24)
    target = (torch.arange(257) < 60).float()[None, None, :, None].expand_as(magnitude)  # keep the lows only
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.mean((model(magnitude) - target) ** 2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("family", ["unet", "mmdense"])
def test_two_d_families_separate_through_the_separator(family: str, tmp_path) -> None:
    write_untrained_set(tmp_path / "w", family, TINY_FAMILIES[family], n_fft=512, hop=128, seed=1)
    audio = (np.random.default_rng(0).standard_normal((2, 30000)) * 0.1).astype(np.float32)
    with Separator(tmp_path / "w", device="cpu", segment=0.5) as separator:
        stems = separator.separate(audio, 44100)
    assert set(stems) == {"vocals", "drums", "bass", "guitar", "other"}
    np.testing.assert_allclose(sum(stems.values()), audio, atol=1e-4)
    core = MaskSeparator({"vocals": build_model(family, TINY_FAMILIES[family])}, 512, 128)
    assert core.silence_cut(1000, 20000) < 20000  # they skip a short file's silence too (test_short_files.py)
