"""LMMS demo projects rendered track by track into stem folders (source ``lmms-demos``).

``lmms-common`` ships the LMMS demo songs (``usr/share/lmms/projects/{demos,shorties}``,
``.mmpz`` = Qt ``qCompress``: a 4-byte big-endian length, then a zlib stream of the
project XML; ``.mmp`` is the plain XML). Each song is rendered with
``lmms --allowroot rendertracks SONG -o DIR -f wav -a`` (one 32-bit float WAV per
instrument/sample track, the song's and every beat/bassline pattern's, all others muted),
each track is mapped to a stem by what the project says it is (:func:`classify`), and the
stems are summed per target:

``lmms/<song>/{drums,bass,other}.flac`` (+ ``guitar.flac`` when a track clearly is a guitar)
+ ``meta.json``; the mixture is the sum of the stems. No vocals: ``known_silent: [vocals]``,
unless a track plays a voice-like sample or preset (a choir pad, "voice", breath, crowd),
then vocals are ``inside_other`` for that song. Guitar without a file is inside ``other``
(a synth may imitate one); bass is ``inside_other`` for a song where a track left in
``other`` without positive evidence plays in the bass register (its bass may be there).

**The lmms binary** is not installed system-wide: ``lmms``, ``lmms-common`` and the
library packages this machine lacks (``apt-cache depends --recurse`` minus what is
installed) are fetched with ``apt-get download`` into ``<out>/.downloads`` and unpacked
with ``dpkg -x`` into one private prefix, ``<out>/tools/lmms``; it runs from there with
``LD_LIBRARY_PATH``, ``QT_QPA_PLATFORM=offscreen`` and a private ``HOME``. ``ldd`` must
find every library of the binary and its plugins, else the source is skipped with a
one-line note. ``$STEMCUT_LMMS`` (a path to an lmms binary) or an ``lmms`` already on
``PATH`` is used when the private prefix cannot be had; nothing is ever installed.

Renders run at ``nice -n 19`` on one CPU (``sched_setaffinity``: LMMS starts one mixer
thread per CPU it may use) and without real-time scheduling (LMMS asks for ``SCHED_FIFO``,
which root would get: it runs without ``CAP_SYS_NICE``, and real-time threads are demoted). Song folders appear whole, by rename, straight into place
(``in_place``): an interrupted build keeps every finished song and the next run renders
only the rest (``--force`` is needed once the source is recorded as built). Limits from
the environment: ``STEMCUT_LMMS_SONGS`` (at most this many songs), ``STEMCUT_LMMS_MINUTES``
(start no new song after this much wall time); songs are rendered cheapest first (length x
tracks), so a build stopped by its limit holds the most hours for its time.

Licence per song from ``lmms-common``'s DEP-5 copyright file (``data/projects/...``
stanzas: GPL-2+, Artistic-2, BSD-2-clause, CC-BY-SA-3/4); a song that plays LMMS's own
samples (``data/samples``, GPL-2+ under ``Files: *``) carries that licence too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from xml.etree import ElementTree

import numpy as np
import soundfile as sf

from stemcut.atomic import write_json
from stemcut.training.corpus import DOWNLOADS, BuildContext, Pool, SourceUnavailable
from stemcut.training.corpus_audio import write_stem_folder
from stemcut.training.corpus_debian import DebianFetcher, Package
from stemcut.training.targets import SAMPLE_RATE

PACKAGES = ("lmms-common", "lmms")
PROJECTS = "usr/share/lmms/projects"
PROJECT_GROUPS = ("demos", "shorties")  # tutorials/ holds a one-pattern lesson, not a song
POOL_PATH = "lmms"
TOOLS_DIR = "tools/lmms"
LMMS_ENV = "STEMCUT_LMMS"
ENV_PREFIX = "STEMCUT_LMMS_"
SAMPLES_LICENCE = "GPL-2+ (LMMS samples)"
FALLBACK_LICENCE = "GPL-2+"
SILENT_PEAK = 1e-4  # a rendered track whose peak stays below -80 dBFS played nothing
HEADROOM_PEAK = 0.98  # one gain on every stem when a stem or the mixture would peak above this
RENDER_TIMEOUT_S = 4 * 3600
GLITCH_FRAMES, GLITCH_PEAK = 1024, 4.0  # garbage LMMS may write into a render's first period
BLOWN_UP_PEAK = 16.0  # a track peaking above +24 dBFS anywhere else blew up: left out
# Packages that provide the same library as one already chosen (apt-cache lists both alternatives).
ALTERNATIVES = frozenset({
    "libqt5gui5-gles", "libjack0", "libsdl1.2debian", "libsdl1.2-compat-shim", "libdebian-installer4",
    "libnewt0.52", "libtextwrap1",
})
INSTRUMENT, SAMPLE = "0", "2"  # LMMS track types rendered by rendertracks
BEAT = "1"  # a beat/bassline track: its instruments live in the shared beat/bassline container
DEFAULT_KEY = 57  # LMMS key of A4 (440 Hz); a track's base note shifts what its keys sound
BASS_REGISTER_KEY = 40  # E3 (165 Hz): a pitched track whose median note is at or below plays bass register


# --- the project file -------------------------------------------------------------------------


def qt_uncompress(data: bytes) -> bytes:
    """Undo Qt's ``qCompress``: a 4-byte big-endian length, then a zlib stream of that many bytes."""
    if len(data) < 4:
        raise ValueError("too short for qCompress data")
    length = struct.unpack(">I", data[:4])[0]
    raw = zlib.decompress(data[4:])
    if len(raw) != length:
        raise ValueError(f"qCompress length {length} != {len(raw)} bytes unpacked")
    return raw


