"""Candidates and ranking features for the hybrid model: what every member proposes, described in numbers.

Stage 1 takes the union of each source's top K for a playlist (model members such as ALS or
item-kNN, the title model, popularity). Stage 2 needs one row of features per (playlist,
candidate): each member's score and rank, how popular the track and its artist are, how many seeds
share its artist or album, how often it shares playlists with the seeds, how similar the playlists
holding it are to the seeds, the title model's score.
A batch of playlists is described at once with numpy and sparse matrix products; the only Python
loops run over playlists and sources, never over candidates.

Corpus statistics are shares (of playlists, of seeds), not raw counts, so a ranker trained on
features from 80% of the training playlists reads the same scale from all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from songrec.corpus import Corpus
from songrec.models.base import Scores, top_n
from songrec.models.title import TitleModel
from songrec.sparse import SparseFormatError, checked_csr

TITLE = "title"
POPULARITY = "popularity"
SOURCE_ONLY = (TITLE, POPULARITY)
"""Sources that are no fitted member: the title model and popularity only propose candidates."""

MEMBER_FEATURES = ("score", "rank", "gap")
"""Per model member: its score, its rank in its own top K (missing beyond it), and how far the
score is below the member's best for this playlist (scores differ in scale between playlists)."""

CONTEXT_FEATURES = (
    "proposers",
    "title_rank",
    "popularity_rank",
    "track_share",
    "artist_share",
    "seed_artist_count",
    "seed_artist_share",
    "seed_album_count",
    "cooc_share",
    "cooc_given_track",
    "cooc_last_share",
    "cooc_last_given_track",
    "title_score",
    "n_seeds",
    "has_title",
    "seed_popularity",
    "neighbour_score",
    "neighbour_share",
)
"""Features of the candidate and the playlist that no single member gives (see `build_candidates`)."""

NEIGHBOUR_POWER = 2.0
"""The playlist-neighbour features weigh each training playlist by its cosine similarity to the seeds
raised to this power, so the few playlists that share most of the seeds speak loudest (user-based
kNN, which finds what co-occurrence summed over all playlists averages away)."""

LAST_SEEDS = 3
"""Seeds at the end of the list whose co-occurrence is a feature of its own: a playlist's next tracks
follow its last ones (8 of the challenge's 10 categories give the first tracks in order)."""


def feature_names(members: Sequence[str]) -> list[str]:
    """Column names of the feature matrix for these model members (title and popularity excluded)."""
    return [f"{member}_{kind}" for member in members for kind in MEMBER_FEATURES] + list(CONTEXT_FEATURES)


