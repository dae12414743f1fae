"""The Corpus: CSR playlists over integer track ids, subsets and splits, statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from factories import corpus_of, playlist, tiny_playlists

from songrec.corpus import Corpus
from songrec.ingest import load_corpus


@pytest.fixture(scope="module")
def tiny() -> Corpus:
    return corpus_of(tiny_playlists())


def uris(corpus: Corpus, row: int) -> list[str]:
    return corpus.tracks["uri"].to_numpy()[corpus.playlist_tracks(row)].tolist()


def test_csr_arrays_have_compact_dtypes_and_keep_playlist_order(tiny: Corpus) -> None:
    assert tiny.indptr.dtype == np.int64
    assert tiny.indices.dtype == np.int32
    # ids in first-seen order: a0 b1 c2 d3 e4; the repeat of b in the last playlist is kept
    assert tiny.indptr.tolist() == [0, 3, 5, 8]
    assert tiny.indices.tolist() == [0, 1, 2, 0, 3, 1, 1, 4]
    assert tiny.playlists["pid"].tolist() == [10, 11, 12]
    assert uris(tiny, 2) == ["u:b", "u:b", "u:e"]
    assert tiny.lengths().tolist() == [3, 2, 3]
    assert (tiny.n_playlists, tiny.n_tracks, tiny.n_entries) == (3, 5, 8)


def test_playlist_order_is_file_order(demo_dir: Path, demo_corpus: Corpus) -> None:
    assert demo_corpus.playlists["pid"].tolist() == list(range(600))
    assert demo_corpus.indices.dtype == np.int32 and demo_corpus.indptr.dtype == np.int64


def test_track_ids_by_uri(tiny: Corpus) -> None:
    assert tiny.track_ids(["u:e", "u:a", "spotify:track:unknown"]).tolist() == [4, 0, -1]
    assert tiny.track_ids([]).tolist() == []
    assert tiny.tracks["artist"].tolist() == ["X", "Y", "X", "Z", "Y"]
    assert tiny.track_artist.tolist() == [0, 1, 0, 2, 1]
    assert tiny.artists.tolist() == ["X", "Y", "Z"]


def test_track_counts_count_entries(tiny: Corpus) -> None:
    # a: playlists 10 and 11; b: once in 10, twice in 12; c, d, e once each
    assert tiny.track_counts.tolist() == [2, 3, 1, 1, 1]
    assert tiny.tracks["count"].tolist() == [2, 3, 1, 1, 1]


def test_matrix_is_binary(tiny: Corpus) -> None:
    matrix = tiny.matrix()
    assert matrix.shape == (3, 5)
    assert matrix.toarray().tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 1, 0], [0, 1, 0, 0, 1]]


def test_matrix_leaves_the_corpus_alone() -> None:
    """Regression: matrix() summed duplicates in the corpus's own indices (a repeated track shifted the rest)."""
    corpus = corpus_of(tiny_playlists())
    indices, indptr = corpus.indices.copy(), corpus.indptr.copy()
    corpus.matrix()
    assert np.array_equal(corpus.indices, indices) and np.array_equal(corpus.indptr, indptr)
    assert uris(corpus, 2) == ["u:b", "u:b", "u:e"]


def test_subset_shares_track_ids_and_recomputes_counts(tiny: Corpus) -> None:
    part = tiny.subset(np.array([2, 0]))
    assert part.playlists["pid"].tolist() == [12, 10]
    assert part.indptr.tolist() == [0, 3, 6]
    assert part.indices.tolist() == [1, 1, 4, 0, 1, 2]
    assert part.indices.dtype == np.int32
    assert part.n_tracks == tiny.n_tracks
    assert part.tracks["uri"].tolist() == tiny.tracks["uri"].tolist()
    assert part.track_ids(["u:d"]).tolist() == [3]
    # d (only in playlist 11) is still a track of the subset, with count 0
    assert part.track_counts.tolist() == [1, 3, 1, 0, 1]
    assert part.tracks["count"].tolist() == [1, 3, 1, 0, 1]
    assert tiny.tracks["count"].tolist() == [2, 3, 1, 1, 1], "the parent corpus is left alone"
    assert uris(part, 1) == uris(tiny, 0)


