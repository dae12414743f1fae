"""Item-kNN: tracks that share playlists with the seeds, by cosine similarity on the playlist-track matrix."""

from __future__ import annotations

import multiprocessing
import os
import threading
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from songrec.checkpoint import CheckpointError
from songrec.corpus import Corpus
from songrec.models.base import FitCallback, FitProgress, Recommender, Scores, co_occurrence_reasons
from songrec.settings import Settings, setting
from songrec.sparse import checked_csr, keep_top


def cosine_neighbours(
    playlist_tracks: sp.csr_matrix,
    neighbours: int,
    block: int = 4096,
    alpha: float = 0.5,
    callback: FitCallback | None = None,
    *,
    min_count: int = 1,
    max_products: int = 0,
    block_products: int = 20_000_000,
    workers: int = 1,
    seed: int = 0,
) -> sp.csr_matrix:
    """Each track's `neighbours` most similar tracks: co-occurrence / (count_i^alpha * count_j^(1-alpha)).

    Computed a block of tracks at a time (at most `block` tracks and about `block_products`
    multiply-adds) and pruned per row, so memory stays at n_tracks x neighbours however large the
    co-occurrence matrix would be. At scale three knobs keep the fit tractable, none of which
    changes anything on a corpus under their limits:

    - min_count: tracks in fewer playlists neither get neighbours nor are neighbours;
    - max_products: a budget for the whole co-occurrence product (0 = exact). Over it, each track
      is matched through a random sample of its playlists, the same share p = min(1, cap / count)
      of each, with `cap` set so the expected work fits the budget; its co-occurrences are
      scaled by count / sampled, an unbiased estimate of the exact ones;
    - workers: forked processes computing blocks side by side (rows are independent).
    """
    track_playlists = playlist_tracks.T.tocsr()
    counts = np.asarray(playlist_tracks.sum(axis=0)).ravel().astype(np.float32)
    left = np.power(np.maximum(counts, 1.0), -alpha)
    right = np.power(np.maximum(counts, 1.0), -(1.0 - alpha))
    n_tracks = playlist_tracks.shape[1]
    if n_tracks == 0:
        return sp.csr_matrix((0, 0), dtype=np.float32)
    columns = playlist_tracks
    if min_count > 1:
        rare = counts < min_count
        columns = _drop_columns(playlist_tracks, rare)
        track_playlists = columns.T.tocsr()  # the rows of rare tracks are empty
    lengths = np.diff(columns.indptr).astype(np.float64)
    work = track_playlists @ lengths  # multiply-adds of each track's row
    scale = None
    if max_products and work.sum() > max_products:
        track_playlists, scale = _sample_rows(track_playlists, work, max_products, seed)
        work = track_playlists @ lengths
    bounds = _blocks(work, block, block_products)
    job = _Job(track_playlists, columns, left, right, scale, neighbours)
    # the blocks' rows go straight into arrays sized for the most the result can hold (pages
    # never written are never resident), not into a list of blocks stacked at the end
    most = int((np.diff(track_playlists.indptr) > 0).sum()) * neighbours
    indices = np.empty(most, dtype=np.int32)
    data = np.empty(most, dtype=np.float32)
    indptr = np.zeros(n_tracks + 1, dtype=np.int64)
    filled = 0
    for done, piece in enumerate(_map_blocks(job, bounds, workers), start=1):
        start, stop = int(bounds[done - 1]), int(bounds[done])
        indices[filled : filled + piece.nnz] = piece.indices
        data[filled : filled + piece.nnz] = piece.data
        indptr[start + 1 : stop + 1] = filled + piece.indptr[1:]
        filled += piece.nnz
        if callback is not None:
            callback(FitProgress(stop, n_tracks, "tracks"))
    return sp.csr_matrix((data[:filled], indices[:filled], indptr), shape=(n_tracks, n_tracks))