@dataclass
class CorpusStats:
    """What the features need from the training corpus: counts by track and artist, albums, co-occurrences."""

    n_playlists: int
    track_share: np.ndarray
    """Share of playlists holding each track."""
    track_artist: np.ndarray
    artist_share: np.ndarray
    """Share of entries by each artist (its popularity)."""
    track_album: np.ndarray
    """Album code per track (-1 where the data names no album)."""
    track_playlists: sp.csr_matrix
    """Binary tracks x playlists matrix: the co-occurrence of two tracks is a row dot product."""

    @classmethod
    def from_corpus(cls, corpus: Corpus) -> CorpusStats:
        matrix = corpus.matrix()
        n_playlists = max(corpus.n_playlists, 1)
        track_share = (np.asarray(matrix.sum(axis=0)).ravel() / n_playlists).astype(np.float32)
        track_artist = corpus.track_artist.astype(np.int64)
        artist_entries = np.bincount(track_artist[corpus.indices], minlength=len(corpus.artists))
        artist_share = (artist_entries / max(corpus.n_entries, 1)).astype(np.float32)
        return cls(
            corpus.n_playlists,
            track_share,
            track_artist,
            artist_share,
            album_codes(corpus.tracks),
            matrix.T.tocsr().astype(np.float32),
        )

    @functools.cached_property
    def playlist_lengths(self) -> np.ndarray:
        """Distinct tracks per training playlist (at least 1)."""
        counts = np.bincount(self.track_playlists.indices, minlength=self.n_playlists)
        return np.maximum(counts, 1).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {
            "n_playlists": np.asarray([self.n_playlists], dtype=np.int64),
            "track_share": self.track_share,
            "track_artist": self.track_artist.astype(np.int32),
            "artist_share": self.artist_share,
            "track_album": self.track_album.astype(np.int32),
            "track_playlists.indptr": self.track_playlists.indptr.astype(np.int64),
            "track_playlists.indices": self.track_playlists.indices.astype(np.int32),
        }

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], n_tracks: int) -> CorpusStats:
        """The statistics a checkpoint holds, each array checked against the model's tracks first."""
        n_playlists = int(arrays["n_playlists"][0])
        indptr, indices = arrays["track_playlists.indptr"], arrays["track_playlists.indices"]
        matrix = checked_csr(
            np.ones(len(indices), dtype=np.float32), indices, indptr, (n_tracks, n_playlists), "track_playlists"
        )
        artist_share = arrays["artist_share"]
        per_track = {
            "track_share": arrays["track_share"],
            "track_artist": arrays["track_artist"],
            "track_album": arrays["track_album"],
        }
        for name, values in per_track.items():
            if values.shape != (n_tracks,):
                raise SparseFormatError(f"{name} has shape {values.shape} for {n_tracks} tracks")
        track_artist = per_track["track_artist"].astype(np.int64)
        if n_tracks and (track_artist.min() < 0 or track_artist.max() >= len(artist_share)):
            raise SparseFormatError(f"track_artist: artist ids outside 0..{len(artist_share) - 1}")
        track_album = per_track["track_album"].astype(np.int64)
        if n_tracks and track_album.min() < -1:
            raise SparseFormatError("track_album: album codes below -1")
        return cls(n_playlists, per_track["track_share"], track_artist, artist_share, track_album, matrix)


def album_codes(tracks: pd.DataFrame) -> np.ndarray:
    """One code per (artist, album name) pair, -1 where the album is unknown (the MPD sample has none)."""
    if "album" not in tracks:
        return np.full(len(tracks), -1, dtype=np.int64)
    album = tracks["album"]
    known = album.notna().to_numpy() & (album.astype(str).str.len() > 0).to_numpy()
    keys = tracks["artist_id"].astype(str) + "\x1f" + album.astype(str)
    codes, _ = pd.factorize(keys.where(known))
    return np.where(known, codes, -1).astype(np.int64)


@dataclass
class Candidates:
    """The candidates of a batch of playlists, flattened: row r is track `track[r]` for playlist `group[r]`."""

    group: np.ndarray
    track: np.ndarray
    features: np.ndarray
    """float32, one row per candidate, columns as `feature_names(members)`; NaN where a member is silent."""
    proposed: np.ndarray
    """bool, one column per source: which sources had the track in their top K."""
    sources: list[str]
    sizes: np.ndarray
    """Candidates per playlist (rows are grouped by playlist, in batch order)."""

    def of(self, playlist: int) -> slice:
        """The rows of one playlist of the batch."""
        starts = np.concatenate([[0], np.cumsum(self.sizes)])
        return slice(int(starts[playlist]), int(starts[playlist + 1]))


