"""Batch jobs: folders, output templates, resume, interruption (SIGKILL, SIGTERM,
Ctrl-C), exit codes, the JSON report, NI .stem.mp4 and karaoke over a folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import sine_mixture
from stemcut import Separator
from stemcut.audio import OutputSpec, load_audio, probe, save_audio
from stemcut.batch import (EXIT_INTERRUPTED, PlanError, exit_code, find_audio_files, plan_jobs, run_jobs)
from stemcut.cli import app

runner = CliRunner()
STEMS = ["vocals", "drums", "bass", "guitar", "other"]
FLOAT = OutputSpec(format="wav", bit_depth=32)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def separator(tiny_models):
    return Separator(tiny_models, device="cpu", segment=0.5, overlap=0.1, threads=1)


def song(path: Path, seconds: float = 0.3, rate: int = 44100, channels: int = 2, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_audio(path, sine_mixture(seconds, rate, channels, seed), rate)


def cli(tiny_models, *args: str):
    return runner.invoke(app, ["separate", *map(str, args), "--model-dir", str(tiny_models), "--segment", "0.5",
                               "--threads", "1"])


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# -- folders --------------------------------------------------------------------------------------

def test_folder_mirrors_structure_and_skips_its_own_output(tiny_models, tmp_path):
    music = tmp_path / "music"
    song(music / "a" / "song.wav")
    song(music / "b" / "song.wav", seed=1)
    song(music / "b" / "live" / "deep.flac", seed=2)
    (music / "notes.txt").write_text("not audio, not taken")
    song(music / ".hidden.wav")
    (music / "a" / "loop").symlink_to(music, target_is_directory=True)  # a link loop
    out = music / "separated"                                           # output inside the input
    first = cli(tiny_models, music, "-o", out, "--stems", "vocals", "-q")
    assert first.exit_code == 0, first.output
    assert [f for f in files_under(out) if not f.split("/")[-1].startswith(".")] == [
        "a/song/vocals.wav", "b/live/deep/vocals.wav", "b/song/vocals.wav"]
    assert {f for f in files_under(out) if f.endswith(".stemcut.json")} == {
        "a/song/.stemcut.json", "b/live/deep/.stemcut.json", "b/song/.stemcut.json"}
    second = cli(tiny_models, music, "-o", out, "--stems", "vocals", "--json", "-")
    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    assert [f["status"] for f in report["files"]] == ["skipped"] * 3  # separated/ was not walked


def test_no_recursion_and_globs(tmp_path):
    song(tmp_path / "top.wav")
    song(tmp_path / "sub" / "inner.flac")
    song(tmp_path / "sub" / "inner.wav")
    (tmp_path / "sub" / "take.dat").write_bytes(b"x")
    names = lambda found: sorted(p.relative_to(tmp_path).as_posix() for p, _ in found)  # noqa: E731
    assert names(find_audio_files([tmp_path])[0]) == ["sub/inner.flac", "sub/inner.wav", "top.wav"]
    assert names(find_audio_files([tmp_path], recursive=False)[0]) == ["top.wav"]
    assert names(find_audio_files([tmp_path], globs=["*.flac"])[0]) == ["sub/inner.flac"]
    assert names(find_audio_files([tmp_path], globs=["sub/*", "top.*"])[0]) == [
        "sub/inner.flac", "sub/inner.wav", "sub/take.dat", "top.wav"]
    found, problems = find_audio_files([tmp_path / "nope.wav"])
    assert found == [] and problems == [(tmp_path / "nope.wav", "no such file or folder")]


def test_unreadable_sub_folder_is_reported(tmp_path, monkeypatch):
    """Root reads anything, so os.walk's error callback is exercised with a simulated EACCES."""
    song(tmp_path / "ok" / "a.wav")
    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == tmp_path / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found, problems = find_audio_files([tmp_path])
    assert [p.name for p, _ in found] == ["a.wav"]
    assert problems == [(tmp_path / "locked", "cannot read folder (Permission denied)")]


