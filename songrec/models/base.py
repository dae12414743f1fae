"""The Recommender interface every model shares, and the fallbacks every model needs.

A model only says how it scores tracks for some seed tracks (`_score`). The base class turns
that into at most n distinct recommendations that never repeat a seed, answers a title-only
playlist through the title model, and fills short lists by title then popularity, so the
evaluation, genre validation, CLI and app never branch on which model it is.
"""

from __future__ import annotations

import warnings
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from songrec.checkpoint import (
    CheckpointError,
    CheckpointSource,
    CheckpointTarget,
    checkpoint_name,
    load_checkpoint,
    save_checkpoint,
)
from songrec.corpus import Corpus
from songrec.models.title import TitleModel
from songrec.settings import SettingError, Settings, split_params

Scores = tuple[np.ndarray, np.ndarray]
"""(candidate track ids, their scores): a model's opinion on some tracks, higher is better."""


@dataclass(frozen=True)
class FitProgress:
    """Progress of a baseline's fit: `done` of `total` units (tracks, iterations)."""

    done: int
    total: int
    unit: str

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0

    @property
    def label(self) -> str:
        return f"{self.done:,}/{self.total:,} {self.unit}"


class NotFittedError(RuntimeError):
    """A model asked to recommend or be saved before it was fitted or loaded."""


FitCallback = Callable[[Any], bool | None]
"""Receives a FitProgress (baselines) or a TrainProgress (neural) while a model fits; both have
`fraction` and `label`. Returning False asks the model to stop early."""


def top_n(candidates: np.ndarray, values: np.ndarray, n: int, exclude: np.ndarray) -> Scores:
    """The n best candidates, best first, skipping excluded ids and non-finite scores."""
    finite = np.isfinite(values)
    if not finite.all():
        candidates, values = candidates[finite], values[finite]
    want = min(len(values), n + len(exclude))
    if want == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(-values, want - 1)[:want] if want < len(values) else np.arange(len(values))
    order = part[np.argsort(-values[part], kind="stable")]
    ids, scores = candidates[order], values[order]
    keep = ~np.isin(ids, exclude)
    return ids[keep][:n].astype(np.int64), scores[keep][:n].astype(np.float32)


def checked_ids(ids: np.ndarray, n_tracks: int, name: str) -> np.ndarray:
    """Saved track ids as int64, after checking they are distinct ids of the model's tracks."""
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise CheckpointError(f"{name} must be a 1-D integer array")
    ids = ids.astype(np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= n_tracks):
        raise CheckpointError(f"{name}: track ids outside 0..{n_tracks - 1}")
    if len(np.unique(ids)) != len(ids):
        raise CheckpointError(f"{name}: a track appears twice")
    return ids


