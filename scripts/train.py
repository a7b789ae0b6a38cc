#!/usr/bin/env python
"""Train stemcut mask models: any subset of the five targets in one process, sharing every batch.

Example (the shipped set, see docs/models.md):

    python scripts/train.py --targets vocals,drums,bass,guitar,other --arch tcn \\
        --params '{"hidden": 256, "blocks": 5}' --minutes 60 --run runs/main --export weights

Data: real sets under --data-root (MUSDB18 previews, CC0 album, MedleyDB, MIR-1K, solo clips)
and synthetic songs under --synthetic, mixed by --mix pool weights; every track named in
--split (scripts/validation_split.json) is held out of training and is the validation set.
Checkpoints go to <run>/checkpoint.pt every --checkpoint-minutes; --resume continues one
(the --minutes budget counts the time already spent). Logs: stdout and <run>/train.log.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemcut.models import STFT, build_model  # noqa: E402
from stemcut.targets import TARGETS  # noqa: E402
from stemcut.training.dataset import MixtureSampler, SourcePool, StemMixDataset  # noqa: E402
from stemcut.training.objective import (  # noqa: E402
    masked_magnitude_loss, ratio_outputs, reference_slots, scored_mask, slots)
from stemcut.training.sources import (  # noqa: E402
    StemTrack, read_solo_clips, read_stem_folders, read_vocals_accompaniment)
from stemcut.training.split import DEFAULT_SPLIT, held_out, load_split, partition  # noqa: E402

SAMPLE_RATE = 44100
DEFAULT_MIX = ("musdb=0.30,cc0=0.12,mdb=0.08,synthetic=0.18,mir1k=0.10,"
               "solo-vocals=0.10,solo-guitar=0.07,solo-drums=0.03,solo-other=0.02")
LICENCES = {
    "musdb": "MUSDB18 previews: mostly CC BY-NC-SA, non-commercial research use",
    "cc0": "CC0 album 'Everything Is Remixed': CC0-1.0",
    "mdb": "MedleyDB MusicDelta: CC BY-NC-SA, non-commercial research use",
    "mir1k": "MIR-1K: research use only",
    "synthetic": "synthetic songs from scripts/make_synthetic.py: MIT (FluidR3Mono SoundFont, project code) "
                 "plus the licences of the vocal clips cut into them (see each meta.json)",
    "solo-vocals": "solo clips: CC BY 4.0 / CC BY-NC-SA 4.0 (GTSinger, Children's Song Dataset) per MANIFEST.csv",
    "solo-guitar": "solo clips: CC BY 4.0 / MIT per MANIFEST.csv",
    "solo-drums": "solo clips: CC BY 4.0 (StemGMD, sms-tools) per MANIFEST.csv",
    "solo-other": "solo clips: CC BY 4.0 per MANIFEST.csv",
}


# -- data -------------------------------------------------------------------------------


def build_pools(data_root: Path, synthetic: Path | None, mix: dict[str, float], split: dict[str, list[str]],
                log) -> list[SourcePool]:
    """The training pools named in ``mix``, with every held-out track removed."""

    def stem_folders(folder: str) -> list[StemTrack]:
        path = data_root / folder
        if not path.is_dir():
            return []
        train, held = partition(read_stem_folders(path), held_out(split, folder))
        log(f"  {folder}: {len(train)} training tracks, {len(held)} held out")
        return train

    readers = {
        "musdb": lambda: stem_folders("musdb18-preview/train"),
        "cc0": lambda: stem_folders("cc0-album"),
        "mdb": lambda: stem_folders("mdb"),
        "mir1k": lambda: _mir1k(data_root, split, log),
        "synthetic": lambda: read_stem_folders(synthetic) if synthetic and synthetic.is_dir() else [],
    }
    settings = {"musdb": 0.5, "cc0": 0.3, "mdb": 0.3, "synthetic": 0.5, "mir1k": 0.0}
    backing = {"solo-vocals": "musdb", "solo-drums": "musdb", "solo-guitar": "synthetic", "solo-other": "synthetic"}
    pools: list[SourcePool] = []
    needed = set(mix) | {backing[name] for name in mix if name in backing}
    tracks = {name: readers[name]() for name in readers if name in needed}
    for name, weight in mix.items():
        if name in readers:
            pool_tracks = tracks[name]
            pools.append(SourcePool(name, pool_tracks, weight=weight, dynamic_mix=settings[name]))
        elif name in backing:
            pool_tracks = read_solo_clips(data_root / "solo", [name.split("-", 1)[1]]) if (data_root / "solo").is_dir() else []
            pools.append(SourcePool(name, pool_tracks, weight=weight, backing=backing[name]))
        else:
            raise SystemExit(f"unknown pool {name!r} in --mix (known: {', '.join(list(readers) + list(backing))})")
        log(f"  pool {name}: {len(pool_tracks)} tracks, weight {weight}")
    for name in set(backing.values()) & needed - set(mix):
        pools.append(SourcePool(name, tracks[name], weight=0.0))  # backing only
    return pools


def _mir1k(data_root: Path, split: dict[str, list[str]], log) -> list[StemTrack]:
    path = data_root / "mir1k"
    if not path.is_dir():
        return []
    train, held = partition(read_vocals_accompaniment(path), held_out(split, "mir1k"))
    log(f"  mir1k: {len(train)} training clips, {len(held)} held out")
    return train


def validation_tracks(data_root: Path, split: dict[str, list[str]], max_seconds: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, stems [5, 2, T] cropped to ``max_seconds`` from the middle, known [5]) per held-out track."""
    out = []
    for folder, names in split.items():
        path = data_root / folder
        if not path.is_dir():
            continue
        tracks = read_vocals_accompaniment(path) if folder == "mir1k" else read_stem_folders(path)
        for track in tracks:
            if track.name not in names:
                continue
            stems = track.load()
            length = int(max_seconds * SAMPLE_RATE)
            if stems.shape[-1] > length:
                start = (stems.shape[-1] - length) // 2
                stems = stems[..., start:start + length]
            out.append((f"{folder}/{track.name}", np.ascontiguousarray(stems), track.known_mask))
    return out


