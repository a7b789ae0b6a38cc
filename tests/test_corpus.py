"""The corpus builder (scripts/prepare_data.py, stemcut.training.corpus*), on generated inputs only.

Fake unpacked Debian trees, a tiny WAD with MIDI lumps, a zip (.pk3) holding an Ogg file and
a tiny shared-data folder are written to tmp dirs; nothing is downloaded and nothing needs
/work/shared. Only the .deb test calls a system tool (dpkg-deb), and it is skipped without it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemcut.training.corpus import Pool, Source, SourceUnavailable, build_corpus, load_manifest
from stemcut.training.corpus_debian import CopyrightFile, DebianFetcher, Package
from stemcut.training.corpus_licences import all_commercial_ok, is_commercial_ok
from stemcut.training.corpus_midi import midi_seconds, read_wad, wad_midi_lumps
from stemcut.training.corpus_sources import (FOF_SONGS, SOUNDTRACKS, Soundtrack, build_freedoom,
                                             build_soundtrack, select_sources)
from stemcut.training.sources import read_stem_folder
from stemcut.training.targets import SAMPLE_RATE, TARGETS

REPO = Path(__file__).resolve().parents[1]

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: test

Files: *
Copyright: someone
License: GPL-2+

Files: base/music/free*.ogg
Copyright: someone else
License: CC-BY-3.0
 Long licence text that is not the name.
"""


def tone(path: Path, seconds: float, rate: int = 8000, channels: int = 1, freq: float = 440.0, amp: float = 0.3) -> None:
    """Write a sine as ``path`` (format from its suffix, Ogg Vorbis for .ogg)."""
    t = np.arange(int(seconds * rate)) / rate
    data = np.stack([amp * np.sin(2 * np.pi * freq * t)] * channels, axis=1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate)


def midi_file(quarters: int, tempo_us: int = 500000, division: int = 480, then: tuple[int, int] = (0, 0)) -> bytes:
    """A one-track Standard MIDI File: a tempo, ``quarters`` quarter notes, then ``then`` =
    (quarters, new tempo) more, end of track."""
    events = b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big")
    events += b"\x00\xc0\x1d"  # program change (one data byte)
    for index in range(quarters + then[0]):
        if index == quarters:
            events += b"\x00\xff\x51\x03" + then[1].to_bytes(3, "big")
        events += b"\x00\x90\x40\x64" + bytes([0x83, 0x60]) + b"\x40\x00"  # on, then 480 ticks later off (running status)
    events += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, division)
    return header + b"MTrk" + struct.pack(">I", len(events)) + events


def wad_file(lumps: list[tuple[str, bytes]]) -> bytes:
    """A PWAD holding ``lumps`` (12-byte header, data, 16-byte directory entries)."""
    body, directory, offset = b"", b"", 12
    for name, data in lumps:
        directory += struct.pack("<II8s", offset, len(data), name.encode())
        body += data
        offset += len(data)
    return struct.pack("<4sII", b"PWAD", len(lumps), 12 + len(body)) + body + directory


