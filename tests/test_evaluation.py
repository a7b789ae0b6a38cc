"""Evaluation and the guitar/other rule, on tiny generated audio (no real data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from stemcut.evaluation import (evaluate, fold_estimates, global_sdr, museval_available, read_reference_track,
                                summarise)
from stemcut.targets import TARGETS
from stemcut.training.objective import masked_magnitude_loss, ratio_outputs, reference_slots, scored_mask, slots

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

    class stft:  # noqa: N801 - mimics Separator.stft's attributes
        n_fft, hop = 1024, 256

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


def test_fold_moves_unreferenced_targets_into_other():
    estimates = {t: np.full((1, 4), float(i + 1)) for i, t in enumerate(TARGETS)}
    folded, moved = fold_estimates(estimates, ["vocals", "drums", "bass", "other"])
    assert moved == ["guitar"]
    assert set(folded) == {"vocals", "drums", "bass", "other"}
    assert np.all(folded["other"] == 4 + 5)


def test_evaluate_perfect_separator_folds_guitar(reference_dir):
    report = evaluate(reference_dir, PerfectSeparator(reference_dir))
    a, b = report.tracks
    assert a.folded_into_other == ["guitar"] and "guitar" not in a.global_sdr
    assert a.global_sdr["other"] > 60  # guitar half folded back: other is exact
    assert "vocals" not in b.global_sdr  # silent reference: not scored
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
def test_museval_scores(reference_dir):
    report = evaluate(reference_dir, oracle=True, museval=True, tracks=["b"])
    assert set(report.museval_sdr) == {"drums", "bass", "guitar", "other"}
    assert all(np.isfinite(v) for v in report.museval_sdr.values())


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


def test_training_rule_scores_other_without_a_known_guitar():
    batch, length = 2, 2048
    stems = torch.randn(batch, 5, 2, length)
    known = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 1]], dtype=torch.bool)
    stems[1, TARGETS.index("guitar")] = 0  # unknown: its content is inside other
    mixture = stems.sum(dim=1)
    trained = list(TARGETS)
    scored = scored_mask(known, trained)
    references = reference_slots(mixture, stems, scored, trained)
    other, guitar = TARGETS.index("other"), TARGETS.index("guitar")
    torch.testing.assert_close(references[0, other], stems[0, other])  # guitar known: other excludes it
    torch.testing.assert_close(references.sum(dim=1), mixture)
    assert not scored[1, guitar] and scored[0, guitar]
    # A perfect guitar/other split scores zero loss; on the unknown-guitar example, moving
    # energy between guitar and other changes nothing (they are scored on their sum).
    magnitude = torch.rand(batch, 2, 33, 9)
    truth = torch.rand(batch, 5, 2, 33, 9)
    truth = truth / truth.sum(dim=1, keepdim=True) * magnitude.unsqueeze(1)
    masks = {t: truth[:, i] / magnitude for i, t in enumerate(TARGETS)}
    outputs = ratio_outputs(masks, magnitude)
    torch.testing.assert_close(outputs.sum(dim=1), magnitude)
    refs = truth.clone()
    refs[1, other] += refs[1, guitar]
    refs[1, guitar] = 0
    losses = masked_magnitude_loss(outputs, refs, scored, trained)
    assert max(float(v) for v in losses.values()) < 1e-10
    swapped = dict(masks)
    swapped["guitar"] = masks["guitar"].clone()
    swapped["other"] = masks["other"].clone()
    swapped["guitar"][1], swapped["other"][1] = masks["other"][1], masks["guitar"][1]
    losses = masked_magnitude_loss(ratio_outputs(swapped, magnitude), refs, scored, trained)
    assert float(losses["other"]) < 1e-10 and float(losses["guitar"]) < 1e-10


def test_subset_of_targets_gets_a_residual_other():
    magnitude = torch.rand(2, 2, 17, 5)
    masks = {"vocals": torch.rand(2, 2, 17, 5)}
    assert slots(list(masks)) == ["vocals", "other"]
    outputs = ratio_outputs(masks, magnitude)
    assert outputs.shape == (2, 2, 2, 17, 5)
    torch.testing.assert_close(outputs.sum(dim=1), magnitude)
    torch.testing.assert_close(outputs[:, 0], masks["vocals"] * magnitude, atol=1e-5, rtol=1e-4)
