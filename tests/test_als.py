"""ALS through the shared recommender checks."""

from __future__ import annotations

from recommender_checks import RecommenderBaseTestMixin

from songrec.models import make_model
from songrec.models.base import Recommender


class TestALS(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("als", factors=32, iterations=8)
