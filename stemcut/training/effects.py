"""Audio effects for synthetic stems and augmentation (numpy and scipy.signal).

Filters are RBJ-cookbook biquads (scipy.signal has no shelving or peaking designs),
run as second-order sections by ``scipy.signal.sosfilt``; reverb is an FFT
convolution (``scipy.signal.oaconvolve``). Chains are described by JSON-friendly
dicts so a song's ``meta.json`` can say exactly what was applied.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.signal import oaconvolve, sosfilt

from stemcut.training.targets import SAMPLE_RATE

Biquad = np.ndarray  # one second-order section: b0, b1, b2, 1, a1, a2


def biquad(kind: str, freq: float, q: float = 0.707, gain_db: float = 0.0, rate: int = SAMPLE_RATE) -> Biquad:
    """RBJ biquad for lowpass/highpass/peak/lowshelf/highshelf, as one ``sosfilt`` section."""
    freq = min(freq, 0.49 * rate)
    w0 = 2 * math.pi * freq / rate
    cos_w0, alpha = math.cos(w0), math.sin(w0) / (2 * q)
    amp = 10 ** (gain_db / 40)
    if kind == "lowpass":
        b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
        a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    elif kind == "highpass":
        b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
        a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    elif kind == "peak":
        b = [1 + alpha * amp, -2 * cos_w0, 1 - alpha * amp]
        a = [1 + alpha / amp, -2 * cos_w0, 1 - alpha / amp]
    elif kind in ("lowshelf", "highshelf"):
        sign = 1 if kind == "lowshelf" else -1
        root = 2 * math.sqrt(amp) * alpha
        b = [
            amp * ((amp + 1) - sign * (amp - 1) * cos_w0 + root),
            sign * 2 * amp * ((amp - 1) - sign * (amp + 1) * cos_w0),
            amp * ((amp + 1) - sign * (amp - 1) * cos_w0 - root),
        ]
        a = [
            (amp + 1) + sign * (amp - 1) * cos_w0 + root,
            -sign * 2 * ((amp - 1) + sign * (amp + 1) * cos_w0),
            (amp + 1) + sign * (amp - 1) * cos_w0 - root,
        ]
    else:
        raise ValueError(f"unknown biquad kind {kind!r}")
    b_arr, a_arr = np.array(b), np.array(a)
    return np.concatenate([b_arr, a_arr]) / a_arr[0]


def apply_filters(audio: np.ndarray, filters: list[Biquad]) -> np.ndarray:
    """Run a biquad cascade over the last axis of ``audio`` (any leading shape)."""
    if not filters or audio.shape[-1] == 0:
        return audio
    return sosfilt(np.stack(filters), audio, axis=-1).astype(np.float32)


def drive(audio: np.ndarray, gain_db: float, asymmetry: float = 0.0) -> np.ndarray:
    """tanh waveshaper with pre-gain; ``asymmetry`` adds even harmonics like a tube stage."""
    gain = 10 ** (gain_db / 20)
    shaped = np.tanh(gain * audio + asymmetry) - math.tanh(asymmetry)
    return (shaped / max(math.tanh(gain), 1e-6)).astype(np.float32)


def soft_limit(audio: np.ndarray, ceiling: float) -> np.ndarray:
    """Smooth peak limiter ``ceiling * tanh(x / ceiling)``: transparent well below the ceiling."""
    return (ceiling * np.tanh(audio / ceiling)).astype(np.float32)


def compressor_gain(audio: np.ndarray, threshold_db: float, ratio: float, attack_ms: float, release_ms: float,
                    rate: int = SAMPLE_RATE) -> np.ndarray:
    """Per-sample linear gain of a feed-forward compressor on ``audio``'s stereo-linked RMS (256-sample frames).

    Returned separately so one envelope can be applied to several signals (a mix bus over its stems).
    """
    hop = 256
    frames = -(-audio.shape[-1] // hop)
    padded = np.zeros(audio.shape[:-1] + (frames * hop,), np.float32)
    padded[..., : audio.shape[-1]] = audio
    power = (padded.reshape(-1, frames, hop) ** 2).mean(axis=(0, 2))
    level_db = 10 * np.log10(power + 1e-10)
    over = np.maximum(level_db - threshold_db, 0.0)
    target_gain_db = -over * (1 - 1 / ratio)
    attack = math.exp(-hop / (rate * attack_ms / 1000))
    release = math.exp(-hop / (rate * release_ms / 1000))
    smoothed = np.empty(frames)
    state = 0.0
    for i, target in enumerate(target_gain_db):  # one step per 256 samples: cheap in Python
        coeff = attack if target < state else release
        state = coeff * state + (1 - coeff) * target
        smoothed[i] = state
    centres = np.arange(frames) * hop + hop / 2
    gain_db = np.interp(np.arange(audio.shape[-1]), centres, smoothed)
    makeup = -0.5 * float(target_gain_db.min()) if frames else 0.0
    return (10 ** ((gain_db + makeup) / 20)).astype(np.float32)


def compress(audio: np.ndarray, threshold_db: float, ratio: float, attack_ms: float, release_ms: float,
             rate: int = SAMPLE_RATE) -> np.ndarray:
    """Feed-forward compressor on a stereo-linked RMS envelope (256-sample frames)."""
    return (audio * compressor_gain(audio, threshold_db, ratio, attack_ms, release_ms, rate)).astype(np.float32)


def reverb(audio: np.ndarray, rt60: float, wet: float, predelay_ms: float, rng: np.random.Generator,
           rate: int = SAMPLE_RATE) -> np.ndarray:
    """Convolution with a decaying, decorrelated stereo noise tail (a simple room/plate)."""
    length = int(rt60 * rate)
    t = np.arange(length) / rate
    envelope = np.exp(-6.9 * t / rt60)
    tail = rng.standard_normal((2, length)) * envelope
    tail = apply_filters(tail, [biquad("lowpass", 6000 + 6000 * rng.random(), rate=rate)])
    tail /= np.sqrt((tail**2).sum(axis=1, keepdims=True)) + 1e-9
    impulse = np.zeros((2, int(predelay_ms * rate / 1000) + length), np.float32)
    impulse[:, -length:] = tail
    stereo = np.broadcast_to(audio, (2, audio.shape[-1])) if audio.ndim == 1 else audio
    wet_signal = oaconvolve(stereo, impulse, axes=-1)[:, : audio.shape[-1]]
    return ((1 - wet) * stereo + wet * wet_signal).astype(np.float32)


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Equal-power pan of a mono signal; ``position`` in [-1, 1] (left to right)."""
    angle = (position + 1) * math.pi / 4
    return np.stack([mono * math.cos(angle), mono * math.sin(angle)]).astype(np.float32)


