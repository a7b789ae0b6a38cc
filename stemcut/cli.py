"""The ``stemcut`` command: parses options, reports progress; the work is in the library.

Nothing heavy is imported at module level, so ``stemcut --help`` does not load torch.
Messages go to stderr; results (the paths written) go to stdout, one per line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import __version__
from .targets import KARAOKE_STEM, TARGETS

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


def _fail_usage(message: str) -> None:
    from .batch import EXIT_USAGE

    typer.echo(f"stemcut: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _parse_stems(stems: Optional[str], karaoke: bool) -> list[str]:
    if karaoke:
        return ["vocals", KARAOKE_STEM]
    if not stems:
        return list(TARGETS)
    chosen = [name.strip().lower() for name in stems.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in TARGETS + (KARAOKE_STEM,)]
    if unknown:
        _fail_usage(f"unknown stem(s) {', '.join(unknown)}; choose from {', '.join(TARGETS + (KARAOKE_STEM,))}")
    return list(dict.fromkeys(chosen))


@app.command()
def separate(
    inputs: List[Path] = typer.Argument(..., help="Audio files or folders (walked recursively).", show_default=False),
    output: Path = typer.Option(Path("separated"), "-o", "--output", rich_help_panel=OUTPUT,
                                help="Output folder; stems go to OUTPUT/<track>/<stem>.<ext>."),
    stems: Optional[str] = typer.Option(None, "--stems", rich_help_panel=OUTPUT,
                                        help="Comma-separated subset, e.g. vocals,drums \\[default: all five]."),
    karaoke: bool = typer.Option(False, "--karaoke", rich_help_panel=OUTPUT,
                                 help="Write vocals and instrumental (mixture minus vocals)."),
    fmt: str = typer.Option("wav", "--format", rich_help_panel=OUTPUT, help="wav, flac, ogg or mp3."),
    bit_depth: int = typer.Option(16, "--bit-depth", rich_help_panel=OUTPUT,
                                  help="WAV: 16, 24 or 32 (float, never clips); FLAC: 16 or 24."),
    bitrate: int = typer.Option(320, "--bitrate", rich_help_panel=OUTPUT, help="MP3 bitrate in kbit/s (32-320)."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", rich_help_panel=MODEL,
                                             help="Model set folder (manifest.json + weights) \\[default: shipped weights/]."),
    segment: float = typer.Option(20.0, "--segment", rich_help_panel=PROCESSING,
                                  help="Seconds of audio the models see at once; memory grows with it."),
    overlap: float = typer.Option(0.1, "--overlap", rich_help_panel=PROCESSING,
                                  help="Cross-fade between segments, as a fraction of a segment (0-0.5)."),
    batch_size: int = typer.Option(1, "--batch-size", rich_help_panel=PROCESSING,
                                   help="Segments run through the models at once."),
    wiener: bool = typer.Option(False, "--wiener/--no-wiener", rich_help_panel=PROCESSING,
                                help="Multichannel Wiener post-filter (norbert), all stems jointly."),
    wiener_iterations: int = typer.Option(1, "--wiener-iterations", rich_help_panel=PROCESSING,
                                          help="EM iterations of the Wiener filter."),
    device: str = typer.Option("auto", "--device", rich_help_panel=DEVICE, help="auto, cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, "--threads", rich_help_panel=DEVICE,
                                          help="CPU threads for the models \\[default: torch's choice]."),
    fail_fast: bool = typer.Option(False, "--fail-fast", rich_help_panel=MESSAGES,
                                   help="Stop at the first file that fails."),
    quiet: bool = typer.Option(False, "-q", "--quiet", rich_help_panel=MESSAGES, help="Only errors on stderr."),
    verbose: bool = typer.Option(False, "-v", "--verbose", rich_help_panel=MESSAGES, help="More detail on stderr."),
) -> None:
    """Separate audio files into stems."""
    from .audio import OutputSpec
    from .batch import EXIT_INTERRUPTED, exit_code, plan_jobs
    from .reporting import Reporter

    chosen = _parse_stems(stems, karaoke)
    try:
        spec = OutputSpec(format=fmt.lower(), bit_depth=bit_depth, bitrate=bitrate)
    except ValueError as error:
        _fail_usage(str(error))
    missing = [str(path) for path in inputs if not path.exists()]
    jobs, refused = plan_jobs([path for path in inputs if path.exists()], output, chosen, spec)
    reporter = Reporter(quiet=quiet, verbose=verbose)
    for path in missing:
        reporter.failed_line(path, "no such file or folder")
    for outcome in refused:
        reporter.failed_line(outcome.input, outcome.reason)
    if not jobs:
        if not refused and not missing:
            _fail_usage("no audio files found in the given inputs")
        raise typer.Exit(exit_code([*refused] or [_missing_outcome(missing[0])]))

    separator = _load_separator(model_dir, device, wiener, wiener_iterations, segment, overlap, batch_size, threads)
    unavailable = set(chosen) - set(separator.available_outputs())
    if unavailable:
        _fail_usage(f"this model set cannot produce {', '.join(sorted(unavailable))}")
    reporter.info(f"{len(jobs)} file(s), models from {separator.model_dir}, device {separator.device}, "
                  f"Wiener {'on (' + str(wiener_iterations) + ' it.)' if wiener else 'off'}")
    from .batch import run_jobs

    try:
        with reporter.progress() as progress:
            outcomes = run_jobs(separator, jobs, spec, on_start=progress.start, on_progress=progress.advance,
                                on_done=progress.done, fail_fast=fail_fast)
    except KeyboardInterrupt:
        reporter.error("interrupted: the file in progress was discarded")
        raise typer.Exit(EXIT_INTERRUPTED)
    outcomes = [*refused, *outcomes] + [_missing_outcome(path) for path in missing]
    reporter.summary(outcomes)
    raise typer.Exit(exit_code(outcomes))


def _missing_outcome(path: str):
    from .batch import Outcome

    return Outcome(Path(path), "failed", "no such file or folder")


def _load_separator(model_dir, device, wiener, wiener_iterations, segment, overlap, batch_size, threads):
    from .separator import Separator
    from .weights import ModelError

    try:
        return Separator(model_dir, device=device, wiener=wiener, wiener_iterations=wiener_iterations,
                         segment=segment, overlap=overlap, batch_size=batch_size, threads=threads)
    except (ModelError, ValueError) as error:
        _fail_usage(str(error))


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
