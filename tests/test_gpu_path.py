"""The GPU path, tested on the CPU: device-aware batch size, batching that never changes the
stems, the one-deep pipeline of the model step, float32 kernels, decoding on a read-ahead
thread (bounded, errors naming the file, nothing left running) and the next file of a
folder opened while the current one computes. No GPU is needed: the same control flow runs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import TINY_BLSTM, TINY_FAMILIES, sine_mixture
from stemcut import Separator
from stemcut.audio import AudioError, AudioReader, OutputSpec, save_audio
from stemcut.batch import plan_jobs, run_jobs
from stemcut.chunking import OverlapAdd
from stemcut.jobs import ReadAhead, separate_file
from stemcut.settings import GPU_BATCH_SIZE, SeparationSettings, resolve_batch_size
from stemcut.weights import write_untrained_set

REPO = Path(__file__).resolve().parent.parent
STEMS = ["vocals", "drums", "bass", "guitar", "other"]
FLOAT = OutputSpec(format="wav", bit_depth=32)


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "stemcut-reader"]


# -- batch size ---------------------------------------------------------------------------------------

def test_auto_batch_size_is_one_on_the_cpu_and_large_on_a_gpu():
    assert resolve_batch_size(None, "cpu") == 1
    assert resolve_batch_size(None, "cuda") == GPU_BATCH_SIZE > 1
    assert resolve_batch_size(3, "cpu") == resolve_batch_size(3, "cuda") == 3  # --batch-size overrides
    assert SeparationSettings().batch_size is None
    # Not in the resume fingerprint: it never changes the stems.
    assert SeparationSettings(batch_size=16).fingerprint() == SeparationSettings().fingerprint()


def test_separator_runs_with_the_resolved_batch_size(tiny_models):
    with Separator(tiny_models, device="cpu", threads=1) as separator:
        assert separator.settings.batch_size == 1
        assert separator.settings.describe()["batch_size"] == 1  # the report says what ran
    with Separator(tiny_models, device="cpu", threads=1, batch_size=5) as separator:
        assert separator.settings.batch_size == 5 and separator._chunker.batch_size == 5


@pytest.fixture(scope="module", params=sorted(TINY_FAMILIES))
def family_models(request, tmp_path_factory):
    return write_untrained_set(tmp_path_factory.mktemp(request.param), request.param, TINY_FAMILIES[request.param],
                               n_fft=512, hop=128, seed=2)


def test_batch_size_never_changes_the_stems(family_models):
    """Batch items are independent for every model family: batch sizes 1, 3 and 16 give
    the same stems to float rounding (3 s in 0.5 s segments: 7 segments, ragged batches;
    three channels: a stereo pair and a lone channel doubled)."""
    audio = sine_mixture(3.0, 44100, 3, seed=3)
    results = {}
    for batch_size in (1, 3, 16):
        with Separator(family_models, device="cpu", segment=0.5, threads=1, batch_size=batch_size) as separator:
            results[batch_size] = separator.separate(audio, 44100)
    for batch_size in (3, 16):
        for stem, reference in results[1].items():
            assert results[batch_size][stem].dtype == np.float32
            assert np.abs(results[batch_size][stem] - reference).max() < 1e-5, (batch_size, stem)


def test_batch_size_never_changes_the_stems_with_wiener_and_two_workers(tiny_models):
    audio = sine_mixture(3.0, 32000, 2, seed=5)  # resampled to the model rate and back
    results = {}
    for batch_size in (1, 16):
        with Separator(tiny_models, device="cpu", segment=0.5, threads=2, batch_size=batch_size,
                       wiener=True) as separator:
            results[batch_size] = separator.separate(audio, 32000)
    for stem, reference in results[1].items():
        assert np.abs(results[16][stem] - reference).max() < 1e-4, stem


# -- float32 ---------------------------------------------------------------------------------------

def test_models_and_stems_stay_float32(tiny_models):
    with Separator(tiny_models, device="cpu", segment=0.5, threads=1, batch_size=4) as separator:
        assert all(p.dtype == torch.float32 for p in separator.core.parameters())
        stems = separator.process_segments(np.zeros((3, 2, separator.chunking.segment), np.float32))
        assert stems.dtype == np.float32
        assert not torch.is_autocast_enabled()


def test_gpu_forward_turns_tf32_off_and_restores_the_flags():
    from stemcut.separator import _full_float32

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with _full_float32(True):
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        with _full_float32(False):  # the CPU path leaves process-wide flags alone
            assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# -- the pipeline --------------------------------------------------------------------------------------

def test_chunker_pipelines_one_batch_deep_in_order():
    """A process that returns a function to wait on gets the next batch before it is waited
    on; never more than one batch waits; the output equals the synchronous process's."""
    events, waiting = [], []

    def process(segments):
        index = len([e for e in events if e[0] == "submit"])
        assert len(waiting) <= 1, "more than one batch in flight"
        events.append(("submit", index))
        waiting.append(index)

        def wait():
            assert waiting[0] == index, "waited out of order"
            waiting.pop(0)
            events.append(("wait", index))
            return segments[:, None] * 0.5
        return wait

    audio = np.random.default_rng(0).standard_normal((2, 1234)).astype(np.float32)
    blocks = [audio[:, i:i + 50] for i in range(0, audio.shape[1], 50)]
    chunker = OverlapAdd(100, 20, 3)
    pipelined = np.concatenate(list(chunker(blocks, process)), axis=-1)
    direct = np.concatenate(list(chunker(blocks, lambda segments: segments[:, None] * 0.5)), axis=-1)
    assert np.array_equal(pipelined, direct) and pipelined.shape == (1, 2, 1234)
    assert np.abs(pipelined[0] - audio * 0.5).max() < 1e-6
    submits = [e for e in events if e[0] == "submit"]
    assert len(submits) > 3 and not waiting
    for batch in range(1, len(submits)):  # batch k+1 is handed over before batch k is waited on
        assert events.index(("submit", batch)) < events.index(("wait", batch - 1))


