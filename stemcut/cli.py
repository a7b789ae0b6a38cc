"""The ``stemcut`` command: parses options, reports progress; the work is in the library.

Nothing heavy is imported at module level, so ``stemcut --help`` does not load torch.
Messages go to stderr; results (the paths written) go to stdout, one per line.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from . import __version__
from .targets import KARAOKE_STEM, MIXTURE, TARGETS, complement_name

app = typer.Typer(
    name="stemcut",
    help="Split songs into vocals, drums, bass, guitar and other stems.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

OUTPUT = "Output"
MODEL = "Model"
PROCESSING = "Processing"
DEVICE = "Device"
MESSAGES = "Messages"
SCALE = "Many processes and machines"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stemcut {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Split songs into vocals, drums, bass, guitar and other stems."""


class UsageError(typer.Exit):
    """A usage error (exit 2) that remembers its message, for the JSON report."""

    def __init__(self, message: str):
        from .batch import EXIT_USAGE

        super().__init__(EXIT_USAGE)
        self.message = message


def _fail_usage(message: str) -> None:
    typer.echo(f"stemcut: error: {message}", err=True)
    raise UsageError(message)


def _parse_stems(stems: Optional[str], karaoke: bool, two_stems: Optional[str]) -> list[str]:
    if sum(bool(x) for x in (stems is not None, karaoke, two_stems is not None)) > 1:
        _fail_usage("--stems, --karaoke and --two-stems each choose the outputs: give one of them")
    if karaoke:
        return ["vocals", KARAOKE_STEM]
    if two_stems is not None:
        stem = two_stems.strip().lower()
        if stem not in TARGETS:
            _fail_usage(f"--two-stems takes one of {', '.join(TARGETS)}, got {two_stems!r}")
        return [stem, complement_name(stem)]
    if stems is None:
        return list(TARGETS)
    known = TARGETS + (KARAOKE_STEM,) + tuple(complement_name(t) for t in TARGETS)
    chosen = [name.strip().lower() for name in stems.split(",") if name.strip()]
    if not chosen:
        _fail_usage(f"--stems selects no stem; give a comma-separated list of {', '.join(TARGETS + (KARAOKE_STEM,))}")
    unknown = [name for name in chosen if name not in known]
    if unknown:
        _fail_usage(f"--stems: unknown stem(s) {', '.join(unknown)}; choose from {', '.join(TARGETS + (KARAOKE_STEM,))} "
                    "or no_<stem>")
    return list(dict.fromkeys(chosen))


def _output_spec(fmt: str, bit_depth: int, bitrate: Optional[int], stem_mapping: Optional[str], stems: Optional[str],
                 karaoke: bool):
    """OutputSpec for wav/flac/ogg/mp3, StemsSpec for stem.mp4 (usage error if invalid)."""
    fmt = fmt.lower().lstrip(".")
    try:
        if fmt == "stem.mp4":
            from .nistems import DEFAULT_BITRATE, StemsSpec, parse_stem_mapping

            if karaoke or stems:
                _fail_usage("--format stem.mp4 always holds the mixture and four stems; "
                            "use --stem-mapping instead of --stems/--karaoke/--two-stems")
            return StemsSpec(parse_stem_mapping(stem_mapping), bitrate or DEFAULT_BITRATE)
        if stem_mapping:
            _fail_usage("--stem-mapping only applies to --format stem.mp4")
        from .audio import OutputSpec

        return OutputSpec(format=fmt, bit_depth=bit_depth, bitrate=bitrate or 320)
    except ValueError as error:
        _fail_usage(str(error))


