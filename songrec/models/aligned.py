"""A saved model used on another corpus: seeds and recommendations translated through track URIs."""

from __future__ import annotations

import numpy as np

from songrec.corpus import Corpus
from songrec.models.base import Recommender, Scores, co_occurrence_reasons


class AlignedRecommender:
    """Wraps a model so it takes and returns the track ids of `corpus` (matched by URI)."""

    def __init__(self, model: Recommender, corpus: Corpus) -> None:
        self.model = model
        self.name = model.name
        self.to_model = np.full(corpus.n_tracks, -1, dtype=np.int64)
        model_ids = corpus.track_ids(model.track_uris)
        known = model_ids >= 0
        self.to_model[model_ids[known]] = np.flatnonzero(known)
        self.to_corpus = model_ids

    def recommend_batch(self, seed_lists, titles, n: int = 500, excludes=None) -> list[Scores]:
        seeds = [self.to_model[np.asarray(s, dtype=np.int64)[np.asarray(s) >= 0]] for s in seed_lists]
        results = []
        for ids, scores in self.model.recommend_batch(
            seeds,
            titles,
            n,
            excludes and [self.to_model[np.asarray(e, dtype=np.int64)] if e is not None else None for e in excludes],
        ):
            mapped = self.to_corpus[ids]
            keep = mapped >= 0
            results.append((mapped[keep], scores[keep]))
        return results

    def recommend(self, seeds, title=None, n: int = 500, exclude=None) -> Scores:
        return self.recommend_batch([seeds], [title], n, [exclude])[0]

    def explain(self, seeds, ids, corpus: Corpus) -> list[str]:
        """The co-occurrence default, counted in this corpus (the wrapped model's own reasons speak of its ids)."""
        return co_occurrence_reasons(corpus, seeds, ids)
