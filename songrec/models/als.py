"""Weighted matrix factorisation (implicit ALS, Hu et al. 2008) with the `implicit` package.

A new playlist gets its factor by one least-squares solve against the fixed track factors,
so seeds unseen at training time still work. Only the `max_items` most frequent tracks get
factors (as the neural model's max_vocab): scoring 2.26M tracks per request reads a 1.1 GB
matrix, too slow for a 20 ms answer; the rest come from the fallbacks (title, popularity).
"""

from __future__ import annotations

import numpy as np

from songrec.corpus import Corpus
from songrec.models.base import FitCallback, FitProgress, Recommender, Scores, frequent_tracks


class ALSRecommender(Recommender):
    name = "als"

    def __init__(
        self,
        factors: int = 128,
        l2: float = 0.1,
        alpha: float = 20.0,
        iterations: int = 15,
        min_count: int = 2,
        max_items: int = 300_000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.factors, self.l2, self.alpha, self.iterations = factors, l2, alpha, iterations
        self.min_count, self.max_items, self.seed = min_count, max_items, seed
        self.item_ids = np.zeros(0, dtype=np.int64)
        self.item_factors = np.zeros((0, factors), dtype=np.float32)
        self._position = np.zeros(0, dtype=np.int64)
        self._gram = np.zeros((factors, factors), dtype=np.float64)

    def config(self) -> dict:
        return {
            "factors": self.factors,
            "l2": self.l2,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "min_count": self.min_count,
            "max_items": self.max_items,
            "seed": self.seed,
        }

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        self.item_ids = frequent_tracks(corpus, self.min_count, self.max_items)
        matrix = corpus.matrix()[:, self.item_ids].tocsr()
        matrix.data *= self.alpha
        progress = (
            (lambda it, secs, loss: callback(FitProgress(it, self.iterations, "iterations"))) if callback else None
        )
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.l2,
                iterations=self.iterations,
                random_state=self.seed,
                calculate_training_loss=False,
            )
            model.fit(matrix, show_progress=False, callback=progress)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        self._prepare(corpus.n_tracks)

    def _prepare(self, n_tracks: int) -> None:
        self._position = np.full(n_tracks, -1, dtype=np.int64)
        self._position[self.item_ids] = np.arange(len(self.item_ids))
        factors = self.item_factors.astype(np.float64)
        self._gram = factors.T @ factors

    def _score(self, seeds: np.ndarray) -> Scores | None:
        rows = np.unique(self._position[seeds])
        rows = rows[rows >= 0]
        if len(rows) == 0:
            return None
        seed_factors = self.item_factors[rows].astype(np.float64)
        lhs = self._gram + self.alpha * seed_factors.T @ seed_factors + self.l2 * np.eye(self.factors)
        rhs = (1.0 + self.alpha) * seed_factors.sum(axis=0)
        user = np.linalg.solve(lhs, rhs).astype(np.float32)
        return self.item_ids, self.item_factors @ user

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_ids": self.item_ids, "item_factors": self.item_factors}

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        self.item_ids, self.item_factors = arrays["item_ids"].astype(np.int64), arrays["item_factors"]
        self._prepare(self.n_tracks)