def test_separator_model_step_is_submitted_then_waited(tiny_models):
    with Separator(tiny_models, device="cpu", segment=0.5, threads=2) as separator:
        segments = sine_mixture(1.5, 44100, 3)[:, :separator.chunking.segment * 2].reshape(3, 2, -1).swapaxes(0, 1)
        segments = np.ascontiguousarray(segments)
        wait = separator.submit_segments(segments)
        assert callable(wait)
        assert np.array_equal(wait(), separator.process_segments(segments))


# -- read-ahead of the input ------------------------------------------------------------------------

def test_read_ahead_gives_the_readers_blocks(tmp_path):
    path = save_audio(tmp_path / "a.wav", sine_mixture(2.0, 22050, 2), 22050)
    with AudioReader(path) as reader:
        expected = list(reader.blocks(4096))
    with ReadAhead(path, depth=2, block_frames=4096) as ahead:
        assert ahead.info.sample_rate == 22050 and ahead.info.channels == 2
        got = list(ahead.blocks())
        assert ahead.frames_read == 44100 and ahead.shortfall == 0
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert not reader_threads()


def test_read_ahead_is_bounded(tmp_path, monkeypatch):
    path = save_audio(tmp_path / "long.wav", sine_mixture(10.0, 8000, 1), 8000)
    decoded = []
    real = AudioReader.blocks

    def counting(self, block_frames=65536):
        for block in real(self, block_frames):
            decoded.append(block.shape[1])
            yield block

    monkeypatch.setattr(AudioReader, "blocks", counting)
    ahead = ReadAhead(path, depth=3, block_frames=1000)  # 80 blocks in the file
    deadline = time.monotonic() + 30
    while len(decoded) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # time to run further, if it were not bounded
    assert 3 <= len(decoded) <= 3 + 1  # the queue, plus at most one block waiting to go in
    first = next(ahead.blocks())
    assert first.shape == (1, 1000)
    ahead.close()
    assert not reader_threads() and len(decoded) <= 6