@app.command()
def separate(
    inputs: List[Path] = typer.Argument(..., help="Audio files or folders (walked recursively).", show_default=False,
                                        readable=False),  # checked per file: one unreadable file fails alone
    output: Path = typer.Option(Path("separated"), "-o", "--output", rich_help_panel=OUTPUT,
                                help="Output folder; stems go to OUTPUT/<folder>/<track>/<stem>.<ext>, "
                                     "<folder> mirroring where the file sat under a folder given."),
    output_template: Optional[str] = typer.Option(
        None, "--output-template", rich_help_panel=OUTPUT,
        help="Output paths under OUTPUT, with the fields {dir} {track} {stem} {ext} "
             "\\[default: {dir}/{track}/{stem}.{ext}; stem.mp4: {dir}/{track}.{ext}]."),
    stems: Optional[str] = typer.Option(None, "--stems", rich_help_panel=OUTPUT,
                                        help="Comma-separated subset, e.g. vocals,drums \\[default: all five]."),
    karaoke: bool = typer.Option(False, "--karaoke", rich_help_panel=OUTPUT,
                                 help="Write vocals and instrumental (mixture minus vocals) per song."),
    two_stems: Optional[str] = typer.Option(None, "--two-stems", rich_help_panel=OUTPUT, metavar="STEM",
                                            help="Write STEM and no_STEM (the mixture minus STEM, sample-exact)."),
    fmt: str = typer.Option("wav", "--format", rich_help_panel=OUTPUT,
                            help="wav, flac, ogg, mp3, or stem.mp4 (one NI Stems file per song)."),
    bit_depth: int = typer.Option(16, "--bit-depth", rich_help_panel=OUTPUT,
                                  help="WAV: 16, 24 or 32 (float, never clips); FLAC: 16 or 24."),
    bitrate: Optional[int] = typer.Option(None, "--bitrate", rich_help_panel=OUTPUT, show_default=False,
                                          help="MP3: kbit/s, 32-320 \\[default: 320]; stem.mp4: AAC kbit/s per "
                                               "track, 32-512 \\[default: 256]."),
    stem_mapping: Optional[str] = typer.Option(
        None, "--stem-mapping", rich_help_panel=OUTPUT,
        help="stem.mp4: four NI stems as label=stem+stem, in NI order "
             "\\[default: drums=drums,bass=bass,other=other+guitar,vocals=vocals]."),
    globs: Optional[List[str]] = typer.Option(None, "--glob", rich_help_panel=OUTPUT,
                                              help="In folders, take only files matching this pattern "
                                                   "(e.g. '*.flac'); repeatable \\[default: audio extensions]."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", rich_help_panel=OUTPUT,
                                   help="Walk sub-folders of folders given."),
    force: bool = typer.Option(False, "--force", rich_help_panel=OUTPUT,
                               help="Redo tracks already done with the same models and settings."),
    shard_text: Optional[str] = typer.Option(None, "--shard", rich_help_panel=SCALE, metavar="K/N",
                                             help="Only shard K of N of the tracks (a stable hash of each path "
                                                  "under its input folder): for job arrays."),
    dask: Optional[str] = typer.Option(None, "--dask", rich_help_panel=SCALE, metavar="ADDRESS",
                                       help="Run one task per track on a Dask cluster (scheduler address, or "
                                            "local:N for N local worker processes); needs stemcut[dask]."),
    json_report: Optional[str] = typer.Option(None, "--json", rich_help_panel=OUTPUT, metavar="PATH",
                                              help="Write a JSON report of every file to PATH ('-': stdout, "
                                                   "and no path lines there)."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", rich_help_panel=MODEL,
                                             help="Model set folder (manifest.json + weights) \\[default: shipped weights/]."),
    segment: float = typer.Option(10.0, "--segment", rich_help_panel=PROCESSING,
                                  help="Seconds of audio the models see at once; memory grows with it."),
    overlap: float = typer.Option(0.1, "--overlap", rich_help_panel=PROCESSING,
                                  help="Cross-fade between segments, as a fraction of a segment (0-0.5)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", rich_help_panel=PROCESSING,
                                             help="Segments run through the models at once \\[default: 1 on "
                                                  "the CPU, 16 on a GPU]."),
    wiener: bool = typer.Option(False, "--wiener/--no-wiener", rich_help_panel=PROCESSING,
                                help="Multichannel Wiener post-filter (norbert's algorithm), all stems jointly."),
    wiener_iterations: int = typer.Option(1, "--wiener-iterations", rich_help_panel=PROCESSING,
                                          help="EM iterations of the Wiener filter."),
    device: str = typer.Option("auto", "--device", rich_help_panel=DEVICE, help="auto, cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, "--threads", rich_help_panel=DEVICE,
                                          help="CPU worker threads for the models \\[default: torch's choice]."),
    fail_fast: bool = typer.Option(False, "--fail-fast", rich_help_panel=MESSAGES,
                                   help="Stop at the first file that fails."),
    quiet: bool = typer.Option(False, "-q", "--quiet", rich_help_panel=MESSAGES, help="Only errors on stderr."),
    verbose: bool = typer.Option(False, "-v", "--verbose", rich_help_panel=MESSAGES, help="More detail on stderr."),
) -> None:
    """Separate audio files, or every audio file in folders, into stems.

    Tracks already done with the same models and settings are skipped. Exit codes:
    0 all done or skipped, 1 some failed, 2 usage error, 3 all failed, 130 interrupted."""
    from datetime import datetime, timezone

    started = datetime.now(timezone.utc)
    with _usage_errors_reported(json_report, output, started):
        from .batch import (EXIT_INTERRUPTED, PlanError, build_report, exit_code, parse_shard, plan_jobs, run_jobs,
                            shard, write_report)
        from .reporting import Reporter

        try:
            shard_of = parse_shard(shard_text) if shard_text else None
        except ValueError as error:
            _fail_usage(str(error))
        separation = _settings(segment=segment, overlap=overlap, batch_size=batch_size, wiener=wiener,
                               wiener_iterations=wiener_iterations, device=device, threads=threads)
        chosen = _parse_stems(stems, karaoke, two_stems)
        spec = _output_spec(fmt, bit_depth, bitrate, stem_mapping, stems or two_stems, karaoke)
        try:
            plan = plan_jobs(inputs, output, chosen, spec, template=output_template, globs=globs or (),
                             recursive=recursive)
        except PlanError as error:
            _fail_usage(str(error))
        if shard_of is not None:
            plan = shard(plan, *shard_of)
        reporter = Reporter(quiet=quiet, verbose=verbose, paths_to_stdout=json_report != "-")
        for path in plan.duplicates:
            reporter.note(f"{path}: given more than once; separated once")
        if not plan.jobs and not plan.refused and shard_of is None:
            _fail_usage("no audio files found in the given inputs")

        try:
            separator = _load_separator(model_dir, separation) if plan.jobs else None
        except KeyboardInterrupt:
            reporter.error("interrupted while loading the models; nothing was separated")
            raise typer.Exit(EXIT_INTERRUPTED)
        if separator is not None:
            needed = [name for group in spec.sink(plan.jobs[0].outputs).sources for name in group
                      if name != MIXTURE]
            unavailable = set(needed) - set(separator.available_outputs())
            if unavailable:
                _fail_usage(f"this model set cannot produce {', '.join(sorted(unavailable))}")
            reporter.info(f"{len(plan.jobs)} file(s), models from {separator.model_dir}, device {separator.device}, "
                          f"Wiener {'on (' + str(wiener_iterations) + ' it.)' if wiener else 'off'}")
        for outcome in plan.refused:
            reporter.failed_line(outcome.input, outcome.reason)

        with _sigterm_as_interrupt():
            outcomes, interrupted, fingerprint = list(plan.refused), False, None
            if separator is not None:
                try:
                    output.mkdir(parents=True, exist_ok=True)
                except OSError as error:
                    _fail_usage(f"cannot use the output folder {output} ({error.strerror or error})")
                with reporter.progress() as progress:
                    if dask:
                        from .distributed import run_on_dask

                        result = run_on_dask(dask, plan.jobs, spec, model_dir=model_dir, settings=separation,
                                             stems=chosen, force=force, on_done=progress.done)
                    else:
                        result = run_jobs(separator, plan.jobs, spec, stems=chosen, force=force,
                                          on_start=progress.start, on_progress=progress.advance,
                                          on_done=progress.done, fail_fast=fail_fast)
                outcomes += result.outcomes
                interrupted, fingerprint = result.interrupted, result.settings
            if interrupted:
                reporter.error("interrupted: the file in progress was discarded; rerun the same command to finish")
            reporter.summary(outcomes)
            if json_report:
                report = build_report(outcomes, output_dir=output, settings=fingerprint, started=started,
                                      interrupted=interrupted, run_settings=separator.settings.describe()
                                      if separator is not None else None)
                try:
                    write_report(report, json_report)
                except OSError as error:
                    reporter.error(f"{json_report}: cannot write the report ({error.strerror or error})")
        raise typer.Exit(exit_code(outcomes, interrupted))


