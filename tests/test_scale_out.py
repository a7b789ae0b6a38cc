"""Scale-out: per-track claims, many processes on one output folder, shards, merged reports, Dask."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import sine_mixture
from stemcut import claims
from stemcut.audio import OutputSpec, save_audio
from stemcut.batch import merge_reports, plan_jobs, shard
from stemcut.cli import app

REPO = Path(__file__).resolve().parent.parent
FLOAT = OutputSpec(format="wav", bit_depth=32)
STEMS = ["vocals", "drums", "bass", "guitar", "other"]


def songs(folder: Path, count: int, seconds: float = 0.3) -> list[Path]:
    return [save_audio(folder / f"sub{i % 3}" / f"song {i:02d}.wav", sine_mixture(seconds, 44100, 2, seed=i), 44100)
            for i in range(count)]


def digest(folder: Path) -> dict[str, str]:
    """Every output file (not the hidden records) and the sha256 of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.wav"))}


def command(tiny_models, *args) -> list[str]:
    return [sys.executable, "-m", "stemcut", "separate", "--model-dir", str(tiny_models), "--segment", "0.5",
            "--threads", "1", "-q", *map(str, args)]


# -- claims ---------------------------------------------------------------------------------------

def test_a_claim_is_exclusive_and_released(tmp_path):
    record = tmp_path / "track" / ".stemcut.json"
    first = claims.acquire(record, claims.Owner("here", os.getpid(), "a"))
    with pytest.raises(claims.Claimed, match=f"being separated by here:{os.getpid()}"):
        claims.acquire(record, claims.Owner("here", os.getpid(), "b"))
    first.release()
    assert not claims.claim_path(record).exists()
    claims.acquire(record, claims.Owner("here", os.getpid(), "b")).release()


def test_a_dead_owners_claim_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = tmp_path / ".stemcut.json"
    import socket

    stale = claims.Claim.__new__(claims.Claim)  # written as a killed process would have left it
    claims._link_new(claims.claim_path(record), claims.Owner(socket.gethostname(), int(dead.stdout), "gone"))
    assert claims.claim_path(record).exists() and stale is not None
    taken = claims.acquire(record)
    assert claims._read_owner(claims.claim_path(record)).pid == os.getpid()
    taken.release()


def test_a_claim_without_heartbeat_is_taken_over_from_another_host(tmp_path, monkeypatch):
    record = tmp_path / ".stemcut.json"
    claims._link_new(claims.claim_path(record), claims.Owner("other-machine", 12345, "far"))
    with pytest.raises(claims.Claimed, match="other-machine:12345"):
        claims.acquire(record)  # fresh heartbeat on another host: left alone
    old = time.time() - claims.STALE_SECONDS - 60
    os.utime(claims.claim_path(record), (old, old))
    claims.acquire(record).release()  # its heartbeat stopped: taken over


def test_the_heartbeat_keeps_a_claim_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "HEARTBEAT_SECONDS", 0.05)
    record = tmp_path / ".stemcut.json"
    held = claims.acquire(record)
    old = time.time() - 1000
    os.utime(claims.claim_path(record), (old, old))
    time.sleep(0.3)
    assert time.time() - claims.claim_path(record).stat().st_mtime < 10
    held.release()


# -- many processes, one output folder -----------------------------------------------------------

def test_two_processes_share_one_folder_and_write_what_one_would(tiny_models, tmp_path):
    inputs = tmp_path / "in"
    songs(inputs, 8)
    single = tmp_path / "single"
    assert subprocess.run(command(tiny_models, inputs, "-o", single), cwd=REPO, timeout=300).returncode == 0
    shared = tmp_path / "shared"
    workers = [subprocess.Popen(command(tiny_models, inputs, "-o", shared, "--json", tmp_path / f"w{i}.json"),
                                cwd=REPO) for i in range(2)]
    assert [w.wait(timeout=300) for w in workers] == [0, 0]
    reports = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(2)]
    done_by = {}
    for index, report in enumerate(reports):
        for entry in report["files"]:
            if entry["status"] == "done":
                assert entry["input"] not in done_by, "a track was separated twice"
                done_by[entry["input"]] = index
            else:
                assert entry["status"] in ("skipped", "claimed")
    assert len(done_by) == 8
    assert digest(shared) == digest(single)  # byte-identical to one run
    assert not list(shared.rglob("*.partial")) and not list(shared.rglob(".*claim*"))
    merged = merge_reports(reports)
    assert merged["totals"]["done"] == 8 and merged["totals"]["files"] == 8 and merged["exit_code"] == 0


