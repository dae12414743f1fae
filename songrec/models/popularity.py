"""Most popular tracks: the floor every other model must clear."""

from __future__ import annotations

import numpy as np

from songrec.corpus import Corpus
from songrec.models.base import FitCallback, Recommender, Scores


class PopularityRecommender(Recommender):
    """The same list for every playlist (minus its seeds); title-only playlists use the title model."""

    name = "popularity"

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        del corpus, callback

    def _score(self, seeds: np.ndarray) -> Scores | None:
        head = self._popular_order[: 500 + len(seeds)]
        return head, self.popularity[head]
