"""EASE (Steck, 2019): a closed-form item-item model on the most frequent tracks.

B = I - P / diag(P) with P = (X^T X + lambda I)^-1, zero diagonal; scores = seeds . B. Tracks
outside the most frequent `max_items` are left to the fallbacks (title, popularity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songrec.corpus import Corpus
from songrec.models.base import (
    FitCallback,
    FitProgress,
    Recommender,
    Scores,
    checked_ids,
    checked_matrix,
    frequent_tracks,
)
from songrec.settings import Settings, setting


@dataclass(frozen=True)
class EASESettings(Settings):
    owner = "ease"
    max_items: int = setting(
        10_000,
        "the most frequent tracks in the item-item model (its memory grows with the square)",
        low=2,
        high=50_000,
        label="Max tracks",
    )
    l2: float = setting(200.0, "L2 regularisation added to the Gram matrix's diagonal", low=0.0, high=1e9)


class EASERecommender(Recommender):
    name = "ease"
    settings_classes = (EASESettings,)
    settings: EASESettings

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.item_ids = np.zeros(0, dtype=np.int64)
        self.weights = np.zeros((0, 0), dtype=np.float32)
        self._position = np.zeros(0, dtype=np.int64)

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        self.item_ids = frequent_tracks(corpus, 2, self.settings.max_items)
        matrix = corpus.matrix()[:, self.item_ids]
        gram = (matrix.T @ matrix).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.settings.l2
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
        self.item_ids = checked_ids(arrays["item_ids"], self.n_tracks, "item_ids")
        shape = (len(self.item_ids), len(self.item_ids))
        self.weights = checked_matrix(arrays["weights"], shape, "weights").astype(np.float32)
        self._index(self.n_tracks)