class FakeFetcher:
    """Serves prepared package trees; any other package is unavailable, like a failing apt-get."""

    def __init__(self, trees: dict[str, Path]):
        self.trees = trees
        self.calls: list[str] = []

    def fetch(self, name: str, unpack_root: Path) -> Package:
        self.calls.append(name)
        if name not in self.trees:
            raise SourceUnavailable(f"{name}: apt-get download failed: E: Unable to locate package {name}")
        target = Path(unpack_root) / name
        shutil.copytree(self.trees[name], target)
        return Package(name, "1.0-1", target)


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    """Fake unpacked packages: a Frets on Fire pack, a soundtrack (plain + .pk3), Freedoom."""
    base = tmp_path_factory.mktemp("debs")
    fof = base / "fof"
    song = fof / FOF_SONGS / "pack" / "Song One"
    tone(song / "guitar.ogg", 1.0, 22050, 1, 330.0)
    tone(song / "song.ogg", 1.2, 44100, 2, 110.0)
    (song / "song.ini").write_text("[song]\nname = Song One\nartist = Band\n")
    loud = fof / FOF_SONGS / "pack" / "loud"
    tone(loud / "guitar.ogg", 1.0, 44100, 2, 330.0, amp=0.5)
    tone(loud / "song.ogg", 1.0, 44100, 2, 110.0, amp=1.6)  # Vorbis keeps samples over full scale
    (fof / FOF_SONGS / "pack" / "no_guitar").mkdir()

    game = base / "game"
    music = game / "usr/share/games/game/base"
    tone(music / "theme.ogg", 6.0)
    tone(music / "jingle.ogg", 1.0)
    tone(music / "silence.ogg", 6.0, amp=0.0)
    (music / "broken.ogg").write_bytes(b"OggS not really an ogg file")
    tone(base / "free.ogg", 5.5, 16000, 2)
    with zipfile.ZipFile(music / "0music.pk3", "w") as archive:
        archive.write(base / "free.ogg", "music/free_song.ogg")
        archive.writestr("music/readme.txt", "not audio")
    (game / "usr/share/doc/game-music").mkdir(parents=True)
    (game / "usr/share/doc/game-music/copyright").write_text(DEP5)

    doom = base / "freedoom"
    wads = doom / "usr/share/games/doom"
    wads.mkdir(parents=True)
    song_a, song_b = midi_file(4), midi_file(8, tempo_us=250000)
    (wads / "freedoom1.wad").write_bytes(wad_file([("D_E1M1", song_a), ("D_MUS", b"MUS\x1a old format"), ("PLAYPAL", b"\0" * 30)]))
    (wads / "freedoom2.wad").write_bytes(wad_file([("D_E1M1", song_a), ("D_RUNNIN", song_b)]))
    return {"fretsonfire-songs-test": fof, "game-music": game, "freedoom": doom}


GAME = Soundtrack("game-music", "usr/share/games/game/base", "GPL-2+")


def sources_for_test() -> list[Source]:
    from stemcut.training.corpus_sources import build_fof

    return [
        Source("fof-pack", "stems", "test pack", lambda c: build_fof(c, "fretsonfire-songs-test", "pack", "MIT")),
        Source("game-music", "backing", "test soundtrack", lambda c: build_soundtrack(c, GAME)),
        Source("freedoom", "midi", "test wads", build_freedoom),
        Source("missing", "backing", "a package this machine lacks",
               lambda c: build_soundtrack(c, Soundtrack("no-such-music", "usr/share", "GPL-2+"))),
    ]


