"""Separation metrics: global SDR (the one definition) and BSSEval v4 SDR through museval."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np


def global_sdr(reference, estimate) -> float:
    """``10 log10(sum s^2 / sum (s - s_hat)^2)`` over all channels and samples (dB), MDX-challenge style."""
    reference = np.asarray(reference, np.float64)
    error = reference - np.asarray(estimate, np.float64)
    return float(10 * np.log10((np.sum(reference ** 2) + 1e-9) / (np.sum(error ** 2) + 1e-9)))


def museval_available() -> bool:
    return importlib.util.find_spec("museval") is not None


def _museval_metrics():
    """museval's ``metrics`` module, loaded on its own: the package's ``__init__`` imports
    musdb/stempeg, which need ffmpeg; ``bss_eval`` needs only numpy and scipy."""
    if "_stemcut_museval_metrics" in sys.modules:
        return sys.modules["_stemcut_museval_metrics"]
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("museval is not installed (pip install 'stemcut[eval]' or pip install museval)")
    path = Path(list(spec.submodule_search_locations)[0]) / "metrics.py"
    module_spec = importlib.util.spec_from_file_location("_stemcut_museval_metrics", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.modules["_stemcut_museval_metrics"] = module
    return module


def museval_sdr(references: np.ndarray, estimates: np.ndarray, sample_rate: int) -> np.ndarray:
    """BSSEval v4 SDR per source: median over 1 s frames (NaN frames, e.g. silent, ignored).

    ``references``/``estimates``: (sources, C, N)."""
    metrics = _museval_metrics()
    ref = np.transpose(references, (0, 2, 1)).astype(np.float64)
    est = np.transpose(estimates, (0, 2, 1)).astype(np.float64)
    sdr, _isr, _sir, _sar, _perm = metrics.bss_eval(ref, est, compute_permutation=False, window=sample_rate,
                                                     hop=sample_rate, framewise_filters=False,
                                                     bsseval_sources_version=False)
    with np.errstate(all="ignore"):
        return np.array([np.nanmedian(row) if np.isfinite(row).any() else np.nan for row in sdr])
