"""From per-target magnitude estimates to complex stem spectrograms.

Two ways, both joint over all stems:

* :func:`ratio_shares` and :func:`apply_mask`: each stem gets the mixture
  spectrogram times its share of the summed magnitude estimates. The shares sum
  to one in every bin, so the stems sum to the mixture exactly.
* :func:`wiener`: the multichannel Wiener filter of norbert (expectation-maximisation
  on spatial covariances), which models the stereo image of every stem,
  vectorised in torch. Its stems sum to the mixture only approximately.

Both run on one segment at a time, so their memory is bounded by the segment.
"""

from __future__ import annotations

import numpy as np
import torch

# Keeps shares defined where every estimate is zero (then all stems share equally).
_FLOOR = 1e-10


def ratio_shares(estimates: torch.Tensor) -> torch.Tensor:
    """estimates (S, ...) magnitudes -> each stem's share of their sum, in place (same tensor)."""
    estimates += _FLOOR
    estimates /= estimates.sum(dim=0, keepdim=True)
    return estimates


def apply_mask(mask: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Real mask times complex mixture, without promoting the mask to complex."""
    return torch.view_as_complex(torch.view_as_real(mixture) * mask.unsqueeze(-1))


_ENVELOPES: dict = {}


def istft(spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, length: int,
          frames_major: bool = False) -> torch.Tensor:
    """Inverse of ``torch.stft(..., center=True)`` with ``window``: (..., F, T) complex -> (..., length),
    or (..., T, F) with ``frames_major``.

    Same result as ``torch.istft`` (to float rounding), but the overlap-add is
    ``n_fft // hop`` strided additions instead of a col2im fold: about 1.6x faster
    on the CPU. Falls back to ``torch.istft`` when ``hop`` does not divide ``n_fft``."""
    if not frames_major:
        spec = spec.transpose(-1, -2)
    *lead, frames, bins = spec.shape
    spec = spec.reshape(-1, frames, bins)
    if n_fft % hop:
        audio = torch.istft(spec.transpose(1, 2), n_fft, hop, window=window, center=True, length=length)
        return audio.reshape(*lead, length)
    count = spec.shape[0]
    pieces = torch.fft.irfft(spec, n=n_fft)  # N, T, n_fft
    pieces *= window
    ratio = n_fft // hop
    total = n_fft + hop * (frames - 1)
    start = n_fft // 2
    audio = torch.zeros(count, max(total, start + length), device=spec.device)
    for phase in range(ratio):
        part = pieces[:, phase::ratio]
        audio[:, phase * hop: phase * hop + part.shape[1] * n_fft] += part.reshape(count, -1)
    key = (n_fft, hop, frames, length, str(window.device), window.data_ptr())
    envelope = _ENVELOPES.get(key)
    if envelope is None:
        square = window * window
        envelope = torch.zeros(audio.shape[1], device=spec.device)
        for phase in range(ratio):
            tiles = len(range(phase, frames, ratio))
            envelope[phase * hop: phase * hop + tiles * n_fft] += square.repeat(tiles)
        envelope = envelope[start:start + length]
        envelope = torch.where(envelope > 1e-11, envelope, torch.ones_like(envelope))
        if len(_ENVELOPES) > 16:
            _ENVELOPES.clear()
        _ENVELOPES[key] = envelope
    audio = audio[:, start:start + length] / envelope
    return audio.reshape(*lead, length)


def wiener(estimates: torch.Tensor, mixture: torch.Tensor, iterations: int = 1) -> torch.Tensor:
    """Multichannel Wiener filter: estimates (S, B, C, F, T) magnitudes, mixture
    (B, C, F, T) complex -> stems (S, B, C, F, T) complex.

    The algorithm of norbert's ``wiener(v, x, iterations, use_softmask=True)`` (soft
    mask first, then EM updates of each stem's power spectral density and spatial
    covariance, with the same scaling and regularisation), vectorised in torch over
    frames, bins and items instead of norbert's Python loops over frames and its
    generic batched matrix inverse: the mixture covariance is 2 x 2, so its inverse
    is closed form, and ``W_j x = v_j R_j (Cxx^-1 x)`` needs ``Cxx^-1 x`` only once
    for all stems. Float32 throughout (norbert keeps its PSDs in float64): results
    agree with norbert to about 1e-3 relative. Falls back to norbert for more than
    two channels."""
    if mixture.shape[1] != 2:
        return _wiener_norbert(estimates, mixture, iterations)
    eps = torch.finfo(torch.float32).eps
    v = estimates.to(torch.float32)
    x = mixture.to(torch.complex64)
    # Soft mask: y_j = v_j / (eps + sum v) * x
    y = x.unsqueeze(0) * (v / (eps + v.sum(dim=0, keepdim=True)))      # S, B, C, F, T
    if not iterations:
        return y
    # norbert rescales the mixture (per item) so that max |x| is about 10.
    scale = torch.clamp(x.abs().amax(dim=(1, 2, 3), keepdim=True) / 10.0, min=1.0)  # B, 1, 1, 1
    x = x / scale
    y = y / scale
    regularization = eps ** 0.5
    for _ in range(iterations):
        # Local Gaussian model of each stem: PSD v_j (mean power over channels) and
        # spatial covariance R_j = sum_t y y^H / (eps + sum_t v_j), per bin.
        channel_power = torch.view_as_real(y).square().sum(dim=-1)         # S, B, C, F, T
        power = channel_power.mean(dim=2)                                  # S, B, F, T
        weight = eps + power.sum(dim=-1)                                   # S, B, F
        r00 = channel_power[:, :, 0].sum(dim=-1) / weight                  # real
        r11 = channel_power[:, :, 1].sum(dim=-1) / weight
        del channel_power
        r01 = (y[:, :, 0] * y[:, :, 1].conj()).sum(dim=-1) / weight        # complex; r10 = conj(r01)
        # Mixture covariance Cxx = sum_j v_j R_j + regularisation I (Hermitian 2 x 2).
        c00 = torch.einsum("sbft,sbf->bft", power, r00) + regularization
        c11 = torch.einsum("sbft,sbf->bft", power, r11) + regularization
        c01 = torch.complex(torch.einsum("sbft,sbf->bft", power, r01.real.contiguous()),
                            torch.einsum("sbft,sbf->bft", power, r01.imag.contiguous()))
        inv_det = 1.0 / (c00 * c11 - torch.view_as_real(c01).square().sum(dim=-1) + eps)
        # z = Cxx^-1 x once per (item, bin, frame); then y_j = v_j R_j z for every stem.
        x0, x1 = x[:, 0], x[:, 1]                                          # B, F, T
        z0 = (c11 * x0 - c01 * x1) * inv_det
        z1 = (c00 * x1 - c01.conj() * x0) * inv_det
        del c00, c11, c01, inv_det
        y = torch.empty_like(y)
        y[:, :, 0] = power * (r00.unsqueeze(-1) * z0 + r01.unsqueeze(-1) * z1)
        y[:, :, 1] = power * (r01.conj().unsqueeze(-1) * z0 + r11.unsqueeze(-1) * z1)
    return y * scale


def _wiener_norbert(estimates: torch.Tensor, mixture: torch.Tensor, iterations: int = 1) -> torch.Tensor:
    """norbert's multichannel Wiener filter, one item at a time (any channel count)."""
    import norbert

    device = mixture.device
    v = estimates.permute(1, 4, 3, 2, 0).detach().cpu().numpy().astype(np.float32)  # B, T, F, C, S
    x = mixture.permute(0, 3, 2, 1).detach().cpu().numpy().astype(np.complex64)     # B, T, F, C
    out = np.empty(v.shape, dtype=np.complex64)
    for item in range(v.shape[0]):
        # norbert rescales its mixture argument in place: hand it a copy.
        out[item] = norbert.wiener(v[item], x[item].copy(), iterations=iterations, use_softmask=True)
    return torch.from_numpy(out).permute(4, 0, 3, 2, 1).to(device)
