"""Why this song (Recommender.explain), two models side by side, and the exports of a recommendation list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from factories import corpus_of, playlist, track

from songrec import explore
from songrec.corpus import Corpus
from songrec.ingest import load_corpus
from songrec.models import load_model, make_model
from songrec.models.base import co_occurrence_reasons, co_occurrences


def _hand_made() -> Corpus:
    """Mistletoe (m) shares 3 playlists with Snow (s) and 1 with Bells (b); Snow twice in one playlist."""
    m, s, b = track("u:m", "X", "Mistletoe Heart"), track("u:s", "X", "Snow Angel"), track("u:b", "Y", "Bells")
    other = track("u:o", "Z", "Other")
    return corpus_of(
        [
            playlist(1, [m, s, s]),
            playlist(2, [m, s, b]),
            playlist(3, [s, m]),
            playlist(4, [b, other]),
            playlist(5, [other]),
        ]
    )


def test_co_occurrences_count_playlists_not_entries() -> None:
    corpus = _hand_made()
    m, s, b, o = corpus.track_ids(["u:m", "u:s", "u:b", "u:o"])
    together, alone = co_occurrences(corpus, np.array([s, b]), np.array([m, o]))
    np.testing.assert_array_equal(together, [[3, 1], [0, 1]])
    np.testing.assert_array_equal(alone, [3, 2])


def test_reasons_name_the_seeds_that_support_a_track_most() -> None:
    corpus = _hand_made()
    m, s, b, o = corpus.track_ids(["u:m", "u:s", "u:b", "u:o"])
    reasons = co_occurrence_reasons(corpus, [b, s, -1], [m, o])
    assert reasons[0] == "with “Snow Angel” in 3 playlists, “Bells” in 1"
    assert reasons[1] == "with “Bells” in 1 playlist"
    assert co_occurrence_reasons(corpus, [s], [o]) == ["in 2 playlists, none with a seed"]
    assert co_occurrence_reasons(corpus, [], [o]) == ["no seed tracks: in 2 playlists"]


def test_explain_uses_the_fitted_corpus_and_after_loading_a_given_one(tmp_path: Path) -> None:
    corpus = _hand_made()
    m, s = corpus.track_ids(["u:m", "u:s"])
    model = make_model("ease").fit(corpus)
    assert model.explain([s], [m]) == ["with “Snow Angel” in 3 playlists"]
    model.save(tmp_path / "ease.safetensors")
    loaded = load_model(tmp_path / "ease.safetensors")
    with pytest.raises(ValueError, match="pass corpus="):
        loaded.explain([s], [m])
    assert loaded.explain([s], [m], corpus) == ["with “Snow Angel” in 3 playlists"]


def test_popularity_and_itemknn_refine_the_reason() -> None:
    corpus = _hand_made()
    m, s, b, o = corpus.track_ids(["u:m", "u:s", "u:b", "u:o"])
    popularity = make_model("popularity").fit(corpus)
    assert popularity.explain([m], [s, o]) == [
        "one of the 10 most popular tracks (4 times in the training playlists)",  # twice in one playlist
        "one of the 10 most popular tracks (2 times in the training playlists)",
    ]
    knn = make_model("itemknn").fit(corpus)
    reason = knn.explain([s], [m])[0]
    assert reason.startswith("like “Snow Angel” (") and float(reason.split("(")[1].rstrip(")")) > 0


@pytest.fixture(scope="module")
def demo(demo_dir) -> Corpus:
    corpus, _ = load_corpus([demo_dir])
    return corpus


def test_recommendation_table_has_a_reason_per_row(demo: Corpus) -> None:
    model = make_model("ease").fit(demo)
    seeds, truth = explore.holdout(demo, 0, 5)
    table = explore.recommendation_table(model, demo, seeds, None, 15, truth)
    assert table["reason"].str.len().gt(0).all()
    assert table["reason"].str.startswith("with “").sum() >= 10  # EASE's picks share playlists with the seeds


def test_side_by_side_marks_the_overlap_and_counts_hits(demo: Corpus) -> None:
    popularity, knn = make_model("popularity").fit(demo), make_model("itemknn").fit(demo)
    seeds, truth = explore.holdout(demo, 3, 10)
    view = explore.side_by_side(popularity, knn, demo, seeds, None, 15, truth)
    shared = set(view.left["id"]) & set(view.right["id"])
    assert view.shared == len(shared)
    assert view.left["in both"].tolist() == view.left["id"].isin(shared).tolist()
    assert view.right["in both"].sum() == view.shared
    assert view.hits == (int(view.left["hit"].sum()), int(view.right["hit"].sum()))
    assert explore.side_by_side(popularity, popularity, demo, seeds, None, 15).shared == 15


def test_exports_csv_and_an_mpd_slice_that_reads_back(demo: Corpus) -> None:
    model = make_model("itemknn").fit(demo)
    seeds, truth = explore.holdout(demo, 0, 5)
    table = explore.recommendation_table(model, demo, seeds, "my mix", 10, truth)
    csv = explore.table_csv(table).decode("utf-8").splitlines()
    assert csv[0] == "rank,hit,track,artist,score,reason,source,uri" and len(csv) == 11
    data = explore.playlist_slice(demo, seeds, table, "my mix", pid=7, model_name="itemknn")
    back, report = load_corpus([("mpd.slice.7-7.json", data)])
    assert not report.errors
    assert back.n_playlists == 1 and back.playlists["name"].iat[0] == "my mix" and back.playlists["pid"].iat[0] == 7
    uris = back.tracks["uri"].to_numpy()[back.playlist_tracks(0)].tolist()
    assert uris == demo.tracks["uri"].to_numpy()[seeds].tolist() + table["uri"].tolist()