def build_candidates(
    member_scores: dict[str, list[Scores | None]],
    seed_lists: Sequence[np.ndarray],
    titles: Sequence[str | None],
    excludes: Sequence[np.ndarray],
    depth: dict[str, int],
    stats: CorpusStats,
    title_model: TitleModel,
    popular_order: np.ndarray,
) -> Candidates:
    """Candidates (the union of each source's top `depth[source]`) and their features for a batch.

    member_scores: per model member, its scores for each playlist (None: it has nothing to say).
    Sources named in `depth` but not in `member_scores` are the title model and popularity. No
    candidate is a seed or in `excludes`.
    """
    members = list(member_scores)
    sources = [s for s in depth if s in members or s in SOURCE_ONLY]
    n_tracks = len(stats.track_share)
    n_batch = len(seed_lists)
    title_scores = [title_model.score(t) if t else None for t in titles]
    score_buffer = np.full(n_tracks, np.nan, dtype=np.float32)
    groups, tracks, proposed_rows, member_blocks, source_ranks = [], [], [], [], []
    for i in range(n_batch):
        exclude = excludes[i]
        tops: dict[str, np.ndarray] = {}
        for source in sources:
            if source == TITLE:
                scored = title_scores[i]
            elif source == POPULARITY:
                head = popular_order[: depth[source] + len(exclude)]
                scored = (head, -np.arange(len(head), dtype=np.float32))
            else:
                scored = member_scores[source][i]
            tops[source] = top_n(scored[0], scored[1], depth[source], exclude)[0] if scored is not None else None
        found = [t for t in tops.values() if t is not None and len(t)]
        candidates = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
        ranks = np.full((len(candidates), len(sources)), np.nan, dtype=np.float32)
        for j, source in enumerate(sources):
            top = tops[source]
            if top is not None and len(top):
                ranks[np.searchsorted(candidates, top), j] = np.arange(len(top), dtype=np.float32)
        block = np.full((len(candidates), len(members) * len(MEMBER_FEATURES)), np.nan, dtype=np.float32)
        for j, member in enumerate(members):
            scored = member_scores[member][i]
            if scored is None:
                continue
            score_buffer[scored[0]] = scored[1]
            values = score_buffer[candidates]
            score_buffer[scored[0]] = np.nan
            top = tops.get(member)
            # the member's best score for this playlist (its top 1 among non-seeds when it proposes)
            best = values[np.searchsorted(candidates, top[0])] if top is not None and len(top) else np.nan
            column = j * len(MEMBER_FEATURES)
            block[:, column] = values
            block[:, column + 1] = ranks[:, sources.index(member)] if member in sources else np.nan
            block[:, column + 2] = best - values
        groups.append(np.full(len(candidates), i, dtype=np.int64))
        tracks.append(candidates)
        proposed_rows.append(~np.isnan(ranks))
        member_blocks.append(block)
        source_ranks.append(ranks)
    group = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    track = np.concatenate(tracks).astype(np.int64) if tracks else np.zeros(0, dtype=np.int64)
    proposed = np.concatenate(proposed_rows) if proposed_rows else np.zeros((0, len(sources)), dtype=bool)
    ranks = np.concatenate(source_ranks) if source_ranks else np.zeros((0, len(sources)), dtype=np.float32)
    context = _context_features(group, track, seed_lists, titles, title_scores, stats, proposed, ranks, sources)
    features = np.concatenate([np.concatenate(member_blocks) if member_blocks else np.zeros((0, 0)), context], axis=1)
    sizes = np.bincount(group, minlength=n_batch)
    return Candidates(group, track, features.astype(np.float32), proposed, sources, sizes)