def test_read_ahead_raises_the_files_error_in_the_caller(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with ReadAhead(broken) as ahead:
        with pytest.raises(AudioError) as caught:
            ahead.info
    assert "broken.wav" in str(caught.value)
    assert not reader_threads()


def nan_song(path: Path, seconds: float = 3.0, bad_at: float = 2.5) -> Path:
    audio = sine_mixture(seconds, 44100, 2)
    audio[:, int(bad_at * 44100)] = np.nan
    sf.write(path, audio.T, 44100, subtype="FLOAT")
    return path


def test_error_mid_file_names_it_and_leaves_nothing(tiny_models, tmp_path):
    source = nan_song(tmp_path / "bad.wav")
    outputs = {stem: tmp_path / "out" / f"{stem}.wav" for stem in ("vocals", "other")}
    with Separator(tiny_models, device="cpu", segment=0.5, threads=1) as separator:
        with pytest.raises(AudioError) as caught:
            separate_file(separator, source, FLOAT.sink(outputs))
    assert "bad.wav" in str(caught.value) and "NaN" in str(caught.value)
    assert not [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert not reader_threads()


def test_ctrl_c_mid_file_stops_the_reader(tiny_models, tmp_path):
    source = save_audio(tmp_path / "a.wav", sine_mixture(6.0, 44100, 2), 44100)
    outputs = {"vocals": tmp_path / "out" / "vocals.wav"}

    def interrupt(frames):
        raise KeyboardInterrupt

    with Separator(tiny_models, device="cpu", segment=0.5, threads=1) as separator:
        with pytest.raises(KeyboardInterrupt):
            separate_file(separator, source, FLOAT.sink(outputs), progress=interrupt)
    assert not reader_threads()
    assert not [path for path in (tmp_path / "out").rglob("*") if path.is_file()]


# -- the next file of a folder -------------------------------------------------------------------------

def test_next_file_opens_while_the_current_one_computes(tiny_models, tmp_path, monkeypatch):
    import stemcut.batch

    folder = tmp_path / "in"
    folder.mkdir()
    for name, seed in (("a", 0), ("c", 2)):
        save_audio(folder / f"{name}.wav", sine_mixture(1.5, 44100, 2, seed), 44100)
    nan_song(folder / "b.wav", seconds=1.5, bad_at=1.2)  # breaks off mid-file
    events = []

    class Recorded(ReadAhead):
        def __init__(self, path, *args, **kwargs):
            events.append(("open ahead", Path(path).name))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(stemcut.batch, "ReadAhead", Recorded)
    plan = plan_jobs([folder], tmp_path / "out", STEMS, FLOAT)
    with Separator(tiny_models, device="cpu", segment=0.5, threads=1) as separator:
        result = run_jobs(separator, plan.jobs, FLOAT, stems=STEMS,
                          on_done=lambda outcome: events.append(("done", outcome.input.name)))
        statuses = {o.input.name: (o.status, o.reason) for o in result.outcomes}
        assert statuses["a.wav"][0] == statuses["c.wav"][0] == "done"
        assert statuses["b.wav"][0] == "failed" and "NaN" in statuses["b.wav"][1]  # its own failure only
        # b is opened while a computes, c while b does; a (the first) opens in its own turn.
        assert events == [("open ahead", "b.wav"), ("done", "a.wav"), ("open ahead", "c.wav"),
                          ("done", "b.wav"), ("done", "c.wav")]
        assert not reader_threads()
        events.clear()
        again = run_jobs(separator, plan.jobs, FLOAT, stems=STEMS)  # a rerun: done files are not read ahead
        assert [o.status for o in again.outcomes] == ["skipped", "failed", "skipped"]
        assert ("open ahead", "c.wav") not in events and ("open ahead", "a.wav") not in events
    assert not reader_threads()


def test_stems_from_a_read_ahead_folder_equal_the_in_memory_ones(tiny_models, tmp_path):
    from stemcut.audio import load_audio

    folder = tmp_path / "in"
    folder.mkdir()
    audio = {name: sine_mixture(1.2, 44100, 2, seed) for name, seed in (("a", 0), ("b", 1))}
    for name, samples in audio.items():
        sf.write(folder / f"{name}.wav", samples.T, 44100, subtype="FLOAT")
    plan = plan_jobs([folder], tmp_path / "out", STEMS, FLOAT)
    with Separator(tiny_models, device="cpu", segment=0.5, threads=1) as separator:
        assert [o.status for o in run_jobs(separator, plan.jobs, FLOAT, stems=STEMS).outcomes] == ["done"] * 2
        for name, samples in audio.items():
            expected = separator.separate(samples, 44100)
            for stem in STEMS:
                written, _ = load_audio(tmp_path / "out" / name / f"{stem}.wav")
                assert np.abs(written - expected[stem]).max() < 1e-6, (name, stem)


# -- the benchmark -----------------------------------------------------------------------------------

def test_bench_device_rows_run_on_the_cpu(tiny_models, tmp_path):
    report = tmp_path / "bench.json"
    command = [sys.executable, str(REPO / "scripts" / "bench.py"), "--device", "cpu", "--model-dir", str(tiny_models),
               "--song-minutes", "0.05", "--folder-songs", "2", "--folder-minutes", "0.02",
               "--in-process-seconds", "2", "--threads", "1", "--json", str(report)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = json.loads(report.read_text())
    assert [row["row"] for row in rows] == ["song", "folder", "in_process"]
    for row in rows:
        assert row["device"] == "cpu" and row["s_per_audio_s"] > 0 and row["x_realtime"] > 0
    assert rows[0]["audio_s"] == pytest.approx(3.0) and rows[1]["audio_s"] == pytest.approx(2.4)
    assert rows[2]["audio_s"] == pytest.approx(2.0) and rows[2]["batch_size"] == 1
    assert "x real time" in done.stdout