def checked_matrix(values: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A saved float matrix, after checking its shape and that it holds no NaN or infinity."""
    if tuple(values.shape) != shape or values.dtype.kind != "f":
        raise CheckpointError(f"{name} has shape {tuple(values.shape)}, expected {shape}")
    if not np.isfinite(values).all():
        raise CheckpointError(f"{name} holds NaN or infinite values")
    return values


def popular_order(counts: np.ndarray, min_count: float = 0) -> np.ndarray:
    """Track ids with a count above zero (and at least `min_count`), highest count first, ties by id."""
    order = np.argsort(-counts, kind="stable")
    return order[(counts[order] > 0) & (counts[order] >= min_count)].astype(np.int64)


def popular_fill(order: np.ndarray, taken: np.ndarray, count: int) -> np.ndarray:
    """The first `count` ids of `order` (a popular_order) that are not in `taken`: what fills a short list."""
    head = order[: count + len(taken)]
    return head[~np.isin(head, taken)][:count]


def frequent_tracks(corpus: Corpus, min_count: int = 1, limit: int = 0) -> np.ndarray:
    """Track ids in at least `min_count` entries, most frequent first, at most `limit` (0 = all)."""
    order = popular_order(corpus.track_counts, min_count)
    return order[:limit] if limit else order


class Recommender(ABC):
    """fit(corpus) -> recommend(seeds, title, n, exclude) -> save/load, for every model.

    A model's settings are keyword arguments (`make_model("als", factors=64)`), checked against the
    typed classes in `settings_classes`; `config()`, which checkpoints store, derives from them.
    """

    name: ClassVar[str]
    settings_classes: ClassVar[tuple[type[Settings], ...]] = ()
    """The typed settings this model takes as keyword arguments (one class for most models)."""
    uses_titles: ClassVar[bool] = False
    """True when `_score_batch` reads titles itself (then title-only playlists reach the model)."""

    def __init__(self, **params: Any) -> None:
        self.settings_parts: tuple[Settings, ...] = tuple(split_params(self.settings_classes, params, self.name))
        self.settings = self.settings_parts[0] if len(self.settings_parts) == 1 else None
        self._track_uris: list[str] = []
        self._uri_index: pd.Index | None = None
        self.popularity = np.zeros(0, dtype=np.float32)
        self.title_model = TitleModel()
        self._popular_order = np.zeros(0, dtype=np.int64)
        self.fitted = False

    @property
    def track_uris(self) -> list[str]:
        """The Spotify URI of each track id this model speaks (its training corpus's ids)."""
        return self._track_uris

    @track_uris.setter
    def track_uris(self, uris: list[str]) -> None:
        self._track_uris, self._uri_index = uris, None

    def track_ids(self, uris: Sequence[str]) -> np.ndarray:
        """Track ids for URIs (-1 for unknown); the lookup index is built once per model."""
        if self._uri_index is None:
            self._uri_index = pd.Index(self._track_uris)
        return self._uri_index.get_indexer(list(uris)).astype(np.int64)

    @property
    def n_tracks(self) -> int:
        return len(self.popularity)

    def config(self) -> dict:
        """The settings that rebuild this model (saved in checkpoints): every settings class's fields."""
        return {key: value for part in self.settings_parts for key, value in part.as_dict().items()}

    def fit(self, corpus: Corpus, callback: FitCallback | None = None) -> Self:
        """Learn from the corpus playlists; the track ids of `recommend` are this corpus's ids."""
        self.track_uris = corpus.tracks["uri"].tolist()
        self.popularity = corpus.track_counts.astype(np.float32)
        self._set_popular_order()
        self.title_model = TitleModel().fit(corpus)
        self._explained_by = weakref.ref(corpus)  # for explain(); weak: a model never keeps a dataset alive
        self._fit(corpus, callback)
        self.fitted = True
        if callback is not None:  # every model ends its progress at 100%, also one with nothing to report
            callback(FitProgress(1, 1, "fitted"))
        return self

    def require_fitted(self, action: str) -> None:
        """A clear error instead of an empty answer or a traceback from an unfitted model."""
        if not self.fitted:
            raise NotFittedError(f"the {self.name} model is not fitted yet: call fit() or load() before {action}")

    def _set_popular_order(self) -> None:
        self._popular_order = popular_order(self.popularity)

    @abstractmethod
    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None: ...

    @abstractmethod
    def _score(self, seeds: np.ndarray) -> Scores | None:
        """Scores for known seed track ids (non-empty), or None when the seeds say nothing."""

    def _score_batch(
        self, seed_lists: Sequence[np.ndarray], titles: Sequence[str | None], limit: int | None = None
    ) -> list[Scores | None]:
        """Scores for many playlists; `limit` says how many of the best a caller can use at most
        (a model may return just those, which is cheaper than every score at 2M tracks)."""
        del titles, limit
        return [self._score(seeds) for seeds in seed_lists]

    def recommend(
        self,
        seeds: Sequence[int] | np.ndarray,
        title: str | None = None,
        n: int = 500,
        exclude: Sequence[int] | np.ndarray | None = None,
    ) -> Scores:
        """Up to n distinct track ids with scores, best first, never a seed or an excluded id.

        Seeds outside this model's vocabulary (id -1 from an unknown URI) are ignored. Tracks the
        model does not score are filled in from the title model, then by popularity; their score
        is NaN.
        """
        return self.recommend_batch([seeds], [title], n, [exclude])[0]

    def recommend_batch(
        self,
        seed_lists: Sequence[Sequence[int] | np.ndarray],
        titles: Sequence[str | None],
        n: int = 500,
        excludes: Sequence[Sequence[int] | np.ndarray | None] | None = None,
    ) -> list[Scores]:
        """`recommend` for many playlists at once (neural models score a whole batch together)."""
        self.require_fitted("recommending")
        cleaned = [self._known(seeds) for seeds in seed_lists]
        extras = excludes or [None] * len(cleaned)
        excluded = [
            np.unique(np.concatenate([seeds, np.asarray(extra if extra is not None else [], dtype=np.int64)]))
            for seeds, extra in zip(cleaned, extras, strict=True)
        ]
        scored = [i for i, seeds in enumerate(cleaned) if len(seeds) or (self.uses_titles and titles[i])]
        limit = n + max((len(excluded[i]) for i in scored), default=0)  # enough to skip every excluded id
        model_scores: dict[int, Scores | None] = dict(
            zip(
                scored, self._score_batch([cleaned[i] for i in scored], [titles[i] for i in scored], limit), strict=True
            )
        )
        return [self._complete(model_scores.get(i), titles[i], n, excluded[i]) for i in range(len(cleaned))]

    def _known(self, seeds: Sequence[int] | np.ndarray) -> np.ndarray:
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        return seeds[(seeds >= 0) & (seeds < self.n_tracks)]

    def _complete(self, scored: Scores | None, title: str | None, n: int, exclude: np.ndarray) -> Scores:
        ids, values = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        if scored is not None:
            ids, values = top_n(scored[0], scored[1], n, exclude)
        if len(ids) >= n:
            return ids, values
        taken = np.concatenate([exclude, ids])
        fills = []
        if title:
            title_scores = self.title_model.score(title)
            if title_scores is not None:
                fills.append(top_n(*title_scores, n - len(ids), taken)[0])
                taken = np.concatenate([taken, fills[-1]])
        short = n - len(ids) - sum(len(f) for f in fills)
        if short > 0:
            fills.append(popular_fill(self._popular_order, taken, short))
        fill = np.concatenate(fills) if fills else np.zeros(0, np.int64)
        return np.concatenate([ids, fill]), np.concatenate([values, np.full(len(fill), np.nan, np.float32)])

    def recommend_uris(self, seed_uris: Sequence[str], title: str | None = None, n: int = 500) -> list[str]:
        """Recommendations by Spotify URI, for playlists from outside the training corpus."""
        ids, _ = self.recommend(self.track_ids(seed_uris), title, n)
        return [self.track_uris[i] for i in ids]

    def _state(self) -> dict[str, np.ndarray]:
        """The arrays a model needs besides the shared ones (popularity, title model)."""
        return {}

    def _strings(self) -> dict[str, list[str]]:
        """String lists a model needs saved besides the track URIs (a vocabulary of words, say)."""
        return {}

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        del arrays, strings

    def save(self, target: CheckpointTarget) -> None:
        """Write the model to a safetensors checkpoint (no pickle): a path or a binary file open for writing."""
        self.require_fitted("saving")
        arrays, strings = self.title_model.state()
        arrays["popularity"] = self.popularity
        arrays.update({f"model.{k}": v for k, v in self._state().items()})
        strings.update({f"model.{k}": v for k, v in self._strings().items()})
        strings["track_uris"] = self.track_uris
        save_checkpoint(target, self.name, self.config(), arrays, strings)

    @classmethod
    def load(cls, source: CheckpointSource) -> Self:
        """Read a checkpoint written by `save` (a path, bytes or a binary file); refuses files that are
        not songrec checkpoints."""
        config, arrays, strings = load_checkpoint(source, cls.name)
        return cls.from_checkpoint(checkpoint_name(source), config, arrays, strings)

    @classmethod
    def from_checkpoint(
        cls, source: str, config: dict, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]
    ) -> Self:
        """The model a checkpoint's parts describe, every part checked before it is used: a forged or
        damaged file gives a CheckpointError that names `source`, never a traceback or a silent model."""
        try:
            config, missing_device = _device_here(config)
            model = cls(**config)
            uris = strings.pop("track_uris", None)
            popularity = arrays.pop("popularity", None)
            if uris is None or popularity is None:
                raise CheckpointError("no track table")
            if popularity.shape != (len(uris),) or not np.isfinite(popularity).all():
                raise CheckpointError(f"popularity has shape {popularity.shape} for {len(uris)} tracks")
            model.track_uris = uris
            model.popularity = popularity.astype(np.float32)
            model._set_popular_order()
            model.title_model = TitleModel.from_state(arrays, strings, len(uris))
            model._load_state(
                {k.removeprefix("model."): v for k, v in arrays.items() if k.startswith("model.")},
                {k.removeprefix("model."): v for k, v in strings.items() if k.startswith("model.")},
            )
            model.fitted = True
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {str(exc).removeprefix(source + ': ')}") from None
        except (SettingError, KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise CheckpointError(f"{source}: damaged {cls.name} checkpoint ({type(exc).__name__}: {exc})") from None
        if missing_device:
            warnings.warn(
                f"{source}: saved for device {missing_device!r}, which this machine lacks: the model runs on "
                f"{getattr(model, 'device', 'cpu')}",
                stacklevel=3,
            )
        return model

    # --- why this song ------------------------------------------------------------------------------------------

    def explain(
        self, seeds: Sequence[int] | np.ndarray, track_ids: Sequence[int] | np.ndarray, corpus: Corpus | None = None
    ) -> list[str]:
        """One reason per recommended track: the seeds it shares most playlists with, for example
        'with “Mistletoe Heart” in 12 playlists, “Snow Angel” in 9'. A model may refine it.

        Counts come from `corpus` (in this model's track ids). Without one, from the corpus the
        model was fitted on while that is still in memory (the model holds it by a weak reference,
        so it never keeps a dataset alive and a checkpoint stores nothing for it); after a
        checkpoint load, pass the corpus.
        """
        return co_occurrence_reasons(self._explain_corpus(corpus), seeds, track_ids)

    def _explain_corpus(self, corpus: Corpus | None) -> Corpus:
        if corpus is not None:
            return corpus
        fitted = getattr(self, "_explained_by", None)
        found = fitted() if fitted is not None else None
        if found is None:
            raise ValueError(
                f"the {self.name} model has no corpus to explain from (loaded from a checkpoint, or its training "
                "corpus is gone): pass corpus="
            )
        return found


def _device_here(config: dict) -> tuple[dict, str]:
    """(config, "") or, when the checkpoint names a GPU this machine lacks, (config with device "auto", the
    device it named). Checkpoints saved with their training settings name the device they were trained on;
    a model loads on any machine, on a device that is there."""
    device = config.get("device")
    if not isinstance(device, str) or device not in ("cuda", "mps"):
        return config, ""
    from songrec.models.network import device_problem  # torch: only for a model that names a GPU

    return ({**config, "device": "auto"}, device) if device_problem(device) else (config, "")


def co_occurrences(corpus: Corpus, seeds: np.ndarray, track_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tracks x seeds playlists holding both, playlists holding each track), from one pass over the
    corpus entries: only the entries of these tracks become (tiny) sparse matrices, so nothing of the
    size of the corpus is built or kept."""
    seeds = np.asarray(seeds, dtype=np.int64)
    track_ids = np.asarray(track_ids, dtype=np.int64)

    positions = np.flatnonzero(np.isin(corpus.indices, np.concatenate([seeds, track_ids])))
    values = corpus.indices[positions]
    rows = np.searchsorted(corpus.indptr, positions, side="right") - 1

    def membership(ids: np.ndarray) -> sp.csr_matrix:
        """playlists x len(ids), 1 where the playlist holds the track (repeats count once)."""
        mine = np.isin(values, ids)
        order = np.argsort(ids, kind="stable")
        columns = order[np.searchsorted(ids, values[mine], sorter=order)]
        ones = np.ones(len(columns), dtype=np.float32)
        matrix = sp.csr_matrix((ones, (rows[mine], columns)), shape=(corpus.n_playlists, len(ids)))
        matrix.data[:] = 1.0  # the constructor summed a track repeated in a playlist
        return matrix

    tracks = membership(track_ids)
    together = (tracks.T @ membership(seeds)).toarray() if len(seeds) else np.zeros((len(track_ids), 0))
    return together.astype(np.int64), np.asarray(tracks.sum(axis=0)).ravel().astype(np.int64)


def _quoted(corpus: Corpus, track_id: int) -> str:
    return f"“{corpus.tracks['name'].iat[int(track_id)]}”"


def co_occurrence_reasons(
    corpus: Corpus, seeds: Sequence[int] | np.ndarray, track_ids: Sequence[int] | np.ndarray, most: int = 2
) -> list[str]:
    """The model-agnostic reason for each track: the `most` seeds it shares most playlists with."""
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    seeds = pd.unique(seeds[(seeds >= 0) & (seeds < corpus.n_tracks)])
    track_ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
    together, alone = co_occurrences(corpus, seeds, track_ids)
    reasons = []
    for row in range(len(track_ids)):
        playlists = f"{alone[row]:,} playlist{'s' if alone[row] != 1 else ''}"
        if not len(seeds):
            reasons.append(f"no seed tracks: in {playlists}")
            continue
        best = np.argsort(-together[row], kind="stable")[:most]
        best = best[together[row, best] > 0]
        if not len(best):
            reasons.append(f"in {playlists}, none with a seed")
            continue
        parts = [f"{_quoted(corpus, seeds[k])} in {together[row, k]:,}" for k in best]
        noun = "playlist" if together[row, best[0]] == 1 else "playlists"
        reasons.append(f"with {parts[0]} {noun}" + "".join(f", {p}" for p in parts[1:]))
    return reasons