def _context_features(
    group: np.ndarray,
    track: np.ndarray,
    seed_lists: Sequence[np.ndarray],
    titles: Sequence[str | None],
    title_scores: Sequence[Scores | None],
    stats: CorpusStats,
    proposed: np.ndarray,
    ranks: np.ndarray,
    sources: list[str],
) -> np.ndarray:
    """The CONTEXT_FEATURES columns for every (group, track) row, vectorised over the batch."""
    n_batch = len(seed_lists)
    n_tracks = len(stats.track_share)
    lengths = np.asarray([len(s) for s in seed_lists], dtype=np.int64)
    seed_rows = np.repeat(np.arange(n_batch), lengths)
    seeds = np.concatenate(seed_lists).astype(np.int64) if n_batch else np.zeros(0, dtype=np.int64)
    n_seeds = lengths[group].astype(np.float32)
    safe_seeds = np.maximum(n_seeds, 1.0)

    artist_counts = _counts(seed_rows, stats.track_artist[seeds], n_batch, len(stats.artist_share))
    seed_artist = _lookup(artist_counts, group, stats.track_artist[track])
    known_album = stats.track_album[seeds] >= 0
    albums = max(int(stats.track_album.max(initial=-1)) + 1, 1)
    album_counts = _counts(seed_rows[known_album], stats.track_album[seeds][known_album], n_batch, albums)
    track_album = stats.track_album[track]
    seed_album = np.where(track_album >= 0, _lookup(album_counts, group, np.maximum(track_album, 0)), 0.0)

    # each seed's position from the end of its list: the last LAST_SEEDS form a second set of seeds
    from_end = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(seeds)) if n_batch else np.zeros(0, np.int64)
    last = from_end <= LAST_SEEDS
    pairs = [(seed_rows, seeds), (seed_rows[last], seeds[last])]
    (cooc, cooc_last), neighbour = _cooccurrence(pairs, group, track, n_batch, stats)
    neighbour_best = np.zeros(n_batch, dtype=np.float32)
    np.maximum.at(neighbour_best, group, neighbour)
    n_last = np.maximum(np.minimum(n_seeds, LAST_SEEDS), 1.0)
    n_playlists = max(stats.n_playlists, 1)
    track_share = stats.track_share[track]

    title_buffer = np.full(n_tracks, np.nan, dtype=np.float32)
    title_score = np.full(len(track), np.nan, dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=n_batch))])
    for i, scored in enumerate(title_scores):
        if scored is None:
            continue
        title_buffer[scored[0]] = scored[1]
        title_score[starts[i] : starts[i + 1]] = title_buffer[track[starts[i] : starts[i + 1]]]
        title_buffer[scored[0]] = np.nan

    seed_popularity = np.zeros(n_batch, dtype=np.float32)
    if len(seeds):
        np.add.at(seed_popularity, seed_rows, stats.track_share[seeds])
    seed_popularity /= np.maximum(lengths, 1)
    has_title = np.asarray([bool(t) for t in titles], dtype=np.float32)

    def source_rank(name: str) -> np.ndarray:
        return ranks[:, sources.index(name)] if name in sources else np.full(len(track), np.nan, np.float32)

    columns_out = {
        "proposers": proposed.sum(axis=1).astype(np.float32),
        "title_rank": source_rank(TITLE),
        "popularity_rank": source_rank(POPULARITY),
        "track_share": track_share,
        "artist_share": stats.artist_share[stats.track_artist[track]],
        "seed_artist_count": seed_artist,
        "seed_artist_share": seed_artist / safe_seeds,
        "seed_album_count": seed_album,
        "cooc_share": cooc / safe_seeds / n_playlists,
        "cooc_given_track": cooc / safe_seeds / np.maximum(track_share * n_playlists, 1.0),
        "cooc_last_share": cooc_last / n_last / n_playlists,
        "cooc_last_given_track": cooc_last / n_last / np.maximum(track_share * n_playlists, 1.0),
        "title_score": title_score,
        "n_seeds": n_seeds,
        "has_title": has_title[group],
        "seed_popularity": seed_popularity[group],
        "neighbour_score": neighbour / n_playlists,
        "neighbour_share": neighbour / np.maximum(neighbour_best[group], 1e-12),
    }
    return (
        np.column_stack([np.asarray(columns_out[name], dtype=np.float32) for name in CONTEXT_FEATURES])
        if len(track)
        else np.zeros((0, len(CONTEXT_FEATURES)), dtype=np.float32)
    )


