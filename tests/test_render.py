"""The MIDI renderer (stemcut.training.render*) and its corpus sources, on tiny generated inputs only.

A MIDI file is written with mido; the "kit" is three microphones of decaying noise bursts, the
"guitar" a few decaying sines named like the Karoryfer samples, the "impulse response" 64
samples of noise; bass and other are played by a sine player standing in for the SoundFont.
Nothing is read from ../shared, the corpus or the network.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

mido = pytest.importorskip("mido")

from stemcut.training.corpus import BuildContext, load_manifest  # noqa: E402
from stemcut.training.corpus_renders import RenderLimits, build_renders, plan  # noqa: E402
from stemcut.training.corpus_snapshots import extract, find_snapshot  # noqa: E402
from stemcut.training.corpus import SourceUnavailable  # noqa: E402
from stemcut.training.drumkit import index_sfz_kit, load_kit, parse_region_file  # noqa: E402
from stemcut.training.render import RenderAssets, RenderConfig, SongRenderer, write_song  # noqa: E402
from stemcut.training.render_drums import DrumKitRenderer, MicMix  # noqa: E402
from stemcut.training.render_guitar import GuitarBank, sample_key  # noqa: E402
from stemcut.training.render_midi import MidiNote, Score, notes_by_stem, read_score, stem_of  # noqa: E402
from stemcut.training.targets import SAMPLE_RATE, TARGETS  # noqa: E402

MICS = ("KdrumR", "OHL", "OHR")
KIT = {"KdrumR": 2, "Snare": 2, "HihatClosed": 1, "HihatOpen": 1}


def write_midi(path: Path, drums: bool = True, pitched: bool = True, beats: int = 8) -> Path:
    """120 bpm, 480 ticks per quarter: drums (ch 10), bass (33), distortion guitar (30), piano (0) then strings (48)."""
    song = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    events: list[tuple[int, mido.Message]] = []
    if pitched:
        for channel, program in ((0, 33), (1, 30), (2, 0)):
            events.append((0, mido.Message("program_change", channel=channel, program=program)))
        events.append((480 * (beats // 2), mido.Message("program_change", channel=2, program=48)))
    for beat in range(beats):
        tick = 480 * beat
        if drums:
            for key in (36 if beat % 2 == 0 else 38, 42 if beat % 4 else 46, 56):
                events.append((tick, mido.Message("note_on", channel=9, note=key, velocity=60 + 8 * beat)))
                events.append((tick + 60, mido.Message("note_off", channel=9, note=key)))
        if pitched:
            for channel, key in ((0, 40 + beat % 3), (1, 52 + beat % 5), (2, 60 + beat % 4)):
                events.append((tick, mido.Message("note_on", channel=channel, note=key, velocity=90)))
                events.append((tick + 400, mido.Message("note_off", channel=channel, note=key)))
    now = 0
    for tick, message in sorted(events, key=lambda e: (e[0], e[1].type != "program_change", e[1].type == "note_on")):
        track.append(message.copy(time=tick - now))
        now = tick
    song.save(str(path))
    return path


def write_kit(root: Path) -> Path:
    rng = np.random.default_rng(1)
    instruments = {}
    for instrument, hits in KIT.items():
        layers = [{"lovel": 1, "hivel": 63, "hits": list(range(1, hits + 1))},
                  {"lovel": 64, "hivel": 127, "hits": list(range(hits + 1, 2 * hits + 1))}]
        instruments[instrument] = layers
        for hit in range(1, 2 * hits + 1):
            for index, mic in enumerate(MICS):
                burst = rng.standard_normal(4000) * np.exp(-np.arange(4000) / 600) * (0.3 if index else 0.6)
                path = root / "Samples" / instrument / f"{hit}-{instrument}-{mic}.flac"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, burst.astype(np.float32), SAMPLE_RATE)
    (root / "kit.json").write_text(json.dumps({"name": "tiny kit", "licence": "CC-BY-4.0", "mics": list(MICS),
                                               "instruments": instruments}))
    return root


def write_guitars(root: Path) -> Path:
    t = np.arange(int(0.6 * SAMPLE_RATE)) / SAMPLE_RATE
    for guitar in ("black", "green"):
        for note, octave in (("e", 3), ("a", 3), ("e", 4), ("a", 4)):
            key = sample_key(note, octave)
            freq = 440 * 2 ** ((key - 69) / 12)
            for dynamic in ("p", "f"):
                for rr in (1, 2):
                    wave = 0.4 * np.sin(2 * np.pi * freq * t) * np.exp(-t * 3)
                    path = root / "Samples" / guitar / "ord" / f"twang_{note}{octave}_{dynamic}_rr{rr}.wav"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    sf.write(path, wave.astype(np.float32), SAMPLE_RATE)
    return root


class SinePlayer:
    """Stands in for the SoundFont: a decaying sine per note, panned by channel."""

    def render(self, score: Score, notes: list[MidiNote], n_samples: int, programs: dict[int, int] | None = None) -> np.ndarray:
        out = np.zeros((2, n_samples), np.float32)
        for note in notes:
            start = int(note.start * SAMPLE_RATE)
            length = min(int(note.duration * SAMPLE_RATE), n_samples - start)
            t = np.arange(length) / SAMPLE_RATE
            wave = 0.2 * np.sin(2 * np.pi * 440 * 2 ** ((note.pitch - 69) / 12) * t) * np.exp(-t * 4)
            out[note.channel % 2, start : start + length] += wave.astype(np.float32)
        return out


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> RenderAssets:
    root = tmp_path_factory.mktemp("assets")
    irs = root / "irs"
    irs.mkdir()
    impulse = np.random.default_rng(2).standard_normal(64) * np.exp(-np.arange(64) / 10)
    sf.write(irs / "cab.wav", impulse.astype(np.float32), SAMPLE_RATE)
    vocals = root / "data" / "solo" / "vocals"
    vocals.mkdir(parents=True)
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    sf.write(vocals / "sung.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 5 * t)) / 2).astype(np.float32), SAMPLE_RATE)
    (root / "data" / "solo" / "MANIFEST.csv").write_text("category,file,licence\nvocals,vocals/sung.wav,CC0-1.0\n")
    return RenderAssets(write_kit(root / "kit"), write_guitars(root / "guitars"), root / "none.sf2",
                        impulses=irs, vocals_root=root / "data")


@pytest.fixture(scope="module")
def renderer(assets) -> SongRenderer:
    return SongRenderer(assets, RenderConfig(vocals_probability=1.0), player=SinePlayer())


def test_gm_mapping_channel_10_is_drums_and_programs_pick_the_stem(tmp_path):
    score = read_score(write_midi(tmp_path / "song.mid"))
    groups = notes_by_stem(score)
    assert set(groups) == {"drums", "bass", "guitar", "other"}
    assert all(n.channel == 9 for n in groups["drums"])
    assert {n.program for n in groups["bass"]} == {33} and {n.program for n in groups["guitar"]} == {30}
    assert {n.program for n in groups["other"]} == {0, 48}  # a program change mid-song stays on its channel
    assert [stem_of(9, 33), stem_of(0, 32), stem_of(0, 39), stem_of(0, 24), stem_of(0, 31), stem_of(0, 40)] == [
        "drums", "bass", "bass", "guitar", "guitar", "other"]
    first = groups["bass"][0]
    assert first.start == pytest.approx(0.0) and first.duration == pytest.approx(400 / 480 * 0.5)
    assert groups["bass"][1].start == pytest.approx(0.5)
    slower = read_score(tmp_path / "song.mid", tempo_scale=0.5, transpose=2)
    assert notes_by_stem(slower)["bass"][1].start == pytest.approx(1.0)
    assert notes_by_stem(slower)["bass"][0].pitch == first.pitch + 2
    assert notes_by_stem(slower)["drums"][0].pitch == groups["drums"][0].pitch  # drums never transposed


def test_sfz_kit_index_reads_layers_and_round_robins(tmp_path):
    macros = {"v41l": "1", "v41h": "63", "v42l": "64", "v42h": "127"}
    text = ("#define $instr Snare\n"
            "<region> lovel=$v41l hivel=$v41h sample=$instr/1-$instr-$mic.$ext\n"
            "<region> lovel=$v41l hivel=$v41h sample=$instr/2-$instr-$mic.$ext\n"
            "<region> lovel=$v42l hivel=$v42h sample=$instr/3-$instr-$mic.$ext\n")
    instrument, layers = parse_region_file(text, macros)
    assert instrument == "Snare" and [(l.lovel, l.hivel, l.hits) for l in layers] == [(1, 63, (1, 2)), (64, 127, (3,))]
    root = tmp_path / "kit"
    (root / "Data/region").mkdir(parents=True)
    (root / "Data/macro.txt").write_text("#define $v41l 1        #define $v41h 63\n#define $v42l 64  #define $v42h 127\n")
    (root / "Data/region/Snare.txt").write_text(text)
    for hit in (1, 2, 3):
        for mic in ("OHL", "Trigger"):
            path = root / "Samples/Snare" / f"{hit}-Snare-{mic}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.zeros(10, np.float32), SAMPLE_RATE)
    index = index_sfz_kit(root, "kit", "CC-BY-4.0")
    assert index["mics"] == ["OHL"] and index["instruments"]["Snare"][1]["hits"] == [3]


def test_drum_hits_mix_every_microphone_and_choke_the_open_hat(assets):
    kit = load_kit(assets.kit)
    drums = DrumKitRenderer(kit)
    n = SAMPLE_RATE // 4
    mix = MicMix({"KdrumR": 1.0, "OHL": 0.5, "OHR": 0.5}, {"OHL": -1.0, "OHR": 1.0})
    open_hat, closed_hat = MidiNote(0.0, 0.05, 46, 100, 9, 0), MidiNote(0.02, 0.05, 42, 100, 9, 0)
    cowbell = MidiNote(0.0, 0.1, 56, 100, 9, 0)

    def play(notes):
        return drums.render(notes, n, np.random.default_rng(0), mix)

    alone, unplayed, info = play([open_hat, cowbell])
    assert [note.pitch for note in unplayed] == [56] and info["hits"] == 1  # the cowbell is left for the SoundFont
    hit = drums._hit("HihatOpen", 2)  # velocity 100: the upper layer's only hit
    expected = mix.matrix(kit.mics) @ hit * np.float32(0.55 + 0.45 * (100 - 64 + 1) / 64)
    assert np.allclose(alone[:, : hit.shape[1]], expected, atol=1e-6)  # every microphone, through the mix
    both, _, _ = play([open_hat, closed_hat])
    closed, _, _ = play([closed_hat])
    choke_end = int(0.02 * SAMPLE_RATE) + int(0.015 * SAMPLE_RATE)
    assert np.abs(both - closed)[:, choke_end:].max() < 1e-6  # the open hat stops at the closed one
    assert np.abs(alone)[:, choke_end:].max() > 1e-3


def test_guitar_plays_the_nearest_sample_resampled_to_pitch(assets):
    bank = GuitarBank(assets.guitars)
    assert bank.guitars == ["black", "green"]
    note = MidiNote(0.0, 0.5, 42, 100, 1, 30)  # F#2: nearest sample E2 (40), two semitones up
    di = bank.render_di([note], "green", SAMPLE_RATE, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(di[: SAMPLE_RATE // 4]))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / (SAMPLE_RATE // 4)
    assert peak_hz == pytest.approx(440 * 2 ** ((42 - 69) / 12), rel=0.03)


def test_song_mixture_is_the_sum_of_its_stems_and_nothing_clips(renderer, tmp_path):
    stems, meta = renderer.render(write_midi(tmp_path / "song.mid"), "BSD-3-Clause", seed=3)
    assert set(stems) == set(TARGETS) and meta["has_vocals"]
    mixture = sum(stems.values())
    assert np.abs(mixture).max() <= 0.98 + 1e-6 and max(np.abs(s).max() for s in stems.values()) <= 0.98 + 1e-6
    assert all(float(np.abs(stems[t]).max()) > 1e-3 for t in TARGETS)
    write_song(tmp_path / "out" / "song", stems, meta)
    read = {t: sf.read(tmp_path / "out" / "song" / f"{t}.flac", dtype="float32")[0].T for t in TARGETS}
    assert np.abs(sum(read.values()) - mixture).max() < 5 * 2**-15  # 16-bit stems sum to the mix
    written = json.loads((tmp_path / "out" / "song" / "meta.json").read_text())
    licences = {i["licence"] for i in written["ingredients"]}
    assert {"BSD-3-Clause", "CC-BY-4.0", "CC0-1.0", "GPL-2+"} <= licences or {"BSD-3-Clause", "CC-BY-4.0", "CC0-1.0"} <= licences
    assert written["commercial_ok"] == ("GPL-2+" not in licences)
    assert written["seed"] == 3 and written["midi"] == "song.mid"


def test_stems_follow_the_gm_mapping(renderer, tmp_path):
    stems, meta = renderer.render(write_midi(tmp_path / "drums.mid", pitched=False), "BSD-3-Clause", seed=1)
    assert float(np.abs(stems["drums"]).max()) > 1e-3
    assert {"bass", "guitar", "other"} <= set(meta["known_silent"])
    assert all(float(np.abs(stems[t]).max()) == 0.0 for t in ("bass", "guitar", "other"))


def test_same_seed_same_song_other_seed_other_song(renderer, tmp_path):
    midi = write_midi(tmp_path / "song.mid")
    first, meta = renderer.render(midi, "MIT", seed=7, variant=1)
    again, meta_again = renderer.render(midi, "MIT", seed=7, variant=1)
    other, _ = renderer.render(midi, "MIT", seed=8, variant=1)
    assert meta == meta_again
    assert all(np.array_equal(first[t], again[t]) for t in TARGETS)
    assert not np.array_equal(first["drums"], other["drums"])


def _corpus(tmp_path: Path, assets: RenderAssets, songs: int) -> Path:
    out = tmp_path / "corpus"
    (out / "midi/tiny").mkdir(parents=True)
    for index in range(songs):
        write_midi(out / "midi/tiny" / f"song{index}.mid", beats=4 + index)
    manifest = {"pools": {"midi-tiny": {"licence": "BSD-3-Clause", "source": "test"}}}
    (out / "corpus.json").write_text(json.dumps(manifest))
    for name, target in (("drumgizmo-muldjord", assets.kit), ("karoryfer-guitars", assets.guitars)):
        (out / "assets" / name).parent.mkdir(parents=True, exist_ok=True)
        (out / "assets" / name).symlink_to(target)
    (out / "assets/soundfonts/musescore-general").mkdir(parents=True)
    (out / "assets/soundfonts/musescore-general/tiny.sf2").write_bytes(b"")
    return out


def test_render_source_is_resumable_song_by_song(assets, tmp_path):
    out = _corpus(tmp_path, assets, songs=2)
    context = BuildContext(out, out / ".staging", None, lambda name: None, lambda line: None)

    def factory(found: RenderAssets, config: RenderConfig) -> SongRenderer:
        return SongRenderer(found, config, player=SinePlayer())

    assert [name for _, _, name in plan(sorted((out / "midi/tiny").glob("*.mid")), RenderLimits(variants=2))] == [
        "song0_v0", "song1_v0", "song0_v1", "song1_v1"]
    (pool,) = build_renders(context, "tiny", RenderLimits(songs=1), factory)
    assert pool.tracks == 1 and pool.extra["rendered_now"] == 1 and pool.in_place
    first = out / "renders/tiny/song0_v0"
    stamp = (first / "drums.flac").stat().st_mtime_ns
    (out / "renders/tiny/.song1_v0.x.partial").mkdir()  # a song a killed build was writing: not counted, removed
    (pool,) = build_renders(context, "tiny", RenderLimits(variants=2, songs=3), factory)
    assert not list((out / "renders/tiny").glob(".*"))
    assert pool.tracks == 3 and pool.extra["rendered_now"] == 2
    assert (first / "drums.flac").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (out / "renders/tiny").iterdir() if not p.name.startswith(".")) == [
        "song0_v0", "song0_v1", "song1_v0"]
    assert set(pool.hours_per_target) == set(TARGETS)
    assert pool.extra["hours_sounding"]["drums"] == pytest.approx(pool.hours, abs=1e-6) and pool.extra["hours_sounding"]["vocals"] == 0
    meta = json.loads((out / "renders/tiny/song0_v1/meta.json").read_text())
    assert meta["variant"] == 1 and meta["set"] == "tiny"


def test_render_source_without_assets_is_skipped(tmp_path):
    out = tmp_path / "corpus"
    (out / "midi/tiny").mkdir(parents=True)
    (out / "corpus.json").write_text(json.dumps({"pools": {}}))
    context = BuildContext(out, out / ".staging", None, lambda name: None, lambda line: None)
    with pytest.raises(SourceUnavailable):
        build_renders(context, "tiny", RenderLimits())
    assert load_manifest(out)["pools"] == {}


def test_snapshot_extract_copies_stored_bytes(tmp_path, monkeypatch):
    payload = b"RIFF\n\x00binary\r\n"
    _git_snapshot(tmp_path / "owner+name", {"Samples/a.wav": payload, ".gitattributes": b"* text eol=crlf\n"})
    monkeypatch.setenv("STEMCUT_SNAPSHOTS", str(tmp_path))
    git_dir = find_snapshot("owner/name")
    stored = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "-p", "HEAD:Samples/a.wav"],
                            check=True, capture_output=True).stdout
    dest = tmp_path / "dest"
    assert extract(git_dir, ["Samples"], dest) == 1
    assert (dest / "Samples/a.wav").read_bytes() == stored
    monkeypatch.delenv("STEMCUT_SNAPSHOTS")
    with pytest.raises(SourceUnavailable):
        find_snapshot("owner/name")


def test_render_limits_come_from_the_environment():
    limits = RenderLimits.from_env({"STEMCUT_RENDER_VARIANTS": "3", "STEMCUT_RENDER_SONGS": "5",
                                    "STEMCUT_RENDER_SECONDS": "30", "STEMCUT_RENDER_COMMERCIAL": "1"})
    assert limits == RenderLimits(variants=3, songs=5, seconds=30.0, minutes=None, commercial_only=True)
    assert RenderLimits.from_env({}) == RenderLimits()


def _git_snapshot(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    try:
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not usable here")


def test_sample_library_sources_build_from_snapshots(tmp_path, monkeypatch):
    from stemcut.training.corpus import build_corpus
    from stemcut.training.corpus_sources import select_sources

    snapshots = tmp_path / "snapshots"
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(100, np.float32), SAMPLE_RATE)
    flac = tmp_path / "x.flac"
    sf.write(flac, np.zeros(100, np.float32), SAMPLE_RATE)
    _git_snapshot(snapshots / "kmturley+karoryfer.black-and-green-guitars", {
        "Samples/green/ord/twang_e3_mf_rr1.wav": wav.read_bytes(), "LICENSE": b"CC0 1.0 Universal\n"})
    kit = "DrumGizmo/MuldjordKit"
    _git_snapshot(snapshots / "sfzinstruments+DrumGizmo.MuldjordKit", {
        f"{kit}/Data/macro.txt": b"#define $v11l 1 #define $v11h 127\n",
        f"{kit}/Data/region/Snare.txt": b"#define $instr Snare\n<region> lovel=$v11l hivel=$v11h sample=$instr/1-$instr-$mic.$ext\n",
        f"{kit}/Samples/Snare/1-Snare-OHL.flac": flac.read_bytes(),
        "LICENSE": b"CC-BY-4.0\n"})
    monkeypatch.setenv("STEMCUT_SNAPSHOTS", str(snapshots))
    out = tmp_path / "corpus"
    manifest = build_corpus(out, select_sources(["karoryfer-guitars", "drumgizmo-muldjord"]), log=lambda line: None)
    pools = manifest["pools"]
    assert pools["karoryfer-guitars"]["licence"] == "CC0-1.0" and pools["karoryfer-guitars"]["commercial_ok"]
    assert pools["drumgizmo-muldjord"]["licence"] == "CC-BY-4.0" and pools["drumgizmo-muldjord"]["commercial_ok"]
    assert (out / "assets/karoryfer-guitars/Samples/green/ord/twang_e3_mf_rr1.wav").read_bytes() == wav.read_bytes()
    index = load_kit(out / "assets/drumgizmo-muldjord")
    assert index.mics == ("OHL",) and index.instruments["Snare"][0].hits == (1,)
    assert index.sample_path("Snare", 1, "OHL").read_bytes() == flac.read_bytes()