def read_project(path: Path) -> ElementTree.Element:
    """The ``<lmms-project>`` root of an ``.mmpz`` (compressed) or ``.mmp`` (plain XML) file."""
    data = Path(path).read_bytes()
    xml = data if data.lstrip()[:1] == b"<" else qt_uncompress(data)
    root = ElementTree.fromstring(xml)
    if root.tag not in ("lmms-project", "multimedia-project"):
        raise ValueError(f"{path}: not an LMMS project (root <{root.tag}>)")
    return root


@dataclass
class LmmsTrack:
    """One track ``rendertracks`` writes: ``number`` is its output file's prefix (``<number>_<name>.wav``)."""

    number: int
    name: str
    kind: str  # "instrument" or "sample"
    plugin: str = ""  # instrument plugin (audiofileprocessor, zynaddsubfx, kicker, ...), "" for sample tracks
    samples: list[str] = field(default_factory=list)  # sample files it plays (as the project names them)
    in_beat: bool = False  # lives in the beat/bassline container
    keys: list[int] = field(default_factory=list)  # notes it sounds: shifted by base note and oscillator tuning (57 = A4)
    extra: str = ""  # what else tells what it is (SoundFont bank/patch, patch file)


def _oscillator_shift(instrument: ElementTree.Element | None) -> int:
    """Semitones the lowest audible oscillator of a TripleOscillator sounds below the played key
    (its ``coarse`` tuning, often -12/-24 for a bass); 0 for other plugins."""
    settings = instrument.find("tripleoscillator") if instrument is not None else None
    if settings is None:
        return 0
    shifts = []
    for i in range(3):
        try:
            if float(settings.get(f"vol{i}", "100")) > 0:
                shifts.append(int(float(settings.get(f"coarse{i}", "0"))))
        except ValueError:
            continue
    return min(shifts, default=0)


def _instrument_details(track: ElementTree.Element) -> tuple[str, list[str], str, int]:
    element = track.find("instrumenttrack")
    if element is None:
        return "", [], "", DEFAULT_KEY
    instrument = element.find("instrument")
    basenote = int(float(element.get("basenote", DEFAULT_KEY))) - _oscillator_shift(instrument)
    plugin = instrument.get("name", "") if instrument is not None else ""
    samples, extra = [], ""
    if instrument is not None:
        for settings in instrument:
            src = settings.get("src")
            if src:
                samples.append(src)
            if settings.get("bank") is not None or settings.get("patch") is not None:
                extra = f"bank {settings.get('bank', '?')} patch {settings.get('patch', '?')}"
    return plugin, samples, extra, basenote


def _describe(track: ElementTree.Element, number: int, in_beat: bool) -> LmmsTrack:
    kind = "instrument" if track.get("type") == INSTRUMENT else "sample"
    name = track.get("name", "")
    if kind == "instrument":
        plugin, samples, extra, basenote = _instrument_details(track)
        keys = [int(float(n.get("key", DEFAULT_KEY))) - (basenote - DEFAULT_KEY) for n in track.iter("note")]
        return LmmsTrack(number, name, kind, plugin, samples, in_beat, keys, extra)
    samples = [tco.get("src") for tco in track.iter("sampletco") if tco.get("src")]
    return LmmsTrack(number, name, kind, "", sorted(set(samples)), in_beat)


def render_order(root: ElementTree.Element) -> list[LmmsTrack]:
    """The tracks ``rendertracks`` renders, numbered as its output files are.

    LMMS 1.2 (``RenderManager::renderTracks``) takes the unmuted instrument and sample
    tracks of the song, then those of the beat/bassline container (saved inside the
    first beat/bassline track), and names the k-th one's file ``<k>_<name>.wav``."""
    song = root.find("song/trackcontainer")
    if song is None:
        return []
    tracks = list(song.findall("track"))
    beat_container = None
    for track in tracks:
        if track.get("type") == BEAT and (container := track.find("bbtrack/trackcontainer")) is not None:
            beat_container = container
            break
    chosen: list[tuple[ElementTree.Element, bool]] = [(t, False) for t in tracks]
    if beat_container is not None:
        chosen += [(t, True) for t in beat_container.findall("track")]
    out = []
    for track, in_beat in chosen:
        if track.get("type") in (INSTRUMENT, SAMPLE) and track.get("muted", "0") not in ("1", "true"):
            out.append(_describe(track, len(out) + 1, in_beat))
    return out