@contextmanager
def _usage_errors_reported(json_report: Optional[str], output: Path, started) -> Iterator[None]:
    """The JSON report is written whenever it is asked for: on a usage error too (exit 2, no files)."""
    from .batch import build_report, write_report

    try:
        yield
    except UsageError as error:
        if json_report:
            report = build_report([], output_dir=output, settings=None, started=started, error=error.message)
            try:
                write_report(report, json_report)
            except OSError as problem:
                typer.echo(f"stemcut: error: {json_report}: cannot write the report ({problem.strerror or problem})",
                           err=True)
        raise


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (as Ctrl-C does), so the file in progress is
    cleaned up the same way; restored afterwards."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. an embedding app): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _settings(**options):
    """SeparationSettings from the command's options (usage error naming the option if one is out of range)."""
    from .settings import SeparationSettings, SettingsError

    try:
        return SeparationSettings(**options)
    except SettingsError as error:
        _fail_usage(str(error))


def _load_separator(model_dir: Optional[Path], settings):
    from .separator import Separator
    from .weights import ModelError

    try:
        return Separator(model_dir, settings)
    except (ModelError, ValueError) as error:
        _fail_usage(str(error))


@app.command("eval")
def evaluate_command(
    reference_dir: Path = typer.Argument(..., help="Folder of tracks: REFERENCE_DIR/<track>/<stem>.wav|flac|ogg.",
                                         show_default=False),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", rich_help_panel=MODEL,
                                             help="Model set to score \\[default: shipped weights/]."),
    oracle: bool = typer.Option(False, "--oracle", rich_help_panel=MODEL,
                                help="Score the ideal ratio mask (the ceiling) instead of the models."),
    museval: Optional[bool] = typer.Option(None, "--museval/--no-museval", rich_help_panel=OUTPUT,
                                           help="Also BSSEval v4 SDR (slow) \\[default: on if museval is installed]."),
    tracks: Optional[str] = typer.Option(None, "--tracks", rich_help_panel=OUTPUT,
                                         help="Comma-separated track folder names \\[default: all]."),
    json_path: Optional[str] = typer.Option(None, "--json", rich_help_panel=OUTPUT, metavar="PATH",
                                            help="Write the full report (per track too) to PATH ('-': stdout)."),
    segment: float = typer.Option(10.0, "--segment", rich_help_panel=PROCESSING, help="As for separate."),
    overlap: float = typer.Option(0.1, "--overlap", rich_help_panel=PROCESSING, help="As for separate."),
    wiener: bool = typer.Option(False, "--wiener/--no-wiener", rich_help_panel=PROCESSING, help="As for separate."),
    wiener_iterations: int = typer.Option(1, "--wiener-iterations", rich_help_panel=PROCESSING,
                                          help="As for separate."),
    device: str = typer.Option("auto", "--device", rich_help_panel=DEVICE, help="auto, cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, "--threads", rich_help_panel=DEVICE, help="CPU threads."),
    quiet: bool = typer.Option(False, "-q", "--quiet", rich_help_panel=MESSAGES, help="No per-track lines."),
) -> None:
    """Score a model set on reference multitracks: SDR per target, as a table and JSON.

    Guitar is folded into other on tracks whose reference has no guitar stem."""
    from rich.console import Console
    from rich.table import Table

    from .evaluation import evaluate, museval_available

    if museval and not museval_available():
        _fail_usage("museval is not installed: pip install 'stemcut[eval]' (or run with --no-museval)")
    use_museval = museval_available() if museval is None else museval
    settings = _settings(segment=segment, overlap=overlap, wiener=wiener, wiener_iterations=wiener_iterations,
                         device=device, threads=threads)
    separator = None if oracle else _load_separator(model_dir, settings)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)

    def show(track: str, score) -> None:
        if not quiet:
            values = "  ".join(f"{t} {v:.2f}" for t, v in score.global_sdr.items())
            errors.print(f"{track}: global SDR {values}")

    try:
        report = evaluate(reference_dir, separator, oracle=oracle, museval=use_museval,
                          tracks=[t.strip() for t in tracks.split(",")] if tracks else None, progress=show)
    except (FileNotFoundError, ValueError) as error:
        _fail_usage(str(error))
    if json_path == "-":
        typer.echo(report.to_json())
    else:
        if json_path:
            Path(json_path).write_text(report.to_json() + "\n")
        header, *rows = report.table_rows()
        table = Table(title=f"{report.method}: {reference_dir} ({len(report.tracks)} tracks)")
        for column in header:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        Console().print(table)


