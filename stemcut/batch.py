"""Batch jobs: from input paths to planned output files, then one file at a time.

Planning happens before any compute, so collisions and unsafe paths are reported
up front. Running isolates failures: a file that cannot be read or written is
reported with its reason and the batch goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .audio import AUDIO_EXTENSIONS, AudioError, AudioInfo, OutputSpec, track_name

# Exit codes (documented in the README).
EXIT_OK = 0             # every file done (or skipped as already done)
EXIT_SOME_FAILED = 1    # at least one file failed, at least one succeeded
EXIT_USAGE = 2          # bad options, no inputs, unusable model set
EXIT_ALL_FAILED = 3     # every file failed
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM


@dataclass
class Job:
    """One input file and the files it should produce ({stem: path})."""

    input: Path
    track: str
    outputs: dict[str, Path]


@dataclass
class Outcome:
    """What happened to one input: status is 'done', 'skipped' or 'failed'."""

    input: Path
    status: str
    reason: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)
    duration: float = 0.0       # seconds of audio
    seconds: float = 0.0        # processing time


def find_audio_files(inputs: Iterable[os.PathLike | str]) -> list[tuple[Path, Path]]:
    """(file, folder it was found under) pairs; folders are walked recursively,
    files given directly are kept whatever their extension (decoding decides)."""
    found: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for path in sorted(item.rglob("*")):
                if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
                    found.append((path, item))
        else:
            found.append((item, item.parent))
    return found


def plan_jobs(inputs: Iterable[os.PathLike | str], output_dir: os.PathLike | str, stems: list[str],
              spec: OutputSpec) -> tuple[list[Job], list[Outcome]]:
    """Jobs to run, and inputs refused before any compute (collisions, unsafe paths).

    Layout: ``<output>/<relative folder>/<track>/<stem>.<ext>``, where the relative
    folder mirrors where a file sat under a folder given on the command line."""
    output_dir = Path(output_dir)
    root = output_dir.resolve()
    jobs: list[Job] = []
    refused: list[Outcome] = []
    seen: set[Path] = set()
    claimed: dict[Path, Path] = {}
    found = find_audio_files(inputs)
    inputs_resolved = {path.resolve() for path, _ in found}
    for path, base in found:
        resolved = path.resolve()
        if resolved in seen:
            continue  # the same file given twice is separated once
        seen.add(resolved)
        relative = path.parent.relative_to(base) if path.parent != base else Path()
        track_dir = output_dir / relative / track_name(path)
        outputs = {stem: track_dir / f"{stem}.{spec.extension}" for stem in stems}
        reason = _unsafe_reason(outputs.values(), root, inputs_resolved)
        owner = claimed.get(track_dir.resolve())
        if reason is None and owner is not None:
            reason = f"output folder {track_dir} is also the output of {owner}"
        if reason:
            refused.append(Outcome(path, "failed", reason))
            continue
        claimed[track_dir.resolve()] = path
        jobs.append(Job(path, track_name(path), outputs))
    return jobs, refused


def _unsafe_reason(outputs: Iterable[Path], root: Path, inputs: set[Path]) -> str | None:
    for output in outputs:
        resolved = output.resolve()
        if not resolved.is_relative_to(root):
            return f"output path {output} escapes the output folder {root}"
        if resolved in inputs:
            return f"output path {output} would overwrite an input file"
    return None


def run_jobs(separator, jobs: list[Job], spec: OutputSpec,
             on_start: Callable[[Job, AudioInfo], None] | None = None,
             on_progress: Callable[[int], None] | None = None,
             on_done: Callable[[Outcome], None] | None = None,
             fail_fast: bool = False) -> list[Outcome]:
    """Separate each job in turn; a failing file is recorded and the batch goes on."""
    from .audio import probe

    outcomes: list[Outcome] = []
    for job in jobs:
        try:
            info = probe(job.input)
            if on_start is not None:
                on_start(job, info)
            result = separator.separate_file(job.input, job.outputs, spec, progress=on_progress)
            outcome = Outcome(job.input, "done", "", dict(result.outputs),
                              result.frames / result.sample_rate, result.seconds)
            if result.clipped_samples:
                outcome.reason = f"{result.clipped_samples} samples clipped to [-1, 1]"
        except AudioError as error:
            outcome = Outcome(job.input, "failed", error.reason)
        except (OSError, ValueError, RuntimeError, MemoryError) as error:
            outcome = Outcome(job.input, "failed", f"{type(error).__name__}: {error}".splitlines()[0])
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
        if fail_fast and outcome.status == "failed":
            break
    return outcomes


def exit_code(outcomes: list[Outcome]) -> int:
    failed = sum(outcome.status == "failed" for outcome in outcomes)
    if not failed:
        return EXIT_OK
    return EXIT_ALL_FAILED if failed == len(outcomes) else EXIT_SOME_FAILED
