"""Corpus sources from public repository snapshots: the Karoryfer guitars and the MuldjordKit drums.

A snapshot is a git repository (bare, or a work tree with ``.git``) found under the folder
named by ``$STEMCUT_SNAPSHOTS`` as ``<owner>+<name>/repo``, ``<owner>+<name>`` or
``<name>``. Files are copied byte for byte from the stored blobs (nothing is checked out); a snapshot
that is not there is skipped with a one-line note.

- ``assets/karoryfer-guitars/``: ``Samples/{black,green}/<articulation>/*.wav`` (CC0).
- ``assets/drumgizmo-muldjord/``: ``Samples/<instrument>/<hit>-<instrument>-<mic>.flac``, the SFZ
  ``Data/`` and ``kit.json`` (:mod:`stemcut.training.drumkit`) (CC-BY-4.0).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from stemcut.atomic import write_json

from stemcut.training.corpus import BuildContext, Pool, SourceUnavailable
from stemcut.training.drumkit import KIT_INDEX, index_sfz_kit

SNAPSHOTS_ENV = "STEMCUT_SNAPSHOTS"
KARORYFER_REPO = "kmturley/karoryfer.black-and-green-guitars"
MULDJORD_REPO = "sfzinstruments/DrumGizmo.MuldjordKit"
KARORYFER_LICENCE = "CC0-1.0"
MULDJORD_LICENCE = "CC-BY-4.0"
MULDJORD_DIR = "DrumGizmo/MuldjordKit"


def find_snapshot(repo: str, snapshots: str | os.PathLike | None = None) -> Path:
    """The git directory of ``owner/name`` under ``snapshots`` (default ``$STEMCUT_SNAPSHOTS``)."""
    base = snapshots or os.environ.get(SNAPSHOTS_ENV)
    if not base:
        raise SourceUnavailable(f"{repo}: no snapshot folder (set ${SNAPSHOTS_ENV})")
    owner, name = repo.split("/", 1)
    for candidate in (Path(base) / f"{owner}+{name}" / "repo", Path(base) / f"{owner}+{name}", Path(base) / name):
        for git_dir in (candidate, candidate / ".git"):
            if (git_dir / "HEAD").is_file() and (git_dir / "objects").is_dir():
                return git_dir
    raise SourceUnavailable(f"{repo}: no git snapshot under {base}")


def _head(git_dir: Path) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def extract(git_dir: Path, paths: list[str], dest: Path, strip: str = "") -> int:
    """The blobs of ``HEAD`` under ``paths`` written to ``dest`` byte for byte (leading ``strip/`` removed).

    ``git cat-file --batch`` gives the stored bytes: ``git archive`` would apply the
    repository's ``.gitattributes`` (the Karoryfer snapshot marks every file ``text eol=crlf``,
    which corrupts its WAV files)."""
    git = ["git", "--git-dir", str(git_dir)]
    listing = subprocess.run([*git, "ls-tree", "-r", "-z", "HEAD", "--", *paths], check=True, capture_output=True).stdout
    entries = []
    prefix = strip.rstrip("/") + "/" if strip else ""
    for record in listing.split(b"\0"):
        if not record:
            continue
        info, name = record.split(b"\t", 1)
        mode, kind, sha = info.split()
        path = name.decode("utf-8", "replace")
        if kind != b"blob" or mode == b"120000":
            continue
        relative = path[len(prefix):] if prefix and path.startswith(prefix) else path
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            continue
        entries.append((sha, relative))
    with subprocess.Popen([*git, "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as process:
        assert process.stdin is not None and process.stdout is not None
        for sha, relative in entries:
            process.stdin.write(sha + b"\n")
            process.stdin.flush()
            header = process.stdout.readline().split()
            size = int(header[2])
            data = process.stdout.read(size)
            process.stdout.read(1)  # the newline after each object
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        process.stdin.close()
    if process.returncode:
        raise RuntimeError(f"git cat-file failed ({process.returncode})")
    return len(entries)


def build_karoryfer(context: BuildContext) -> list[Pool]:
    """Karoryfer Black and Green Guitars -> ``assets/karoryfer-guitars/`` (samples, licence, readme)."""
    git_dir = find_snapshot(KARORYFER_REPO)
    relative = "assets/karoryfer-guitars"
    root = context.staged(relative)
    files = extract(git_dir, ["Samples", "LICENSE", "readme.txt"], root)
    samples = sorted((root / "Samples").rglob("*.wav"))
    if not samples:
        raise SourceUnavailable(f"{KARORYFER_REPO}: no Samples/**/*.wav in the snapshot")
    pool = Pool("karoryfer-guitars", "assets", relative, f"github:{KARORYFER_REPO}@{_head(git_dir)}")
    for _ in samples:
        pool.add(KARORYFER_LICENCE)
    pool.extra["files"] = files
    pool.extra["guitars"] = sorted(p.name for p in (root / "Samples").iterdir() if p.is_dir())
    context.log(f"{len(samples)} guitar samples")
    return [pool]


def build_muldjord(context: BuildContext) -> list[Pool]:
    """DrumGizmo MuldjordKit -> ``assets/drumgizmo-muldjord/`` (multi-mic hits, SFZ data, ``kit.json``)."""
    git_dir = find_snapshot(MULDJORD_REPO)
    relative = "assets/drumgizmo-muldjord"
    root = context.staged(relative)
    files = extract(git_dir, [f"{MULDJORD_DIR}/Samples", f"{MULDJORD_DIR}/Data", "LICENSE", "README.md"], root,
                    strip=MULDJORD_DIR)
    try:
        kit = index_sfz_kit(root, "DrumGizmo MuldjordKit", MULDJORD_LICENCE)
    except (OSError, ValueError) as error:
        raise SourceUnavailable(f"{MULDJORD_REPO}: not a DrumGizmo SFZ kit ({error})") from None
    write_json(root / KIT_INDEX, kit)
    pool = Pool("drumgizmo-muldjord", "assets", relative, f"github:{MULDJORD_REPO}@{_head(git_dir)}")
    hits = sum(len(layer["hits"]) for layers in kit["instruments"].values() for layer in layers)
    for _ in range(hits):
        pool.add(MULDJORD_LICENCE)
    pool.extra.update({"files": files, "instruments": len(kit["instruments"]), "hits": hits, "mics": kit["mics"]})
    context.log(f"{len(kit['instruments'])} instruments, {hits} hits x {len(kit['mics'])} microphones")
    return [pool]
