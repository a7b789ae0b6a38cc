#!/usr/bin/env python
"""Build the training corpus into one folder outside the repository, resumably.

Example:
    STEMCUT_DATA=/work/shared/data python scripts/prepare_data.py --out /work/corpus
    python scripts/prepare_data.py --list
    python scripts/prepare_data.py --out /work/corpus --sources fof-muldjord,freedoom
    STEMCUT_SNAPSHOTS=/work/.mirror python scripts/prepare_data.py --out /work/corpus --sources karoryfer-guitars,drumgizmo-muldjord
    python scripts/prepare_data.py --out /work/corpus --sources renders-freedoom --render-variants 4 --force

Debian packages are fetched with ``apt-get download`` into ``<out>/.downloads`` and
unpacked with ``dpkg -x`` (nothing is installed). Sources already built and recorded in
``<out>/corpus.json`` are skipped; a source that cannot be had here is skipped with a
one-line note. See ``stemcut/training/corpus.py`` for the manifest.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from stemcut.training.corpus import DATA_ENV, MANIFEST, OUT_ENV, build_corpus, load_manifest
from stemcut.training.corpus_sources import SOURCES, select_sources


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=os.environ.get(OUT_ENV) or None,
                        help=f"corpus folder (default: ${OUT_ENV})")
    parser.add_argument("--data-root", type=Path, default=os.environ.get(DATA_ENV) or None,
                        help=f"the shared real data, recorded by reference (default: ${DATA_ENV})")
    parser.add_argument("--sources", help="comma-separated source names (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="list the sources (with their state in --out when it has a manifest) and exit")
    parser.add_argument("--force", action="store_true", help="rebuild sources that are already built")
    renders = parser.add_argument_group("renders-* sources (each overrides its $STEMCUT_RENDER_* variable)")
    renders.add_argument("--render-variants", type=int, help="renders per MIDI arrangement ($STEMCUT_RENDER_VARIANTS, default 1)")
    renders.add_argument("--render-songs", type=int, help="at most this many songs per set ($STEMCUT_RENDER_SONGS)")
    renders.add_argument("--render-seconds", type=float, help="excerpt of at most this many seconds per song ($STEMCUT_RENDER_SECONDS)")
    renders.add_argument("--render-minutes", type=float, help="stop starting songs after this wall time per set ($STEMCUT_RENDER_MINUTES)")
    renders.add_argument("--render-commercial", action="store_true", help="commercial-clean ingredients only ($STEMCUT_RENDER_COMMERCIAL=1)")
    return parser


def _render_environment(args: argparse.Namespace) -> None:
    """Pass the --render-* options to the render sources through their environment variables."""
    for name in ("variants", "songs", "seconds", "minutes"):
        value = getattr(args, f"render_{name}")
        if value is not None:
            os.environ[f"STEMCUT_RENDER_{name.upper()}"] = str(value)
    if args.render_commercial:
        os.environ["STEMCUT_RENDER_COMMERCIAL"] = "1"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        manifest = load_manifest(args.out) if args.out and (args.out / MANIFEST).exists() else None
        for source in SOURCES:
            packages = f" [{', '.join(source.packages)}]" if source.packages else ""
            status = ""
            if manifest is not None:
                status = "built" if source.name in manifest["sources"] else "skipped" if source.name in manifest["skipped"] else "-"
                status = f"{status:8s}"
            print(f"{source.name:28s} {status}{source.kind:9s} {source.summary}{packages}")
        return 0
    if args.out is None:
        parser.error(f"no corpus folder: pass --out DIR or set ${OUT_ENV}")
    try:
        sources = select_sources([n.strip() for n in args.sources.split(",") if n.strip()] if args.sources else None)
    except KeyError as error:
        parser.error(error.args[0])
    _render_environment(args)
    started = time.monotonic()
    manifest = build_corpus(args.out, sources, args.data_root, log=lambda line: print(line, flush=True), force=args.force)
    totals = manifest["totals"]
    print(f"corpus {args.out}: {len(manifest['pools'])} pools, {totals['hours_audio']:.2f} h of audio "
          f"({totals['hours_vocal_free_backing']:.2f} h vocal-free backing), {time.monotonic() - started:.0f} s")
    for name, reason in manifest["skipped"].items():
        print(f"skipped {name}: {reason}")
    for name, reason in manifest["failed"].items():
        print(f"FAILED {name}: {reason}")
    return 1 if manifest["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