class _Job:
    """The shared inputs of every block (forked workers see them without copying)."""

    def __init__(self, track_playlists, columns, left, right, scale, neighbours) -> None:
        self.track_playlists, self.columns = track_playlists, columns
        self.left, self.right, self.scale, self.neighbours = left, right, scale, neighbours

    def run(self, start: int, stop: int) -> sp.csr_matrix:
        cooc = (self.track_playlists[start:stop] @ self.columns).tocsr()
        rows = np.repeat(np.arange(stop - start), np.diff(cooc.indptr))
        off_diagonal = cooc.indices != rows + start
        if not off_diagonal.all():  # a track is not its own neighbour
            rows = rows[off_diagonal]
            cooc = sp.csr_matrix(
                (
                    cooc.data[off_diagonal],
                    cooc.indices[off_diagonal],
                    np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=stop - start))]),
                ),
                shape=cooc.shape,
            )
        if self.scale is not None:
            cooc.data = cooc.data * self.scale[start + rows]
        cooc.data = cooc.data * self.left[start + rows] * self.right[cooc.indices]
        return keep_top(cooc, self.neighbours)


_JOB: _Job | None = None


def _run_block(bounds: tuple[int, int]) -> sp.csr_matrix:
    return _JOB.run(*bounds)


def _map_blocks(job: _Job, bounds: np.ndarray, workers: int):
    global _JOB
    pairs = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    if workers <= 1 or len(pairs) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for start, stop in pairs:
            yield job.run(start, stop)
        return
    _JOB = job
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(_run_block, pairs)
    finally:
        _JOB = None


def _blocks(work: np.ndarray, block: int, block_products: int) -> np.ndarray:
    """Row boundaries: at most `block` rows and about `block_products` multiply-adds a block."""
    n = len(work)
    bounds = [0]
    cumulative = np.cumsum(work)
    while bounds[-1] < n:
        start = bounds[-1]
        done = cumulative[start - 1] if start else 0.0
        stop = int(np.searchsorted(cumulative, done + block_products, side="right"))
        bounds.append(min(max(stop, start + 1), start + block, n))
    return np.asarray(bounds, dtype=np.int64)


