"""Per-target mask models.

Every model maps a mixture magnitude spectrogram (batch, channels, bins, frames)
to a mask of the same shape with values in [0, 1]; :class:`stemcut.core.MaskSeparator`
multiplies it with the mixture magnitude to get that target's magnitude estimate.
Four families:

* ``blstm``: Open-Unmix style. Each frame's spectrum is squeezed by a dense
  layer, a bidirectional LSTM follows the song over time, dense layers expand
  back to a mask.
* ``tcn``: frequency first compressed per frame by a dense layer (as ``blstm``),
  then a stack of dilated, depthwise-separable 1-D convolutions over time
  instead of an LSTM, then dense layers back to a mask. Every frame is computed
  in parallel, which is what a CPU is good at.
* ``unet``: Spleeter style. The log-magnitude spectrogram below ``max_bin`` as an
  image: strided 5x5 convolutions down, transposed ones up with skip connections,
  a sigmoid mask; bins above ``max_bin`` take the mask of the highest one.
* ``mmdense``: MMDenseNet (Takahashi & Mitsufuji): dense blocks of 3x3
  convolutions in a small U-Net (MDenseNet) on each frequency band and one on the
  whole range, their outputs joined by a last dense block into a sigmoid mask, on
  linear magnitudes (a learned per-bin scale).

``build_model(arch, params)`` makes one from the hyper-parameters a
manifest records (see :mod:`stemcut.weights`).

Every family takes ``forward(magnitude, padded_frames=N)``: the mask of the first
T frames of ``magnitude`` followed by N - T silent (all-zero) frames, computed
without the silent frames where they cannot change it: the convolutional families
(``tcn``, ``unet``, ``mmdense``) append only the silent frames within their
``reach`` (half the receptive field over time), the ``blstm`` family's LSTM runs
over the silence once (:mod:`stemcut.recurrent`). A short file is separated that
way as if padded to a full segment. A family that sets ``padded_frames_supported``
must keep that promise to float rounding; the separator pads a model without it
for real.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .recurrent import lstm_before_silence

__all__ = ["BLSTMMask", "TCNMask", "UNetMask", "MMDenseMask", "ARCHITECTURES", "build_model"]


def _silent_frames(magnitude: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` all-zero frames shaped like ``magnitude``'s (..., frames)."""
    return magnitude.new_zeros(magnitude.shape[:-1] + (count,))


def _with_silence(magnitude: torch.Tensor, padded_frames: int | None, reach: int) -> torch.Tensor:
    """``magnitude`` (..., frames) followed by the silent frames of ``padded_frames`` that
    can reach one of its own: at most ``reach`` of them (a frame's mask depends on no frame
    further away)."""
    kept = magnitude.shape[-1]
    if padded_frames is None or padded_frames <= kept:
        return magnitude
    return torch.cat([magnitude, _silent_frames(magnitude, min(padded_frames - kept, reach))], dim=-1)


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
            silent = self._encode(_silent_frames(magnitude[:1], 1).permute(3, 0, 1, 2))[0]
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
        magnitude = _with_silence(magnitude, padded_frames, self.reach)
        batch, channels, bins, frames = magnitude.shape
        features = self._encode(magnitude.permute(0, 3, 1, 2))  # batch * frames, hidden
        trunk = features.reshape(batch, frames, -1).transpose(1, 2)
        context = self.temporal(trunk).transpose(1, 2)
        if frames > kept:
            features = features.reshape(batch, frames, -1)[:, :kept].reshape(batch * kept, -1)
            context = context[:, :kept]
        mask = self._decode(features, context.reshape(batch * kept, -1))
        return mask.reshape(batch, kept, channels, bins).permute(0, 2, 3, 1)


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the last two axes (bins, frames) up to multiples of ``multiple``."""
    bins, frames = x.shape[-2:]
    return F.pad(x, (0, -frames % multiple, 0, -bins % multiple))


def _full_band(mask: torch.Tensor, bins: int) -> torch.Tensor:
    """A mask over the lowest bins, extended to ``bins`` by repeating its highest bin."""
    missing = bins - mask.shape[-2]
    if missing <= 0:
        return mask[..., :bins, :]
    return torch.cat([mask, mask[..., -1:, :].expand(*mask.shape[:-2], missing, mask.shape[-1])], dim=-2)


class UNetMask(nn.Module):
    """Spleeter-style 2-D U-Net over (bins, frames): ``depth`` strided 5x5 conv layers of
    ``width * 2**i`` channels (batch norm, leaky ReLU), transposed convs back with the
    encoder's maps concatenated, a sigmoid mask over the lowest ``max_bin`` bins."""

    padded_frames_supported = True

    def __init__(self, n_fft: int = 4096, max_bin: int = 1024, channels: int = 2, width: int = 16, depth: int = 5):
        super().__init__()
        self.bins = n_fft // 2 + 1
        self.max_bin = min(max_bin, self.bins)
        self.multiple = 2**depth
        self.input_mean = nn.Parameter(torch.zeros(self.max_bin, 1))
        self.input_scale = nn.Parameter(torch.ones(self.max_bin, 1))
        widths = [channels] + [width * 2**i for i in range(depth)]
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 5, stride=2, padding=2), nn.BatchNorm2d(b),
                                                nn.LeakyReLU(0.2)) for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            source = widths[i + 1] if i == depth - 1 else 2 * widths[i + 1]
            target = widths[i] if i > 0 else width
            self.up.append(nn.Sequential(nn.ConvTranspose2d(source, target, 5, stride=2, padding=2, output_padding=1),
                                         nn.BatchNorm2d(target), nn.ReLU()))
        self.head = nn.Conv2d(width, channels, 1)

    @property
    def reach(self) -> int:
        """Frames on each side of a frame that its mask depends on: a bound. A 5x5 stride-2
        convolution (down) or transposed one (up) at scale ``2**level`` adds ``2**(level+1)``
        frames: ``2**(depth+1) - 2`` down, as many again up (``multiple`` is ``2**depth``)."""
        return 4 * self.multiple - 4

    def forward(self, magnitude: torch.Tensor, padded_frames: int | None = None) -> torch.Tensor:
        frames = magnitude.shape[-1]
        magnitude = _with_silence(magnitude, padded_frames, self.reach)
        x = (torch.log1p(magnitude[..., : self.max_bin, :]) + self.input_mean) * self.input_scale
        x = _pad_to(x, self.multiple)
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()
        for layer in self.up:
            x = layer(x)
            if skips:
                x = torch.cat([x, skips.pop()], dim=1)
        mask = torch.sigmoid(self.head(x))[..., : self.max_bin, :frames]
        return _full_band(mask, self.bins)


