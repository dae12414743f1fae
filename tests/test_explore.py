"""The tables behind the app's pages, and background fitting (songrec.explore, songrec.ui.jobs)."""

from __future__ import annotations

import numpy as np
import pytest

from songrec import explore
from songrec.corpus import Corpus
from songrec.ingest import load_corpus
from songrec.models import make_model
from songrec.protocol import CATEGORY_NAMES
from songrec.synthetic import write_demo
from songrec.ui.jobs import FitJob


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    folder = tmp_path_factory.mktemp("explore-demo")
    write_demo(folder, 300, seed=3)
    return load_corpus([folder])[0]


def test_histograms_cover_every_playlist(corpus: Corpus) -> None:
    lengths = explore.length_histogram(corpus, bin_width=10)
    assert lengths["playlists"].sum() == corpus.n_playlists
    assert (lengths["end"] - lengths["start"] == 10).all()
    followers = explore.follower_histogram(corpus)
    assert followers["playlists"].sum() == corpus.n_playlists
    assert followers["followers"].iat[0] == "1"


def test_search_playlists_and_tracks(corpus: Corpus) -> None:
    found = explore.search_playlists(corpus, "COUNTRY")
    assert len(found) and found["name"].str.lower().str.contains("country").all()
    assert len(explore.search_playlists(corpus, "")) == min(200, corpus.n_playlists)
    assert explore.search_playlists(corpus, "no such playlist name").empty
    tracks = explore.search_tracks(corpus, "whiskey", limit=5)
    assert 0 < len(tracks) <= 5
    assert (np.diff(tracks["playlists"].to_numpy()) <= 0).all()
    assert explore.search_tracks(corpus, "  ").empty


def test_holdout_and_recommendation_table(corpus: Corpus) -> None:
    model = make_model("itemknn").fit(corpus)
    row = int(np.argmax(corpus.lengths()))
    seeds, truth = explore.holdout(corpus, row, 5)
    assert len(seeds) == 5 and not np.isin(truth, seeds).any()
    table = explore.recommendation_table(model, corpus, seeds, None, 25, truth)
    assert list(table.columns) == ["rank", "hit", "track", "artist", "score", "reason", "source", "uri", "id"]
    assert len(table) == 25 and not table["id"].isin(seeds).any()
    assert table["hit"].tolist() == np.isin(table["id"], truth).tolist()
    scores = explore.holdout_scores(table["id"].to_numpy(), truth)
    assert scores["hits"] == table["hit"].sum()
    title_only = explore.recommendation_table(model, corpus, [], "country", 10)
    assert len(title_only) == 10 and "hit" not in title_only


def test_compare_models_tables(corpus: Corpus) -> None:
    train, test, cases = explore.holdout_cases(corpus, 0.2, seed=0, max_cases=60)
    assert train.n_playlists + test.n_playlists == corpus.n_playlists and len(cases) == 60
    models = {name: make_model(name).fit(train) for name in ("popularity", "itemknn")}
    calls = []
    results = explore.compare_models(models, test, cases, progress=lambda *a: calls.append(a))
    overall, per_category = explore.evaluation_tables(results)
    assert overall["model"].tolist() == ["popularity", "itemknn"]
    assert (overall["cases"] == 60).all()
    assert set(per_category["category"]) <= set(CATEGORY_NAMES)
    assert per_category.groupby("model")["cases"].sum().eq(60).all()
    assert calls[-1] == ("itemknn", 60, 60)
    r_precision = overall.set_index("model")["r_precision"]
    assert r_precision["itemknn"] > r_precision["popularity"]


def test_fit_job_runs_and_stops(corpus: Corpus) -> None:
    job = FitJob(make_model("itemknn"), corpus, "itemknn").start()
    assert job.wait(60) and job.status == "done" and job.fraction == 1.0

    settings = dict(epochs=200, embedding_dim=8, hidden_dim=16, batch_size=16, val_share=0.0)
    job = FitJob(make_model("neural", **settings), corpus, "neural").start()
    for _ in range(600):
        if job.last is not None and job.last.epoch >= 2:
            break
        job.wait(0.05)
    job.stop()
    assert job.wait(60)
    assert job.status == "stopped" and 1 <= job.model.epochs_trained < 200
    ids, _ = job.model.recommend(corpus.playlist_tracks(0)[:3], None, 10)
    assert len(ids) == 10


def test_fit_job_reports_failure(corpus: Corpus) -> None:
    settings = dict(epochs=1, min_track_count=10**6)  # no track is frequent enough
    job = FitJob(make_model("neural", **settings), corpus, "neural").start()
    assert job.wait(60) and job.status == "failed"
    assert job.error.startswith("too few tracks to train on") and "failed" in job.describe()
    assert job.details is None  # a user's mistake: words, no traceback
