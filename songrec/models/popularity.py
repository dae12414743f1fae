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

    def explain(self, seeds, track_ids, corpus: Corpus | None = None) -> list[str]:
        """The seeds play no part here: a track's reason is its rank ("one of the 10 most popular")."""
        del seeds, corpus
        rank = np.full(self.n_tracks, -1, dtype=np.int64)
        rank[self._popular_order] = np.arange(len(self._popular_order))
        reasons = []
        for track in np.asarray(track_ids, dtype=np.int64).reshape(-1):
            if track < 0 or track >= self.n_tracks or rank[track] < 0:
                reasons.append("in no training playlist")
                continue
            top = 10 ** int(np.ceil(np.log10(rank[track] + 1.5)))  # 1st-9th: top 10; 10th-99th: top 100, ...
            count = int(self.popularity[track])
            reasons.append(
                f"one of the {top:,} most popular tracks ({count:,} time{'s' if count != 1 else ''} in the "
                "training playlists)"
            )
        return reasons