# -- shards ---------------------------------------------------------------------------------------

def test_shards_cover_every_track_exactly_once_and_do_not_depend_on_order(tmp_path):
    inputs = tmp_path / "in"
    paths = songs(inputs, 20, seconds=0.05)
    plan = plan_jobs([inputs], tmp_path / "out", STEMS, FLOAT)
    parts = [shard(plan, k, 3) for k in (1, 2, 3)]
    seen = [job.input for part in parts for job in part.jobs]
    assert sorted(seen) == sorted(paths) and len(seen) == len(set(seen))
    assert all(part.jobs for part in parts)
    # The same library mounted elsewhere splits the same way.
    moved = tmp_path / "mounted-elsewhere"
    inputs.rename(moved)
    again = plan_jobs([moved], tmp_path / "out", STEMS, FLOAT)
    assert {j.key for j in shard(again, 2, 3).jobs} == {j.key for j in parts[1].jobs}


def test_shard_runs_only_its_tracks_and_the_merged_reports_are_one_batch(tiny_models, tmp_path):
    inputs = tmp_path / "in"
    songs(inputs, 6)
    runner = CliRunner()
    reports = []
    for k in (1, 2):
        result = runner.invoke(app, ["separate", str(inputs), "-o", str(tmp_path / "out"), "--model-dir",
                                     str(tiny_models), "--segment", "0.5", "--threads", "1", "--shard", f"{k}/2",
                                     "--json", str(tmp_path / f"s{k}.json")])
        assert result.exit_code == 0, result.output
        reports.append(json.loads((tmp_path / f"s{k}.json").read_text()))
    assert sum(len(r["files"]) for r in reports) == 6
    merged_path = tmp_path / "merged.json"
    result = runner.invoke(app, ["merge-reports", str(tmp_path / "s1.json"), str(tmp_path / "s2.json"),
                                 "-o", str(merged_path)])
    assert result.exit_code == 0, result.output
    merged = json.loads(merged_path.read_text())
    assert merged["totals"]["done"] == 6 and len({f["input"] for f in merged["files"]}) == 6
    bad = runner.invoke(app, ["separate", str(inputs), "--model-dir", str(tiny_models), "--shard", "3/2"])
    assert bad.exit_code == 2 and "--shard" in bad.stderr


def test_merging_keeps_the_most_final_status():
    base = {"started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00", "settings": {"a": 1}}
    one = base | {"files": [{"input": "x.wav", "status": "claimed", "reason": "", "duration": 0.0, "seconds": 0.0},
                            {"input": "y.wav", "status": "failed", "reason": "bad", "duration": 0.0, "seconds": 0.1}]}
    two = base | {"files": [{"input": "x.wav", "status": "done", "reason": "", "duration": 3.0, "seconds": 1.0}],
                  "finished": "2026-01-01T00:02:00+00:00"}
    merged = merge_reports([one, two])
    assert {f["input"]: f["status"] for f in merged["files"]} == {"x.wav": "done", "y.wav": "failed"}
    assert merged["exit_code"] == 1 and merged["finished"].endswith("00:02:00+00:00")
    with pytest.raises(ValueError, match="different models or settings"):
        merge_reports([one, two | {"settings": {"a": 2}}])


# -- an existing distributed engine ---------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason="Dask is an optional extra (pip install 'stemcut[dask]'); not installed here")
def test_dask_local_cluster_gives_the_outputs_of_a_local_run(tiny_models, tmp_path):
    inputs = tmp_path / "in"
    songs(inputs, 4)
    local = tmp_path / "local"
    assert subprocess.run(command(tiny_models, inputs, "-o", local), cwd=REPO, timeout=300).returncode == 0
    result = subprocess.run(command(tiny_models, inputs, "-o", tmp_path / "dask", "--dask", "local:2",
                                    "--json", tmp_path / "r.json"), cwd=REPO, timeout=300, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert [f["status"] for f in report["files"]] == ["done"] * 4
    assert digest(tmp_path / "dask") == digest(local)
