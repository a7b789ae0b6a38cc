"""What the CLI tells a person: progress and one-line errors on stderr, paths on stdout.

On a terminal, a rich progress bar per file; otherwise nothing animated, just one
line per finished file, so logs of batch jobs stay readable. stdout carries only
the output files of done and skipped tracks, one per line (nothing at all when the
JSON report goes to stdout).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


# Control characters in file names would break the one-line-per-file rule on stderr.
_VISIBLE = {code: f"\\x{code:02x}" for code in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def shown(path: Path | str) -> str:
    """A path as stderr shows it: control characters (a newline in a name) escaped."""
    return str(path).translate(_VISIBLE)


class Reporter:
    def __init__(self, quiet: bool = False, verbose: bool = False, paths_to_stdout: bool = True):
        self.quiet = quiet
        self.verbose = verbose
        self.paths_to_stdout = paths_to_stdout
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.interactive = self.console.is_terminal and not quiet
        self.started = time.perf_counter()

    def info(self, message: str) -> None:
        if self.verbose and not self.quiet:
            self.console.print(escape(message))

    def note(self, message: str) -> None:
        """A message shown unless --quiet."""
        if not self.quiet:
            self.console.print(escape(message))

    def error(self, message: str) -> None:
        self.console.print(f"stemcut: {escape(message)}", style="red" if self.interactive else None)

    def warning(self, message: str) -> None:
        """Shown even with --quiet: a file was done, but not all is as it should be."""
        self.console.print(f"stemcut: warning: {escape(message)}", style="yellow" if self.interactive else None)

    def failed_line(self, path: Path | str, reason: str) -> None:
        self.error(f"{shown(path)}: {reason}")

    @contextmanager
    def progress(self) -> Iterator["FileProgress"]:
        if not self.interactive:
            yield FileProgress(self, None)
            return
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                   TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=True) as bar:
            yield FileProgress(self, bar)

    def summary(self, outcomes) -> None:
        if self.quiet:
            return
        counts = {status: sum(o.status == status for o in outcomes)
                  for status in ("done", "skipped", "failed", "not_run", "claimed")}
        audio = sum(o.duration for o in outcomes if o.status == "done")
        elapsed = time.perf_counter() - self.started
        not_run = f", {counts['not_run']} not run" if counts["not_run"] else ""
        not_run += f", {counts['claimed']} left to other stemcut processes" if counts["claimed"] else ""
        self.console.print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed{not_run} "
                           f"({audio:.1f} s of audio in {elapsed:.1f} s)")


class FileProgress:
    """Callbacks for :func:`stemcut.batch.run_jobs`."""

    def __init__(self, reporter: Reporter, bar: Progress | None):
        self.reporter = reporter
        self.bar = bar
        self.task = None

    def start(self, job, info) -> None:
        if self.bar is not None:
            total = max(info.frames, 1)
            self.task = self.bar.add_task(escape(shown(job.input.name)), total=total)

    def advance(self, frames: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task, frames)

    def done(self, outcome) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
        if outcome.status == "failed":
            self.reporter.failed_line(outcome.input, outcome.reason)
            return
        if outcome.status == "not_run":
            return
        if outcome.status == "claimed":
            if self.reporter.verbose and not self.reporter.quiet:
                self.reporter.console.print(f"claimed: {escape(shown(outcome.input))} ({escape(outcome.reason)})")
            return
        if self.reporter.paths_to_stdout:
            for path in outcome.outputs.values():
                print(path, file=sys.stdout, flush=True)
        for warning in getattr(outcome, "warnings", []):
            self.reporter.warning(f"{shown(outcome.input)}: {warning}")
        if not self.reporter.quiet:
            note = f" ({outcome.reason})" if outcome.reason and not getattr(outcome, "warnings", []) else ""
            speed = f" {outcome.duration:.1f} s of audio in {outcome.seconds:.1f} s" if outcome.status == "done" else ""
            self.reporter.console.print(f"{outcome.status}: {escape(shown(outcome.input))}{speed}{escape(note)}")
