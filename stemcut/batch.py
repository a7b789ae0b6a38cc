"""Batch jobs: from input paths to planned output files, then one file at a time.

* Planning (:func:`plan_jobs`) walks folders and maps every input to its output
  files before any compute, so collisions and unsafe paths are found up front.
* Resume: after a track's outputs are all in place, a small JSON record holding a
  fingerprint of the models, settings, output spec and input (size, mtime) is
  written next to them, last and atomically. A rerun skips a track whose record
  matches and whose outputs are all there (:func:`is_done`).
* Running (:func:`run_jobs`) isolates failures: a file that cannot be read or
  written is recorded with its reason and the batch goes on. While one track
  computes, the next one's input is opened and decoded a few blocks ahead. Ctrl-C (and SIGTERM,
  which the CLI turns into KeyboardInterrupt) discards the file in progress.
* Sharing: each track is claimed before it is separated (:mod:`stemcut.claims`), so
  any number of processes on the same inputs and output folder share the work; a
  track another live process holds is reported ``claimed``. :func:`shard` splits the
  planned tracks between independent jobs by a stable hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, NamedTuple, Union

from . import __version__
from .atomic import hidden_name, partial_prefix, write_json
from .audio import AUDIO_EXTENSIONS, AudioError, AudioInfo, OutputSpec, track_name
from .claims import Claimed, Owner
from .claims import acquire as acquire_claim
from .jobs import ReadAhead, separate_file
from .nistems import StemsSpec
from .settings import SeparationSettings

Spec = Union[OutputSpec, StemsSpec]  # each makes its own sink: spec.sink(outputs)

# Exit codes (documented in docs/batch.md).
EXIT_OK = 0             # every file done (or skipped as already done)
EXIT_SOME_FAILED = 1    # at least one file failed, at least one done or skipped
EXIT_USAGE = 2          # bad options, no inputs, colliding outputs, unusable model set
EXIT_ALL_FAILED = 3     # files failed and none was done or skipped
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM

DEFAULT_TEMPLATE = "{dir}/{track}/{stem}.{ext}"
STEM_FILE_TEMPLATE = "{dir}/{track}.{ext}"
TEMPLATE_FIELDS = ("dir", "track", "stem", "ext")
RECORD_VERSION = 2  # 2: settings in their own units (segment in seconds)
REPORT_VERSION = 2  # 2: settings in their own units, run_settings
STATUSES = ("done", "skipped", "failed", "not_run", "claimed")  # claimed: another process is on it


class PlanError(Exception):
    """The batch cannot run as asked (bad template, outputs that would collide)."""


@dataclass
class Job:
    """One input file, the files it should produce ({stem: path}) and its resume record."""

    input: Path
    track: str
    outputs: dict[str, Path]
    record: Path
    root: Path | None = None  # the output folder; empty folders below it are removed after a failure
    key: str = ""             # the input's path relative to the input it was found under (for --shard)


@dataclass
class Outcome:
    """What happened to one input: status is 'done', 'skipped', 'failed' or 'not_run'."""

    input: Path
    status: str
    reason: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)
    duration: float = 0.0       # seconds of audio
    seconds: float = 0.0        # processing time
    warnings: list[str] = field(default_factory=list)  # a done file's notes (clipping, a short file)


@dataclass
class Plan:
    """Jobs to run; inputs refused before any compute; inputs given more than once."""

    jobs: list[Job]
    refused: list[Outcome]
    duplicates: list[Path] = field(default_factory=list)


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    interrupted: bool = False
    settings: dict = field(default_factory=dict)


# -- output names -----------------------------------------------------------------------

class OutputTemplate:
    """Output paths relative to the output folder, e.g. ``{dir}/{track}/{stem}.{ext}``.

    Fields: ``dir`` (the input's folder relative to the folder given on the command
    line, empty for files given directly), ``track`` (file name without extension),
    ``stem`` and ``ext``. Only these fields, no format specs, no absolute paths, no '..'."""

    def __init__(self, text: str):
        self.text = text
        if not text.strip():
            raise PlanError("output template is empty")
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as error:
            raise PlanError(f"output template {text!r}: {error}") from None
        names = set()
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in TEMPLATE_FIELDS:
                raise PlanError(f"output template {text!r}: unknown field {{{name}}} "
                                f"(known: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)})")
            if spec or conversion:
                raise PlanError(f"output template {text!r}: fields take no format spec or conversion")
            names.add(name)
        if text.startswith(("/", "\\")) or (len(text) > 1 and text[1] == ":"):
            raise PlanError(f"output template {text!r} must be relative to the output folder")
        if "track" not in names:
            raise PlanError(f"output template {text!r} needs {{track}}, or every song writes the same file")
        self.fields = names
        self.format(dir="a/b", track="t", stem="vocals", ext="wav")  # raises on '..'

    def format(self, *, dir: str, track: str, stem: str, ext: str) -> PurePosixPath:
        """The relative output path; PlanError if it would leave the output folder."""
        text = self.text.format(dir=dir, track=track, stem=stem, ext=ext)
        parts = [part for part in text.replace("\\", "/").split("/") if part not in ("", ".")]
        if not parts or ".." in parts:
            raise PlanError(f"output path {text!r} escapes the output folder")
        return PurePosixPath(*parts)

    def record(self, *, dir: str, track: str, ext: str) -> PurePosixPath:
        """Where the resume record of a track goes: ``.stemcut.json`` beside the
        outputs for a template with ``{stem}``, else ``.<output name>.stemcut.json``."""
        if "stem" in self.fields:
            path = self.format(dir=dir, track=track, stem="stemcut", ext="json")
            return path.with_name(hidden_name(path.stem, path.suffix))
        path = self.format(dir=dir, track=track, stem="", ext=ext)
        return path.with_name(hidden_name(path.name, ".stemcut.json"))


# -- finding inputs ---------------------------------------------------------------------------

def find_audio_files(inputs: Iterable[os.PathLike | str], *, globs: Iterable[str] = (), recursive: bool = True,
                     exclude: Iterable[os.PathLike | str] = ()
                     ) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """((file, folder it was found under) pairs, (path, reason) for inputs that do
    not exist and folders that cannot be read).

    Folders are walked (recursively by default, following symbolic links but never
    a folder twice, so link loops end; hidden files and folders and ``exclude``d
    folders, such as the output folder, are skipped). In folders, files with an
    audio extension are taken, or with ``globs`` those matching any of them
    (relative path or name). Files named directly are kept whatever their extension."""
    globs = list(globs)
    excluded = {_identity(Path(path)) for path in exclude if Path(path).exists()}
    found: list[tuple[Path, Path]] = []
    problems: list[tuple[Path, str]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend((path, item) for path in _walk(item, globs, recursive, excluded, problems))
        elif item.exists() or item.is_symlink():
            found.append((item, item.parent))
        else:
            problems.append((item, "no such file or folder"))
    return found, problems


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _walk(top: Path, globs: list[str], recursive: bool, excluded: set[tuple[int, int]],
          problems: list[tuple[Path, str]]) -> Iterator[Path]:
    visited = {_identity(top)}

    def unreadable(error: OSError) -> None:
        problems.append((Path(error.filename or top), f"cannot read folder ({error.strerror or error})"))

    for folder, dirnames, filenames in os.walk(top, onerror=unreadable, followlinks=True):
        keep = []
        for name in sorted(dirnames):
            if name.startswith(".") or not recursive:
                continue
            try:
                identity = _identity(Path(folder, name))
            except OSError:
                continue  # a broken link to a folder
            if identity in visited or identity in excluded:
                continue  # a link loop, a folder seen through another link, or the output folder
            visited.add(identity)
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = Path(folder, name)
            if name.startswith("."):
                continue
            relative = PurePosixPath(path.relative_to(top).as_posix())
            if globs:
                if any(relative.match(pattern) or PurePosixPath(name).match(pattern) for pattern in globs):
                    yield path
            elif path.suffix.lower() in AUDIO_EXTENSIONS:
                yield path


# -- planning -------------------------------------------------------------------------------

def plan_jobs(inputs: Iterable[os.PathLike | str], output_dir: os.PathLike | str, stems: list[str],
              spec: Spec, *, template: str | None = None, globs: Iterable[str] = (),
              recursive: bool = True) -> Plan:
    """Map every input file to its outputs before any compute.

    Inputs that do not exist, or whose outputs would overwrite an input, are
    refused (failed outcomes); the same file given twice is planned once. Two
    inputs whose outputs (or resume records) would be the same file raise
    PlanError naming both: nothing runs until the template or inputs change."""
    output_dir = Path(output_dir)
    stem_file = spec.single_file
    layout = OutputTemplate(template or (STEM_FILE_TEMPLATE if stem_file else DEFAULT_TEMPLATE))
    names = ["stem.mp4"] if stem_file else list(stems)
    if len(names) > 1 and "stem" not in layout.fields:
        raise PlanError(f"output template {layout.text!r} needs {{stem}}: several stems are written per song")
    found, problems = find_audio_files(inputs, globs=globs, recursive=recursive, exclude=[output_dir])
    refused = [Outcome(path, "failed", reason) for path, reason in problems]
    planned: list[tuple[Path, Job]] = []
    duplicates: list[Path] = []
    seen: set[Path] = set()
    for path, base in found:
        resolved = _real(path)
        if resolved in seen:
            duplicates.append(path)
            continue
        seen.add(resolved)
        relative = path.parent.relative_to(base).as_posix() if path.parent != base else ""
        track = track_name(path)
        fields = {"dir": relative, "track": track, "ext": spec.extension}
        try:
            outputs = {name: output_dir / layout.format(stem=name if not stem_file else "stems", **fields)
                       for name in names}
            record = output_dir / layout.record(**fields)
        except PlanError as error:
            refused.append(Outcome(path, "failed", str(error)))
            continue
        key = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
        planned.append((resolved, Job(path, track, outputs, record, output_dir, key)))
    # Stems written beside their songs (output folder = input folder) are not songs to separate.
    output_of = {_real(out): resolved for resolved, job in planned for out in job.outputs.values()}
    planned = [(resolved, job) for resolved, job in planned if output_of.get(resolved, resolved) == resolved]
    inputs_resolved = {resolved for resolved, _ in planned}
    jobs: list[Job] = []
    claimed: dict[Path, Path] = {}
    collisions: list[str] = []
    for _, job in planned:
        path = job.input
        overwrite = next((out for out in job.outputs.values() if _real(out) in inputs_resolved), None)
        if overwrite is not None:
            refused.append(Outcome(path, "failed", f"output path {overwrite} would overwrite an input file"))
            continue
        for target in [*job.outputs.values(), job.record]:
            key = _real(target)
            owner = claimed.get(key)
            if owner is not None and owner != path:
                collisions.append(f"{owner} and {path} would both write {target}")
            claimed[key] = path
        jobs.append(job)
    if collisions:
        hint = "; put {dir} in --output-template or rename the inputs" if "dir" not in layout.fields else ""
        raise PlanError("outputs would collide: " + "; ".join(collisions) + hint)
    return Plan(jobs, refused, duplicates)


def _real(path: Path) -> Path:
    """The path with every link resolved as far as it goes; never raises (a link loop
    stays as it is, and the file fails alone when it is read)."""
    return Path(os.path.realpath(path))


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' (1 <= K <= N) -> (K, N); ValueError naming --shard otherwise."""
    index, sep, count = text.partition("/")
    try:
        k, n = int(index), int(count)
    except ValueError:
        k = n = 0
    if not sep or n < 1 or not 1 <= k <= n:
        raise ValueError(f"--shard takes K/N with 1 <= K <= N (e.g. 2/8), got {text!r}")
    return k, n