def estimated_seconds(root: ElementTree.Element) -> float:
    """The song's length from its arrangement: the end of its last clip (192 ticks a 4/4 bar) at its tempo."""
    song = root.find("song/trackcontainer")
    head = root.find("head")
    bpm = float(head.get("bpm", 140)) if head is not None else 140.0
    end = 0
    for track in song.findall("track") if song is not None else ():
        for clip in track:
            if clip.get("pos") is not None and clip.get("len") is not None:
                end = max(end, int(float(clip.get("pos"))) + int(float(clip.get("len"))))
    return end / 48 * 60 / max(bpm, 1.0)


def render_cost(path: Path) -> float:
    """Seconds of audio ``rendertracks`` computes for a song: its length times its tracks (0 if unreadable)."""
    try:
        root = read_project(path)
    except (ValueError, zlib.error, ElementTree.ParseError, OSError):
        return 0.0
    return estimated_seconds(root) * (len(render_order(root)) + 1)


def project_info(root: ElementTree.Element) -> dict:
    head = root.find("head")
    info = dict(head.attrib) if head is not None else {}
    return {k: info[k] for k in ("bpm", "timesig_numerator", "timesig_denominator", "mastervol", "masterpitch") if k in info}


# --- which stem a track is ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrackStem:
    """Where a track goes and why: ``evidence`` names what decided it; ``confident`` is False
    for a track sent to ``other`` only because nothing said what it is."""

    stem: str
    evidence: str
    confident: bool = True
    voice_like: bool = False
    bass_register: bool = False


DRUM_SAMPLE_DIRS = ("drums/", "beats/", "latin/")  # latin/ holds guitars and brass: checked by name first
BASS_SAMPLE_DIRS = ("basses/", "bassloops/", "drumsynth/misc_bass/")
OTHER_SAMPLE_DIRS = ("stringsnpads/", "effects/", "misc/", "shapes/", "waveforms/", "instruments/",
                     "drumsynth/instrument/", "drumsynth/effects/", "drumsynth/misc_fx/", "drumsynth/misc_synth/")
VOICE_WORDS = re.compile(r"chorus0|choir|vowel|breath|crowd|applause|voice|vocal|vox|sing|yeah|owww|speech|spoken|talk",
                         re.IGNORECASE)
GUITAR_WORDS = re.compile(r"guitar|gtr|\bgit\b", re.IGNORECASE)
DRUM_WORDS = re.compile(
    r"kick|\bki[kx]|bassdrum|bass_drum|bass drum|\bbd\b|snare|snarre|\bsnr\b|\bsn\b|clap|hi-?hats?|\bhats?\b|\bhh\b|cymbal|"
    r"crash|\bride\b|\btoms?\b|tom_|perc|shaker|\brim|drum|conga|bongo|cowbell|tambourine|clave|\b(808|909|606)\b",
    re.IGNORECASE)
BASS_WORDS = re.compile(r"bass|\bsub\b|\b303\b|lb ?302", re.IGNORECASE)
OTHER_WORDS = re.compile(
    r"lead|pad|string|piano|rhodes|organ|arp|chord|pluck|bell|flute|trumpet|brass|horn|violin|cello|synth|melod|"
    r"stab|key|harp|chime|zap|fx|noise|woosh|sweep|riser|reese|saw|square|sine|accent|echo|piano|choir|voice|vox",
    re.IGNORECASE)
DEFAULT_NAMES = re.compile(r"^(default( preset| kicker preset)?|standard-preset|preset|untitled)?$", re.IGNORECASE)
DRUM_PLUGINS = ("kicker",)
SYNTH_PLUGINS = ("tripleoscillator", "zynaddsubfx", "lb302", "sid", "papu", "nes", "bitinvader", "organic",
                 "monstro", "watsyn", "opl2", "patman", "vibedstrings", "malletsstk", "sf2player", "gigplayer")


def _sample_stem(src: str) -> tuple[str, bool] | None:
    """Stem of an LMMS sample path (``drums/kick01.ogg``, ``drumsynth/tr808/...``); ``(stem, confident)``."""
    path = src.replace("\\", "/").lower()
    name = path.rsplit("/", 1)[-1]
    if GUITAR_WORDS.search(name):
        return "guitar", True
    if "bassslap" in name or "upright_bass" in name or "fm_bass" in name or "moog_bass" in name or "mute_bass" in name:
        return "bass", True
    if path.startswith("latin/"):
        return ("other", True) if "brass" in name else None
    if path.startswith(BASS_SAMPLE_DIRS):
        if path.startswith("drumsynth/misc_bass/") and "drum" in name:
            return "drums", True
        return "bass", True
    if path.startswith(DRUM_SAMPLE_DIRS):
        return "drums", True
    if path.startswith(OTHER_SAMPLE_DIRS):
        return "other", True
    if path.startswith("drumsynth/"):  # the drum machine kits: tr808, linn, cr78, misc_hats, ...
        return "drums", True
    if DRUM_WORDS.search(name.replace("_", " ")):
        return "drums", True
    if BASS_WORDS.search(name):
        return "bass", True
    return None