def test_split_partitions_playlists_and_shares_ids(demo_corpus: Corpus) -> None:
    train, test = demo_corpus.split(0.2, seed=3)
    assert (train.n_playlists, test.n_playlists) == (480, 120)
    pids = set(train.playlists["pid"]) | set(test.playlists["pid"])
    assert pids == set(demo_corpus.playlists["pid"])
    assert not set(train.playlists["pid"]) & set(test.playlists["pid"])
    assert train.playlists["pid"].is_monotonic_increasing and test.playlists["pid"].is_monotonic_increasing
    assert train.n_tracks == test.n_tracks == demo_corpus.n_tracks
    assert np.array_equal(train.track_counts + test.track_counts, demo_corpus.track_counts)
    assert train.n_entries + test.n_entries == demo_corpus.n_entries
    row = int(np.flatnonzero(test.playlists["pid"] == test.playlists["pid"].iat[5])[0])
    original = int(np.flatnonzero(demo_corpus.playlists["pid"] == test.playlists["pid"].iat[5])[0])
    assert np.array_equal(test.playlist_tracks(row), demo_corpus.playlist_tracks(original))
    again = demo_corpus.split(0.2, seed=3)[1]
    assert again.playlists["pid"].tolist() == test.playlists["pid"].tolist()


def test_rows_from_files() -> None:
    corpus, _ = load_corpus([("a.json", _slice([1, 2])), ("b.json", _slice([3])), ("c.json", _slice([4, 5]))])
    assert corpus.rows_from_files(["c.json", "a.json"]).tolist() == [0, 1, 3, 4]


def _slice(pids: list[int]) -> bytes:
    from factories import slice_bytes

    return slice_bytes([playlist(p, [f"t{p}"]) for p in pids])


def test_stats_of_a_hand_made_corpus(tiny: Corpus) -> None:
    stats = tiny.stats()
    assert stats["playlists"] == 3
    assert stats["entries"] == 8  # 3 + 2 + 3
    assert stats["unique_tracks"] == 5
    assert stats["unique_artists"] == 3
    # lengths 3, 2, 3: median 3, mean 8 / 3
    assert stats["length"] == {"min": 2, "median": 3.0, "mean": pytest.approx(8 / 3), "max": 3}
    assert [(t["uri"], t["count"]) for t in stats["top_tracks"]] == [
        ("u:b", 3),
        ("u:a", 2),
        ("u:c", 1),
        ("u:d", 1),
        ("u:e", 1),
    ]
    assert stats["top_tracks"][0] == {"track": "Song u:b", "artist": "Y", "uri": "u:b", "count": 3}
    # artist entries: Y = b (3) + e (1) = 4, X = a (2) + c (1) = 3, Z = d (1)
    assert stats["top_artists"] == [
        {"artist": "Y", "count": 4},
        {"artist": "X", "count": 3},
        {"artist": "Z", "count": 1},
    ]
    # names lowercased and stripped: "Country" and "country " are one name
    assert stats["top_names"] == [{"name": "country", "count": 2}, {"name": "rock", "count": 1}]
    assert len(tiny.stats(top=1)["top_tracks"]) == 1


def test_stats_of_a_subset_count_only_its_playlists(tiny: Corpus) -> None:
    stats = tiny.subset(np.array([1])).stats()
    assert (stats["playlists"], stats["entries"], stats["unique_tracks"], stats["unique_artists"]) == (1, 2, 2, 2)
    assert [t["uri"] for t in stats["top_tracks"]] == ["u:a", "u:d"]


def test_empty_corpus() -> None:
    corpus, report = load_corpus([("empty.json", b'{"playlists": []}')])
    assert report.files_read == ["empty.json"]
    assert (corpus.n_playlists, corpus.n_tracks, corpus.n_entries) == (0, 0, 0)
    stats = corpus.stats()
    assert stats["playlists"] == 0 and stats["length"]["max"] == 0 and stats["top_tracks"] == []


def test_real_sample_loads_completely(shared_data: Path) -> None:
    folder = shared_data / "mpd-sample"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    corpus, report = load_corpus([folder])
    assert (corpus.n_playlists, corpus.n_entries) == (4_019, 390_207)
    assert len(report.files_read) == 699 and not report.errors and not report.warnings
    assert corpus.n_tracks == corpus.stats()["unique_tracks"] == 140_214
    repeats = sum(len(np.unique(corpus.playlist_tracks(r))) < corpus.lengths()[r] for r in range(corpus.n_playlists))
    assert repeats == 1_464
