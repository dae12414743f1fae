"""EASE through the shared recommender checks."""

from __future__ import annotations

from recommender_checks import RecommenderBaseTestMixin

from songrec.models import make_model
from songrec.models.base import Recommender


class TestEASE(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("ease", max_items=2000, l2=100.0)