def _drop_columns(matrix: sp.csr_matrix, drop: np.ndarray) -> sp.csr_matrix:
    keep = ~drop[matrix.indices]
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    np.cumsum(np.bincount(rows[keep], minlength=matrix.shape[0]), out=indptr[1:])
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def _sample_rows(
    track_playlists: sp.csr_matrix, work: np.ndarray, budget: float, seed: int
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Keep each track's playlists with probability min(1, cap / count), cap chosen for the budget.

    Returns the sampled matrix and per-track factors count / kept that rescale co-occurrences.
    """
    counts = np.diff(track_playlists.indptr).astype(np.float64)
    safe = np.maximum(counts, 1.0)

    def expected(cap: float) -> float:
        return float((work * np.minimum(1.0, cap / safe)).sum())

    low, high = 1.0, float(max(counts.max(), 1.0))
    for _ in range(40):  # bisection on the cap
        middle = (low + high) / 2
        low, high = (middle, high) if expected(middle) <= budget else (low, middle)
    share = np.minimum(1.0, low / safe)
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(track_playlists.shape[0]), np.diff(track_playlists.indptr))
    keep = rng.random(track_playlists.nnz) < share[rows]
    kept = np.bincount(rows[keep], minlength=track_playlists.shape[0])
    lost = np.flatnonzero((kept == 0) & (counts > 0))  # every track keeps at least one playlist
    keep[track_playlists.indptr[lost]] = True
    kept[lost] = 1
    indptr = np.zeros(track_playlists.shape[0] + 1, dtype=np.int64)
    np.cumsum(kept, out=indptr[1:])
    sampled = sp.csr_matrix(
        (track_playlists.data[keep], track_playlists.indices[keep], indptr), shape=track_playlists.shape
    )
    factor = (counts / np.maximum(kept, 1)).astype(np.float32)
    return sampled, factor


@dataclass(frozen=True)
class ItemKNNSettings(Settings):
    """min_count, max_products and max_entries only act on large corpora (see cosine_neighbours).

    The full MPD size (1M playlists, 2.26M tracks) needs about 7.4e9 multiply-adds, under the
    default budget, so its co-occurrences are exact (about 6 minutes on 2 cores); a larger corpus,
    or a smaller budget for a quicker fit, estimates them from a sample of each track's playlists
    (at 27% of the work: 3x faster, but R-precision drops, see benchmarks/RESULTS.md). Each track
    keeps at most max_entries / n_tracks neighbours, so the matrix stays near 2 GB.
    """

    owner = "itemknn"
    neighbours: int = setting(500, "most similar tracks kept per track", low=1, high=100_000)
    alpha: float = setting(
        0.9, "similarity = co-occurrence / (count_i^alpha * count_j^(1-alpha))", low=0.0, high=1.0, step=0.05
    )
    min_count: int = setting(1, "tracks in fewer playlists get no neighbours", low=1, high=1_000_000)
    max_products: int = setting(
        10_000_000_000, "multiply-add budget; above it co-occurrences are sampled (0: no budget)", low=0, high=10**15
    )
    max_entries: int = setting(250_000_000, "neighbours kept in all, to cap memory (0: no cap)", low=0, high=10**12)
    seed: int = setting(0, "seeds the sampling of a budgeted fit", low=0, high=2**31 - 1)
    workers: int = setting(
        0,
        "processes computing blocks (0: 2 for fits of 2e8 multiply-adds or more, from the main thread; else 1)",
        low=0,
        high=64,
    )


class ItemKNNRecommender(Recommender):
    """Score = summed similarity of a track to the seeds over each seed's top-k neighbours."""

    name = "itemknn"
    settings_classes = (ItemKNNSettings,)
    settings: ItemKNNSettings

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        config = self.settings
        matrix = corpus.matrix()
        counts = corpus.track_counts
        rows = max(1, int((counts >= max(config.min_count, 1)).sum()))
        neighbours = (
            max(1, min(config.neighbours, config.max_entries // rows)) if config.max_entries else config.neighbours
        )
        workers = config.workers
        if not workers:
            lengths = np.diff(matrix.indptr).astype(np.float64)
            work = float(lengths @ lengths)  # multiply-adds of the exact co-occurrence product
            main = threading.current_thread() is threading.main_thread()
            workers = min(2, os.cpu_count() or 1) if main and min(work, config.max_products or work) >= 2e8 else 1
        self.similarity = cosine_neighbours(
            matrix,
            neighbours,
            alpha=config.alpha,
            callback=callback,
            min_count=config.min_count,
            max_products=config.max_products,
            workers=workers,
            seed=config.seed,
        ).astype(np.float32, copy=False)

    def _score(self, seeds: np.ndarray) -> Scores | None:
        sim = self.similarity
        starts, ends = sim.indptr[seeds], sim.indptr[seeds + 1]
        if (ends - starts).sum() == 0:
            return None
        take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        unique, inverse = np.unique(sim.indices[take], return_inverse=True)
        return unique.astype(np.int64), np.bincount(inverse, weights=sim.data[take]).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "indptr": self.similarity.indptr.astype(np.int64),
            "indices": self.similarity.indices.astype(np.int32),
            "data": self.similarity.data.astype(np.float32),
            "shape": np.asarray(self.similarity.shape, dtype=np.int64),
        }

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        shape = arrays["shape"]
        if np.size(shape) != 2 or shape[0] != self.n_tracks or shape[1] != self.n_tracks:
            raise CheckpointError(
                f"damaged itemknn checkpoint: similarity shape {shape.tolist()} for {self.n_tracks} tracks"
            )
        self.similarity = checked_csr(arrays["data"], arrays["indices"], arrays["indptr"], shape, "similarity")

    def explain(self, seeds, track_ids, corpus: Corpus | None = None) -> list[str]:
        """The seeds whose neighbour lists hold the track, most similar first ('like “X” (0.42)');
        tracks no seed names as a neighbour (fill-ins) get the shared co-occurrence reason."""
        source = self._explain_corpus(corpus)
        seeds = np.unique(self._known(seeds))
        track_ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        known = (track_ids >= 0) & (track_ids < self.n_tracks)
        similar = np.zeros((len(seeds), len(track_ids)), dtype=np.float32)
        if len(seeds) and known.any():
            similar[:, known] = self.similarity[seeds][:, track_ids[known]].toarray()
        fallback = co_occurrence_reasons(source, seeds, track_ids)
        reasons = []
        for column, default in enumerate(fallback):
            best = np.argsort(-similar[:, column], kind="stable")[:2]
            best = best[similar[best, column] > 0]
            if not len(best):
                reasons.append(default)
                continue
            parts = [f"“{source.tracks['name'].iat[int(seeds[k])]}” ({similar[k, column]:.2f})" for k in best]
            reasons.append("like " + ", ".join(parts))
        return reasons
