"""Genre labels from playlist names, and genre match counts of recommendations, on generated demo data."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from songrec.corpus import Corpus
from songrec.genres import (
    DEFAULT_KEYWORDS,
    MORE_KEYWORDS,
    example_table,
    genre_labels,
    genre_match_counts,
    name_genre,
    parse_keywords,
    playlist_genres,
    track_genres,
)
from songrec.models import make_model
from songrec.synthetic import genre_of_name


@pytest.fixture(scope="module")
def corpus(demo_corpus: Corpus) -> Corpus:
    return demo_corpus


@pytest.fixture(scope="module")
def popularity(corpus: Corpus):
    return make_model("popularity").fit(corpus)


@pytest.fixture(scope="module")
def itemknn(corpus: Corpus):
    return make_model("itemknn").fit(corpus)


@pytest.mark.parametrize(
    ("name", "genre"),
    [
        ("Country Roads", "country"),
        ("country 🤠", "country"),
        ("RAP 🔥", "hip-hop"),
        ("Hip Hop", "hip-hop"),
        ("hip-hop", "hip-hop"),
        ("hiphop", "hip-hop"),
        ("trap", "hip-hop"),
        ("Xmas", "christmas"),
        ("Holiday Songs", "christmas"),
        ("christmas 🎄", "christmas"),
        ("Summer", None),
        ("rapture", None),  # whole words only
        ("strap", None),
        ("country christmas", None),  # two genres: left unlabelled
    ],
)
def test_name_genre(name: str, genre: str | None) -> None:
    assert name_genre(name) == genre


def test_parse_keywords_normalizes_and_dedupes() -> None:
    assert parse_keywords(" Rap, hip-hop ,, RAP;\ntrap ") == ["rap", "hip hop", "trap"]


def test_playlist_genres_agree_with_the_generator(corpus: Corpus) -> None:
    labels = playlist_genres(corpus)
    truth = [genre_of_name(n) for n in corpus.playlists["name"]]
    counts = Counter(labels.tolist())
    for genre in DEFAULT_KEYWORDS:
        assert counts[genre] > 10, counts
    for label, generated in zip(labels, truth, strict=True):
        if label is not None:
            assert label == generated  # demo playlist names never mislead


def test_keywords_are_editable(corpus: Corpus) -> None:
    only_xmas = playlist_genres(corpus, {"christmas": ["xmas"]})
    assert set(only_xmas.tolist()) <= {"christmas", None}
    assert (only_xmas == "christmas").sum() < (playlist_genres(corpus) == "christmas").sum()
    assert set(playlist_genres(corpus, {}).tolist()) == {None}


def test_track_genre_is_the_majority_among_genre_playlists(corpus: Corpus) -> None:
    keywords = {**DEFAULT_KEYWORDS, **MORE_KEYWORDS}
    playlists = playlist_genres(corpus, keywords)
    tracks = track_genres(corpus, keywords, playlists)
    assert len(tracks) == corpus.n_tracks
    # check one labelled track by hand
    track = next(t for t in np.argsort(-corpus.track_counts) if tracks[t] is not None)
    rows = [r for r in range(corpus.n_playlists) if track in corpus.playlist_tracks(r) and playlists[r] is not None]
    votes = Counter(playlists[r] for r in rows)
    assert tracks[track] == votes.most_common(1)[0][0]
    # tracks in no named playlist stay unlabelled
    named = np.zeros(corpus.n_tracks, bool)
    for r in np.flatnonzero(playlists != None):  # noqa: E711 (object array)
        named[corpus.playlist_tracks(r)] = True
    assert all(tracks[t] is None for t in np.flatnonzero(~named))


def test_genre_match_counts(corpus: Corpus, popularity, itemknn) -> None:
    knn = genre_match_counts(itemknn, corpus, "country", n=15, n_seeds=10)
    pop = genre_match_counts(popularity, corpus, "country", n=15, n_seeds=10)
    per = knn.per_playlist
    assert len(per) == (playlist_genres(corpus) == "country").sum()
    assert per["matches"].between(0, 15).all()
    assert (per["seeds"] <= 10).all()
    assert all(len(ids) == 15 for ids in per["recommended"])
    assert 0 < knn.base_rate < 1 and 0 < knn.entry_rate < 1
    assert knn.expected_by_chance == pytest.approx(15 * knn.base_rate)
    # co-occurrence keeps to the genre far better than chance and than the same hits for everyone
    assert knn.mean_matches > 2 * knn.expected_by_chance
    assert knn.mean_matches > pop.mean_matches
    summary = knn.summary()
    assert summary["genre"] == "country" and summary["model"] == "itemknn"
    assert summary["mean_share"] == pytest.approx(knn.mean_matches / 15)


def test_genre_match_never_uses_the_title(corpus: Corpus) -> None:
    class Spy:
        name = "spy"

        def __init__(self) -> None:
            self.titles = []

        def recommend_batch(self, seed_lists, titles, n=500, excludes=None):
            self.titles += list(titles)
            return [(np.arange(n, dtype=np.int64), np.zeros(n, np.float32)) for _ in seed_lists]

    spy = Spy()
    result = genre_match_counts(spy, corpus, "christmas", max_playlists=5)
    assert len(result.per_playlist) == 5 and spy.titles == [None] * 5


def test_unknown_genre_and_sampling(corpus: Corpus, popularity) -> None:
    with pytest.raises(ValueError, match="no keywords"):
        genre_match_counts(popularity, corpus, "polka")
    sampled = genre_match_counts(popularity, corpus, "hip-hop", max_playlists=7, seed=3)
    again = genre_match_counts(popularity, corpus, "hip-hop", max_playlists=7, seed=3)
    assert len(sampled.per_playlist) == 7
    assert sampled.per_playlist["pid"].tolist() == again.per_playlist["pid"].tolist()


def test_example_table(corpus: Corpus, itemknn) -> None:
    labels = genre_labels(corpus, DEFAULT_KEYWORDS)
    result = genre_match_counts(itemknn, corpus, "hip-hop", labels=labels)
    table = example_table(corpus, result, 0)
    assert list(table.columns) == ["rank", "match", "track", "artist", "genre label"]
    assert len(table) == 15
    assert table["match"].sum() == result.per_playlist["matches"].iat[0]
    assert (table.loc[table["match"], "genre label"] == "hip-hop").all()


def test_genre_labels_bundle(corpus: Corpus) -> None:
    labels = genre_labels(corpus)
    assert labels.genres == list(DEFAULT_KEYWORDS)
    assert labels.playlists.tolist() == playlist_genres(corpus).tolist()
    assert labels.tracks.tolist() == track_genres(corpus).tolist()
    assert labels.counts.shape == (corpus.n_tracks, 3)


def test_a_playlist_cannot_vouch_for_its_own_tracks(corpus: Corpus) -> None:
    """A model that hands back a playlist's own unseen tracks only scores where other playlists agree."""
    labels = genre_labels(corpus)

    class Cheat:
        name = "cheat"

        def recommend_batch(self, seed_lists, titles, n=500, excludes=None):
            out = []
            for seeds in seed_lists:
                row = next(
                    r
                    for r in range(corpus.n_playlists)
                    if np.array_equal(corpus.playlist_tracks(r)[: len(seeds)], seeds)
                )
                rest = corpus.playlist_tracks(row)[len(seeds) :][:n]
                out.append((rest.astype(np.int64), np.zeros(len(rest), np.float32)))
            return out

    honest = genre_match_counts(Cheat(), corpus, "christmas", labels=labels, max_playlists=20)
    naive = genre_match_counts(Cheat(), corpus, "christmas", labels=labels, max_playlists=20, leave_one_out=False)
    assert (honest.per_playlist["matches"] <= naive.per_playlist["matches"]).all()
    # a track whose only christmas vote is this playlist loses its label here
    row = int(honest.per_playlist["row"].iat[0])
    ids = corpus.playlist_tracks(row)
    alone = ids[labels.counts[ids, labels.genres.index("christmas")] == 1]
    if len(alone):
        assert "christmas" not in labels.without_playlist(corpus, row, alone).tolist()
