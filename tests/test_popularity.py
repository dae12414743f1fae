"""Popularity through the shared recommender checks (it ignores seeds, so its genre checks differ)."""

from __future__ import annotations

import numpy as np
from recommender_checks import RecommenderBaseTestMixin

from songrec.corpus import Corpus
from songrec.models import make_model
from songrec.models.base import Recommender


class TestPopularity(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("popularity")

    def test_country_and_christmas_get_different_lists(self, model: Recommender, demo_split) -> None:
        """Popularity ignores the seeds: with the same tracks excluded, both get the very same list."""
        country, christmas = self.country_and_christmas_top15(model, demo_split[1])
        assert country == christmas

    def test_top15_mostly_of_the_seed_genre(self, model: Recommender, fit_corpus: Corpus) -> None:
        """Instead of a genre: the list is the most frequent training tracks, minus the seeds."""
        seeds = fit_corpus.playlist_tracks(3)[:10]
        ids, scores = model.recommend(seeds, None, 15)
        counts = fit_corpus.track_counts
        order = np.argsort(-counts, kind="stable")
        assert ids.tolist() == [t for t in order.tolist() if t not in seeds][:15]
        np.testing.assert_array_equal(scores, counts[ids].astype(np.float32))