def _words(text: str) -> str:
    """A track name as words: separators to spaces, letters and digits apart (``hats1`` -> ``hats 1``)."""
    text = re.sub(r"[_\-./()#]+", " ", text)
    return re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", text)


def classify(track: LmmsTrack) -> TrackStem:
    """The stem a track goes to, first by the samples it plays, then by its name, then by its plugin.

    - a voice-like sample or name (choir, vowel, breath, crowd, "voice") -> other, and the
      song's vocals are not known silence;
    - LMMS sample folders: ``drums/``, ``beats/``, drum-machine ``drumsynth/`` kits -> drums;
      ``basses/``, ``bassloops/``, bass-named instrument samples -> bass; guitar samples ->
      guitar; pads, strings, effects, instruments -> other;
    - the track's own name: drum words (kick, snare, hat, clap, crash, perc, ...) -> drums,
      bass words (bass, sub, 303) -> bass, guitar -> guitar, lead/pad/chord/arp/... -> other;
    - a default-named track by its plugin: kicker (a kick-drum synth) -> drums, lb302 (a
      bass-line synth) playing in the bass register -> bass; any pitched synth playing only
      notes at or below E3 with its median below A2 -> bass (``register``);
    - anything else -> other, not confident (when it plays in the bass register, the song's
      bass is marked ``inside_other``).
    """
    name = _words(track.name)
    median = float(np.median(track.keys)) if track.keys else None
    low = median is not None and median <= BASS_REGISTER_KEY
    pitched = track.plugin in SYNTH_PLUGINS
    stems = {_sample_stem(s) for s in track.samples}
    voices = [s for s in track.samples if VOICE_WORDS.search(s.rsplit("/", 1)[-1]) and _sample_stem(s) in (None, ("other", True))]
    if voices:  # a recording that may be a human voice (choir pad, breath, crowd): never claim silent vocals
        return TrackStem("other", f"voice-like sample {', '.join(voices[:3])}", voice_like=True)
    if track.plugin in ("audiofileprocessor", "") and stems and None not in stems:
        kinds = {s for s, _ in stems}
        if len(kinds) == 1:
            return TrackStem(kinds.pop(), f"sample {', '.join(track.samples[:3])}")
        return TrackStem("other", f"samples of several kinds: {', '.join(sorted(kinds))}", confident=False)
    if track.extra.startswith("bank 128"):
        return TrackStem("drums", f"SoundFont {track.extra}")
    default_name = bool(DEFAULT_NAMES.match(track.name.strip())) or any(
        track.name.strip() == s.rsplit("/", 1)[-1] for s in track.samples)
    if not default_name:
        bass_word = BASS_WORDS.search(name)
        drum_word = DRUM_WORDS.search(name)
        if drum_word and not (bass_word and bass_word.start() < drum_word.start() and "drum" not in name.lower()):
            return TrackStem("drums", f"name ({drum_word.group(0)})")
        if bass_word:
            return TrackStem("bass", f"name ({bass_word.group(0)})")
        if GUITAR_WORDS.search(name):
            return TrackStem("guitar", "name (guitar)")
        if (other := OTHER_WORDS.search(name)):
            return TrackStem("other", f"name ({other.group(0)})", bass_register=low and pitched)
    if track.plugin in DRUM_PLUGINS and default_name:
        return TrackStem("drums", f"plugin {track.plugin} (a drum synth), default name")
    if pitched and track.keys and max(track.keys) <= BASS_REGISTER_KEY and median <= BASS_REGISTER_KEY - 7:
        return TrackStem("bass", f"plugin {track.plugin}, register (every note <= E3, median {median:g})")
    if track.plugin == "lb302" and low:
        return TrackStem("bass", f"plugin lb302 (bass-line synth), median note {median:g}")
    if track.plugin in ("audiofileprocessor", "") and stems and None in stems:
        return TrackStem("other", f"sample {', '.join(track.samples[:3])} not known", confident=False,
                        bass_register=low)
    return TrackStem("other", f"plugin {track.plugin or 'sample track'}, name {track.name!r}: nothing says what it is",
                    confident=False, bass_register=low and (pitched or track.plugin == ""))


# --- the lmms binary ---------------------------------------------------------------------------