def test_output_folder_equal_to_input_folder(tiny_models, tmp_path):
    """Stems written beside the songs are not taken as songs on the next run."""
    song(tmp_path / "a.wav")
    first = cli(tiny_models, tmp_path, "-o", tmp_path, "--stems", "vocals,other", "-q")
    assert first.exit_code == 0, first.output
    second = cli(tiny_models, tmp_path, "-o", tmp_path, "--stems", "vocals,other", "--json", "-")
    assert second.exit_code == 0, second.output
    assert [(Path(f["input"]).name, f["status"]) for f in json.loads(second.stdout)["files"]] == [("a.wav", "skipped")]
    self_overwrite = cli(tiny_models, tmp_path / "a.wav", "-o", tmp_path, "--stems", "vocals",
                         "--output-template", "{track}.{ext}")
    assert self_overwrite.exit_code == 3 and "would overwrite an input file" in self_overwrite.stderr


def test_collision_is_a_usage_error_before_any_compute(tiny_models, tmp_path):
    a = song(tmp_path / "x" / "song.wav")
    b = song(tmp_path / "y" / "song.wav")
    out = tmp_path / "out"
    result = cli(tiny_models, a, b, "-o", out)
    assert result.exit_code == 2
    assert f"{a} and {b} would both write" in result.stderr
    assert not out.exists()
    # Within one folder walk, the same names cannot collide; a template without {dir} can.
    with pytest.raises(PlanError, match="put {dir} in --output-template"):
        plan_jobs([tmp_path], out, STEMS, FLOAT, template="{track}/{stem}.{ext}")
    plan = plan_jobs([tmp_path], out, STEMS, FLOAT)
    assert [job.outputs["vocals"].relative_to(out).as_posix() for job in plan.jobs] == [
        "x/song/vocals.wav", "y/song/vocals.wav"]


@pytest.mark.parametrize("template, message", [
    ("{track}/{stem}.{ext}{bpm}", "unknown field {bpm}"),
    ("../{track}/{stem}.{ext}", "escapes the output folder"),
    ("/abs/{track}/{stem}.{ext}", "must be relative"),
    ("{track}.{ext}", "needs {stem}"),
    ("{stem}.{ext}", "needs {track}"),
    ("{track!r}/{stem}.{ext}", "no format spec"),
])
def test_bad_output_templates(tiny_models, tmp_path, template, message):
    result = cli(tiny_models, song(tmp_path / "s.wav"), "-o", tmp_path / "out", "--output-template", template)
    assert result.exit_code == 2 and message in result.stderr


def test_flat_output_template(tiny_models, tmp_path):
    src = song(tmp_path / "in" / "My Song.wav")
    out = tmp_path / "out"
    result = cli(tiny_models, src, "-o", out, "--output-template", "{track} - {stem}.{ext}", "--stems", "vocals,bass")
    assert result.exit_code == 0, result.output
    assert files_under(out) == [".My Song - stemcut.json", "My Song - bass.wav", "My Song - vocals.wav"]


# -- resume -------------------------------------------------------------------------------------------

def test_resume_skips_only_what_is_really_done(separator, tiny_models, tmp_path):
    a, b = song(tmp_path / "in" / "a.wav"), song(tmp_path / "in" / "b.wav", seed=1)
    out = tmp_path / "out"
    plan = plan_jobs([tmp_path / "in"], out, STEMS, FLOAT)

    def statuses(sep=separator, **kwargs):
        return [o.status for o in run_jobs(sep, plan.jobs, FLOAT, stems=STEMS, **kwargs).outcomes]

    assert statuses() == ["done", "done"]
    record = json.loads((out / "a" / ".stemcut.json").read_text())
    assert record["input"]["size"] == a.stat().st_size and record["outputs"]["vocals"]["file"] == "vocals.wav"
    assert statuses() == ["skipped", "skipped"]
    assert statuses(force=True) == ["done", "done"]
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 10**9))          # input changed
    assert statuses() == ["skipped", "done"]
    (out / "a" / "drums.wav").unlink()                                              # an output missing
    assert statuses() == ["done", "skipped"]
    with open(out / "b" / "bass.wav", "ab") as handle:                              # an output changed
        handle.write(b"\0\0\0\0")
    assert statuses() == ["skipped", "done"]
    other_settings = Separator(tiny_models, device="cpu", segment=0.25, overlap=0.1, threads=1)
    assert statuses(other_settings) == ["done", "done"]                             # settings changed
    assert statuses(other_settings) == ["skipped", "skipped"]
    stale = out / "a" / ".vocals.wav.k2j4h5.partial"                                # a killed run's temp file
    stale.write_bytes(b"junk")
    assert statuses(other_settings) == ["skipped", "skipped"] and not stale.exists()