class _DenseBlock(nn.Module):
    """``layers`` times: batch norm, ReLU, 3x3 conv of ``growth`` channels, concatenated to the input."""

    def __init__(self, channels: int, growth: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(channels + i * growth), nn.ReLU(),
                                                  nn.Conv2d(channels + i * growth, growth, 3, padding=1, bias=False))
                                    for i in range(layers))
        self.out_channels = channels + layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _MDenseNet(nn.Module):
    """A small U-Net of dense blocks: down by 2x2 average pooling ``depth`` times (a 1x1
    transition after each block keeps the width), up by transposed convs with skips."""

    def __init__(self, channels: int, growth: int, layers: int, depth: int):
        super().__init__()
        self.stem = nn.Conv2d(channels, 2 * growth, 3, padding=1, bias=False)
        width = 2 * growth
        self.down_blocks, self.transitions, skip_widths = nn.ModuleList(), nn.ModuleList(), []
        for _ in range(depth):
            block = _DenseBlock(width, growth, layers)
            self.down_blocks.append(block)
            skip_widths.append(block.out_channels)
            self.transitions.append(nn.Conv2d(block.out_channels, width, 1, bias=False))
        self.bottom = _DenseBlock(width, growth, layers)
        width = self.bottom.out_channels
        self.ups, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for skip in reversed(skip_widths):
            self.ups.append(nn.ConvTranspose2d(width, 2 * growth, 2, stride=2))
            block = _DenseBlock(2 * growth + skip, growth, layers)
            self.up_blocks.append(block)
            width = block.out_channels
        self.out_channels = width
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bins, frames = x.shape[-2:]
        x = self.stem(_pad_to(x, self.multiple))
        skips = []
        for block, transition in zip(self.down_blocks, self.transitions):
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(transition(x), 2)
        x = self.bottom(x)
        for up, block in zip(self.ups, self.up_blocks):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return x[..., :bins, :frames]


class MMDenseMask(nn.Module):
    """MMDenseNet: an MDenseNet per frequency band (split at ``bands``) and one over the whole
    range below ``max_bin``, joined by a dense block and a 1x1 conv into a sigmoid mask; the
    input is the linear magnitude times a learned per-bin scale."""

    padded_frames_supported = True

    def __init__(self, n_fft: int = 4096, max_bin: int = 1487, channels: int = 2, growth: int = 8,
                 layers: int = 3, depth: int = 2, bands: tuple[int, ...] = (256, 768)):
        super().__init__()
        self.bins = n_fft // 2 + 1
        self.max_bin = min(max_bin, self.bins)
        self.edges = [0, *[b for b in bands if b < self.max_bin], self.max_bin]
        self.input_scale = nn.Parameter(torch.ones(self.max_bin, 1))
        self.band_nets = nn.ModuleList(_MDenseNet(channels, growth, layers, depth) for _ in self.edges[:-1])
        self.full_net = _MDenseNet(channels, growth, layers, depth)
        joined = self.band_nets[0].out_channels + self.full_net.out_channels
        self.join = _DenseBlock(joined, growth, layers)
        self.head = nn.Conv2d(self.join.out_channels, channels, 1)
        self.layers, self.depth = layers, depth

    @property
    def reach(self) -> int:
        """Frames on each side of a frame that its mask depends on: a bound. Every 3x3
        convolution adds 1 frame at its scale (``2**level``), every 2x2 pooling ``2**level``,
        the 2x2 transposed convolutions nothing; the stem and the joining block work at full scale."""
        layers, scales = self.layers, 2**self.depth - 1
        down = 1 + (layers + 1) * scales + layers * 2**self.depth
        return down + layers * scales + layers

    def forward(self, magnitude: torch.Tensor, padded_frames: int | None = None) -> torch.Tensor:
        frames = magnitude.shape[-1]
        magnitude = _with_silence(magnitude, padded_frames, self.reach)
        x = magnitude[..., : self.max_bin, :] * self.input_scale
        bands = torch.cat([net(x[..., low:high, :]) for net, low, high in
                           zip(self.band_nets, self.edges[:-1], self.edges[1:])], dim=-2)
        mask = torch.sigmoid(self.head(self.join(torch.cat([bands, self.full_net(x)], dim=1))))
        return _full_band(mask[..., :frames], self.bins)


ARCHITECTURES: dict[str, type[nn.Module]] = {"blstm": BLSTMMask, "tcn": TCNMask, "unet": UNetMask,
                                             "mmdense": MMDenseMask}


def build_model(arch: str, params: dict) -> nn.Module:
    """A model of family ``arch`` with hyper-parameters ``params`` (untrained)."""
    try:
        family = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}") from None
    return family(**params)