def _run(command: list[str], env: Mapping[str, str] | None = None, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    return subprocess.run(nice + command, env=dict(env) if env is not None else None, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def _one_cpu() -> None:
    """In the child: run on one CPU only (LMMS starts a mixer thread per CPU it may use), and die
    with the build (``PR_SET_PDEATHSIG``) rather than render on as an orphan."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
    except (AttributeError, OSError):
        pass
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


@dataclass
class LmmsTool:
    """An lmms binary and the environment it runs in."""

    binary: Path
    env: dict[str, str]
    origin: str  # "private prefix <path>", "$STEMCUT_LMMS", "PATH"
    version: str = ""

    def render_tracks(self, project: Path, out_dir: Path, timeout: float = RENDER_TIMEOUT_S) -> None:
        """``lmms rendertracks`` into ``out_dir`` (created): one 32-bit float WAV per track.

        LMMS asks for ``SCHED_FIFO`` for its threads, which root gets: it would preempt every
        other process. It runs without ``CAP_SYS_NICE`` (``setpriv``), so that request fails,
        and every thread still found real-time is put back to niced normal scheduling."""
        out_dir.mkdir(parents=True, exist_ok=True)
        command = [str(self.binary), "--allowroot", "rendertracks", str(project), "-o", str(out_dir), "-f", "wav", "-a"]
        if os.geteuid() == 0 and shutil.which("setpriv"):
            command = ["setpriv", "--pdeathsig", "KILL", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice", *command]
        nice = ["nice", "-n", "19"] if shutil.which("nice") else []
        log_path = out_dir / "lmms-render.log"  # removed with the render folder
        started = time.monotonic()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(nice + command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, preexec_fn=_one_cpu)
            try:
                while True:
                    _demote(process.pid)
                    try:
                        process.wait(timeout=0.5)
                        break
                    except subprocess.TimeoutExpired:
                        if time.monotonic() - started > timeout:
                            process.kill()
                            process.wait()
                            raise RuntimeError(f"lmms rendertracks timed out after {timeout:.0f} s") from None
            except BaseException:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                raise
        if process.returncode != 0:
            text = log_path.read_bytes()[-4000:].decode("utf-8", "replace").replace("\r", "\n")
            lines = [line for line in text.splitlines() if line.strip() and "%" not in line]
            raise RuntimeError(f"lmms rendertracks exited {process.returncode}: {lines[-1][-200:] if lines else 'no output'}")


def _demote(pid: int) -> None:
    """Put every real-time thread of ``pid`` and its children back to normal scheduling at nice 19."""
    pids, seen = [pid], set()
    while pids:
        current = pids.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            tasks = [int(t) for t in os.listdir(f"/proc/{current}/task")]
        except OSError:
            continue
        for tid in tasks:
            try:
                if os.sched_getscheduler(tid) != os.SCHED_OTHER:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                    os.setpriority(os.PRIO_PROCESS, tid, 19)
            except (OSError, AttributeError):
                pass
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    pids.extend(int(c) for c in f.read().split())
            except OSError:
                pass


def _prefix_env(prefix: Path, home: Path) -> dict[str, str]:
    lib = prefix / "usr/lib/x86_64-linux-gnu"
    libs = [lib, lib / "sdl12-compat", lib / "pulseaudio", lib / "lmms"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "LD_", "DISPLAY", "WAYLAND"))}
    env.update({
        "LD_LIBRARY_PATH": ":".join(str(p) for p in libs if p.is_dir()),
        "QT_QPA_PLATFORM": "offscreen",
        "QT_PLUGIN_PATH": str(lib / "qt5/plugins"),
        "LADSPA_PATH": str(lib / "lmms/ladspa"),
        "HOME": str(home),
        "OMP_NUM_THREADS": "1",
    })
    return env


def missing_libraries(prefix: Path, env: Mapping[str, str]) -> list[str]:
    """Libraries ``ldd`` cannot find for the prefix's lmms binary and its plugins."""
    lib = prefix / "usr/lib/x86_64-linux-gnu/lmms"
    binaries = [prefix / "usr/bin/lmms", *sorted(lib.glob("*.so")), *sorted(lib.glob("Remote*"))]
    missing: set[str] = set()
    for binary in binaries:
        result = _run(["ldd", str(binary)], env, timeout=60)
        missing.update(line.split("=>")[0].strip() for line in result.stdout.splitlines() if "not found" in line)
    return sorted(missing)


def dependency_packages() -> list[str]:
    """The library packages lmms needs that are not installed here (``apt-cache depends --recurse``)."""
    result = _run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                   "--no-breaks", "--no-replaces", "--no-enhances", "lmms"], timeout=300)
    if result.returncode != 0:
        raise SourceUnavailable(f"lmms: apt-cache depends failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    needed = {line.strip() for line in result.stdout.splitlines() if line[:1].isalnum()}
    status = _run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\n"], timeout=120)
    installed = {line.split()[-1].split(":")[0] for line in status.stdout.splitlines() if line.startswith("ii")}
    return sorted(p for p in needed - installed if p.startswith("lib") and p not in ALTERNATIVES)


def _version(tool: LmmsTool) -> str:
    result = _run([str(tool.binary), "--allowroot", "--version"], tool.env, timeout=120)
    if result.returncode != 0:
        raise SourceUnavailable(f"lmms ({tool.origin}) does not start: {(result.stderr.strip().splitlines() or ['?'])[-1][-200:]}")
    return (result.stdout.strip().splitlines() or ["lmms"])[0]


def private_lmms(out: Path, log: Callable[[str], None] = print) -> LmmsTool:
    """lmms unpacked with its missing libraries into ``<out>/tools/lmms`` (made once, then reused)."""
    prefix = Path(out) / TOOLS_DIR
    home = prefix / "home"
    ready = prefix / "ready.json"
    env = _prefix_env(prefix, home)
    if ready.is_file() and (prefix / "usr/bin/lmms").is_file():
        tool = LmmsTool(prefix / "usr/bin/lmms", env, f"private prefix {prefix}")
        tool.version = json.loads(ready.read_text()).get("version", "")
        return tool
    for tool_name in ("apt-get", "apt-cache", "dpkg-deb", "ldd"):
        if shutil.which(tool_name) is None:
            raise SourceUnavailable(f"lmms: {tool_name} is not available on this machine")
    packages = list(PACKAGES) + dependency_packages()
    fetcher = DebianFetcher(Path(out) / DOWNLOADS)
    if prefix.exists():
        shutil.rmtree(prefix)
    prefix.mkdir(parents=True)
    versions = {}
    log(f"lmms: unpacking {len(packages)} packages into {prefix}")
    for name in packages:
        deb = fetcher.deb_file(name)  # SourceUnavailable when apt-get cannot fetch it
        result = _run(["dpkg-deb", "-x", str(deb), str(prefix)])
        if result.returncode != 0:
            raise SourceUnavailable(f"lmms: dpkg -x {deb.name} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
        versions[name] = deb.name
    if not (prefix / "usr/bin/lmms").is_file():
        raise SourceUnavailable(f"lmms: no usr/bin/lmms in the unpacked package ({prefix})")
    env = _prefix_env(prefix, home)
    missing = missing_libraries(prefix, env)
    if missing:
        raise SourceUnavailable(f"lmms: libraries still missing in the private prefix: {', '.join(missing[:8])}")
    home.mkdir(parents=True, exist_ok=True)
    tool = LmmsTool(prefix / "usr/bin/lmms", env, f"private prefix {prefix}")
    tool.version = _version(tool)
    write_json(ready, {"version": tool.version, "packages": versions})
    return tool


def find_lmms(out: Path, log: Callable[[str], None] = print) -> LmmsTool:
    """An lmms to render with: ``$STEMCUT_LMMS``, else the private prefix, else one on ``PATH``.

    Raises :class:`SourceUnavailable` (one line) when there is none; installs nothing."""
    home = Path(out) / TOOLS_DIR / "home"
    explicit = os.environ.get(LMMS_ENV, "").strip()
    if explicit:
        home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(home), OMP_NUM_THREADS="1")
        tool = LmmsTool(Path(explicit), env, f"${LMMS_ENV}")
        tool.version = _version(tool)
        return tool
    try:
        return private_lmms(out, log)
    except SourceUnavailable as reason:
        system = shutil.which("lmms")
        if system is None:
            raise
        log(f"private lmms not available ({reason}); using {system}")
        home.mkdir(parents=True, exist_ok=True)
        tool = LmmsTool(Path(system), dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(home)), "PATH")
        tool.version = _version(tool)
        return tool


