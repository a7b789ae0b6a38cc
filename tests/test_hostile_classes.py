"""The classes of hostile input (issue 13): every name and link fails or works alone, every option
is checked before any work, one plain reason per cause, nothing half-written or deleted."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import sine_mixture
from stemcut import Separator
from stemcut.audio import NOT_AUDIO, OutputSpec, load_audio, probe, save_audio
from stemcut.batch import plan_jobs, run_jobs
from stemcut.cli import app

FLOAT = OutputSpec(format="wav", bit_depth=32)
STEMS = ["vocals", "drums", "bass", "guitar", "other"]
runner = CliRunner()


@pytest.fixture(scope="module")
def separator(tiny_models):
    with Separator(tiny_models, device="cpu", segment=0.5, threads=1) as separator:
        yield separator


def run(separator, inputs, out: Path, spec=FLOAT, stems=STEMS, template=None):
    plan = plan_jobs(inputs, out, stems, spec, template=template)
    return plan, run_jobs(separator, plan.jobs, spec, stems=stems).outcomes


def cli(tiny_models, *args):
    return runner.invoke(app, ["separate", "--model-dir", str(tiny_models), "--segment", "0.5", "--threads", "1",
                               *map(str, args)])


def song(path: Path, seconds: float = 0.4, rate: int = 44100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_audio(path, sine_mixture(seconds, rate, 2), rate)


# -- names and links: each fails or works alone ------------------------------------------------

def test_link_loops_and_broken_links_fail_alone_in_folders_and_on_the_command_line(tiny_models, tmp_path):
    music = tmp_path / "music"
    good = song(music / "good.wav")
    (music / "self.wav").symlink_to("self.wav")
    (music / "a.wav").symlink_to("b.wav")
    (music / "b.wav").symlink_to("a.wav")
    (music / "gone.wav").symlink_to("nowhere.wav")
    report_path = tmp_path / "report.json"
    result = cli(tiny_models, music, music / "self.wav", "-o", tmp_path / "out", "--json", report_path)
    assert result.exit_code == 1, result.output
    files = {Path(f["input"]).name: f for f in json.loads(report_path.read_text())["files"]}
    assert files["good.wav"]["status"] == "done"
    for name in ("self.wav", "a.wav", "b.wav"):
        assert (files[name]["status"], files[name]["reason"]) == ("failed", "symbolic link loop")
    assert files["gone.wav"]["reason"] == "broken symbolic link (its target does not exist)"
    assert "Traceback" not in result.output and "RuntimeError" not in result.output
    assert good.exists()


def test_special_files_fail_alone(separator, tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    folder_named_wav = tmp_path / "folder.wav"
    folder_named_wav.mkdir()
    good = song(tmp_path / "good.wav")
    _, outcomes = run(separator, [fifo, good], tmp_path / "out")
    by_name = {o.input.name: o for o in outcomes}
    assert by_name["pipe.wav"].reason == "not a regular file (a pipe, socket or device)"
    assert by_name["good.wav"].status == "done"


@pytest.mark.parametrize("template", [None, "{track}.{stem}.{ext}", "{track}.{ext}"])
def test_names_as_long_as_the_file_system_allows(separator, tmp_path, template):
    name = "x" * (251 - len(".wav") - len(".vocals")) if template == "{track}.{stem}.{ext}" else "x" * 245
    names = ["vocals"] if template == "{track}.{ext}" else STEMS
    source = song(tmp_path / "in" / f"{name}.wav")
    out = tmp_path / "out"
    _, outcomes = run(separator, [source], out, stems=names, template=template)
    assert outcomes[0].status == "done", outcomes[0].reason
    _, again = run(separator, [source], out, stems=names, template=template)
    assert again[0].status == "skipped"  # the shortened record name is found again
    assert not list(out.rglob("*.partial"))


def test_japanese_names_of_about_80_characters(separator, tmp_path):
    source = song(tmp_path / ("日本語の歌" * 16 + ".wav"))
    _, outcomes = run(separator, [source], tmp_path / "out", template="{track}.{ext}", stems=["vocals"])
    assert outcomes[0].status == "done", outcomes[0].reason


# -- options: checked before any work, the option named, exit 2 -----------------------------------

@pytest.mark.parametrize("option, value, named", [
    ("--segment", "inf", "--segment"), ("--segment", "nan", "--segment"), ("--segment", "0.001", "--segment"),
    ("--segment", "-1", "--segment"), ("--overlap", "nan", "--overlap"), ("--overlap", "0.9", "--overlap"),
    ("--batch-size", "0", "--batch-size"), ("--wiener-iterations", "-1", "--wiener-iterations"),
    ("--threads", "0", "--threads"), ("--stems", ",,,", "--stems"), ("--stems", "piano", "--stems"),
    ("--two-stems", "piano", "--two-stems"), ("--bitrate", "9000", "--bitrate"), ("--bit-depth", "12", "--bit-depth"),
    ("--format", "aiff2", "--format"),
])
def test_every_option_is_checked_before_any_work(tiny_models, tmp_path, option, value, named):
    source = song(tmp_path / "in" / "song.wav")
    out = tmp_path / "out"
    args = [source, "-o", out, "--json", tmp_path / "r.json", option, value]
    if option == "--bitrate":
        args += ["--format", "mp3"]
    result = cli(tiny_models, *args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()  # no work at all
    report = json.loads((tmp_path / "r.json").read_text())  # the report is written when asked for
    assert report["exit_code"] == 2 and named in report["error"] and report["files"] == []


def test_two_stems_writes_the_stem_and_the_rest(tiny_models, tmp_path):
    source = song(tmp_path / "song.wav")
    result = cli(tiny_models, source, "-o", tmp_path / "out", "--two-stems", "bass", "--bit-depth", "32")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "song"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["bass.wav", "no_bass.wav"]
    bass, _ = load_audio(folder / "bass.wav")
    rest, _ = load_audio(folder / "no_bass.wav")
    mixture, _ = load_audio(source)
    assert np.abs(bass + rest - mixture).max() < 1e-6
    assert np.abs(bass).max() > 1e-4


# -- one plain reason per cause, whatever the format; no raw decoder text ------------------------

def test_a_short_aiff_is_reported_too(tmp_path):
    from stemcut.audio import AudioReader

    sf.write(tmp_path / "full.aiff", sine_mixture(0.5, 44100, 2).T, 44100, subtype="PCM_16")
    cut = tmp_path / "cut.aiff"
    cut.write_bytes((tmp_path / "full.aiff").read_bytes()[:40000])
    with AudioReader(cut) as reader:
        list(reader.blocks())
        assert reader.promised_frames == 22050 and 0 < reader.shortfall < 22050 - 9000


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aiff"])
def test_a_text_file_has_one_reason_whatever_its_extension(separator, tmp_path, capfd, suffix):
    text = tmp_path / f"lyrics{suffix}"
    text.write_text("these are my lyrics, not audio\n" * 40)
    _, outcomes = run(separator, [text], tmp_path / "out")
    assert (outcomes[0].status, outcomes[0].reason) == ("failed", NOT_AUDIO)
    captured = capfd.readouterr()
    assert "Illegal" not in captured.err and "Note:" not in captured.err and captured.err.strip() == ""


def test_a_short_file_is_done_with_a_warning_in_the_report_and_on_stderr(tiny_models, tmp_path):
    full = save_audio(tmp_path / "full.wav", sine_mixture(0.5, 44100, 2), 44100, OutputSpec())
    cut = tmp_path / "in" / "cut.wav"
    cut.parent.mkdir()
    cut.write_bytes(full.read_bytes()[:40000])  # the header promises 0.5 s
    result = cli(tiny_models, cut, "-o", tmp_path / "out", "--json", tmp_path / "r.json", "-q")
    assert result.exit_code == 0
    entry = json.loads((tmp_path / "r.json").read_text())["files"][0]
    assert entry["status"] == "done" and "header promises 22050 frames" in entry["warnings"][0]
    assert "warning" in result.stderr and "header promises" in result.stderr  # shown even with -q


def test_compressed_input_is_cut_to_its_declared_length(separator, tmp_path, monkeypatch):
    """An AAC decoder runs past the container's length by the encoder's padding: cut it."""
    import stemcut.audio as audio

    m4a = tmp_path / "song.m4a"
    _write_m4a(m4a, sine_mixture(1.0, 44100, 2))
    decoded = load_audio(m4a)[0].shape[1]
    original = audio._PyAVDecoder.__init__

    def declare_shorter(self, path, stream):
        original(self, path, stream)
        self.info = audio.AudioInfo(self.info.path, self.info.sample_rate, self.info.channels, decoded - 820,
                                    self.info.codec)

    monkeypatch.setattr(audio._PyAVDecoder, "__init__", declare_shorter)
    _, outcomes = run(separator, [m4a], tmp_path / "out")
    assert outcomes[0].status == "done"
    assert probe(outcomes[0].outputs["vocals"]).frames == decoded - 820


def _write_m4a(path: Path, audio: np.ndarray, rate: int = 44100) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


# -- disks and folders: nothing half-written, nothing of the user's deleted ----------------------

def test_a_full_disk_reads_the_same_for_every_format(separator, tmp_path, monkeypatch):
    """libsndfile says 'System error.' when the disk is full: the reason says what it was."""
    import shutil

    source = song(tmp_path / "song.wav")

    def full(self, data):
        raise sf.LibsndfileError(2, "System error.")

    monkeypatch.setattr(sf.SoundFile, "write", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 0))
    for fmt in ("wav", "flac", "mp3"):
        _, outcomes = run(separator, [source], tmp_path / fmt, spec=OutputSpec(format=fmt))
        assert outcomes[0].reason.endswith("(No space left on device)"), outcomes[0].reason
        assert not [p for p in (tmp_path / fmt).rglob("*") if p.is_file()]


def test_a_record_that_cannot_be_written_leaves_no_stems(separator, tmp_path, monkeypatch):
    import stemcut.batch

    source = song(tmp_path / "song.wav")

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(stemcut.batch, "write_json", full)
    out = tmp_path / "out"
    _, outcomes = run(separator, [source], out)
    assert outcomes[0].status == "failed" and "No space left on device" in outcomes[0].reason
    assert not [p for p in out.rglob("*") if p.is_file()]  # a failed track leaves nothing


def test_a_failure_never_removes_the_users_own_folders(separator, tmp_path, monkeypatch):
    import stemcut.atomic

    source = song(tmp_path / "song.wav")
    out = tmp_path / "out"
    mine = out / "song"
    mine.mkdir(parents=True)  # the user's own (empty) folder, where the stems would go
    deep = song(tmp_path / "deep" / "a" / "b.wav")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(stemcut.atomic.tempfile, "mkstemp", refuse)
    _, outcomes = run(separator, [source, tmp_path / "deep"], out)
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert mine.is_dir()                          # was there before: kept
    assert not (out / "a").exists()               # made by the failed job: removed
    assert deep.exists()


def test_an_unreadable_file_named_on_the_command_line_fails_alone(tiny_models, tmp_path, monkeypatch):
    """chmod 000 does not stop root (tests run as root), so the permission check is simulated."""
    locked = song(tmp_path / "locked.wav")
    good = song(tmp_path / "good.wav")
    real_access = os.access
    monkeypatch.setattr("stemcut.audio.os.access",
                        lambda path, mode, **kw: False if Path(path) == locked else real_access(path, mode, **kw))
    result = cli(tiny_models, locked, good, "-o", tmp_path / "out", "--json", "-")
    assert result.exit_code == 1, result.output
    files = {Path(f["input"]).name: f for f in json.loads(result.stdout)["files"]}
    assert (files["locked.wav"]["status"], files["locked.wav"]["reason"]) == ("failed", "permission denied")
    assert files["good.wav"]["status"] == "done"


def test_a_newline_in_a_name_keeps_stderr_one_line_per_file(tiny_models, tmp_path):
    source = song(tmp_path / "two\nlines.wav")
    broken = tmp_path / "bad\nname.wav"
    broken.write_text("not audio")
    result = cli(tiny_models, source, broken, "-o", tmp_path / "out")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("stemcut: ") and "bad\\nname.wav: not a recognised audio file" in line
               for line in lines), lines
    assert any("two\\nlines.wav" in line for line in lines)
