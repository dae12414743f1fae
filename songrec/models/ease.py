"""EASE (Steck, 2019): a closed-form item-item model on the most frequent tracks.

B = I - P / diag(P) with P = (X^T X + lambda I)^-1, zero diagonal; scores = seeds . B. Tracks
outside the most frequent `max_items` are left to the fallbacks (title, popularity).
"""

from __future__ import annotations

import numpy as np

from songrec.corpus import Corpus
from songrec.models.base import FitCallback, FitProgress, Recommender, Scores, frequent_tracks


class EASERecommender(Recommender):
    name = "ease"

    def __init__(self, max_items: int = 10_000, l2: float = 200.0) -> None:
        super().__init__()
        self.max_items = max_items
        self.l2 = l2
        self.item_ids = np.zeros(0, dtype=np.int64)
        self.weights = np.zeros((0, 0), dtype=np.float32)
        self._position = np.zeros(0, dtype=np.int64)

    def config(self) -> dict:
        return {"max_items": self.max_items, "l2": self.l2}

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        self.item_ids = frequent_tracks(corpus, 2, self.max_items)
        matrix = corpus.matrix()[:, self.item_ids]
        gram = (matrix.T @ matrix).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)
        np.fill_diagonal(weights, 0.0)
        self.weights = weights.astype(np.float32)
        self._index(corpus.n_tracks)
        if callback is not None:
            callback(FitProgress(len(self.item_ids), len(self.item_ids), "tracks"))

    def _index(self, n_tracks: int) -> None:
        self._position = np.full(n_tracks, -1, dtype=np.int64)
        self._position[self.item_ids] = np.arange(len(self.item_ids))

    def _score(self, seeds: np.ndarray) -> Scores | None:
        rows = self._position[seeds]
        rows = rows[rows >= 0]
        if len(rows) == 0:
            return None
        return self.item_ids, self.weights[rows].sum(axis=0)

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_ids": self.item_ids, "weights": self.weights}

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        self.item_ids, self.weights = arrays["item_ids"].astype(np.int64), arrays["weights"]
        self._index(self.n_tracks)