def test_interrupt_between_outputs_and_record_redoes_the_track(separator, tmp_path, monkeypatch):
    import stemcut.batch

    src = song(tmp_path / "s.wav")
    plan = plan_jobs([src], tmp_path / "out", STEMS, FLOAT)

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(stemcut.batch, "write_record", killed)
    result = run_jobs(separator, plan.jobs, FLOAT, stems=STEMS)
    assert result.interrupted and result.outcomes[0].status == "failed"
    monkeypatch.undo()
    assert run_jobs(separator, plan.jobs, FLOAT, stems=STEMS).outcomes[0].status == "done"


def test_input_changed_during_separation_is_not_recorded_as_done(separator, tmp_path):
    src = song(tmp_path / "s.wav", seconds=2.0)
    plan = plan_jobs([src], tmp_path / "out", STEMS, FLOAT)

    def touch(frames):
        os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))

    outcome = run_jobs(separator, plan.jobs, FLOAT, stems=STEMS, on_progress=touch).outcomes[0]
    assert outcome.status == "failed" and "changed while it was being separated" in outcome.reason
    assert not plan.jobs[0].record.exists()
    assert run_jobs(separator, plan.jobs, FLOAT, stems=STEMS).outcomes[0].status == "done"


def test_ctrl_c_mid_file_discards_it_and_marks_the_rest_not_run(separator, tmp_path):
    sources = [song(tmp_path / "in" / f"{name}.wav", seconds=2.0) for name in ("a", "b", "c")]
    out = tmp_path / "out"
    plan = plan_jobs(sources, out, STEMS, FLOAT)
    calls = []

    def progress(frames):
        calls.append(frames)
        if len(calls) == 2 and len(list(out.rglob("*.partial"))) == 5:
            raise KeyboardInterrupt

    result = run_jobs(separator, plan.jobs, FLOAT, stems=STEMS, on_progress=progress)
    assert result.interrupted and exit_code(result.outcomes, result.interrupted) == EXIT_INTERRUPTED
    assert [o.status for o in result.outcomes] == ["failed", "not_run", "not_run"]
    assert list(out.rglob("*")) == []  # no temp file, no output, no empty folder


def _separate_command(*args) -> list[str]:
    return [sys.executable, "-m", "stemcut", "separate", *map(str, args), "--segment", "0.5", "--threads", "1"]