@pytest.fixture(scope="module")
def built(trees, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    fetcher = FakeFetcher(trees)
    lines: list[str] = []
    manifest = build_corpus(out, sources_for_test(), None, fetcher, lines.append)
    return out, manifest, fetcher, lines


def test_frets_on_fire_becomes_a_guitar_plus_backing_stem_folder(built):
    out, manifest, _, _ = built
    song = out / "fof/pack/song_one"
    guitar, rate = sf.read(song / "guitar.flac")
    other, _ = sf.read(song / "other.flac")
    assert rate == SAMPLE_RATE and guitar.shape == other.shape == (int(1.2 * SAMPLE_RATE), 2)
    assert sf.info(song / "guitar.flac").subtype == "PCM_16"
    assert np.abs(guitar[: SAMPLE_RATE // 2]).max() > 0.2 and np.abs(guitar[-1000:]).max() == 0  # padded to the backing
    meta = json.loads((song / "meta.json").read_text())
    assert meta["inside_other"] == ["vocals", "drums", "bass"] and meta["bass_separate"] is False
    assert meta["licence"] == "MIT" and meta["title"] == "Song One" and meta["band_limited_hz"] == 11025
    track = read_stem_folder(song)  # the training reader: only guitar and other are exact
    assert dict(zip(TARGETS, track.known)) == {"vocals": False, "drums": False, "bass": False, "guitar": True, "other": True}
    pool = manifest["pools"]["fof-pack"]
    assert pool["kind"] == "stems" and pool["tracks"] == 2 and pool["commercial_ok"] is True
    assert pool["hours_per_target"] == {"guitar": pytest.approx(2.2 / 3600, abs=1e-5), "other": pytest.approx(2.2 / 3600, abs=1e-5)}


def test_frets_on_fire_loud_backing_gets_one_gain_on_both_stems(built):
    out, _, _, _ = built
    guitar, _ = sf.read(out / "fof/pack/loud/guitar.flac")
    other, _ = sf.read(out / "fof/pack/loud/other.flac")
    gain = json.loads((out / "fof/pack/loud/meta.json").read_text())["gain"]
    assert 1 / 1.7 < gain < 1 / 1.55 and np.abs(other).max() > 0.99  # scaled to full scale, not clipped
    assert np.abs(guitar).max() == pytest.approx(0.5 * gain, abs=0.02)  # the same gain: the balance is kept


def test_soundtrack_tracks_plain_and_in_pk3_with_licence_per_file(built):
    out, manifest, _, _ = built
    root = out / "backing/game-music"
    assert sorted(p.name for p in root.iterdir()) == ["music_free_song", "theme"]  # short, silent, broken: out
    free = json.loads((root / "music_free_song/meta.json").read_text())
    theme = json.loads((root / "theme/meta.json").read_text())
    assert free["licence"] == "CC-BY-3.0" and theme["licence"] == "GPL-2+"  # DEP-5, last match wins
    assert theme["known_silent"] == ["vocals"] and theme["inside_other"] == ["drums", "bass", "guitar"]
    track = read_stem_folder(root / "theme")  # the training reader: vocals known silence, the rest in other
    assert dict(zip(TARGETS, track.known)) == {"vocals": True, "drums": False, "bass": False, "guitar": False, "other": True}
    data, rate = sf.read(root / "theme/other.flac")
    assert rate == SAMPLE_RATE and data.shape[1] == 2 and abs(len(data) / rate - 6.0) < 0.01
    pool = manifest["pools"]["game-music"]
    assert pool["tracks"] == 2 and pool["commercial_ok"] is False
    assert pool["commercial_ok_hours"] == pytest.approx(5.5 / 3600, abs=1e-4)
    assert pool["licences"]["GPL-2+"]["tracks"] == 1 and pool["licence"] == "CC-BY-3.0; GPL-2+"
    assert any("not decodable" in note for note in pool["notes"]) and any("jingle" in n and "silence" in n for n in pool["notes"])
    assert manifest["totals"]["hours_vocal_free_backing"] == pytest.approx(11.5 / 3600, abs=1e-4)


def test_freedoom_midi_lumps_are_extracted_once_each(built):
    out, manifest, _, _ = built
    files = sorted(p.name for p in (out / "midi/freedoom").iterdir())
    assert files == ["d_e1m1.mid", "d_runnin.mid"]  # the MUS lump is not MIDI; the duplicate is kept once
    assert (out / "midi/freedoom/d_runnin.mid").read_bytes().startswith(b"MThd")
    pool = manifest["pools"]["midi-freedoom"]
    assert pool["tracks"] == 2 and pool["hours"] == pytest.approx((2.0 + 2.0) / 3600, abs=1e-4)


def test_missing_package_is_skipped_with_a_note_and_others_still_build(built):
    out, manifest, _, lines = built
    assert "no-such-music" in manifest["skipped"]["missing"]
    assert [line for line in lines if "skipped" in line] == [
        "[4/4] missing: skipped: no-such-music: apt-get download failed: E: Unable to locate package no-such-music"
    ]
    assert set(manifest["sources"]) == {"fof-pack", "game-music", "freedoom"}
    assert not (out / ".staging").exists()
    on_disk = json.loads((out / "corpus.json").read_text())
    assert on_disk["pools"].keys() == manifest["pools"].keys()


def test_resume_skips_built_sources_and_rebuilds_a_removed_one(trees, tmp_path):
    fetcher = FakeFetcher(trees)
    sources = sources_for_test()[:3]
    build_corpus(tmp_path, sources, None, fetcher, lambda _: None)
    assert fetcher.calls == ["fretsonfire-songs-test", "game-music", "freedoom"]
    lines: list[str] = []
    build_corpus(tmp_path, sources, None, fetcher, lines.append)
    assert fetcher.calls == ["fretsonfire-songs-test", "game-music", "freedoom"]  # nothing fetched again
    assert sum("already built, skipped" in line for line in lines) == 3
    shutil.rmtree(tmp_path / "midi/freedoom")
    (tmp_path / ".staging/freedoom/midi/freedoom").mkdir(parents=True)  # as an interrupted run leaves it
    (tmp_path / ".staging/freedoom/midi/freedoom/half_written.mid").write_bytes(b"MThd")
    build_corpus(tmp_path, sources, None, fetcher, lambda _: None)
    assert fetcher.calls[3:] == ["freedoom"] and (tmp_path / "midi/freedoom/d_e1m1.mid").exists()
    assert not (tmp_path / "midi/freedoom/half_written.mid").exists() and not (tmp_path / ".staging").exists()
    build_corpus(tmp_path, sources[:1], None, fetcher, lambda _: None, force=True)
    assert fetcher.calls[4:] == ["fretsonfire-songs-test"]


def test_a_build_keeps_the_pools_another_build_recorded_meanwhile(trees, tmp_path):
    """Two prepare_data.py runs at once: each re-reads corpus.json before writing its own result."""
    fetcher = FakeFetcher(trees)
    fof, game = sources_for_test()[:2]

    def fof_while_another_build_finishes(context):
        pools = fof.build(context)
        build_corpus(tmp_path, [game], None, fetcher, lambda _: None)  # finishes first, writes corpus.json
        return pools

    racing = Source("fof-pack", "stems", "test pack", fof_while_another_build_finishes)
    manifest = build_corpus(tmp_path, [racing], None, fetcher, lambda _: None)
    on_disk = json.loads((tmp_path / "corpus.json").read_text())
    assert {"fof-pack", "game-music"} <= set(on_disk["sources"]) and on_disk["pools"].keys() == manifest["pools"].keys()


def test_a_failing_source_is_recorded_and_leaves_nothing_behind(trees, tmp_path):
    def broken(context):
        context.staged("backing/broken")
        raise RuntimeError("decoder exploded")

    sources = [Source("broken", "backing", "raises", broken), sources_for_test()[2]]
    manifest = build_corpus(tmp_path, sources, None, FakeFetcher(trees), lambda _: None)
    assert manifest["failed"] == {"broken": "RuntimeError: decoder exploded"}
    assert "freedoom" in manifest["sources"] and not (tmp_path / "backing").exists()
    assert load_manifest(tmp_path)["failed"] == manifest["failed"]


def test_shared_data_is_recorded_by_reference(tmp_path):
    data = tmp_path / "data"
    song = data / "cc0-album" / "Song"
    for target in ("vocals", "drums", "bass", "other"):
        tone(song / f"{target}.ogg", 2.0 if target != "drums" else 3.0, 44100)
    (song / "meta.json").write_text(json.dumps({"bass_separate": False, "licence": "CC0-1.0"}))
    clip = data / "mir1k" / "clip1"
    tone(clip / "vocals.ogg", 1.5, 16000)
    tone(clip / "accompaniment.ogg", 1.5, 16000)
    tone(data / "solo/guitar/take.ogg", 0.5)
    (data / "solo/MANIFEST.csv").write_text("category,file,licence\nguitar,guitar/take.ogg,CC BY 4.0\n")
    out = tmp_path / "corpus"
    manifest = build_corpus(out, [select_sources(["shared"])[0]], data, FakeFetcher({}), lambda _: None)
    pools = manifest["pools"]
    assert set(pools) == {"shared-cc0_album", "shared-mir1k", "shared-solo"}  # musdb and mdb absent: left out
    cc0 = pools["shared-cc0_album"]
    assert cc0["by_reference"] and cc0["path"] == str((data / "cc0-album").resolve()) and cc0["commercial_ok"]
    assert set(cc0["hours_per_target"]) == {"vocals", "drums", "other"} and cc0["inside_other"] == ["bass", "guitar"]
    assert cc0["hours"] == pytest.approx(3.0 / 3600, abs=1e-5)
    assert pools["shared-mir1k"]["commercial_ok"] is False and pools["shared-solo"]["licence"] == "CC BY 4.0"
    assert not (out / "cc0-album").exists() and manifest["totals"]["by_kind"]["reference"]["tracks"] == 3


def test_shared_data_missing_is_a_skip(tmp_path):
    manifest = build_corpus(tmp_path, select_sources(["shared"]), None, FakeFetcher({}), lambda _: None)
    assert "STEMCUT_DATA" in manifest["skipped"]["shared"] and manifest["pools"] == {}


def test_wad_reader_and_midi_length(tmp_path):
    song = midi_file(4)
    assert midi_seconds(song) == pytest.approx(2.0)
    assert midi_seconds(midi_file(8, tempo_us=250000)) == pytest.approx(2.0)
    assert midi_seconds(midi_file(4, then=(4, 250000))) == pytest.approx(3.0)  # 2 s, then twice as fast
    with pytest.raises(ValueError):
        midi_seconds(b"MUS\x1a")
    (tmp_path / "t.wad").write_bytes(wad_file([("D_A", song), ("D_B", b"MUS\x1a"), ("X", b"")]))
    lumps = read_wad(tmp_path / "t.wad")
    assert [lump.name for lump in lumps] == ["D_A", "D_B", "X"] and lumps[0].data == song
    assert [lump.name for lump in wad_midi_lumps(tmp_path / "t.wad")] == ["D_A"]


def test_conversion_scales_overs_down_instead_of_clipping_and_resamples(tmp_path):
    from stemcut.training.corpus_audio import convert_to_flac

    t = np.arange(48000) / 48000
    sf.write(tmp_path / "loud.wav", (1.5 * np.sin(2 * np.pi * 100 * t)).astype(np.float32), 48000, subtype="FLOAT")
    converted = convert_to_flac(tmp_path / "loud.wav", tmp_path / "out.flac")
    data, rate = sf.read(tmp_path / "out.flac")
    assert rate == SAMPLE_RATE and data.shape == (SAMPLE_RATE, 2) and converted.source_channels == 1
    assert converted.peak == pytest.approx(1.5, abs=0.01) and converted.gain == pytest.approx(1 / converted.peak)
    assert 0.99 < np.abs(data).max() <= 1.0 and not list(tmp_path.glob(".*partial"))
    expected = np.sin(2 * np.pi * 100 * np.arange(SAMPLE_RATE) / SAMPLE_RATE) * 1.5 * converted.gain
    assert np.abs(data[1000:-1000, 0] - expected[1000:-1000]).max() < 1e-3  # a sine, not a clipped one


def test_wad_reader_rejects_other_files(tmp_path):
    (tmp_path / "x.wad").write_bytes(b"ZIP\0" + b"\0" * 20)
    with pytest.raises(ValueError, match="not a WAD"):
        read_wad(tmp_path / "x.wad")


def test_licences_commercial_clean():
    for name in ("CC0-1.0", "CC0", "MIT", "Expat", "CC-BY-3.0", "CC BY 4.0 (StemGMD)", "BSD-3-Clause",
                 "public-domain", "freedoom-license", "MIT (parts CC0/PD)", "CC-BY-SA-3.0 or MIT",
                 "vocadito CC BY 4.0; GuitarSet CC BY 4.0"):
        assert is_commercial_ok(name), name
    for name in ("GPL-2+", "GPL-2.0", "CC-BY-SA-3.0", "CC BY-NC-SA 4.0 (MedleyDB)", "research use (MIR-1K)",
                 "Drascula-License", "unknown (see the package's copyright file)", "", "MIT; GPL-2",
                 "CC-BY-SA-3.0-us", "GPL-2+ with composition exception", "MUSDB18 (CC BY-NC-SA, research use)"):
        assert not is_commercial_ok(name), name
    assert all_commercial_ok(["MIT", "CC0"]) and not all_commercial_ok(["MIT", "GPL-2"]) and not all_commercial_ok([])


def test_dep5_copyright_last_match_wins_and_free_text_has_no_stanzas():
    copyright = CopyrightFile.parse(DEP5)
    assert copyright.machine_readable
    assert copyright.licence_of("usr/share/games/x/base/music/free_song.ogg") == "CC-BY-3.0"
    assert copyright.licence_of("usr/share/games/x/base/music/theme.ogg") == "GPL-2+"
    assert CopyrightFile.parse("This package was debianized by someone.\nLicense: GPL").licence_of("a.ogg") is None


def test_debian_fetcher_without_apt_get_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SourceUnavailable, match="apt-get is not available"):
        DebianFetcher(tmp_path / "cache").fetch("anything", tmp_path / "unpacked")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_debian_fetcher_unpacks_a_cached_deb(tmp_path):
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        "Package: tiny-music\nVersion: 2.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"
    )
    (tree / "usr/share/tiny").mkdir(parents=True)
    (tree / "usr/share/tiny/a.txt").write_text("hello")
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(cache / "tiny-music_2.0-1_all.deb")],
                   check=True, capture_output=True)
    package = DebianFetcher(cache).fetch("tiny-music", tmp_path / "unpacked")
    assert package.version == "2.0-1" and (package.root / "usr/share/tiny/a.txt").read_text() == "hello"


