"""A saved model used on another corpus: seeds and recommendations translated through track URIs."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from songrec.corpus import Corpus
from songrec.models.base import Recommender, Scores, co_occurrence_reasons, frequent_tracks, popular_fill

TrackIds = Sequence[int] | np.ndarray


class AlignedRecommender:
    """Wraps a model so it takes and returns the track ids of `corpus` (matched by URI).

    The model's tracks that the corpus lacks are dropped from its answers, so it is asked for more
    than n (at most n plus their number) and a list still short is filled with the corpus's most
    played tracks (score NaN), as every model fills one."""

    def __init__(self, model: Recommender, corpus: Corpus) -> None:
        self.model = model
        self.name = model.name
        self.to_model = np.full(corpus.n_tracks, -1, dtype=np.int64)
        model_ids = corpus.track_ids(model.track_uris)
        known = model_ids >= 0
        self.to_model[model_ids[known]] = np.flatnonzero(known)
        self.to_corpus = model_ids
        self.unknown = int((~known).sum())
        """The model's tracks this corpus lacks: the most an answer can lose in translation."""
        self._popular_order = frequent_tracks(corpus)
        self._corpus = weakref.ref(corpus)  # for explain(); weak: a wrapper never keeps a dataset alive

    def _valid(self, ids: TrackIds | None) -> np.ndarray:
        """Corpus track ids, without -1 (an unknown URI) or any id outside the corpus."""
        ids = np.asarray(ids if ids is not None else [], dtype=np.int64).reshape(-1)
        return ids[(ids >= 0) & (ids < len(self.to_model))]

    def _in_model(self, ids: TrackIds | None) -> np.ndarray:
        """The model's ids of corpus tracks it knows (the rest it cannot score, return or exclude)."""
        mapped = self.to_model[self._valid(ids)]
        return mapped[mapped >= 0]

    def recommend_batch(
        self,
        seed_lists: Sequence[TrackIds],
        titles: Sequence[str | None],
        n: int = 500,
        excludes: Sequence[TrackIds | None] | None = None,
    ) -> list[Scores]:
        extras = list(excludes) if excludes is not None else [None] * len(seed_lists)
        seeds = [self._in_model(s) for s in seed_lists]
        model_excludes = [self._in_model(e) if e is not None else None for e in extras]
        most = n + self.unknown  # enough for n even if every unknown track ranks first
        ask = n + min(self.unknown, n)
        results: list[Scores] = [(np.zeros(0, np.int64), np.zeros(0, np.float32))] * len(seeds)
        pending = list(range(len(seeds)))
        while pending:
            answers = self.model.recommend_batch(
                [seeds[i] for i in pending], [titles[i] for i in pending], ask, [model_excludes[i] for i in pending]
            )
            short = []
            for i, (ids, scores) in zip(pending, answers, strict=True):
                mapped = self.to_corpus[ids]
                keep = mapped >= 0
                results[i] = (mapped[keep][:n], np.asarray(scores)[keep][:n])
                if len(results[i][0]) < n and len(ids) >= ask and ask < most:
                    short.append(i)  # the model has more to give: ask again for more
            pending, ask = short, min(2 * ask, most)
        return [self._fill(ids, scores, n, seed_lists[i], extras[i]) for i, (ids, scores) in enumerate(results)]

    def _fill(self, ids: np.ndarray, scores: np.ndarray, n: int, seeds: TrackIds, exclude: TrackIds | None) -> Scores:
        """A list short of n completed with the corpus's most played tracks, never a seed or an excluded one."""
        if len(ids) >= n:
            return ids, scores
        taken = np.concatenate([ids, self._valid(seeds), self._valid(exclude)])
        fill = popular_fill(self._popular_order, taken, n - len(ids))
        return np.concatenate([ids, fill]), np.concatenate([scores, np.full(len(fill), np.nan, np.float32)])

    def recommend(
        self, seeds: TrackIds, title: str | None = None, n: int = 500, exclude: TrackIds | None = None
    ) -> Scores:
        return self.recommend_batch([seeds], [title], n, [exclude])[0]

    def explain(self, seeds: TrackIds, track_ids: TrackIds, corpus: Corpus | None = None) -> list[str]:
        """The co-occurrence default, counted in `corpus` (by default the one this wrapper aligns to; the
        wrapped model's own reasons speak of its ids)."""
        if corpus is None:
            corpus = self._corpus()
            if corpus is None:
                raise ValueError(f"the aligned {self.name} model's corpus is gone: pass corpus=")
        return co_occurrence_reasons(corpus, seeds, track_ids)
