"""Evaluation and the guitar/other rule, on tiny generated audio (no real data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from stemcut.core import MaskSeparator
from stemcut.evaluation import evaluate, read_reference_track, summarise
from stemcut.metrics import global_sdr, museval_available
from stemcut.targets import TARGETS, fold_into_other, output_stems
from stemcut.training.objective import magnitude_losses, reference_magnitudes, scored_targets

RATE = 22050


def _tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + rng.random()) * t)
    left = 0.2 * envelope * np.sin(2 * np.pi * freq * t)
    return np.stack([left, 0.8 * left + 0.01 * rng.standard_normal(t.size)]).astype(np.float32)


def _write_track(folder, stems: dict[str, np.ndarray], mixture: bool = False) -> None:
    folder.mkdir(parents=True)
    for name, audio in stems.items():
        sf.write(folder / f"{name}.wav", audio.T, RATE, subtype="FLOAT")
    if mixture:
        sf.write(folder / "mixture.wav", np.sum(list(stems.values()), axis=0).T, RATE, subtype="FLOAT")


@pytest.fixture()
def reference_dir(tmp_path):
    root = tmp_path / "ref"
    # MUSDB-style: no guitar file (guitar would be inside other).
    _write_track(root / "a", {"vocals": _tone(440, 3, 0), "drums": _tone(90, 3, 1), "bass": _tone(55, 3, 2),
                              "other": _tone(1300, 3, 3)})
    # Five stems with a mixture file and a silent vocals stem.
    _write_track(root / "b", {"vocals": np.zeros((2, 3 * RATE), np.float32), "drums": _tone(100, 3, 4),
                              "bass": _tone(60, 3, 5), "guitar": _tone(330, 3, 6), "other": _tone(2000, 3, 7)},
                 mixture=True)
    return root


class PerfectSeparator:
    """Returns the true stems; on tracks without a guitar file, half of other is called guitar."""

    def __init__(self, root):
        self.root = root

    def separate(self, audio, sample_rate):
        for folder in sorted(self.root.iterdir()):
            track = read_reference_track(folder)
            if track.mixture.shape == audio.shape and np.allclose(track.mixture, audio):
                stems = {t: track.stems.get(t, np.zeros_like(audio)) for t in TARGETS}
                if "guitar" not in track.stems:
                    stems["guitar"] = 0.5 * stems["other"]
                    stems["other"] = 0.5 * stems["other"]
                return stems
        raise AssertionError("unknown mixture")


def test_global_sdr_values():
    reference = np.ones((2, 100))
    assert global_sdr(reference, reference * 0.9) == pytest.approx(20.0, abs=1e-3)
    assert global_sdr(reference, reference) > 80


def test_fold_moves_unscored_targets_into_other_numpy_and_torch():
    estimates = np.stack([np.full((1, 4), float(i + 1)) for i in range(len(TARGETS))])
    separate = np.array([True, True, True, False, True])
    folded = fold_into_other(estimates, TARGETS, separate)
    assert np.all(folded[TARGETS.index("guitar")] == 0)
    assert np.all(folded[TARGETS.index("other")] == 4 + 5)
    np.testing.assert_array_equal(folded.sum(axis=0), estimates.sum(axis=0))  # nothing lost
    batched = torch.from_numpy(np.stack([estimates, estimates], axis=1))       # S, B, 1, 4
    mask = torch.tensor([[True, True], [True, False], [True, True], [True, False], [False, True]])
    folded_torch = fold_into_other(batched, TARGETS, mask)
    assert torch.all(folded_torch[1, 1] == 0) and torch.all(folded_torch[1, 0] == 2)
    assert torch.all(folded_torch[4, 1] == 5 + 2 + 4)  # other is always kept, plus drums and guitar
    assert torch.all(folded_torch[4, 0] == 5)  # everything scored on its own in example 0


def test_evaluate_perfect_separator_folds_guitar(reference_dir):
    report = evaluate(reference_dir, PerfectSeparator(reference_dir))
    a, b = report.tracks
    assert a.folded_into_other == ["guitar"] and "guitar" not in a.global_sdr
    assert a.global_sdr["other"] > 60  # guitar half folded back: other is exact
    assert "vocals" not in b.global_sdr and b.folded_into_other == ["vocals"]  # silent reference: folded
    assert b.global_sdr["guitar"] > 60
    assert report.counts == {"vocals": 1, "drums": 2, "bass": 2, "guitar": 1, "other": 2}
    data = json.loads(report.to_json())
    assert data["global_sdr"]["drums"] > 60
    rows = report.table_rows()
    assert rows[0][0] == "target" and [r[0] for r in rows[1:]] == list(TARGETS)


def test_oracle_is_a_strong_ceiling(reference_dir):
    report = evaluate(reference_dir, oracle=True, tracks=["a"])
    assert report.method.startswith("oracle")
    assert [t.track for t in report.tracks] == ["a"]
    assert min(report.global_sdr.values()) > 10


def test_evaluate_needs_a_separator_or_oracle(reference_dir):
    with pytest.raises(ValueError):
        evaluate(reference_dir)
    with pytest.raises(FileNotFoundError):
        evaluate(reference_dir, oracle=True, tracks=["nope"])


def test_summarise_mean_and_median(reference_dir):
    report = evaluate(reference_dir, oracle=True)
    merged = summarise("x", "oracle", report.tracks + report.tracks)
    assert merged.counts["drums"] == 4
    assert merged.global_sdr["drums"] == pytest.approx(report.global_sdr["drums"])


@pytest.mark.skipif(not museval_available(), reason="museval not installed")
def test_museval_scores(tmp_path):
    """BSSEval v4 on a short track (it costs seconds per second of audio): finite, per target,
    and a clear ceiling for the oracle."""
    root = tmp_path / "ref"
    _write_track(root / "short", {"drums": _tone(100, 1.5, 4), "bass": _tone(60, 1.5, 5),
                                  "guitar": _tone(330, 1.5, 6), "other": _tone(2000, 1.5, 7)})
    report = evaluate(root, oracle=True, museval=True)
    assert set(report.museval_sdr) == {"drums", "bass", "guitar", "other"}
    assert all(np.isfinite(v) and v > 5 for v in report.museval_sdr.values())


def test_five_untrained_outputs_add_up_to_the_mixture(tmp_path):
    from stemcut.separator import Separator
    from stemcut.weights import write_untrained_set

    write_untrained_set(tmp_path / "w", arch="tcn", params={"n_fft": 1024, "hidden": 16, "blocks": 2},
                        n_fft=1024, hop=256)
    separator = Separator(tmp_path / "w", device="cpu")
    audio = np.random.default_rng(0).standard_normal((2, RATE)).astype(np.float32) * 0.1
    stems = separator.separate(audio, 44100)
    assert list(stems) == list(TARGETS)
    np.testing.assert_allclose(sum(stems.values()), audio, atol=1e-4)


class FixedMask(torch.nn.Module):
    """A 'model' that returns a given mask (B, C, F, T), to test the objective exactly."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        return self.mask.expand_as(magnitude)


