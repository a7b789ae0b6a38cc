"""Training mask models: any subset of the five targets in one process, sharing every batch.

The models form one :class:`stemcut.core.MaskSeparator`; the loss scores its
ratio-mask magnitudes (:mod:`stemcut.training.objective`) and validation runs it
through a :class:`stemcut.separator.Separator` and the scoring of ``stemcut eval``
(:mod:`stemcut.training.validation`). ``scripts/train.py`` is the command line.

The budget is a number of optimiser steps (``steps``), so a run can be cut into
pieces of any length (``minutes`` per invocation) and resumed anywhere: the
learning-rate schedule (torch's ``SequentialLR``: constant, then cosine decay to
5 % over the last part) depends on the step only. Checkpoints hold models,
optimiser, scheduler, scaler and the history. A run resumed with another plan
(``steps``, ``lr``, ``decay_from``: longer, shorter, a new rate) keeps its models and
optimiser state and follows the new plan's schedule from the step it reached.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..core import MaskSeparator
from ..models import build_model
from ..settings import SeparationSettings
from ..targets import TARGETS
from . import checkpoint
from .bank import BankConfig, TrainingBank
from .objective import magnitude_losses
from .pools import DEFAULT_MIX, build_pools, parse_mix
from .split import DEFAULT_SPLIT, load_split
from .targets import SAMPLE_RATE
from .validation import validate, validation_tracks


@dataclass
class TrainConfig:
    """What a training run does; recorded in its checkpoint and the exported manifest."""

    targets: list[str] = field(default_factory=lambda: list(TARGETS))
    arch: str = "blstm"
    params: dict = field(default_factory=dict)
    n_fft: int = 4096
    hop: int = 1024
    data_root: Path | None = None
    synthetic: Path | None = None
    corpus: Path | None = None      # the folder scripts/prepare_data.py built (corpus.json)
    bundle: Path | None = None      # train on a bank bundle instead of the pools
    mix: str = DEFAULT_MIX
    split: Path = DEFAULT_SPLIT
    segment: float = 4.0            # training excerpt, seconds
    batch: int = 8
    lr: float = 1e-3
    steps: int = 20000              # the whole run's budget, over all resumes
    decay_from: float = 0.7         # fraction of the steps before the cosine decay
    minutes: float = 0.0            # stop this invocation after this long (0: no limit); resume later
    session_steps: int = 0          # stop this invocation after this many steps (0: no limit)
    run: Path = Path("runs/train")
    resume: bool = False
    init: Path | None = None        # start from this model set's weights (same arch and params)
    export: Path | None = None
    val_minutes: float = 10.0
    val_seconds: float = 30.0
    checkpoint_minutes: float = 5.0
    device: str = "auto"
    threads: int = 2
    amp: bool = True
    seed: int = 0
    workers: int = 1                # threads refilling the bank from the pools (0: between steps)
    bank_windows: int = 512         # windows the bank holds on the device
    refill: float = 1.0             # windows replaced per step
    command: str = ""

    def __post_init__(self) -> None:
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown:
            raise ValueError(f"unknown target(s) {', '.join(unknown)}")
        self.targets = [t for t in TARGETS if t in self.targets]
        self.params = {"n_fft": self.n_fft, **self.params}
        if self.steps < 1:
            raise ValueError("steps must be at least 1")


# The fields of TrainConfig the learning-rate schedule is made of.
PLAN = ("steps", "lr", "decay_from")


def _schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, at_step: int = 0):
    """Constant ``config.lr``, then cosine decay to 5 % over the last ``1 - decay_from`` of
    ``config.steps``; advanced to ``at_step``."""
    decay_start = max(1, min(config.steps - 1, int(config.decay_from * config.steps)))
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = config.lr
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=decay_start),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.steps - decay_start),
                                                   eta_min=0.05 * config.lr),
    ], milestones=[decay_start])
    with warnings.catch_warnings():  # stepping a schedule with no optimiser step in between
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(at_step):
            scheduler.step()
    return scheduler


class Trainer:
    """The models as one MaskSeparator, the optimiser, LR schedule and (CUDA) mixed precision."""

    def __init__(self, config: TrainConfig, device: torch.device):
        self.config = config
        self.device = device
        models = {t: build_model(config.arch, config.params) for t in config.targets}
        self.core = MaskSeparator(models, config.n_fft, config.hop).to(device)
        self.optimizer = torch.optim.Adam(self.core.parameters(), lr=config.lr, weight_decay=1e-5)
        self.scheduler = _schedule(self.optimizer, config)
        self.amp = config.amp and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)

    @property
    def parameters_per_target(self) -> int:
        return sum(p.numel() for p in next(iter(self.core.models.values())).parameters())

    def step(self, mixture: torch.Tensor, stems: torch.Tensor, known: torch.Tensor) -> dict[str, float]:
        """One optimiser step on a batch (tensors on the device); returns each target's loss."""
        self.core.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            losses = magnitude_losses(self.core, mixture, stems, known)
        total = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.core.parameters(), 5.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {t: float(v.detach()) for t, v in losses.items()}

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def separator(self):
        """The models as a :class:`stemcut.separator.Separator`, as ``stemcut separate`` runs them (defaults)."""
        from ..separator import Separator

        settings = SeparationSettings(device=str(self.device), threads=self.config.threads)
        return Separator(self.core, settings, sample_rate=SAMPLE_RATE)

    def initialise_from(self, model_dir: Path) -> None:
        """Load the weights of a model set whose targets, family and hyper-parameters match."""
        from ..weights import ModelError, load_model_set

        loaded = load_model_set(model_dir)
        for spec in loaded.specs:
            if spec.target in self.core.models and (spec.arch, spec.params) != (self.config.arch, self.config.params):
                raise ModelError(f"{spec.path}: {spec.arch} {spec.params} does not match the run's "
                                 f"{self.config.arch} {self.config.params}")
        for target, model in self.core.models.items():
            if target not in loaded.models:
                raise ModelError(f"{model_dir}: no {target} model to start from")
            model.load_state_dict(loaded.models[target].state_dict())

    def state(self) -> dict:
        return {"models": {t: m.state_dict() for t, m in self.core.models.items()},
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load_state(self, state: dict, step: int, plan: dict) -> dict[str, tuple]:
        """Resume from ``state`` (:meth:`state`) saved at ``step`` by a run of ``plan`` (its
        config). Where this run's :data:`PLAN` differs, its own schedule is advanced to
        ``step`` instead of the saved one; returns the changes {field: (saved, now)}."""
        for target, model in self.core.models.items():
            model.load_state_dict(state["models"][target])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        changes = {key: (plan.get(key), getattr(self.config, key)) for key in PLAN
                   if plan.get(key) != getattr(self.config, key)}
        if changes:
            self.scheduler = _schedule(self.optimizer, self.config, at_step=step)
        else:
            self.scheduler.load_state_dict(state["scheduler"])
        return changes


def train(config: TrainConfig, log: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) training as ``config`` says; returns the last validation scores per target."""
    config.run.mkdir(parents=True, exist_ok=True)
    log_file = open(config.run / "train.log", "a", encoding="utf-8")

    def say(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        (log or print)(line)
        log_file.write(line + "\n")
        log_file.flush()

    torch.set_num_threads(config.threads)
    from ..separator import resolve_device

    device = resolve_device(config.device)
    say(f"command: {config.command}")
    say(f"targets {config.targets}, {config.arch} {config.params}, STFT {config.n_fft}/{config.hop}, device {device}")
    torch.manual_seed(config.seed)
    split = load_split(config.split)
    mix = parse_mix(config.mix)
    bank_config = BankConfig(windows=config.bank_windows, refill_per_batch=config.refill, threads=config.workers)
    if config.bundle is not None:
        bank = TrainingBank.from_bundle(config.bundle, device, bank_config, seed=config.seed, log=say)
        say(f"bank: {bank.slots} windows from the bundle {config.bundle}")
    else:
        pools = build_pools(config.data_root, config.synthetic, mix, split, config.corpus, say)
        bank = TrainingBank(pools, config.segment, device, bank_config, seed=config.seed, log=say)
        started = time.perf_counter()
        bank.fill()
        say(f"bank: {bank.slots} windows of {bank.window / SAMPLE_RATE:.2f} s on {device} "
            f"({bank.nbytes / 2**20:.0f} MiB), filled in {time.perf_counter() - started:.0f} s")
    held_out = validation_tracks(config.data_root, split, config.val_seconds) if config.data_root else []
    say(f"validation: {len(held_out)} held-out tracks, "
        f"{sum(t.seconds for _, t in held_out):.0f} s (middle {config.val_seconds:.0f} s of each)")

    trainer = Trainer(config, device)
    say(f"{trainer.parameters_per_target / 1e6:.2f}M parameters per target")
    if config.init is not None and not (config.resume and checkpoint.exists(config.run)):
        trainer.initialise_from(config.init)
        say(f"initialised from the model set {config.init}")
    step, minutes, history = 0, 0.0, []
    if config.resume and checkpoint.exists(config.run):
        state = checkpoint.load(config.run, map_location=device)
        step, minutes, history = state["step"], state["minutes"], state["history"]
        changes = trainer.load_state(state["trainer"], step, state["config"])
        say(f"resumed from {config.run}: step {step}, {minutes:.1f} min spent")
        if changes:
            say("a new plan (" + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items()) +
                f"): its learning-rate schedule from step {step}, lr {trainer.lr:.2e}")

    def save_checkpoint() -> None:
        checkpoint.save({"trainer": trainer.state(), "step": step, "minutes": minutes, "history": history,
                         "config": _jsonable(asdict(config))}, config.run)

    def run_validation() -> dict[str, float]:
        started = time.perf_counter()
        with trainer.separator() as separator:
            report = validate(separator, held_out)
        scores = {t: report.global_sdr.get(t, float("nan")) for t in trainer.core.targets}
        counts = {f"{t}_tracks": report.counts.get(t, 0) for t in trainer.core.targets}
        history.append({"step": step, "minutes": round(minutes, 2)} | scores | counts)
        table = "  ".join(f"{t} {v:5.2f}" for t, v in scores.items())
        say(f"validation @ step {step} ({minutes:.1f} min): global SDR dB  {table}  "
            f"[{time.perf_counter() - started:.0f} s]")
        return scores | counts

    bank.rng = np.random.default_rng([config.seed, step])  # a resumed run draws new batches
    bank.generator.manual_seed(config.seed * 1_000_003 + step)
    bank.start()
    session_start = time.perf_counter()
    spent_before = minutes
    last_log = last_val = last_ckpt = time.perf_counter()
    running: dict[str, list[float]] = {t: [] for t in trainer.core.targets}
    data_time, steps_at_log = 0.0, step
    first_step = step
    while step < config.steps:
        now = time.perf_counter()
        minutes = spent_before + (now - session_start) / 60
        if (config.minutes and now - session_start >= config.minutes * 60) or \
                (config.session_steps and step - first_step >= config.session_steps):
            say(f"stopping this invocation at step {step}; --resume continues")
            break
        t0 = time.perf_counter()
        batch = bank.sample(config.batch)
        data_time += time.perf_counter() - t0
        for target, value in trainer.step(batch.mixture, batch.stems, batch.known).items():
            running[target].append(value)
        step += 1
        now = time.perf_counter()
        if now - last_log >= 60:
            rate = (step - steps_at_log) / (now - last_log)
            parts = "  ".join(f"{t} {np.mean(v) * 1e3:.3f}" for t, v in running.items() if v)
            say(f"step {step:6d}/{config.steps}  {minutes:6.1f} min  lr {trainer.lr:.2e}  {rate:.2f} steps/s "
                f"(data {data_time / max(1, step - steps_at_log) * 1e3:.0f} ms/step)  loss x1e3: {parts}")
            running = {t: [] for t in trainer.core.targets}
            last_log, steps_at_log, data_time = now, step, 0.0
        if now - last_ckpt >= config.checkpoint_minutes * 60:
            save_checkpoint()
            last_ckpt = now
        if held_out and now - last_val >= config.val_minutes * 60:
            run_validation()
            last_val = time.perf_counter()
    bank.close()
    minutes = spent_before + (time.perf_counter() - session_start) / 60
    say(f"bank: {bank.windows_loaded} windows read in all this invocation")
    final = run_validation() if held_out else {}
    save_checkpoint()
    (config.run / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    say(f"{'done' if step >= config.steps else 'paused'}: {step} of {config.steps} steps, {minutes:.1f} min in all")
    if config.export is not None:
        export(trainer, config, step, minutes, bank.pools, final)
        say(f"exported {len(config.targets)} model(s) to {config.export}")
    log_file.close()
    return final


def export(trainer: Trainer, config: TrainConfig, step: int, minutes: float, pools, final: dict) -> None:
    """Write the models as a model set, with how they were trained and their validation scores."""
    from ..weights import save_model

    used = [p for p in pools if p.weight > 0 or any(q.backing == p.name and q.weight > 0 for q in pools)]
    training = {
        "command": config.command,
        "parameters": f"{trainer.parameters_per_target / 1e6:.2f} M",
        "steps": step,
        "minutes": round(minutes, 1),
        "batch": f"{config.batch} x {config.segment} s stereo excerpts, cut from a bank of "
                 f"{config.bank_windows} windows and remixed on the device",
        "data_mix": {p.name: p.weight for p in pools if p.weight > 0},
        "data": {p.name: p.licence for p in used},
        "data_hours": {p.name: round(p.hours, 3) for p in used},
        "licence_note": "trained partly on MUSDB18, MedleyDB and MIR-1K material, which are licensed for "
                        "non-commercial research use only: these weights are for non-commercial research use",
        "validation_split": config.split.name,
        "device": str(trainer.device),
        "loss": "MSE of ratio-masked output magnitudes vs reference magnitudes, per scored (known) target; "
                "other scored with unknown targets folded in",
    }
    for target in config.targets:
        model = trainer.core.models[target]
        score = final.get(target, float("nan"))
        quality = {"validation_global_sdr_db": round(score, 2) if math.isfinite(score) else None,
                   "validation_tracks": final.get(f"{target}_tracks", 0),
                   "validation_note": f"training-time check through the separator, middle "
                                      f"{config.val_seconds:.0f} s of each held-out track"}
        save_model(config.export, target, _cpu_copy(model), config.arch, config.params, SAMPLE_RATE, config.n_fft,
                   config.hop, training=training, quality=quality)


def _cpu_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model).cpu().eval()


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
