"""Per-track claims: many stemcut processes, on one or many machines, share one output folder.

Before a process separates a track it claims it: it writes a small JSON file (owner
host, pid, a random token, when) under a temporary name and hard-links it to the
track's claim name. ``link`` fails if the name exists, atomically, on local file
systems and on NFS alike (the classic NFS-safe lock; ``O_EXCL`` and ``flock`` are not
relied on). While the owner works, a thread touches the claim every
``HEARTBEAT_SECONDS``. The claim is removed when the track is finished or has failed.

A claim is **stale**, and may be taken over, when its owner is on this host and its
process no longer exists (SIGKILL included), or when its heartbeat is older than
``STALE_SECONDS`` measured on the file server's clock (a freshly touched probe file in
the same folder gives "now", so machines' clocks need not agree). Taking over renames
the stale claim to a unique name (atomic; of two processes trying, one wins), checks
that what it moved is the claim it judged stale (else puts it back), and claims anew.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import hidden_name

HEARTBEAT_SECONDS = 20.0
STALE_SECONDS = 120.0
CLAIM_SUFFIX = ".stemcut-claim"


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    token: str

    @classmethod
    def me(cls) -> "Owner":
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(8))

    def describe(self) -> str:
        return f"{self.host}:{self.pid}"


def claim_path(record: Path) -> Path:
    """Where the claim of the track whose resume record is ``record`` lives."""
    return record.with_name(hidden_name(record.name.lstrip("."), CLAIM_SUFFIX))


class Claim:
    """A held claim; :meth:`release` (or leaving the ``with``) removes it."""

    def __init__(self, path: Path, owner: Owner):
        self.path = path
        self.owner = owner
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="stemcut-claim", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                return  # gone (taken over after a long stall): the owner finds out on release

    def release(self) -> None:
        self._stop.set()
        if _read_owner(self.path) == self.owner:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Claimed(Exception):
    """The track is claimed by another live process; ``str()`` names it."""


def acquire(record: Path, owner: Owner | None = None) -> Claim:
    """Claim the track of ``record`` (its folder made if needed), taking over a stale claim;
    :class:`Claimed` if another live process holds it."""
    owner = owner or Owner.me()
    path = claim_path(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        if _link_new(path, owner):
            return Claim(path, owner)
        holder = _read_owner(path)
        if holder is None:
            if not path.exists():
                continue  # released in between: try again
            holder_text = "another stemcut (unreadable claim)"
            if not _stale(path, None):
                raise Claimed(holder_text)
        elif not _stale(path, holder):
            raise Claimed(f"being separated by {holder.describe()}")
        _take_over(path, holder)
    raise Claimed("claimed by another stemcut")


def _link_new(path: Path, owner: Owner) -> bool:
    temp = path.with_name(hidden_name(path.name.lstrip("."), f".{owner.token}.new"))
    temp.write_text(json.dumps({"host": owner.host, "pid": owner.pid, "token": owner.token,
                                "claimed": time.time()}), encoding="utf-8")
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)


def _read_owner(path: Path) -> Owner | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Owner(str(data["host"]), int(data["pid"]), str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stale(path: Path, holder: Owner | None) -> bool:
    if holder is not None and holder.host == socket.gethostname() and not _alive(holder.pid):
        return True
    try:
        beat = path.stat().st_mtime
    except FileNotFoundError:
        return True
    return _server_now(path.parent) - beat > STALE_SECONDS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _server_now(folder: Path) -> float:
    """'Now' on the file server's clock: the mtime of a file just touched in ``folder``."""
    probe = folder / hidden_name(f"clock-{secrets.token_hex(6)}", ".stemcut-probe")
    try:
        probe.touch()
        return probe.stat().st_mtime
    except OSError:
        return time.time()
    finally:
        probe.unlink(missing_ok=True)


def _take_over(path: Path, holder: Owner | None) -> None:
    """Move the stale claim out of the way, unless it changed owner meanwhile."""
    tomb = path.with_name(hidden_name(path.name.lstrip("."), f".stale-{secrets.token_hex(6)}"))
    try:
        os.rename(path, tomb)
    except FileNotFoundError:
        return  # someone else moved it first
    if _read_owner(tomb) != holder:  # a fresh claim was made in between: put it back
        try:
            os.link(tomb, path)
        except FileExistsError:
            pass
    tomb.unlink(missing_ok=True)