# -- training ---------------------------------------------------------------------------


def _batches(sampler: MixtureSampler, batch: int, workers: int, seed: int):
    """Endless (mixture, stems, known) numpy batches, drawn in ``workers`` background processes."""
    if workers <= 0:
        sampler.reseed(seed)
        while True:
            drawn = sampler.sample_batch(batch)
            yield drawn.mixture, drawn.stems, drawn.known
    loader = torch.utils.data.DataLoader(StemMixDataset(sampler, seed=seed), batch_size=batch, num_workers=workers,
                                         prefetch_factor=4, persistent_workers=True,
                                         worker_init_fn=lambda _: torch.set_num_threads(1))
    for mixture, stems, known in loader:
        yield mixture.numpy(), stems.numpy(), known.numpy()


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        mix[name.strip()] = float(weight)
    return mix


def learning_rate(base: float, progress: float, decay_from: float) -> float:
    """Constant, then cosine decay to 5% of ``base`` over the last (1 - decay_from) of the budget."""
    if progress <= decay_from:
        return base
    phase = min(1.0, (progress - decay_from) / max(1e-9, 1.0 - decay_from))
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * phase)))


class Trainer:
    """Holds the models, optimiser and STFT; one ``step`` per batch, ``validate`` on held-out tracks."""

    def __init__(self, targets: list[str], arch: str, params: dict, n_fft: int, hop: int, device: torch.device,
                 lr: float, amp: bool):
        self.targets = targets
        self.device = device
        self.models = {t: build_model(arch, params).to(device) for t in targets}
        self.stft = STFT(n_fft, hop).to(device)
        parameters = [p for m in self.models.values() for p in m.parameters()]
        self.optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=1e-5)
        self.amp = amp and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)

    def _outputs(self, mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spectrogram = self.stft(mixture)
        magnitude = spectrogram.abs()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            masks = {t: m(magnitude) for t, m in self.models.items()}
        masks = {t: m.float() for t, m in masks.items()}
        return ratio_outputs(masks, magnitude), spectrogram

    def step(self, mixture: np.ndarray, stems: np.ndarray, known: np.ndarray, lr: float) -> dict[str, float]:
        for model in self.models.values():
            model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        mixture_t = torch.from_numpy(mixture).to(self.device)
        stems_t = torch.from_numpy(stems).to(self.device)
        scored = scored_mask(torch.from_numpy(known).to(self.device), self.targets)
        references = reference_slots(mixture_t, stems_t, scored, self.targets)
        batch, count, channels, samples = references.shape
        with torch.no_grad():
            ref_mag = self.stft(references.reshape(batch * count, channels, samples)).abs()
            ref_mag = ref_mag.reshape(batch, count, *ref_mag.shape[1:])
        outputs, _ = self._outputs(mixture_t)
        losses = masked_magnitude_loss(outputs, ref_mag, scored, self.targets)
        total = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_([p for m in self.models.values() for p in m.parameters()], 5.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {t: float(v.detach()) for t, v in losses.items()}

    @torch.no_grad()
    def validate(self, tracks: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, float]:
        """Mean global SDR per target over held-out tracks, stems formed as at inference.

        A target is scored on a track when it is trained, known there and not silent; ``other``
        is scored as the mixture minus every separately scored target (estimate and reference)."""
        for model in self.models.values():
            model.eval()
        scores: dict[str, list[float]] = {t: [] for t in self.targets}
        for _, stems, known in tracks:
            mixture = torch.from_numpy(stems.sum(axis=0)[None]).to(self.device)
            outputs, spectrogram = self._outputs(mixture)
            ratios = outputs / spectrogram.abs().unsqueeze(1).clamp(min=1e-10)
            estimated = self.stft.inverse(ratios * spectrogram.unsqueeze(1), mixture.shape[-1])[0].cpu().numpy()
            names = slots(self.targets)
            reference = stems.astype(np.float64)
            mix = reference.sum(axis=0)
            floor = 1e-6 * max(1e-12, float((mix ** 2).sum()))
            separate = [t for t in names if t != "other" and known[TARGETS.index(t)]
                        and (reference[TARGETS.index(t)] ** 2).sum() > floor]
            for target in separate:
                scores[target].append(_sdr(reference[TARGETS.index(target)], estimated[names.index(target)]))
            if "other" in self.targets:
                ref_other = mix - sum((reference[TARGETS.index(t)] for t in separate), np.zeros_like(mix))
                est_other = mix - sum((estimated[names.index(t)] for t in separate), np.zeros_like(mix))
                if (ref_other ** 2).sum() > floor:
                    scores["other"].append(_sdr(ref_other, est_other))
        return {t: float(np.mean(v)) if v else float("nan") for t, v in scores.items()} | \
               {f"{t}_tracks": len(v) for t, v in scores.items()}

    def state(self) -> dict:
        return {"models": {t: m.state_dict() for t, m in self.models.items()},
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state(self, state: dict) -> None:
        for target, model in self.models.items():
            model.load_state_dict(state["models"][target])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])


def _sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(((reference ** 2).sum() + 1e-9) / (((reference - estimate) ** 2).sum() + 1e-9)))


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated subset of " + ",".join(TARGETS))
    parser.add_argument("--arch", default="tcn", help="model family (stemcut.models.ARCHITECTURES)")
    parser.add_argument("--params", default="{}", help="JSON hyper-parameters for the family")
    parser.add_argument("--n-fft", type=int, default=4096)
    parser.add_argument("--hop", type=int, default=1024)
    parser.add_argument("--data-root", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--synthetic", type=Path, default=Path("/work/data_synth"))
    parser.add_argument("--mix", default=DEFAULT_MIX, help="pool=weight,... (pools: musdb, cc0, mdb, synthetic, "
                        "mir1k, solo-vocals, solo-guitar, solo-drums, solo-other)")
    parser.add_argument("--split", type=Path, default=DEFAULT_SPLIT, help="held-out validation split (JSON)")
    parser.add_argument("--segment", type=float, default=4.0, help="training excerpt length, seconds")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--decay-from", type=float, default=0.7, help="fraction of the budget before cosine decay")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget (all resumes)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    parser.add_argument("--run", type=Path, default=Path("runs/train"), help="folder for checkpoint and log")
    parser.add_argument("--resume", action="store_true", help="continue from <run>/checkpoint.pt")
    parser.add_argument("--export", type=Path, default=None, help="write the final model set here (save_model)")
    parser.add_argument("--val-minutes", type=float, default=10.0, help="validate every this many minutes")
    parser.add_argument("--val-seconds", type=float, default=30.0, help="crop long validation tracks to this")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader processes drawing batches (0: in-process)")
    args = parser.parse_args(argv)

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for target in targets:
        if target not in TARGETS:
            parser.error(f"unknown target {target!r}")
    targets = [t for t in TARGETS if t in targets]
    params = json.loads(args.params)
    params.setdefault("n_fft", args.n_fft)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    args.run.mkdir(parents=True, exist_ok=True)
    log_file = open(args.run / "train.log", "a", encoding="utf-8")

    def log(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    command = " ".join(shlex.quote(a) for a in [sys.executable.split("/")[-1], "scripts/train.py", *(argv or sys.argv[1:])])
    log(f"command: {command}")
    log(f"targets {targets}, {args.arch} {params}, STFT {args.n_fft}/{args.hop}, device {device}")
    torch.manual_seed(args.seed)
    split = load_split(args.split)
    mix = parse_mix(args.mix)
    pools = build_pools(args.data_root, args.synthetic, mix, split, log)
    sampler = MixtureSampler(pools, segment_seconds=args.segment, seed=args.seed)
    validation = validation_tracks(args.data_root, split, args.val_seconds)
    log(f"validation: {len(validation)} held-out tracks, {sum(s.shape[-1] for _, s, _ in validation) / SAMPLE_RATE:.0f} s")

    trainer = Trainer(targets, args.arch, params, args.n_fft, args.hop, device, args.lr, not args.no_amp)
    count = sum(p.numel() for p in next(iter(trainer.models.values())).parameters())
    log(f"{count / 1e6:.2f}M parameters per target")
    step, spent, history = 0, 0.0, []
    checkpoint = args.run / "checkpoint.pt"
    if args.resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        trainer.load_state(state["trainer"])
        step, spent, history = state["step"], state["minutes"], state["history"]
        sampler.reseed(args.seed + step)
        log(f"resumed from {checkpoint}: step {step}, {spent:.1f} min spent")

    def save_checkpoint() -> None:
        temp = checkpoint.with_suffix(".partial")
        torch.save({"trainer": trainer.state(), "step": step, "minutes": spent, "history": history,
                    "targets": targets, "arch": args.arch, "params": params}, temp)
        os.replace(temp, checkpoint)

    def run_validation() -> dict[str, float]:
        started = time.perf_counter()
        scores = trainer.validate(validation)
        history.append({"step": step, "minutes": round(spent, 2)} | scores)
        table = "  ".join(f"{t} {scores[t]:5.2f}" for t in targets)
        log(f"validation @ step {step} ({spent:.1f} min): global SDR dB  {table}  "
            f"[{time.perf_counter() - started:.0f} s]")
        return scores

    batches = _batches(sampler, args.batch, args.workers, args.seed + step)
    started = time.perf_counter() - spent * 60
    last_log = last_val = last_ckpt = time.perf_counter()
    running: dict[str, list[float]] = {t: [] for t in targets}
    data_time = 0.0
    steps_at_log = step
    while True:
        spent = (time.perf_counter() - started) / 60
        if spent >= args.minutes or (args.max_steps and step >= args.max_steps):
            break
        lr = learning_rate(args.lr, spent / args.minutes, args.decay_from)
        t0 = time.perf_counter()
        mixture, stems, known = next(batches)
        data_time += time.perf_counter() - t0
        losses = trainer.step(mixture, stems, known, lr)
        step += 1
        for target, value in losses.items():
            running[target].append(value)
        now = time.perf_counter()
        if now - last_log >= 60:
            rate = (step - steps_at_log) / (now - last_log)
            parts = "  ".join(f"{t} {np.mean(v) * 1e3:.3f}" for t, v in running.items())
            log(f"step {step:6d}  {spent:5.1f}/{args.minutes:.0f} min  lr {lr:.2e}  {rate:.2f} steps/s "
                f"(data {data_time / max(1, step - steps_at_log) * 1e3:.0f} ms/step)  loss x1e3: {parts}")
            running = {t: [] for t in targets}
            last_log, steps_at_log, data_time = now, step, 0.0
        if now - last_ckpt >= args.checkpoint_minutes * 60:
            save_checkpoint()
            last_ckpt = now
        if now - last_val >= args.val_minutes * 60:
            run_validation()
            last_val = time.perf_counter()
    spent = (time.perf_counter() - started) / 60
    final = run_validation()
    save_checkpoint()
    (args.run / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    log(f"done: {step} steps in {spent:.1f} min")

    if args.export is not None:
        from stemcut.weights import save_model

        sources = sorted({p.name for p in pools if p.weight > 0})
        training = {
            "command": command,
            "parameters": f"{count / 1e6:.2f} M",
            "steps": step,
            "minutes": round(spent, 1),
            "batch": f"{args.batch} x {args.segment} s stereo excerpts, remixed on the fly",
            "data_mix": mix,
            "data": {name: LICENCES.get(name, "") for name in sources},
            "licence_note": "trained partly on MUSDB18, MedleyDB and MIR-1K material, which are licensed for "
                            "non-commercial research use only: these weights are for non-commercial research use",
            "validation_split": str(args.split.relative_to(ROOT)) if args.split.is_relative_to(ROOT) else str(args.split),
            "device": str(device),
            "loss": "MSE of ratio-masked output magnitudes vs reference magnitudes, per scored (known) target; "
                    "other scored with unknown targets folded in",
        }
        for target in targets:
            model = trainer.models[target].cpu().eval()
            score = final[target]
            quality = {"validation_global_sdr_db": round(score, 2) if math.isfinite(score) else None,
                       "validation_tracks": final[f"{target}_tracks"],
                       "validation_note": f"training-time check, long tracks cropped to {args.val_seconds:.0f} s"}
            save_model(args.export, target, model, args.arch, params, SAMPLE_RATE, args.n_fft, args.hop,
                       training=training, quality=quality)
        log(f"exported {len(targets)} model(s) to {args.export}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
