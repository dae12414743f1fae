"""Weighted matrix factorisation (implicit ALS, Hu et al. 2008) with the `implicit` package.

A new playlist gets its factor by one least-squares solve against the fixed track factors,
so seeds unseen at training time still work. Only the `max_items` most frequent tracks get
factors (as the neural model's max_vocab): scoring 2.26M tracks per request reads a 1.1 GB
matrix, too slow for a 20 ms answer; the rest come from the fallbacks (title, popularity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

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
class ALSSettings(Settings):
    owner = "als"
    factors: int = setting(128, "latent factors per track", low=1, high=1024, step=8)
    l2: float = setting(0.1, "L2 regularisation of the factors", low=0.0, high=1e6)
    alpha: float = setting(20.0, "confidence weight of an observed (playlist, track) pair", low=0.0, high=1e6)
    iterations: int = setting(15, "alternating least-squares sweeps", low=1, high=1000)
    min_count: int = setting(
        1,
        "tracks in fewer playlists get no factors (the fallbacks cover them); on the tuning splits 1 beat 2 "
        "by 0.006 R-precision: a quarter of the entries are tracks seen once",
        low=1,
        high=1_000_000,
    )
    max_items: int = setting(
        300_000, "at most this many of the most frequent tracks get factors", low=1, high=10_000_000, label="Max tracks"
    )
    seed: int = setting(0, "random start of the factors", low=0, high=2**31 - 1)


class ALSRecommender(Recommender):
    name = "als"
    settings_classes = (ALSSettings,)
    settings: ALSSettings

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.item_ids = np.zeros(0, dtype=np.int64)
        self.item_factors = np.zeros((0, self.settings.factors), dtype=np.float32)
        self._position = np.zeros(0, dtype=np.int64)
        self._gram = np.zeros((self.settings.factors, self.settings.factors), dtype=np.float64)

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        config = self.settings
        self.item_ids = frequent_tracks(corpus, config.min_count, config.max_items)
        progress = (lambda it: callback(FitProgress(it, config.iterations, "iterations"))) if callback else None
        self.item_factors = item_factors(corpus.matrix()[:, self.item_ids].tocsr(), config, progress)
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
        config = self.settings
        lhs = self._gram + config.alpha * seed_factors.T @ seed_factors + config.l2 * np.eye(config.factors)
        rhs = (1.0 + config.alpha) * seed_factors.sum(axis=0)
        user = np.linalg.solve(lhs, rhs).astype(np.float32)
        return self.item_ids, self.item_factors @ user

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_ids": self.item_ids, "item_factors": self.item_factors}

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        self.item_ids = checked_ids(arrays["item_ids"], self.n_tracks, "item_ids")
        shape = (len(self.item_ids), self.settings.factors)
        self.item_factors = checked_matrix(arrays["item_factors"], shape, "item_factors").astype(np.float32)
        self._prepare(self.n_tracks)


def item_factors(
    matrix: sp.csr_matrix, config: ALSSettings, progress: Callable[[int], object] | None = None
) -> np.ndarray:
    """(items, factors) ALS factors of a 0/1 playlists x items matrix (confidence alpha per entry;
    `matrix` is left as it was). The neural model's ALS start calls this too, once per network."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    confidence = matrix * config.alpha
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=config.factors,
            regularization=config.l2,
            iterations=config.iterations,
            random_state=config.seed,
            calculate_training_loss=False,
        )
        callback = (lambda iteration, seconds, loss: progress(iteration)) if progress else None
        model.fit(confidence.tocsr(), show_progress=False, callback=callback)
    return np.asarray(model.item_factors, dtype=np.float32)
