"""Item-kNN through the shared recommender checks, and against popularity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from recommender_checks import RecommenderBaseTestMixin

from songrec.corpus import Corpus
from songrec.metrics import evaluate_model
from songrec.models import load_model, make_model
from songrec.models.base import Recommender
from songrec.models.itemknn import ItemKNNRecommender


class TestItemKNN(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("itemknn", neighbours=100)

    def test_config_survives_saving(self, model: Recommender, tmp_path: Path) -> None:
        model.save(tmp_path / "knn.safetensors")
        loaded = load_model(tmp_path / "knn.safetensors")
        assert loaded.config() == model.config() and loaded.config()["neighbours"] == 100
        assert (loaded.similarity != model.similarity).nnz == 0

    def test_neighbours_co_occur(self, model: ItemKNNRecommender, fit_corpus: Corpus) -> None:
        matrix = fit_corpus.matrix()
        cooc = (matrix.T @ matrix).tocsr()
        sim = model.similarity
        assert sim.shape == (fit_corpus.n_tracks, fit_corpus.n_tracks)
        assert np.diff(sim.indptr).max() <= 100
        for track in np.flatnonzero(fit_corpus.track_counts > 2)[:20]:
            neighbours = sim.indices[sim.indptr[track] : sim.indptr[track + 1]]
            assert track not in neighbours
            assert (cooc[track, neighbours].toarray() > 0).all()


def test_itemknn_beats_popularity_on_r_precision(demo_split: tuple[Corpus, Corpus], demo_cases: list) -> None:
    train, test = demo_split
    scores = {
        name: evaluate_model(make_model(name).fit(train), demo_cases, test.track_artist).overall
        for name in ("popularity", "itemknn")
    }
    assert scores["itemknn"].cases == scores["popularity"].cases == len(demo_cases)
    assert scores["itemknn"].r_precision > scores["popularity"].r_precision + 0.1, scores
    assert scores["itemknn"].ndcg > scores["popularity"].ndcg, scores


# --- the registry and shared helpers ------------------------------------------------------------------