def _cooccurrence(
    seed_sets: Sequence[tuple[np.ndarray, np.ndarray]],
    group: np.ndarray,
    track: np.ndarray,
    n_batch: int,
    stats: CorpusStats,
) -> tuple[list[np.ndarray], np.ndarray]:
    """For each set of (batch row, seed) pairs and every (group, track) row: the sum over the row's distinct
    seeds of the training playlists holding both seed and track. All sets go through one pair of sparse
    products: (sets x batch) rows of seeds -> seeds per training playlist -> the candidates' columns.

    Second, for the first set: the playlist-neighbour score of every row, the sum over the training
    playlists holding the track of (cosine similarity of playlist and seeds) ** NEIGHBOUR_POWER."""
    n_tracks = len(stats.track_share)
    rows = np.concatenate([k * n_batch + r for k, (r, _) in enumerate(seed_sets)])
    seeds = np.concatenate([s for _, s in seed_sets])
    shape = (len(seed_sets) * n_batch, n_tracks)
    seed_matrix = sp.csr_matrix((np.ones(len(seeds), np.float32), (rows, seeds)), shape=shape)
    seed_matrix.sum_duplicates()
    seed_matrix.data[:] = 1.0
    columns, local = np.unique(track, return_inverse=True)
    overlap = (seed_matrix @ stats.track_playlists).tocsr()
    candidate_playlists = stats.track_playlists[columns].T.tocsr()
    shared = (overlap @ candidate_playlists).tocsr()
    distinct_seeds = np.diff(seed_matrix.indptr[: n_batch + 1])
    neighbours = (_neighbour_weights(overlap[:n_batch], distinct_seeds, stats) @ candidate_playlists).tocsr()
    cooc = [_lookup(shared, k * n_batch + group, local) for k in range(len(seed_sets))]
    return cooc, _lookup(neighbours, group, local)


def _neighbour_weights(overlap: sp.csr_matrix, distinct_seeds: np.ndarray, stats: CorpusStats) -> sp.csr_matrix:
    """(batch x training playlists) weights from the seeds each playlist shares (`overlap`, left as it
    was): cosine ** NEIGHBOUR_POWER, on the same sparsity pattern."""
    overlap = overlap.tocsr()
    row_of_entry = np.repeat(np.arange(overlap.shape[0]), np.diff(overlap.indptr))
    seeds = np.maximum(np.asarray(distinct_seeds, dtype=np.float32), 1.0)[row_of_entry]
    cosine = overlap.data / np.sqrt(seeds * stats.playlist_lengths[overlap.indices])
    return sp.csr_matrix(((cosine**NEIGHBOUR_POWER).astype(np.float32), overlap.indices, overlap.indptr), overlap.shape)


def _counts(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> sp.csr_matrix:
    """How often each column value occurs per row (duplicates summed)."""
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, columns)), shape=(n_rows, n_columns))
    matrix.sum_duplicates()
    return matrix


def _lookup(matrix: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """matrix[rows[i], columns[i]] for every i (0 where absent), in one vectorised gather."""
    if len(rows) == 0 or matrix.nnz == 0:
        return np.zeros(len(rows), dtype=np.float32)
    matrix = matrix.tocsr()
    matrix.sum_duplicates()  # canonical: column indices sorted within each row, so the keys below are sorted
    width = np.int64(matrix.shape[1])
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * width + matrix.indices
    wanted = np.asarray(rows, dtype=np.int64) * width + np.asarray(columns, dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, matrix.data[at], 0.0).astype(np.float32)


def candidate_recall(candidates: Candidates, truths: Sequence[np.ndarray]) -> np.ndarray:
    """Per playlist: the share of its withheld tracks among its candidates (the ceiling of stage 2)."""
    recalls = np.zeros(len(truths), dtype=np.float64)
    for i, truth in enumerate(truths):
        rows = candidates.of(i)
        recalls[i] = np.isin(truth, candidates.track[rows]).mean() if len(truth) else 0.0
    return recalls


def labels(candidates: Candidates, truths: Sequence[np.ndarray]) -> np.ndarray:
    """1 for a candidate that is among its playlist's withheld tracks, else 0 (vectorised over the batch)."""
    truth_rows = np.repeat(np.arange(len(truths)), [len(t) for t in truths])
    truth_tracks = np.concatenate(truths).astype(np.int64) if truths else np.zeros(0, dtype=np.int64)
    n_tracks = max(int(candidates.track.max(initial=0)), int(truth_tracks.max(initial=0))) + 1
    wanted = np.unique(truth_rows * n_tracks + truth_tracks)
    return np.isin(candidates.group * n_tracks + candidates.track, wanted).astype(np.float32)