def in_shard(key: str, index: int, count: int) -> bool:
    """Whether the track with ``key`` belongs to shard ``index`` of ``count`` (1-based)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % count == index - 1


def shard(plan: Plan, index: int, count: int) -> Plan:
    """Shard ``index`` of ``count`` (1-based) of a plan: by a stable hash of each track's
    path relative to the input it was found under, so the same library splits the same
    way on every machine, whatever the order or the folder it is mounted at; shards 1..N
    together are exactly the whole plan (refused inputs go by their path as given)."""
    return Plan([job for job in plan.jobs if in_shard(job.key, index, count)],
                [o for o in plan.refused if in_shard(o.input.as_posix(), index, count)],
                [p for p in plan.duplicates if in_shard(p.as_posix(), index, count)])


# -- resume records -------------------------------------------------------------------------

def fingerprint_settings(models: dict[str, str], settings: SeparationSettings, spec: Spec,
                         stems: list[str]) -> dict:
    """Everything besides the input that decides what a track's outputs contain:
    the models' checksums, the settings that change the stems (in their own units),
    the output encoding and the stems asked for."""
    return {
        "models": dict(models),
        "separation": settings.fingerprint(),
        "output": spec.describe(),
        "stems": [] if spec.single_file else list(stems),
    }


def input_identity(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def fingerprint(settings: dict, job: Job) -> str:
    """sha256 of the settings, the input's size and mtime, and the output names."""
    data = {"settings": settings, "input": input_identity(job.input),
            "outputs": {name: path.name for name, path in job.outputs.items()}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def read_record(job: Job) -> dict | None:
    try:
        record = json.loads(job.record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_done(job: Job, settings: dict) -> dict | None:
    """The job's record if its outputs are complete and were made from this input
    with these settings; else None."""
    record = read_record(job)
    if record is None or record.get("fingerprint") != _safe_fingerprint(settings, job):
        return None
    sizes = record.get("outputs", {})
    for name, path in job.outputs.items():
        entry = sizes.get(name)
        try:
            if not isinstance(entry, dict) or path.stat().st_size != entry.get("bytes"):
                return None
        except OSError:
            return None
    return record


def _safe_fingerprint(settings: dict, job: Job) -> str | None:
    try:
        return fingerprint(settings, job)
    except OSError:
        return None


def write_record(job: Job, settings: dict, outcome: Outcome, identity: dict) -> None:
    """Write the job's record atomically (temp file + rename), after its outputs.
    ``identity`` is the input's size and mtime taken before it was read."""
    if input_identity(job.input) != identity:
        raise AudioError(job.input, "the file changed while it was being separated; run again")
    record = {
        "stemcut_record": RECORD_VERSION,
        "stemcut": __version__,
        "fingerprint": fingerprint(settings, job),
        "input": {"path": str(job.input), **identity},
        "settings": settings,
        "outputs": {name: {"file": path.name, "bytes": path.stat().st_size} for name, path in job.outputs.items()},
        "duration": outcome.duration,
        "finished": _now(),
    }
    write_json(job.record, record)


def remove_stale_partials(job: Job) -> list[Path]:
    """Delete temp files a killed run left for this job's outputs (``.<name>.*.partial``)."""
    removed = []
    for target in [*job.outputs.values(), job.record]:
        prefix = partial_prefix(target)
        try:
            entries = list(os.scandir(target.parent))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(".partial") and entry.is_file():
                try:
                    Path(entry.path).unlink(missing_ok=True)
                except OSError:
                    continue  # cannot remove it: writing the track will report the folder's problem
                removed.append(Path(entry.path))
    return removed


# -- running ------------------------------------------------------------------------------------

def run_jobs(separator, jobs: list[Job], spec: Spec, *, stems: list[str] | None = None, force: bool = False,
             on_start: Callable[[Job, AudioInfo], None] | None = None,
             on_progress: Callable[[int], None] | None = None,
             on_done: Callable[[Outcome], None] | None = None,
             fail_fast: bool = False) -> BatchResult:
    """Separate each job in turn, skipping those already done with the same settings
    (unless ``force``). A failing file is recorded and the batch goes on (or stops,
    with ``fail_fast``); on KeyboardInterrupt the file in progress is discarded and
    the result says ``interrupted``. Files never started are 'not_run'."""
    stems = list(stems if stems is not None else next(iter(jobs)).outputs) if jobs else []
    settings = fingerprint_settings(separator.model_ids, separator.settings, spec, stems)
    outcomes: list[Outcome] = []
    interrupted = False
    owner = Owner.me()
    ahead = _NextInput(settings, force)
    try:
        for index, job in enumerate(jobs):
            following = jobs[index + 1] if index + 1 < len(jobs) else None
            source = ahead.take(job)
            try:
                outcome = run_track(separator, job, spec, settings, force, on_start, on_progress, owner,
                                    source=source, on_separating=lambda: ahead.open(following))
            except KeyboardInterrupt:
                outcome = Outcome(job.input, "failed", "interrupted; partial outputs removed")
                interrupted = True
            finally:
                if source is not None:
                    source.reader.close()  # unused if the track was skipped, claimed or failed early
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
            if interrupted or (fail_fast and outcome.status == "failed"):
                why = "interrupted" if interrupted else "not run: --fail-fast stopped the batch"
                outcomes.extend(Outcome(rest.input, "not_run", why) for rest in jobs[index + 1:])
                break
    finally:
        ahead.close()
    return BatchResult(outcomes, interrupted, settings)


class Prefetched(NamedTuple):
    """A job's input opened ahead of its turn, and its size and mtime taken before that."""

    reader: ReadAhead
    identity: dict


class _NextInput:
    """The next track's input, opened and decoding a few blocks ahead while the current one
    computes: at most one file ahead, only for a track not already done. Nothing about the
    track is decided here: it is claimed, skipped or failed in its turn as before, and an
    input that cannot be read fails in its own turn (the read-ahead holds the error)."""

    def __init__(self, settings: dict, force: bool):
        self._settings, self._force = settings, force
        self._job: Job | None = None
        self._prefetched: Prefetched | None = None

    def open(self, job: Job | None) -> None:
        if job is None or job is self._job:
            return
        self.close()
        if not self._force and is_done(job, self._settings):
            return
        try:
            identity = input_identity(job.input)
        except OSError:
            return  # its own turn reports it
        self._job, self._prefetched = job, Prefetched(ReadAhead(job.input), identity)

    def take(self, job: Job) -> Prefetched | None:
        """The input opened ahead for ``job`` (the caller closes it), or None."""
        if job is not self._job:
            self.close()
            return None
        prefetched, self._job, self._prefetched = self._prefetched, None, None
        return prefetched

    def close(self) -> None:
        if self._prefetched is not None:
            self._prefetched.reader.close()
        self._job, self._prefetched = None, None


def run_track(separator, job: Job, spec: Spec, settings: dict, force: bool = False, on_start=None,
              on_progress=None, owner: Owner | None = None, *, source: Prefetched | None = None,
              on_separating: Callable[[], None] | None = None) -> Outcome:
    """One track: claimed (or left to the live process that holds it), then skipped if done
    with these settings, else separated; the claim is released at the end. ``source``: its
    input opened ahead (used only if the file is unchanged since); ``on_separating`` is
    called when the separation starts (the batch opens the next input then)."""
    started = time.perf_counter()

    def already_done() -> Outcome | None:
        record = None if force else is_done(job, settings)
        if record is None:
            return None
        return Outcome(job.input, "skipped", "already done with the same models and settings",
                       dict(job.outputs), float(record.get("duration", 0.0)), time.perf_counter() - started)

    created = folders_to_create(job)
    try:
        claim = acquire_claim(job.record, owner)
    except Claimed as busy:
        return Outcome(job.input, "claimed", str(busy), seconds=time.perf_counter() - started)
    except OSError as error:  # the output folder cannot be written: this track fails
        remove_created_folders(created)
        return Outcome(job.input, "failed", failure_reason(error), seconds=time.perf_counter() - started)
    outcome: Outcome | None = None
    try:
        remove_stale_partials(job)  # ours to clear now: we hold the track
        outcome = already_done() or _separate_claimed(separator, job, spec, settings, on_start, on_progress,
                                                      started, source, on_separating)
        return outcome
    finally:
        claim.release()
        if outcome is None or outcome.status == "failed":
            remove_created_folders(created)


def _separate_claimed(separator, job: Job, spec: Spec, settings: dict, on_start, on_progress,
                      started: float, source: Prefetched | None = None, on_separating=None) -> Outcome:
    from .audio import probe

    written: dict[str, Path] = {}
    try:
        job.record.unlink(missing_ok=True)
        info = probe(job.input)
        identity = input_identity(job.input)
        reader = source.reader if source is not None and source.identity == identity else None
        if on_start is not None:
            on_start(job, info)
        if on_separating is not None:
            on_separating()
        result = separate_file(separator, job.input, spec.sink(job.outputs), progress=on_progress, source=reader)
        written = dict(result.outputs)
        outcome = Outcome(job.input, "done", "", written, result.frames / result.sample_rate,
                          time.perf_counter() - started, warnings=list(result.warnings))
        if result.clipped_samples:
            outcome.warnings.append(f"{result.clipped_samples} samples clipped to [-1, 1]")
        outcome.reason = "; ".join(outcome.warnings)
        write_record(job, settings, outcome, identity)
        return outcome
    except BaseException as error:
        # A failed track leaves nothing behind: not the outputs this run finished before the
        # failure (the record, say, could not be written); its folders go once the claim is released.
        for path in written.values():
            path.unlink(missing_ok=True)
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return Outcome(job.input, "failed", failure_reason(error), seconds=time.perf_counter() - started)


def failure_reason(error: BaseException) -> str:
    """One line saying why a file failed."""
    if isinstance(error, AudioError):
        return error.reason
    if isinstance(error, MemoryError):
        return "out of memory (try a shorter --segment)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + (f": {error.filename}" if error.filename else "")
    text = f"{type(error).__name__}: {error}".strip()
    return text.splitlines()[0] if text else type(error).__name__


def folders_to_create(job: Job) -> list[Path]:
    """The folders below the output folder that writing ``job`` would create (none of them
    exists now), deepest first: the only ones a failure may remove again."""
    if job.root is None:
        return []
    root = _real(job.root)
    missing: list[Path] = []
    for target in [*job.outputs.values(), job.record]:
        folder = target.parent
        while not folder.exists() and _real(folder) != root and _real(folder).is_relative_to(root):
            if folder not in missing:
                missing.append(folder)
            folder = folder.parent
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def remove_created_folders(folders: list[Path]) -> None:
    """Remove those of ``folders`` (made by a failed job) that are empty; never any other."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            continue  # not empty, or not there


def exit_code(outcomes: list[Outcome], interrupted: bool = False) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    failed = sum(outcome.status == "failed" for outcome in outcomes)
    if not failed:
        return EXIT_OK
    succeeded = sum(outcome.status in ("done", "skipped", "claimed") for outcome in outcomes)
    return EXIT_SOME_FAILED if succeeded else EXIT_ALL_FAILED


# -- the report -----------------------------------------------------------------------------

def build_report(outcomes: list[Outcome], *, output_dir: os.PathLike | str, settings: dict | None,
                 started: datetime, interrupted: bool = False, run_settings: dict | None = None,
                 error: str | None = None) -> dict:
    """The machine-readable report (schema in docs/batch.md); ``error``: the usage error
    that stopped the command before any work (exit code 2)."""
    totals = {status: sum(o.status == status for o in outcomes) for status in STATUSES}
    return {
        "report_version": REPORT_VERSION,
        "stemcut": __version__,
        "started": started.isoformat(timespec="seconds"),
        "finished": _now(),
        "output_dir": str(output_dir),
        "settings": settings,
        "run_settings": run_settings,
        "interrupted": interrupted,
        "exit_code": EXIT_USAGE if error else exit_code(outcomes, interrupted),
        "error": error,
        "files": [{
            "input": str(o.input),
            "status": o.status,
            "reason": o.reason,
            "outputs": {name: str(path) for name, path in o.outputs.items()},
            "duration": round(o.duration, 3),
            "seconds": round(o.seconds, 3),
            "warnings": list(o.warnings),
        } for o in outcomes],
        "totals": {"files": len(outcomes), **totals,
                   "duration": round(sum(o.duration for o in outcomes), 3),
                   "seconds": round(sum(o.seconds for o in outcomes), 3)},
    }


# What a merged report keeps when workers report the same input differently: the most final word.
_PRECEDENCE = ("done", "skipped", "failed", "not_run", "claimed")


def merge_reports(reports: list[dict]) -> dict:
    """One report from the reports of workers that shared a batch (shards, processes on one
    output folder, machines): each input once with its most final status (done, then
    skipped, failed, not_run, claimed), totals and exit code recomputed honestly.
    ValueError if the reports ran with different models or settings."""
    if not reports:
        raise ValueError("no reports to merge")
    settings = [r.get("settings") for r in reports if r.get("settings")]
    if any(other != settings[0] for other in settings[1:]):
        raise ValueError("the reports ran with different models or settings: they are not one batch")
    files: dict[str, dict] = {}
    for report in reports:
        for entry in report.get("files", []):
            known = files.get(entry["input"])
            if known is None or _PRECEDENCE.index(entry["status"]) < _PRECEDENCE.index(known["status"]):
                files[entry["input"]] = entry
    entries = list(files.values())
    outcomes = [Outcome(Path(e["input"]), e["status"], e.get("reason", ""), duration=e.get("duration", 0.0),
                        seconds=e.get("seconds", 0.0)) for e in entries]
    interrupted = any(r.get("interrupted") for r in reports)
    errors = [r["error"] for r in reports if r.get("error")]
    totals = {status: sum(o.status == status for o in outcomes) for status in STATUSES}
    return {
        "report_version": REPORT_VERSION,
        "stemcut": __version__,
        "started": min(r["started"] for r in reports),
        "finished": max(r["finished"] for r in reports),
        "output_dir": reports[0].get("output_dir"),
        "settings": settings[0] if settings else None,
        "run_settings": next((r.get("run_settings") for r in reports if r.get("run_settings")), None),
        "interrupted": interrupted,
        "exit_code": EXIT_USAGE if errors and not entries else exit_code(outcomes, interrupted),
        "error": "; ".join(errors) or None,
        "files": entries,
        "totals": {"files": len(outcomes), **totals,
                   "duration": round(sum(o.duration for o in outcomes), 3),
                   "seconds": round(sum(o.seconds for o in outcomes), 3)},
        "merged_from": len(reports),
    }


def write_report(report: dict, destination: str) -> None:
    """Write the report to a file (atomically) or, for '-', to stdout."""
    if destination == "-":
        import sys

        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
        return
    write_json(Path(destination), report)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
