"""From per-target magnitude estimates to complex stem spectrograms.

Two ways, both joint over all stems:

* :func:`ratio_mask`: each stem gets the mixture spectrogram times its share of
  the summed magnitude estimates. The shares sum to one in every bin, so the
  stems sum to the mixture exactly.
* :func:`wiener`: norbert's multichannel Wiener filter (expectation-maximisation
  on spatial covariances), which models the stereo image of every stem. Its
  stems sum to the mixture only approximately.

Both run on one segment at a time, so their memory is bounded by the segment.
"""

from __future__ import annotations

import numpy as np
import torch

# Keeps shares defined where every estimate is zero (then all stems share equally).
_FLOOR = 1e-10


def ratio_mask(estimates: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """estimates (S, B, C, F, T) magnitudes, mixture (B, C, F, T) complex -> (S, B, C, F, T) complex."""
    estimates = estimates + _FLOOR
    return mixture.unsqueeze(0) * (estimates / estimates.sum(dim=0, keepdim=True))


def wiener(estimates: torch.Tensor, mixture: torch.Tensor, iterations: int = 1) -> torch.Tensor:
    """Multichannel Wiener filter (norbert), shapes as :func:`ratio_mask`."""
    import norbert

    device = mixture.device
    v = estimates.permute(1, 4, 3, 2, 0).detach().cpu().numpy().astype(np.float32)  # B, T, F, C, S
    x = mixture.permute(0, 3, 2, 1).detach().cpu().numpy().astype(np.complex64)     # B, T, F, C
    out = np.empty(v.shape, dtype=np.complex64)
    for item in range(v.shape[0]):
        # norbert rescales its mixture argument in place: hand it a copy.
        out[item] = norbert.wiener(v[item], x[item].copy(), iterations=iterations, use_softmask=True)
    return torch.from_numpy(out).permute(4, 0, 3, 2, 1).to(device)