@app.command("merge-reports")
def merge_reports_command(
    reports: List[Path] = typer.Argument(..., help="JSON reports of the workers of one batch (--json).",
                                         show_default=False),
    output: str = typer.Option("-", "-o", "--output", help="Where the merged report goes ('-': stdout)."),
) -> None:
    """Merge the JSON reports of workers that shared a batch into one (same schema, honest totals).

    Each input appears once with its most final status; the exit code is the merged batch's."""
    import json

    from .batch import merge_reports, write_report

    loaded = []
    for path in reports:
        try:
            loaded.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            _fail_usage(f"{path}: not a readable JSON report ({getattr(error, 'strerror', None) or error})")
    try:
        merged = merge_reports(loaded)
    except (ValueError, KeyError) as error:
        _fail_usage(f"cannot merge: {error}")
    write_report(merged, output)
    raise typer.Exit(merged["exit_code"])


@app.command()
def models(
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Model set folder \\[default: shipped weights/]."),
) -> None:
    """List the models in a model set and what they are."""
    from rich.console import Console
    from rich.table import Table

    from .weights import ModelError, default_model_dir, model_specs, read_manifest

    folder = model_dir or default_model_dir()
    try:
        manifest = read_manifest(folder)
        specs = model_specs(folder)
    except ModelError as error:
        _fail_usage(str(error))
    table = Table(title=f"{manifest.get('name', 'models')} ({folder})")
    for column in ("target", "architecture", "parameters", "size", "rate / STFT", "trained", "SDR (dB)"):
        table.add_column(column)
    for spec in specs:
        size = spec.path.stat().st_size / 2**20 if spec.path.exists() else 0.0
        params = spec.training.get("parameters", "")
        trained = "untrained (random)" if "untrained" in spec.training else spec.training.get("summary", "yes")
        sdr = spec.quality.get("sdr", "")
        table.add_row(spec.target, spec.arch, str(params), f"{size:.1f} MiB",
                      f"{spec.sample_rate} Hz / {spec.n_fft}:{spec.hop}", str(trained), str(sdr))
    Console().print(table)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
