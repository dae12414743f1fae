"""The generated demo data: deterministic, complete MPD records, genres the app and tests rely on."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from songrec.corpus import Corpus
from songrec.mpd import encode_slice, read_slice
from songrec.synthetic import (
    GENRES,
    SliceInfo,
    generate_playlists,
    genre_of_name,
    iter_demo_slices,
    make_catalogue,
    write_demo,
)

PLAYLIST_FIELDS = {
    "name",
    "collaborative",
    "pid",
    "modified_at",
    "num_tracks",
    "num_albums",
    "num_followers",
    "tracks",
    "num_edits",
    "duration_ms",
    "num_artists",
}
TRACK_FIELDS = {"pos", "artist_name", "track_uri", "artist_uri", "track_name", "album_uri", "duration_ms", "album_name"}


@pytest.fixture(scope="module")
def demo_json(demo_dir: Path) -> dict:
    (path,) = sorted(demo_dir.iterdir())
    return json.loads(path.read_bytes())


def test_same_seed_gives_the_same_bytes(demo_dir: Path) -> None:
    ((name, data),) = iter_demo_slices(600, seed=0)
    assert (demo_dir / name).read_bytes() == data
    assert dict(iter_demo_slices(150, seed=4)) == dict(iter_demo_slices(150, seed=4))


def test_another_seed_gives_other_playlists() -> None:
    first, second = dict(iter_demo_slices(150, seed=1)), dict(iter_demo_slices(150, seed=2))
    assert first.keys() == second.keys()
    (a,), (b,) = first.values(), second.values()
    assert a != b
    uris_a = {t.track_uri for p in read_slice(a, "a").playlists for t in p.tracks}
    uris_b = {t.track_uri for p in read_slice(b, "b").playlists for t in p.tracks}
    assert not uris_a & uris_b


def test_write_demo_writes_the_slices(tmp_path: Path) -> None:
    calls = []
    paths = write_demo(tmp_path, 1100, seed=5, n_tracks=300, progress=lambda d, t: calls.append((d, t)))
    assert [p.name for p in paths] == ["mpd.slice.0-999.json", "mpd.slice.1000-1999.json"]
    assert calls[-1] == (2, 2)
    expected = dict(iter_demo_slices(1100, seed=5, n_tracks=300))
    assert {p.name: p.read_bytes() for p in paths} == expected
    assert [len(read_slice(p).playlists) for p in paths] == [1000, 100]
    assert [p.pid for p in read_slice(paths[1]).playlists] == list(range(1000, 1100))


def test_slices_match_the_typed_encoder() -> None:
    """However the slice text is produced, it is exactly encode_slice of the generated playlists."""
    catalogue = make_catalogue(400, seed=3)
    ((name, data),) = iter_demo_slices(120, seed=3, n_tracks=400)
    info = SliceInfo(generated_on="songrec synthetic demo", slice="0-999", version="v1")
    assert data == encode_slice(generate_playlists(catalogue, 0, 120, 3), info)


def test_every_mpd_field_is_present(demo_json: dict) -> None:
    assert set(demo_json) == {"info", "playlists"}
    assert set(demo_json["info"]) == {"generated_on", "slice", "version"}
    assert json.dumps(demo_json, indent=4).startswith('{\n    "info": {\n        "generated_on"')
    for playlist in demo_json["playlists"]:
        assert PLAYLIST_FIELDS <= set(playlist) <= PLAYLIST_FIELDS | {"description"}
        assert playlist["num_tracks"] == len(playlist["tracks"])
        assert playlist["collaborative"] == "false"
        assert playlist["num_followers"] >= 1
        assert playlist["duration_ms"] == sum(t["duration_ms"] for t in playlist["tracks"])
        assert playlist["num_artists"] == len({t["artist_uri"] for t in playlist["tracks"]})
        assert playlist["num_albums"] == len({t["album_uri"] for t in playlist["tracks"]})
        for pos, track in enumerate(playlist["tracks"]):
            assert set(track) == TRACK_FIELDS
            assert track["pos"] == pos
            assert track["track_uri"].startswith("spotify:track:") and len(track["track_uri"]) == 36
            assert track["artist_uri"].startswith("spotify:artist:")
            assert track["album_uri"].startswith("spotify:album:")


def test_fields_match_the_real_full_format(demo_json: dict, shared_data: Path) -> None:
    path = shared_data / "mpd-full-format" / "mpd.slice.0-999.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    real = json.loads(path.read_bytes())
    real_playlist_fields = set().union(*(p.keys() for p in real["playlists"]))
    real_track_fields = set().union(*(t.keys() for p in real["playlists"] for t in p["tracks"]))
    assert real_playlist_fields - {"description"} == PLAYLIST_FIELDS
    assert real_track_fields == TRACK_FIELDS
    assert set(real["info"]) == set(demo_json["info"])


def test_genres_are_in_the_playlist_names(demo_corpus: Corpus) -> None:
    genres = Counter(genre_of_name(name) for name in demo_corpus.playlists["name"])
    for genre in ("country", "hip-hop", "christmas"):
        assert genres[genre] >= 10, genres
    assert set(genres) - {None} <= {g.name for g in GENRES}
    assert genres[None] > 0, "some playlists have generic names"
    assert genre_of_name("Country Music") == "country" and genre_of_name("my playlist") is None


def test_lengths_within_mpd_limits(demo_corpus: Corpus) -> None:
    lengths = demo_corpus.lengths()
    assert lengths.min() >= 5 and lengths.max() <= 250
    assert 30 <= float(sorted(lengths)[len(lengths) // 2]) <= 70, "median near the MPD's 49"
    # tracks are distinct within a generated playlist
    assert all(len(set(demo_corpus.playlist_tracks(r).tolist())) == lengths[r] for r in range(demo_corpus.n_playlists))


def test_file_decodes_with_the_mpd_reader(demo_dir: Path, demo_corpus: Corpus) -> None:
    (path,) = sorted(demo_dir.iterdir())
    decoded = read_slice(path)
    assert len(decoded.playlists) == demo_corpus.n_playlists == 600
    assert decoded.info is not None and decoded.info.generated_on == "songrec synthetic demo"
    assert demo_corpus.n_tracks > 500