# ---------------------------------------------------------------- random chains

def random_eq(rng: np.random.Generator, bands: int = 3, max_db: float = 6.0) -> list[dict[str, Any]]:
    """A few random peaking/shelving bands."""
    steps = []
    for _ in range(bands):
        kind = str(rng.choice(["peak", "peak", "lowshelf", "highshelf"]))
        low, high = {"lowshelf": (60, 400), "highshelf": (2500, 10000)}.get(kind, (80, 8000))
        freq = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        steps.append({"type": "eq", "kind": kind, "freq": round(freq, 1), "q": round(float(rng.uniform(0.5, 2.0)), 3),
                      "gain_db": round(float(rng.uniform(-max_db, max_db)), 2)})
    return steps


def amp_chain(rng: np.random.Generator) -> list[dict[str, Any]]:
    """Guitar amp: pre-emphasis, drive, cabinet EQ (high-pass, mid bump, speaker roll-off)."""
    return [
        {"type": "eq", "kind": "highpass", "freq": round(float(rng.uniform(70, 140)), 1), "q": 0.707, "gain_db": 0.0},
        {"type": "eq", "kind": "peak", "freq": round(float(rng.uniform(600, 1200)), 1), "q": 0.8,
         "gain_db": round(float(rng.uniform(3, 9)), 2)},
        {"type": "drive", "gain_db": round(float(rng.uniform(12, 32)), 2),
         "asymmetry": round(float(rng.uniform(0, 0.3)), 3)},
        {"type": "eq", "kind": "peak", "freq": round(float(rng.uniform(1500, 3000)), 1), "q": 1.0,
         "gain_db": round(float(rng.uniform(-2, 5)), 2)},
        {"type": "eq", "kind": "lowpass", "freq": round(float(rng.uniform(3500, 6500)), 1), "q": 0.9, "gain_db": 0.0},
        {"type": "eq", "kind": "lowpass", "freq": round(float(rng.uniform(5000, 8000)), 1), "q": 0.707, "gain_db": 0.0},
    ]


def random_chain(rng: np.random.Generator, amp: bool = False, reverb_probability: float = 0.6) -> list[dict[str, Any]]:
    """Random per-stem chain: [amp], EQ, maybe compressor, maybe low-pass, maybe reverb."""
    chain: list[dict[str, Any]] = amp_chain(rng) if amp else []
    chain += random_eq(rng, bands=int(rng.integers(1, 4)))
    if rng.random() < 0.6:
        chain.append({"type": "compress", "threshold_db": round(float(rng.uniform(-30, -12)), 2),
                      "ratio": round(float(rng.uniform(2, 6)), 2), "attack_ms": round(float(rng.uniform(2, 30)), 2),
                      "release_ms": round(float(rng.uniform(50, 300)), 2)})
    if rng.random() < 0.3:
        chain.append({"type": "eq", "kind": "lowpass", "freq": round(float(rng.uniform(7000, 18000)), 1),
                      "q": 0.707, "gain_db": 0.0})
    if rng.random() < reverb_probability:
        chain.append({"type": "reverb", "rt60": round(float(rng.uniform(0.3, 2.5)), 3),
                      "wet": round(float(rng.uniform(0.08, 0.35)), 3),
                      "predelay_ms": round(float(rng.uniform(0, 40)), 2), "seed": int(rng.integers(2**31))})
    return chain


def apply_chain(audio: np.ndarray, chain: list[dict[str, Any]], rate: int = SAMPLE_RATE) -> np.ndarray:
    """Apply a chain made by :func:`random_chain` to ``[2, T]`` audio (adjacent EQs run as one cascade)."""
    pending: list[Biquad] = []
    for step in chain:
        if step["type"] == "eq":
            pending.append(biquad(step["kind"], step["freq"], step["q"], step["gain_db"], rate))
            continue
        audio, pending = apply_filters(audio, pending), []
        if step["type"] == "drive":
            # Drive amounts are relative to a -6 dBFS peak so they mean the same for any input level.
            audio = audio * (0.5 / (float(np.abs(audio).max()) + 1e-9))
            audio = drive(audio, step["gain_db"], step["asymmetry"])
        elif step["type"] == "compress":
            audio = compress(audio, step["threshold_db"], step["ratio"], step["attack_ms"], step["release_ms"], rate)
        elif step["type"] == "reverb":
            audio = reverb(audio, step["rt60"], step["wet"], step["predelay_ms"], np.random.default_rng(step["seed"]),
                           rate)
        else:
            raise ValueError(f"unknown effect {step['type']!r}")
    return apply_filters(audio, pending)