def _wait_for_partial(process: subprocess.Popen, out: Path, min_bytes: int, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "finished before it could be interrupted"
        for path in out.rglob("*.partial") if out.exists() else []:
            try:
                if path.stat().st_size >= min_bytes:
                    return path
            except FileNotFoundError:
                pass
        time.sleep(0.01)
    raise AssertionError("no partial output appeared")


@pytest.fixture(scope="module")
def long_song(tmp_path_factory) -> Path:
    """40 s of stereo audio: a few seconds of work for the tiny models."""
    return song(tmp_path_factory.mktemp("long") / "long song.wav", seconds=40.0)


def test_sigkill_mid_file_then_rerun_finishes(tiny_models, long_song, tmp_path):
    out = tmp_path / "out"
    command = _separate_command(long_song, "-o", out, "--model-dir", tiny_models, "-q")
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_partial(process, out, min_bytes=200_000)
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    track = out / "long song"
    assert list(track.glob("*.partial")), "the kill should have left temp files"
    assert not list(track.glob("*.wav")) and not (track / ".stemcut.json").exists()

    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert list(out.rglob("*.partial")) == []
    assert sorted(p.name for p in track.iterdir()) == [".stemcut.json", *sorted(f"{s}.wav" for s in STEMS)]
    mixture, _ = load_audio(long_song)
    stems = sum(load_audio(track / f"{s}.wav")[0] for s in STEMS)
    assert stems.shape == mixture.shape and np.abs(stems - mixture).max() < 1e-3  # 16-bit rounding
    again = subprocess.run(command + ["--json", "-"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout)["files"][0]["status"] == "skipped"


def test_sigterm_cleans_up_and_exits_130(tiny_models, long_song, tmp_path):
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    other = song(tmp_path / "zz after.wav")
    command = _separate_command(long_song, other, "-o", out, "--model-dir", tiny_models, "--json", report)
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_partial(process, out, min_bytes=50_000)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "interrupted" in stderr
    assert [p.name for p in out.rglob("*") if p.is_file()] == []
    data = json.loads(report.read_text())
    assert data["interrupted"] is True and data["exit_code"] == 130
    assert [f["status"] for f in data["files"]] == ["failed", "not_run"]


# -- exit codes and the report --------------------------------------------------------------------

def test_exit_codes(tiny_models, tmp_path):
    good = song(tmp_path / "good.wav")
    bad = tmp_path / "bad.wav"
    bad.write_text("text")
    out = tmp_path / "out"
    assert cli(tiny_models, good, "-o", out).exit_code == 0
    assert cli(tiny_models, good, "-o", out).exit_code == 0                     # skipped counts as success
    assert cli(tiny_models, bad, good, "-o", out).exit_code == 1
    assert cli(tiny_models, bad, "-o", out).exit_code == 3
    assert cli(tiny_models, tmp_path / "missing.wav", "-o", out).exit_code == 3
    empty = tmp_path / "empty folder"
    empty.mkdir()
    no_audio = cli(tiny_models, empty, "-o", out)
    assert no_audio.exit_code == 2 and "no audio files" in no_audio.stderr
    fail_fast = cli(tiny_models, bad, good, "-o", tmp_path / "ff", "--fail-fast", "--json", "-")
    assert fail_fast.exit_code == 3
    assert [f["status"] for f in json.loads(fail_fast.stdout)["files"]] == ["failed", "not_run"]


def test_json_report(tiny_models, tmp_path):
    song(tmp_path / "in" / "good.wav", seconds=0.5)
    bad = tmp_path / "in" / "bad.wav"
    bad.write_bytes(b"")
    out = tmp_path / "out"
    result = cli(tiny_models, tmp_path / "in", "-o", out, "--stems", "vocals,other", "--json", "-")
    assert result.exit_code == 1
    report = json.loads(result.stdout)  # stdout holds the report and nothing else
    assert set(report) == {"report_version", "stemcut", "started", "finished", "output_dir", "settings",
                           "run_settings", "interrupted", "exit_code", "error", "files", "totals"}
    assert report["settings"]["separation"] == {"segment": 0.5, "overlap": 0.1, "wiener": False,
                                                "wiener_iterations": 0}  # seconds and fractions, as given
    assert report["run_settings"]["segment"] == 0.5 and report["run_settings"]["batch_size"] == 1
    assert report["exit_code"] == 1 and report["interrupted"] is False
    assert report["settings"]["stems"] == ["vocals", "other"]
    assert set(report["settings"]["models"]) == set(STEMS)
    files = {Path(f["input"]).name: f for f in report["files"]}
    assert files["bad.wav"]["status"] == "failed" and "empty file" in files["bad.wav"]["reason"]
    assert files["bad.wav"]["outputs"] == {}
    done = files["good.wav"]
    assert done["status"] == "done" and done["duration"] == 0.5 and done["seconds"] > 0
    assert done["outputs"] == {"vocals": str(out / "good" / "vocals.wav"), "other": str(out / "good" / "other.wav")}
    assert report["totals"] == {"files": 2, "done": 1, "skipped": 0, "failed": 1, "not_run": 0, "claimed": 0,
                                "duration": 0.5, "seconds": report["totals"]["seconds"]}
    to_file = cli(tiny_models, tmp_path / "in", "-o", out, "--stems", "vocals,other", "--json", tmp_path / "r.json")
    assert to_file.stdout.splitlines() == [str(out / "good" / "vocals.wav"), str(out / "good" / "other.wav")]
    assert [f["status"] for f in json.loads((tmp_path / "r.json").read_text())["files"]] == ["failed", "skipped"]


# -- NI stems and karaoke ----------------------------------------------------------------------------

def test_stem_mp4_per_track(tiny_models, tmp_path):
    import av

    from stemcut.nistems import read_stem_metadata

    mixture = sine_mixture(1.0, 44100, 2)
    src = tmp_path / "in"
    save_audio(src / "a" / "song.wav", mixture, 44100)
    song(src / "b" / "song.flac", seconds=0.5, rate=8000, channels=1)
    out = tmp_path / "out"
    result = cli(tiny_models, src, "-o", out, "--format", "stem.mp4", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out / "a" / "song.stem.mp4"), str(out / "b" / "song.stem.mp4")]
    path = out / "a" / "song.stem.mp4"
    meta = read_stem_metadata(path)
    assert [s["name"] for s in meta["stems"]] == ["Drums", "Bass", "Other", "Vocals"]
    assert meta["mastering_dsp"]["limiter"]["enabled"] is False
    with av.open(str(path)) as container:
        streams = container.streams.audio
        assert len(streams) == 5
        assert all(s.codec_context.name == "aac" and s.codec_context.sample_rate == 44100 for s in streams)
        assert [bool(s.disposition & av.stream.Disposition.default) for s in streams] == [True] + [False] * 4
    decoded = [load_audio(path, stream=i)[0] for i in range(5)]
    length = mixture.shape[1]
    assert all(length <= d.shape[1] <= length + 2048 for d in decoded)  # AAC pads the last frame
    mix = decoded[0][:, :length]
    assert np.corrcoef(mix.ravel(), mixture.ravel())[0, 1] > 0.99
    assert np.corrcoef(sum(decoded[1:])[:, :length].ravel(), mixture.ravel())[0, 1] > 0.95
    assert probe(out / "b" / "song.stem.mp4").channels == 2  # mono becomes stereo; 8 kHz becomes 44.1 kHz
    again = cli(tiny_models, src, "-o", out, "--format", "stem.mp4", "--json", "-")
    assert [f["status"] for f in json.loads(again.stdout)["files"]] == ["skipped", "skipped"]
    remapped = cli(tiny_models, src, "-o", out, "--format", "stem.mp4", "--stem-mapping",
                   "drums=drums,bass=bass,melody=guitar,vocals=vocals+other", "--json", "-")
    assert [f["status"] for f in json.loads(remapped.stdout)["files"]] == ["done", "done"]
    assert [s["name"] for s in read_stem_metadata(path)["stems"]] == ["Drums", "Bass", "Melody", "Vocals"]


@pytest.mark.parametrize("args, message", [
    (["--stem-mapping", "drums=drums,bass=bass"], "exactly 4 entries"),
    (["--stem-mapping", "a=drums,b=bass,c=kazoo,d=vocals"], "unknown stem 'kazoo'"),
    (["--stem-mapping", "a=drums,b=drums,c=other,d=vocals"], "used twice"),
    (["--karaoke"], "use --stem-mapping instead"),
])
def test_stem_mp4_usage_errors(tiny_models, tmp_path, args, message):
    result = cli(tiny_models, song(tmp_path / "s.wav"), "-o", tmp_path / "out", "--format", "stem.mp4", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_karaoke_over_a_folder(tiny_models, tmp_path):
    src = tmp_path / "in"
    mixes = {name: save_audio(src / sub / f"{name}.wav", sine_mixture(0.4, 44100, 2, seed=i), 44100)
             for i, (sub, name) in enumerate([("x", "one"), ("y", "one"), ("y", "two")])}
    out = tmp_path / "out"
    result = cli(tiny_models, src, "-o", out, "--karaoke", "--bit-depth", "32", "-q")
    assert result.exit_code == 0, result.output
    instrumentals = sorted(p.relative_to(out).as_posix() for p in out.rglob("instrumental.wav"))
    assert instrumentals == ["x/one/instrumental.wav", "y/one/instrumental.wav", "y/two/instrumental.wav"]
    mixture, _ = load_audio(mixes["two"])
    vocals, _ = load_audio(out / "y" / "two" / "vocals.wav")
    instrumental, _ = load_audio(out / "y" / "two" / "instrumental.wav")
    assert np.abs(vocals + instrumental - mixture).max() < 1e-5
