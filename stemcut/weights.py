"""Model sets on disk: ``manifest.json`` plus one safetensors file per target.

A manifest records, per target: the file, its sha256, the architecture and its
hyper-parameters, the sample rate and STFT the model was trained with, and how
it was trained. Loading checks the checksum first and reads tensors only
(safetensors): nothing in a weights folder is ever executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_json
from .targets import TARGETS

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


class ModelError(Exception):
    """A model set that cannot be used; ``str()`` is one line naming the file."""


@dataclass(frozen=True)
class ModelSpec:
    """One target's entry in a manifest."""

    target: str
    path: Path
    arch: str
    params: dict
    sample_rate: int
    n_fft: int
    hop: int
    sha256: str
    training: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)


def default_model_dir() -> Path:
    """``$STEMCUT_MODEL_DIR``, else the shipped ``weights/`` folder (beside the
    package in a checkout, or under ``<prefix>/share/stemcut/weights`` when installed)."""
    if os.environ.get("STEMCUT_MODEL_DIR"):
        return Path(os.environ["STEMCUT_MODEL_DIR"])
    checkout = Path(__file__).resolve().parent.parent / "weights"
    if (checkout / MANIFEST_NAME).exists():
        return checkout
    installed = Path(sys.prefix) / "share" / "stemcut" / "weights"
    return installed if (installed / MANIFEST_NAME).exists() else checkout


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: os.PathLike | str) -> dict:
    """The parsed manifest of ``model_dir`` (raises ModelError if absent or malformed)."""
    path = Path(model_dir) / MANIFEST_NAME
    if not path.exists():
        raise ModelError(f"{path}: no model manifest (train models with scripts/train.py, or pass --model-dir)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise ModelError(f"{path}: manifest has no 'models' table")
    if manifest.get("format_version", MANIFEST_VERSION) > MANIFEST_VERSION:
        raise ModelError(f"{path}: manifest format {manifest['format_version']} is newer than this stemcut reads")
    return manifest


def model_specs(model_dir: os.PathLike | str) -> list[ModelSpec]:
    """The manifest's entries, in the canonical target order."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    specs = []
    for target, entry in manifest["models"].items():
        if target not in TARGETS:
            raise ModelError(f"{model_dir / MANIFEST_NAME}: unknown target {target!r} (known: {', '.join(TARGETS)})")
        try:
            specs.append(ModelSpec(
                target=target,
                path=model_dir / entry["file"],
                arch=entry["arch"],
                params=dict(entry.get("params", {})),
                sample_rate=int(entry["sample_rate"]),
                n_fft=int(entry["stft"]["n_fft"]),
                hop=int(entry["stft"]["hop"]),
                sha256=entry["sha256"],
                training=dict(entry.get("training", {})),
                quality=dict(entry.get("quality", {})),
            ))
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"{model_dir / MANIFEST_NAME}: entry {target!r} is incomplete ({error})") from None
    if not specs:
        raise ModelError(f"{model_dir / MANIFEST_NAME}: lists no models")
    return sorted(specs, key=lambda spec: TARGETS.index(spec.target))


def verify_file(spec: ModelSpec) -> None:
    """Raise ModelError unless ``spec``'s weights file exists and matches its manifest sha256."""
    if not spec.path.exists():
        raise ModelError(f"{spec.path}: weights file missing")
    actual = sha256_of(spec.path)
    if actual != spec.sha256:
        raise ModelError(f"{spec.path}: checksum mismatch (manifest sha256 {spec.sha256[:12]}..., file "
                         f"{actual[:12]}...); the file is corrupt or was replaced")


def load_model(spec: ModelSpec):
    """Build ``spec``'s network and load its weights after checking the sha256."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models import build_model

    verify_file(spec)
    try:
        state = load_file(str(spec.path))
        model = build_model(spec.arch, spec.params)
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, ValueError, TypeError) as error:
        first = str(error).strip().splitlines()[0]
        raise ModelError(f"{spec.path}: cannot load {spec.arch} weights ({first})") from None
    return model.eval()


@dataclass
class ModelSet:
    """A loaded model set: its folder, its specs and one network per target, sharing a rate and STFT."""

    folder: Path
    specs: list[ModelSpec]
    models: dict

    @property
    def sample_rate(self) -> int:
        return self.specs[0].sample_rate

    def checksums(self) -> dict[str, str]:
        return {spec.target: spec.sha256 for spec in self.specs}

    def mask_separator(self):
        """The set as a :class:`stemcut.core.MaskSeparator` (on the CPU, in eval mode)."""
        from .core import MaskSeparator

        first = self.specs[0]
        return MaskSeparator(self.models, first.n_fft, first.hop).eval()


def load_model_set(model_dir: os.PathLike | str | None = None) -> ModelSet:
    """Read and check a model set (default: :func:`default_model_dir`); ModelError if unusable."""
    folder = Path(model_dir) if model_dir is not None else default_model_dir()
    specs = model_specs(folder)
    first = specs[0]
    for spec in specs[1:]:
        if (spec.sample_rate, spec.n_fft, spec.hop) != (first.sample_rate, first.n_fft, first.hop):
            raise ModelError(f"{spec.path}: sample rate/STFT differ from {first.path}; a set must share them")
    return ModelSet(folder, specs, {spec.target: load_model(spec) for spec in specs})


def save_model(model_dir: os.PathLike | str, target: str, model, arch: str, params: dict, sample_rate: int,
               n_fft: int, hop: int, training: dict | None = None, quality: dict | None = None) -> Path:
    """Write ``model``'s weights as ``<target>.safetensors`` and record it in the manifest."""
    from safetensors.torch import save_file

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / f"{target}.safetensors"
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    temp = path.with_suffix(".safetensors.partial")
    save_file(state, str(temp))
    os.replace(temp, path)
    manifest_path = model_dir / MANIFEST_NAME
    manifest = read_manifest(model_dir) if manifest_path.exists() else {"format_version": MANIFEST_VERSION, "models": {}}
    manifest["models"][target] = {
        "file": path.name,
        "sha256": sha256_of(path),
        "bytes": path.stat().st_size,
        "arch": arch,
        "params": params,
        "sample_rate": sample_rate,
        "stft": {"n_fft": n_fft, "hop": hop},
        "training": training or {},
        "quality": quality or {},
    }
    write_json(manifest_path, manifest)
    return path


def compose_set(model_dir: os.PathLike | str, sources: dict[str, os.PathLike | str]) -> Path:
    """A model set made of other sets' models: ``sources`` maps each target to the set
    folder its model comes from. Files are copied with their manifest entries (so the
    training record travels with them) after their sha256 is checked; a target already in
    ``model_dir`` and not named is kept. The sets must share the sample rate and STFT."""
    import shutil

    from .atomic import partial_file

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = model_dir / MANIFEST_NAME
    manifest = read_manifest(model_dir) if manifest_path.exists() else {"format_version": MANIFEST_VERSION, "models": {}}
    specs_of: dict[Path, dict[str, ModelSpec]] = {}  # each source's manifest read once
    entries_of: dict[Path, dict] = {}
    chosen = {}
    for target, source in sources.items():
        source = Path(source)
        if source not in specs_of:
            specs_of[source] = {s.target: s for s in model_specs(source)}
            entries_of[source] = read_manifest(source)["models"]
        spec = specs_of[source].get(target)
        if spec is None:
            raise ModelError(f"{source / MANIFEST_NAME}: no {target} model")
        verify_file(spec)
        chosen[target] = (spec, source)
    kept = [s for s in model_specs(model_dir) if s.target not in chosen] if manifest_path.exists() else []
    shapes = {(s.sample_rate, s.n_fft, s.hop) for s in kept + [spec for spec, _ in chosen.values()]}
    if len(shapes) > 1:
        raise ModelError(f"{model_dir}: the models would not share one sample rate and STFT ({sorted(shapes)})")
    for target, (spec, source) in chosen.items():
        destination = model_dir / spec.path.name
        if destination.resolve() != spec.path.resolve():
            temp = partial_file(destination)
            shutil.copyfile(spec.path, temp)
            os.replace(temp, destination)
        manifest["models"][target] = entries_of[source][target]
    write_json(manifest_path, manifest)
    return model_dir


def write_untrained_set(model_dir: os.PathLike | str, arch: str = "blstm", params: dict | None = None,
                        targets: tuple[str, ...] = TARGETS, sample_rate: int = 44100, n_fft: int = 2048,
                        hop: int = 512, seed: int = 0) -> Path:
    """A model set with randomly initialised weights, recorded as untrained.

    For tests and speed/memory benchmarks only (run time does not depend on the
    weights); ``stemcut models`` shows such a set as untrained."""
    import torch

    from .models import build_model

    params = dict(params or {"n_fft": n_fft})
    params.setdefault("n_fft", n_fft)
    torch.manual_seed(seed)
    for target in targets:
        model = build_model(arch, params)
        save_model(model_dir, target, model, arch, params, sample_rate, n_fft, hop,
                   training={"untrained": f"random initialisation, seed {seed}"})
    return Path(model_dir)
