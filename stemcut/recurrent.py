"""A bidirectional LSTM over a sequence followed by silence, running only what the silence feeds back.

A short file is separated as if zero-padded to a full segment: after its last
sounding frame come many *silent* frames, all with the same input vector. What a
bidirectional LSTM gives on the sounding frames depends on that padding only
through the states its backward directions carry into them. Those states are
computed here from the padding's recurrences alone:

* layer 1's backward direction over the silence does not depend on the file:
  it runs on a batch of one, once per silence length (cached while the weights
  and the silent vector stay the same);
* a layer's forward direction carries the file's end state into the silence, and
  the next layer's backward direction reads it there: both are run over the
  silence (one single-direction pass each), exactly as the full sequence would;
* the last layer's forward direction over the silence, and every frame-wise
  layer (dense, batch norm, the mask) on the silent frames, are never needed.

So :func:`lstm_before_silence` gives the full sequence's output on the sounding
frames to float rounding, for any weights: no fixed point or convergence is
assumed (the shipped models' backward states need up to ~1300 silent frames to
settle, longer than a 10 s segment's padding).
"""

from __future__ import annotations

import threading
import weakref

import torch
from torch import nn

__all__ = ["lstm_before_silence"]

# lstm -> {(layer, reverse): a one-layer, one-direction LSTM sharing that direction's parameters}
_DIRECTIONS: "weakref.WeakKeyDictionary[nn.LSTM, dict[tuple[int, bool], nn.LSTM]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()  # the separator's worker threads share both caches


def _direction(lstm: nn.LSTM, layer: int, reverse: bool) -> nn.LSTM:
    """One direction of one layer of ``lstm`` as its own module, on the same Parameter objects
    (so training steps and ``.to(device)`` reach it; nothing is copied)."""
    with _LOCK:
        cache = _DIRECTIONS.setdefault(lstm, {})
        part = cache.get((layer, reverse))
        if part is None:
            size = lstm.input_size if layer == 0 else 2 * lstm.hidden_size
            part = nn.LSTM(size, lstm.hidden_size, 1, bias=lstm.bias, batch_first=False)
            suffix = f"_l{layer}" + ("_reverse" if reverse else "")
            for name in list(part._flat_weights_names):
                setattr(part, name, getattr(lstm, name.replace("_l0", suffix)))
            cache[(layer, reverse)] = part = part.train(False)
        return part


# lstm -> {tail frames: (silent vector, parameter versions, outputs (tail, 1, H), (h, c))}
_SILENT_TAILS: "weakref.WeakKeyDictionary[nn.LSTM, dict]" = weakref.WeakKeyDictionary()
_SILENT_TAILS_KEPT = 32


def _silent_backward(lstm: nn.LSTM, silent: torch.Tensor, tail: int):
    """Layer 1's backward direction over ``tail`` frames of ``silent``: outputs and final state."""
    backward = _direction(lstm, 0, True)
    versions = tuple(weight._version for weight in backward._flat_weights)
    with _LOCK:
        entry = _SILENT_TAILS.setdefault(lstm, {}).get(tail)
    if entry is not None and entry[1] == versions and entry[0].device == silent.device \
            and entry[0].dtype == silent.dtype and torch.equal(entry[0], silent):
        return entry[2], entry[3]
    out, state = _run(backward, silent.reshape(1, 1, -1).expand(tail, 1, -1).contiguous(), reverse=True)
    with _LOCK:
        cache = _SILENT_TAILS.setdefault(lstm, {})
        if len(cache) >= _SILENT_TAILS_KEPT:
            cache.pop(next(iter(cache)))
        cache[tail] = (silent.clone(), versions, out, state)
    return out, state


def _run(part: nn.LSTM, sequence: torch.Tensor, state=None, reverse: bool = False):
    """``part`` over (T, B, I) ``sequence`` (in time order, or backwards with ``reverse``):
    outputs in time order, and the final (h, c)."""
    if reverse:
        out, final = part(sequence.flip(0), state)
        return out.flip(0), final
    return part(sequence, state)


def lstm_before_silence(lstm: nn.LSTM, sequence: torch.Tensor, silent: torch.Tensor, tail: int) -> torch.Tensor:
    """The first T frames of ``lstm``'s output on (T, B, I) ``sequence`` followed by ``tail``
    frames that are all the (I,) vector ``silent``. Bidirectional, time-major LSTMs only
    (in eval mode: dropout between layers is not applied)."""
    if not lstm.bidirectional or lstm.batch_first or lstm.proj_size:
        raise ValueError("lstm_before_silence needs a bidirectional, time-major LSTM without projections")
    if tail <= 0:
        return lstm(sequence)[0]
    frames, batch, _ = sequence.shape
    hidden = lstm.hidden_size
    layer_input = sequence
    tail_forward = silent.reshape(1, 1, -1).expand(tail, batch, -1)   # layer l's forward input in the tail
    tail_backward = None                                              # layer l's backward input in the tail
    zeros = sequence.new_zeros(1, batch, hidden)
    for layer in range(lstm.num_layers):
        forward, backward = _direction(lstm, layer, False), _direction(lstm, layer, True)
        # Backward over the silence: what enters the sounding frames from the right.
        if tail_backward is None:
            tail_back_out, (h, c) = _silent_backward(lstm, silent, tail)
        else:
            tail_back_out, (h, c) = _run(backward, tail_backward, reverse=True)
        if h.shape[1] != batch:
            h, c = h.expand(-1, batch, -1).contiguous(), c.expand(-1, batch, -1).contiguous()
            tail_back_out = tail_back_out.expand(-1, batch, -1)
        back_out, _ = _run(backward, layer_input, (h, c), reverse=True)
        fore_out, end_state = _run(forward, layer_input, (zeros, zeros))
        layer_input = torch.cat([fore_out, back_out], dim=-1)
        if layer + 1 < lstm.num_layers:
            # The file's end state carried into the silence is the next layer's backward input there.
            tail_fore_out, _ = _run(forward, tail_forward.contiguous(), end_state)
            tail_forward = torch.cat([tail_fore_out, tail_back_out], dim=-1)
            tail_backward = tail_forward
    return layer_input
