"""ALS through the shared recommender checks."""

from __future__ import annotations

import numpy as np
from recommender_checks import RecommenderBaseTestMixin

from songrec.corpus import Corpus
from songrec.models import make_model
from songrec.models.base import Recommender


class TestALS(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("als", factors=32, iterations=8)


def test_tracks_seen_once_get_factors_unless_told_otherwise(demo_split: tuple[Corpus, Corpus]) -> None:
    train = demo_split[0]
    counts = train.track_counts
    every = make_model("als", factors=8, iterations=2).fit(train)
    frequent = make_model("als", factors=8, iterations=2, min_count=2).fit(train)
    assert sorted(every.item_ids) == sorted(np.flatnonzero(counts >= 1))
    assert sorted(frequent.item_ids) == sorted(np.flatnonzero(counts >= 2))
