"""Per-target mask models.

Every model maps a mixture magnitude spectrogram (batch, channels, bins, frames)
to a mask of the same shape with values in [0, 1]; :class:`stemcut.core.MaskSeparator`
multiplies it with the mixture magnitude to get that target's magnitude estimate.
Two families:

* ``blstm``: Open-Unmix style. Each frame's spectrum is squeezed by a dense
  layer, a bidirectional LSTM follows the song over time, dense layers expand
  back to a mask.
* ``tcn``: frequency first compressed per frame by a dense layer (as ``blstm``),
  then a stack of dilated, depthwise-separable 1-D convolutions over time
  instead of an LSTM, then dense layers back to a mask. Every frame is computed
  in parallel, which is what a CPU is good at.

``build_model(arch, params)`` makes one from the hyper-parameters a
manifest records (see :mod:`stemcut.weights`).

Both families take ``forward(magnitude, padded_frames=N)``: the mask of the first
T frames of ``magnitude`` followed by N - T silent (all-zero) frames, computed
without the silent frames where they cannot change it (the ``tcn`` family's
receptive field; the ``blstm`` family's LSTM by :mod:`stemcut.recurrent`). A
short file is separated that way as if padded to a full segment. A family that
sets ``padded_frames_supported`` must keep that promise to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from .recurrent import lstm_before_silence

__all__ = ["BLSTMMask", "TCNMask", "ARCHITECTURES", "build_model"]


class _FrameMaskNet(nn.Module):
    """What the ``blstm`` and ``tcn`` families share: each frame's log-magnitude
    spectrum (below ``max_bin``) is squeezed by a dense layer, a temporal core
    (the subclass's) adds context over time, and dense layers expand the frame
    and its context back to a mask over all bins."""

    padded_frames_supported = True

    def __init__(self, n_fft: int, max_bin: int, channels: int, hidden: int):
        super().__init__()
        self.bins = n_fft // 2 + 1
        self.max_bin = min(max_bin, self.bins)
        self.channels = channels
        self.input_mean = nn.Parameter(torch.zeros(self.max_bin))
        self.input_scale = nn.Parameter(torch.ones(self.max_bin))
        self.fc1 = nn.Linear(channels * self.max_bin, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(2 * hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.fc3 = nn.Linear(hidden, channels * self.bins, bias=False)
        self.bn3 = nn.BatchNorm1d(channels * self.bins)
        self.output_bias = nn.Parameter(torch.zeros(self.bins))

    def _encode(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(..., channels, bins) frames -> (frames, hidden) features, frames in leading order."""
        x = (torch.log1p(magnitude[..., : self.max_bin]) + self.input_mean) * self.input_scale
        return torch.tanh(self.bn1(self.fc1(x.reshape(-1, self.channels * self.max_bin))))

    def _silent_frames(self, magnitude: torch.Tensor, count: int) -> torch.Tensor:
        """``count`` all-zero frames shaped like ``magnitude``'s (batch, channels, bins, frames)."""
        return magnitude.new_zeros(magnitude.shape[:-1] + (count,))

    def _decode(self, features: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """(frames, hidden) features and context -> (frames, channels, bins) mask."""
        x = torch.relu(self.bn2(self.fc2(torch.cat([features, context], dim=-1))))
        x = self.bn3(self.fc3(x)).reshape(-1, self.channels, self.bins)
        return torch.sigmoid(x + self.output_bias)


class BLSTMMask(_FrameMaskNet):
    """Open-Unmix-style mask network: dense -> BLSTM (with skip) -> dense -> sigmoid."""

    def __init__(self, n_fft: int = 4096, max_bin: int = 1487, channels: int = 2,
                 hidden: int = 256, layers: int = 3):
        super().__init__(n_fft, max_bin, channels, hidden)
        self.lstm = nn.LSTM(hidden, hidden // 2, num_layers=layers, bidirectional=True,
                            batch_first=False, dropout=0.3 if layers > 1 else 0.0)

    def forward(self, magnitude: torch.Tensor, padded_frames: int | None = None) -> torch.Tensor:
        batch, channels, bins, frames = magnitude.shape
        features = self._encode(magnitude.permute(3, 0, 1, 2))  # frames * batch, hidden
        sequence = features.reshape(frames, batch, -1)
        if padded_frames is not None and padded_frames > frames:
            silent = self._encode(self._silent_frames(magnitude[:1], 1).permute(3, 0, 1, 2))[0]
            recurrent = lstm_before_silence(self.lstm, sequence, silent, padded_frames - frames)
        else:
            recurrent, _ = self.lstm(sequence)
        mask = self._decode(features, recurrent.reshape(frames * batch, -1))
        return mask.reshape(frames, batch, channels, bins).permute(1, 2, 3, 0)


class _TemporalBlock(nn.Module):
    """Residual block: depthwise dilated conv over time, pointwise conv, BN, ReLU."""

    def __init__(self, width: int, dilation: int, kernel: int = 3):
        super().__init__()
        self.depthwise = nn.Conv1d(width, width, kernel, padding=dilation * (kernel - 1) // 2,
                                   dilation=dilation, groups=width, bias=False)
        self.pointwise = nn.Conv1d(width, width, 1, bias=False)
        self.norm = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.norm(self.pointwise(self.depthwise(x))))


class TCNMask(_FrameMaskNet):
    """Dense frequency compression -> dilated temporal convolutions (with skip) -> dense -> sigmoid.

    The receptive field is ``1 + 2 * sum(dilations)`` frames (``blocks`` blocks of
    dilations 1, 2, 4, ... repeated ``stacks`` times); time length is free. Dense
    layers act on each frame as matrix products (fast on CPU), the temporal blocks
    on (batch, features, frames).
    """

    def __init__(self, n_fft: int = 4096, max_bin: int = 1487, channels: int = 2,
                 hidden: int = 256, blocks: int = 5, stacks: int = 1):
        super().__init__(n_fft, max_bin, channels, hidden)
        self.temporal = nn.Sequential(*(_TemporalBlock(hidden, 2**b) for _ in range(stacks) for b in range(blocks)))

    @property
    def reach(self) -> int:
        """Frames on each side of a frame that its mask depends on (half the receptive field)."""
        return sum(block.depthwise.dilation[0] * (block.depthwise.kernel_size[0] - 1) // 2 for block in self.temporal)

    def forward(self, magnitude: torch.Tensor, padded_frames: int | None = None) -> torch.Tensor:
        kept = magnitude.shape[-1]
        if padded_frames is not None and padded_frames > kept:
            # Silent frames further than `reach` past the last kept one cannot reach it.
            extra = min(padded_frames - kept, self.reach)
            magnitude = torch.cat([magnitude, self._silent_frames(magnitude, extra)], dim=-1)
        batch, channels, bins, frames = magnitude.shape
        features = self._encode(magnitude.permute(0, 3, 1, 2))  # batch * frames, hidden
        trunk = features.reshape(batch, frames, -1).transpose(1, 2)
        context = self.temporal(trunk).transpose(1, 2)
        if frames > kept:
            features = features.reshape(batch, frames, -1)[:, :kept].reshape(batch * kept, -1)
            context = context[:, :kept]
        mask = self._decode(features, context.reshape(batch * kept, -1))
        return mask.reshape(batch, kept, channels, bins).permute(0, 2, 3, 1)


ARCHITECTURES: dict[str, type[nn.Module]] = {"blstm": BLSTMMask, "tcn": TCNMask}


def build_model(arch: str, params: dict) -> nn.Module:
    """A model of family ``arch`` with hyper-parameters ``params`` (untrained)."""
    try:
        family = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}") from None
    return family(**params)