# --- rendering a song --------------------------------------------------------------------------


@dataclass(frozen=True)
class LmmsLimits:
    songs: int | None = None
    minutes: float | None = None

    @staticmethod
    def from_env(environ: Mapping[str, str] = os.environ) -> "LmmsLimits":
        songs = environ.get(ENV_PREFIX + "SONGS", "").strip()
        minutes = environ.get(ENV_PREFIX + "MINUTES", "").strip()
        return LmmsLimits(int(songs) if songs else None, float(minutes) if minutes else None)


def song_name(relative: str) -> str:
    """``demos/CapDan/CapDan-ReggaeTry.mmpz`` -> ``capdan_reggaetry``."""
    stem = Path(relative).name.split(".")[0]
    return re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "song"


def _rendered_files(folder: Path) -> dict[int, Path]:
    files = {}
    for path in folder.glob("*.wav"):
        number = path.name.split("_", 1)[0]
        if number.isdigit():
            files[int(number)] = path
    return files


def _licence_of(package: Package, relative: str) -> str:
    copyright = package.copyright
    found = copyright.licence_of(f"data/projects/{relative}") if copyright is not None else None
    return found or FALLBACK_LICENCE


def _start_glitch(audio: np.ndarray) -> int:
    """Frames to zero at the start of a track: LMMS 1.2 sometimes writes garbage (values of
    1e13 and more) into the first period of a render; 0 when the start is clean."""
    head = np.abs(audio[:GLITCH_FRAMES]).max(axis=1) if len(audio) else np.zeros(0)
    bad = np.nonzero(head > GLITCH_PEAK)[0]
    if not len(bad):
        return 0
    period = 256
    return int(min(len(audio), (bad[-1] // period + 1) * period))


def mix_song(tracks: list[LmmsTrack], files: dict[int, Path]) -> tuple[dict[str, np.ndarray], list[dict], float]:
    """Sum the rendered track files into stems; returns (stems, per-track records, gain applied)."""
    stems: dict[str, np.ndarray] = {}
    records = []
    length = 0
    for track in tracks:
        mapping = classify(track)
        record = {"number": track.number, "name": track.name, "kind": track.kind, "plugin": track.plugin,
                  "samples": track.samples, "in_beat": track.in_beat, **{k: v for k, v in asdict(mapping).items()}}
        if track.keys:
            record["median_key"] = float(np.median(track.keys))
        path = files.get(track.number)
        if path is None:
            records.append({**record, "stem": None, "left_out": "not rendered"})
            continue
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"{path.name}: rendered at {rate} Hz")
        if audio.shape[1] == 1:
            audio = np.repeat(audio, 2, axis=1)
        audio = audio[:, :2]
        np.nan_to_num(audio, copy=False, posinf=0.0, neginf=0.0)
        glitch = _start_glitch(audio)
        if glitch:
            audio[:glitch] = 0.0
            record["start_glitch_frames"] = glitch
        peak = float(np.abs(audio).max(initial=0.0))
        record["peak"] = round(peak, 5)
        if peak < SILENT_PEAK:
            records.append({**record, "stem": None, "left_out": "silent"})
            continue
        if peak > BLOWN_UP_PEAK:
            records.append({**record, "stem": None, "left_out": f"blew up (peak {peak:.3g})"})
            continue
        target = stems.get(mapping.stem)
        if target is None or len(target) < len(audio):
            grown = np.zeros((max(len(audio), len(target) if target is not None else 0), 2), np.float32)
            if target is not None:
                grown[: len(target)] = target
            target = grown
        target[: len(audio)] += audio
        stems[mapping.stem] = target
        length = max(length, len(audio))
        records.append(record)
    if not stems:
        return {}, records, 1.0
    for stem in ("drums", "bass", "other"):
        stems.setdefault(stem, np.zeros((length, 2), np.float32))
    stems = {k: np.pad(v, ((0, length - len(v)), (0, 0))) for k, v in stems.items()}
    mixture = sum(stems.values())
    peak = max(float(np.abs(mixture).max(initial=0.0)), *(float(np.abs(v).max(initial=0.0)) for v in stems.values()))
    gain = HEADROOM_PEAK / peak if peak > HEADROOM_PEAK else 1.0
    if gain != 1.0:
        stems = {k: v * gain for k, v in stems.items()}
    return stems, records, gain


def song_meta(package: Package, relative: str, root: ElementTree.Element, records: list[dict],
              stems: dict[str, np.ndarray], gain: float, tool: LmmsTool, cpu_s: float) -> dict:
    """``meta.json`` for one song: licence, known masks and the per-track mapping."""
    used = [r for r in records if r.get("stem")]
    seconds = len(next(iter(stems.values()))) / SAMPLE_RATE
    project_licence = _licence_of(package, relative)
    plays_samples = any(r["samples"] for r in used)
    licence = f"{project_licence}; {SAMPLES_LICENCE}" if plays_samples and "GPL-2+" not in project_licence else project_licence
    voice = [r["name"] for r in used if r.get("voice_like")]
    unsure_bass = [r["name"] for r in used if r["stem"] == "other" and not r["confident"] and r.get("bass_register")]
    inside = []
    if voice:
        inside.append("vocals")
    if unsure_bass:
        inside.append("bass")
    if "guitar" not in stems:
        inside.append("guitar")
    sounding = {s: float(np.abs(a).max(initial=0.0)) >= SILENT_PEAK for s, a in stems.items()}
    notes = []
    if voice:
        notes.append(f"voice-like tracks in other ({', '.join(voice)}): vocals not known silent")
    if unsure_bass:
        notes.append(f"tracks left in other play in the bass register ({', '.join(unsure_bass)}): bass inside other")
    return {
        "layout": "lmms",
        "title": Path(relative).name.split(".")[0],
        "licence": licence,
        "project_licence": project_licence,
        "source": f"debian:{package.name} {package.version}: {PROJECTS}/{relative}",
        "renderer": f"{tool.version} rendertracks (32-bit float WAV), {tool.origin.split(' /')[0]}",
        "seconds": round(seconds, 3),
        "gain": round(gain, 6),
        "bass_separate": "bass" not in inside,
        "inside_other": inside,
        "known_silent": [] if voice else ["vocals"],
        "stems_sounding": sounding,
        "project": project_info(root),
        "tracks": records,
        "tracks_by_stem": {s: sum(1 for r in used if r["stem"] == s) for s in sorted({r["stem"] for r in used})},
        "unsure_tracks": [r["name"] for r in used if not r["confident"]],
        "cpu_s": round(cpu_s, 1),
        "notes": notes,
        "note": "each LMMS track rendered alone (all others muted) and mapped to a stem by its samples, name and plugin; "
                "the mixture is the sum of the stems (master effects act per track, so it is not LMMS's own mixdown)",
    }


def list_projects(package: Package) -> list[str]:
    """The songs in the package, relative to ``usr/share/lmms/projects`` (``demos/...``, ``shorties/...``)."""
    base = package.root / PROJECTS
    found = []
    for group in PROJECT_GROUPS:
        found += [p.relative_to(base).as_posix() for p in (base / group).rglob("*") if p.suffix in (".mmpz", ".mmp")]
    return sorted(found)


def _count(pool: Pool, folder: Path, sounding: dict[str, float]) -> None:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    seconds = float(meta["seconds"])
    inside = set(meta.get("inside_other", []))
    files = [p.stem for p in folder.glob("*.flac")]
    pool.add(meta["licence"], seconds, [t for t in files if t not in inside])
    for stem, plays in meta.get("stems_sounding", {}).items():
        if plays and stem not in inside:
            sounding[stem] = sounding.get(stem, 0.0) + seconds


def build_lmms(context: BuildContext, tool: LmmsTool | None = None, limits: LmmsLimits | None = None,
               find: Callable[[Path, Callable[[str], None]], LmmsTool] = find_lmms) -> list[Pool]:
    """Render the LMMS demo songs into ``lmms/<song>/`` stem folders (resumable, in place)."""
    limits = limits or LmmsLimits.from_env()
    package = context.fetch("lmms-common")
    projects = list_projects(package)
    if not projects:
        raise SourceUnavailable(f"lmms-common: no .mmpz/.mmp songs under {PROJECTS}/{{{','.join(PROJECT_GROUPS)}}}")
    root = context.out / POOL_PATH
    for stale in root.glob(".*.partial") if root.is_dir() else ():
        shutil.rmtree(stale, ignore_errors=True)
    # cheapest first (length x tracks): a build stopped by its time limit has the most hours for its time
    costs = {r: render_cost(package.root / PROJECTS / r) for r in projects}
    projects = sorted(projects, key=lambda r: (costs[r], r))
    plan = projects[: limits.songs] if limits.songs is not None else projects
    todo = [r for r in plan if not (root / song_name(r) / "meta.json").is_file()]
    started, rendered, failed = time.monotonic(), 0, []
    if todo:
        tool = tool or find(context.out, context.log)
        context.log(f"{len(todo)} of {len(plan)} songs to render with {tool.version or 'lmms'} ({tool.origin})")
        for index, relative in enumerate(todo, 1):
            if limits.minutes is not None and time.monotonic() - started > 60 * limits.minutes:
                context.log(f"time limit of {limits.minutes:g} min reached: {len(todo) - index + 1} songs left for next time")
                break
            name = song_name(relative)
            project = package.root / PROJECTS / relative
            try:
                tree = read_project(project)
            except (ValueError, zlib.error, ElementTree.ParseError) as error:
                failed.append(f"{relative}: {error}")
                context.log(f"{index}/{len(todo)} {name}: not readable ({error})")
                continue
            tracks = render_order(tree)
            scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".render", dir=context.staging))
            song_started = time.monotonic()
            try:
                children = os.times()
                tool.render_tracks(project, scratch)
                after = os.times()
                cpu_s = (after.children_user - children.children_user) + (after.children_system - children.children_system)
                files = _rendered_files(scratch)
                if len(files) != len(tracks):
                    context.log(f"{name}: {len(files)} files rendered for {len(tracks)} tracks read from the project")
                stems, records, gain = mix_song(tracks, files)
            except RuntimeError as error:
                failed.append(f"{relative}: {error}")
                context.log(f"{index}/{len(todo)} {name}: not rendered ({error})")
                continue
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            if not stems:
                failed.append(f"{relative}: every track silent")
                context.log(f"{index}/{len(todo)} {name}: every track silent, left out")
                continue
            meta = song_meta(package, relative, tree, records, stems, gain, tool, cpu_s)
            meta["wall_s"] = round(time.monotonic() - song_started, 1)
            write_stem_folder(root / name, stems, meta)
            rendered += 1
            context.log(f"{index}/{len(todo)} {name}: {meta['seconds'] / 60:.1f} min, {len(tracks)} tracks "
                        f"{meta['tracks_by_stem']}, {meta['licence']}, {cpu_s:.0f} s CPU")
    pool = Pool("lmms-demos", "stems", POOL_PATH, f"debian:{package.name} {package.version}", in_place=True)
    root.mkdir(parents=True, exist_ok=True)
    sounding: dict[str, float] = {}
    inside: set[str] = set()
    all_silent_vocals = True
    songs = [f for f in sorted(root.iterdir()) if f.is_dir() and (f / "meta.json").is_file()]
    wanted = {song_name(r) for r in plan}
    for folder in songs:
        _count(pool, folder, sounding)
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        inside.update(meta.get("inside_other", []))
        all_silent_vocals = all_silent_vocals and "vocals" in meta.get("known_silent", [])
    order = ["vocals", "drums", "bass", "guitar"]
    pool.inside_other = [t for t in order if t in inside]
    pool.known_silent = ["vocals"] if all_silent_vocals and songs else []
    missing = sorted(wanted - {f.name for f in songs})
    if missing:
        pool.notes.append(f"{len(missing)} of {len(plan)} songs not rendered yet: {', '.join(missing)} "
                          "(run again with --force to render them)")
    if failed:
        pool.notes.append(f"{len(failed)} songs failed: {'; '.join(failed)}")
    if "vocals" in inside:
        pool.notes.append("vocals are known silence except in songs with voice-like tracks (their meta.json "
                          "lists vocals in inside_other)")
    pool.extra.update({
        "songs": len(songs),
        "songs_in_package": len(projects),
        "hours_sounding": {t: round(s / 3600, 6) for t, s in sorted(sounding.items())},
        "rendered_now": rendered,
        "wall_s_now": round(time.monotonic() - started, 1),
    })
    return [pool]