def _fixed_core(masks: dict[str, torch.Tensor]) -> MaskSeparator:
    return MaskSeparator({t: FixedMask(m) for t, m in masks.items()}, n_fft=64, hop=16)


def test_training_rule_scores_other_without_a_known_guitar():
    batch, length = 2, 1024
    torch.manual_seed(0)
    stems = torch.randn(batch, 5, 2, length)
    known = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 1]], dtype=torch.bool)
    stems[1, TARGETS.index("guitar")] = 0  # unknown: its content is inside other
    mixture = stems.sum(dim=1)
    frames = length // 16 + 1
    masks = {t: torch.rand(batch, 2, 33, frames) for t in TARGETS}
    core = _fixed_core(masks)
    scored = scored_targets(known, core.stems)
    other, guitar = TARGETS.index("other"), TARGETS.index("guitar")
    assert not scored[guitar, 1] and scored[guitar, 0] and scored[other].all()
    references = reference_magnitudes(core, stems, scored)
    torch.testing.assert_close(references[other, 0], core.spectrogram(stems[0, other]).abs())
    torch.testing.assert_close(references[other, 1], core.spectrogram(stems[1, other] + stems[1, guitar]).abs())
    losses = magnitude_losses(core, mixture, stems, known)
    assert set(losses) == set(TARGETS)

    def swapped_on(example: int) -> dict[str, float]:
        changed = {t: m.clone() for t, m in masks.items()}
        changed["guitar"][example], changed["other"][example] = masks["other"][example], masks["guitar"][example]
        return {t: float(v) for t, v in magnitude_losses(_fixed_core(changed), mixture, stems, known).items()}

    # Guitar unknown on example 1: moving energy between guitar and other there changes nothing.
    unknown_swap = swapped_on(1)
    assert unknown_swap["other"] == pytest.approx(float(losses["other"]), rel=1e-5)
    assert unknown_swap["guitar"] == pytest.approx(float(losses["guitar"]), rel=1e-5)
    # Guitar known on example 0: the same swap there is penalised.
    assert swapped_on(0)["guitar"] != pytest.approx(float(losses["guitar"]), rel=1e-3)


def test_training_outputs_are_the_magnitudes_of_the_separated_stems():
    """The loss scores |Y_j|, and the stems the separator writes are iSTFT(Y_j): one forward pass."""
    torch.manual_seed(1)
    audio = torch.randn(2, 2, 1024)
    frames = 1024 // 16 + 1
    core = _fixed_core({t: torch.rand(2, 2, 33, frames) for t in ("vocals", "drums")})
    outputs = core.ratio_magnitudes(audio)          # training (autograd on)
    with torch.inference_mode():
        stems = core(audio)                          # inference (in-place path)
    spectrogram = core.spectrogram(audio)
    expected = core.stft.inverse(spectrogram * (outputs / spectrogram.abs().clamp(min=1e-12)), audio.shape[-1])
    torch.testing.assert_close(stems[:2], expected[:2].detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(stems[2], audio - stems[:2].sum(dim=0))
    torch.testing.assert_close(core(audio), stems, atol=1e-6, rtol=1e-5)  # autograd path: same stems


def test_subset_of_targets_gets_a_residual_other():
    torch.manual_seed(2)
    audio = torch.randn(2, 2, 512)
    core = _fixed_core({"vocals": torch.rand(2, 2, 33, 512 // 16 + 1)})
    assert core.stems == output_stems(["vocals"]) == ["vocals", "other"]
    outputs = core.ratio_magnitudes(audio)
    assert outputs.shape == (2, 2, 2, 512 // 16 + 1, 33)
    torch.testing.assert_close(outputs.sum(dim=0), core.spectrogram(audio).abs())
    stems = core(audio)
    torch.testing.assert_close(stems.sum(dim=0), audio, atol=1e-5, rtol=1e-5)