def test_registry_has_every_documented_source():
    names = [s.name for s in select_sources(None)]
    assert names[:3] == ["shared", "fof-muldjord", "fof-sectoid"]
    assert {s.package for s in SOUNDTRACKS} <= set(names)
    assert {"freedoom", "openmsx", "guitarix-irs", "musescore-general", "hydrogen-drumkits"} <= set(names)
    with pytest.raises(KeyError, match="unknown source"):
        select_sources(["shared", "nope"])


def _script():
    spec = importlib.util.spec_from_file_location("prepare_data", REPO / "scripts/prepare_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_lists_sources_and_needs_an_output_folder(capsys, monkeypatch):
    script = _script()
    assert script.main(["--list"]) == 0
    assert "fof-muldjord" in capsys.readouterr().out
    monkeypatch.delenv("STEMCUT_CORPUS", raising=False)
    with pytest.raises(SystemExit):
        script.main([])
    assert "STEMCUT_CORPUS" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--out", "/tmp/x", "--sources", "bogus"])
    assert "unknown source" in capsys.readouterr().err


def test_pool_finish_derives_licence_tags():
    pool = Pool("p", "backing", "backing/p", "test")
    pool.add("MIT", 3600, ["other"])
    pool.add("GPL-2+", 1800, ["other"])
    pool.finish()
    assert pool.licence == "GPL-2+; MIT" and not pool.commercial_ok
    assert pool.commercial_ok_hours == 1.0 and pool.commercial_ok_tracks == 1 and pool.hours_per_target == {"other": 1.5}


# --- the LMMS demo songs (no Debian download, no real lmms: a fake renderer writes the track files) ---

from stemcut.training import corpus_lmms  # noqa: E402
from stemcut.training.corpus_lmms import (LmmsTool, build_lmms, classify, qt_uncompress, read_project,  # noqa: E402
                                          render_order)

LMMS_DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: LMMS developers
License: GPL-2+

Files: data/projects/demos/Tiny-*
Copyright: someone
License: BSD-2-clause
"""


def _instrument(name: str, plugin: str, inner: str = "", notes: tuple[int, ...] = (), basenote: int = 57,
                muted: int = 0) -> str:
    pattern = "".join(f'<note key="{k}" pos="{i * 48}" len="48" vol="100" pan="0"/>' for i, k in enumerate(notes))
    return (f'<track type="0" name="{name}" muted="{muted}" solo="0"><instrumenttrack basenote="{basenote}" vol="100">'
            f'<instrument name="{plugin}">{inner}</instrument></instrumenttrack>'
            f'<pattern pos="0" len="192">{pattern}</pattern></track>')


def _sample(src: str, name: str | None = None, notes: tuple[int, ...] = (57,)) -> str:
    return _instrument(name or src.rsplit("/", 1)[-1], "audiofileprocessor", f'<audiofileprocessor src="{src}"/>', notes)


def tiny_project_xml() -> bytes:
    """Song tracks: a kick sample, a named bass synth, a muted lead, an automation track, a guitar
    sample, a voice-like pad; a beat/bassline track whose container holds hats and a low synth."""
    song = "".join([
        _sample("drums/kick01.ogg"),
        _instrument("Dirty Bass", "tripleoscillator", notes=(57, 60)),
        _instrument("Lead", "zynaddsubfx", notes=(70,), muted=1),
        '<track type="5" name="Automation track" muted="0"/>',
        _sample("instruments/steel_guitar01.ogg", "Strum"),
        _sample("stringsnpads/chorus01.ogg", notes=(60,)),
        '<track type="1" name="Beat/Bassline 0" muted="0"><bbtrack><trackcontainer type="bbtrackcontainer">'
        + _instrument("hats1", "kicker", notes=(57, 57))
        + _instrument("Default preset", "zynaddsubfx", notes=(20, 24, 27, 31))  # every note below E3: bass register
        + _instrument("Default preset", "tripleoscillator", notes=(30, 44, 38))  # lowish, unnamed: unsure
        + _instrument("Default", "bitinvader")  # no notes: renders silent
        + '</trackcontainer></bbtrack></track>',
        '<track type="1" name="Beat/Bassline 1" muted="0"><bbtrack/></track>',
    ])
    xml = (f'<?xml version="1.0"?><lmms-project version="1.0" type="song"><head bpm="120" mastervol="100"/>'
           f'<song><trackcontainer type="song">{song}</trackcontainer></song></lmms-project>')
    return xml.encode()


def qt_compress(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + zlib.compress(data)


def test_lmms_project_parsing_and_track_to_stem_mapping(tmp_path):
    xml = tiny_project_xml()
    assert qt_uncompress(qt_compress(xml)) == xml
    with pytest.raises(ValueError):
        qt_uncompress(struct.pack(">I", 3) + zlib.compress(b"four"))
    (tmp_path / "Tiny-Song.mmpz").write_bytes(qt_compress(xml))
    (tmp_path / "plain.mmp").write_bytes(xml)
    tracks = render_order(read_project(tmp_path / "Tiny-Song.mmpz"))
    assert [t.name for t in render_order(read_project(tmp_path / "plain.mmp"))] == [t.name for t in tracks]
    # muted and automation tracks are not rendered; the song's tracks come first, then the beat container's
    assert [(t.number, t.name, t.in_beat) for t in tracks] == [
        (1, "kick01.ogg", False), (2, "Dirty Bass", False), (3, "Strum", False), (4, "chorus01.ogg", False),
        (5, "hats1", True), (6, "Default preset", True), (7, "Default preset", True), (8, "Default", True)]
    mapped = [classify(t) for t in tracks]
    assert [m.stem for m in mapped] == ["drums", "bass", "guitar", "other", "drums", "bass", "other", "other"]
    assert mapped[3].voice_like and not mapped[0].voice_like
    assert mapped[5].evidence.startswith("plugin zynaddsubfx, register")
    assert not mapped[6].confident and mapped[6].bass_register  # low and nothing says what it is
    (tmp_path / "not.mmp").write_text("<something/>")
    with pytest.raises(ValueError, match="not an LMMS project"):
        read_project(tmp_path / "not.mmp")


def test_lmms_names_and_samples_decide_before_the_plugin():
    track = corpus_lmms.LmmsTrack
    assert classify(track(1, "Kick", "instrument", "kicker")).stem == "drums"
    assert classify(track(1, "Default Kicker Preset", "instrument", "kicker")).stem == "drums"
    assert classify(track(1, "intro arp", "instrument", "kicker")).stem == "other"  # kicker used as a synth
    assert classify(track(1, "Bass Slap 02", "instrument", "audiofileprocessor", ["instruments/bassslap02.ogg"])).stem == "bass"
    assert classify(track(1, "Breathing Snare", "instrument", "audiofileprocessor",
                          ["drumsynth/misc/breathing_snare.ds"])).stem == "drums"  # a drum kit's snare, not a voice
    assert classify(track(1, "x", "instrument", "audiofileprocessor", ["drumsynth/misc_fx/ufo_buzz.ds"])).stem == "other"
    assert classify(track(1, "Choir", "instrument", "zynaddsubfx", keys=[60])).voice_like is False  # a synth patch
    unknown = classify(track(1, "Ominus 1", "instrument", "tripleoscillator", keys=[60, 64]))
    assert unknown.stem == "other" and not unknown.confident and not unknown.bass_register


class FakeLmms(LmmsTool):
    """Writes what ``rendertracks`` would: ``<k>_<name>.wav`` per track, each a different tone
    (a track without notes stays silent, as in LMMS)."""

    def __init__(self):
        super().__init__(Path("/fake/lmms"), {}, "fake", "LMMS 1.2.2 (fake)")
        self.calls = 0

    def render_tracks(self, project, out_dir, timeout=0):
        self.calls += 1
        out_dir.mkdir(parents=True, exist_ok=True)
        for track in render_order(read_project(project)):
            t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
            amp = 0.3 if track.keys else 0.0
            data = np.stack([amp * np.sin(2 * np.pi * 110 * track.number * t)] * 2, axis=1).astype(np.float32)
            sf.write(out_dir / f"{track.number}_{track.name}.wav", data, SAMPLE_RATE, subtype="FLOAT")


@pytest.fixture()
def lmms_tree(tmp_path) -> Path:
    tree = tmp_path / "lmms-common"
    demos = tree / "usr/share/lmms/projects/demos"
    demos.mkdir(parents=True)
    (demos / "Tiny-Song.mmpz").write_bytes(qt_compress(tiny_project_xml()))
    (tree / "usr/share/lmms/projects/shorties").mkdir()
    (tree / "usr/share/lmms/projects/shorties/Other.mmp").write_bytes(tiny_project_xml())
    (tree / "usr/share/lmms/projects/tutorials").mkdir()
    (tree / "usr/share/lmms/projects/tutorials/lesson.mmp").write_bytes(tiny_project_xml())  # not a song
    (tree / "usr/share/doc/lmms-common").mkdir(parents=True)
    (tree / "usr/share/doc/lmms-common/copyright").write_text(LMMS_DEP5)
    return tree


def test_lmms_songs_become_stem_folders_whose_stems_sum_to_the_mix(lmms_tree, tmp_path):
    out = tmp_path / "corpus"
    tool = FakeLmms()
    source = Source("lmms-demos", "stems", "test", lambda c: build_lmms(c, tool=tool))
    manifest = build_corpus(out, [source], None, FakeFetcher({"lmms-common": lmms_tree}), lambda line: None)
    assert tool.calls == 2 and set(manifest["sources"]) == {"lmms-demos"}
    song = out / "lmms/tiny_song"
    assert sorted(p.name for p in song.iterdir()) == ["bass.flac", "drums.flac", "guitar.flac", "meta.json", "other.flac"]
    meta = json.loads((song / "meta.json").read_text())
    assert meta["licence"] == "BSD-2-clause; GPL-2+ (LMMS samples)" and meta["project_licence"] == "BSD-2-clause"
    assert meta["seconds"] == 0.5 and meta["tracks_by_stem"] == {"bass": 2, "drums": 2, "guitar": 1, "other": 2}
    # the voice-like pad keeps vocals from being claimed silent; the unsure low synth puts bass inside other
    assert meta["known_silent"] == [] and meta["inside_other"] == ["vocals", "bass"]
    assert [r["left_out"] for r in meta["tracks"] if "left_out" in r] == ["silent"]
    stems = {p.stem: sf.read(p)[0] for p in song.glob("*.flac")}
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    kick_and_hats = 0.3 * (np.sin(2 * np.pi * 110 * t) + np.sin(2 * np.pi * 550 * t))
    assert np.allclose(stems["drums"][:, 0], kick_and_hats * meta["gain"], atol=2e-4)
    assert meta["gain"] < 1.0 and max(np.abs(sum(stems.values())).max(), *(np.abs(s).max() for s in stems.values())) <= 0.99
    pool = manifest["pools"]["lmms-demos"]
    assert pool["kind"] == "stems" and pool["tracks"] == 2 and pool["in_place"]
    assert pool["inside_other"] == ["vocals", "bass"] and pool["known_silent"] == []
    assert pool["hours_per_target"] == {t: round(1.0 / 3600, 6) for t in ("drums", "guitar", "other")}
    assert not pool["commercial_ok"] and "GPL-2+ (LMMS samples)" in pool["licence"]
    assert read_stem_folder(song).known[TARGETS.index("drums")]
    # resumable: a second build renders nothing; a removed song is rendered again (with --force)
    assert build_corpus(out, [source], None, FakeFetcher({"lmms-common": lmms_tree}), lambda line: None)
    assert tool.calls == 2
    shutil.rmtree(song)
    build_corpus(out, [source], None, FakeFetcher({"lmms-common": lmms_tree}), lambda line: None, force=True)
    assert tool.calls == 3 and (song / "meta.json").is_file()


def test_lmms_source_without_lmms_is_skipped_with_a_note(lmms_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no apt-get, no lmms
    monkeypatch.delenv("STEMCUT_LMMS", raising=False)
    lines: list[str] = []
    source = Source("lmms-demos", "stems", "test", build_lmms)
    manifest = build_corpus(tmp_path / "corpus", [source], None, FakeFetcher({"lmms-common": lmms_tree}), lines.append)
    assert "lmms-demos" not in manifest["sources"] and not manifest["failed"]
    assert manifest["skipped"]["lmms-demos"] == "lmms: apt-get is not available on this machine"
    assert any(line.endswith("skipped: lmms: apt-get is not available on this machine") for line in lines)
    assert not (tmp_path / "corpus/lmms").exists() or not any((tmp_path / "corpus/lmms").iterdir())
    missing = build_corpus(tmp_path / "c2", [source], None, FakeFetcher({}), lines.append)
    assert "lmms-common" in missing["skipped"]["lmms-demos"]
