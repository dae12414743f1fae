"""Title model: tracks frequent in training playlists with the same normalized name or its words."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

from songrec.corpus import Corpus

_NON_WORD = re.compile(r"[^\w]+|_")
TOP_PER_NAME = 500
TOKEN_WEIGHT = 0.5


def normalize_name(name: str) -> str:
    """Lowercase words only: 'Country 🤠!!' and 'country' are the same playlist name."""
    return " ".join(_NON_WORD.sub(" ", name.lower()).split())


def _keep_top(matrix: sp.csr_matrix, top: int) -> sp.csr_matrix:
    """Keep the `top` largest entries of each row; ties go to the earlier column (vectorised).

    Rows with at most `top` entries are kept whole without sorting; for the others the top-th
    largest value is found by one partition per group of rows of similar length, so the cost is
    linear in the entries (not a sort of all of them) and matrices of 10^8 entries take seconds.
    """
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    if top <= 0:
        return sp.csr_matrix(matrix.shape, dtype=matrix.dtype)
    counts = np.diff(matrix.indptr)
    heavy = np.flatnonzero(counts > top)
    if len(heavy) == 0:
        return sp.csr_matrix((matrix.data, matrix.indices, matrix.indptr), shape=matrix.shape)
    lengths = counts[heavy]
    where = _ranges(matrix.indptr[heavy], lengths)  # positions of the heavy rows' entries
    values = matrix.data[where]
    threshold = np.repeat(_kth_largest(values, lengths, top), lengths)
    greater = values > threshold
    equal = values == threshold
    # ties at the threshold: the first (top - #greater) of them in column order
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    tied = np.cumsum(equal)
    tied_rank = tied - np.repeat(tied[first] - equal[first], lengths)  # 1, 2, ... within a row
    room = top - np.add.reduceat(greater, first).astype(np.int64)
    keep = np.ones(matrix.nnz, dtype=bool)
    keep[where] = greater | (equal & (tied_rank <= np.repeat(room, lengths)))
    kept_counts = counts.copy()
    kept_counts[heavy] = top
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(kept_counts, out=indptr[1:])
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated arange(start, start + length) for each pair, without a Python loop."""
    total = int(lengths.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def _kth_largest(values: np.ndarray, lengths: np.ndarray, k: int, chunk: int = 1 << 24) -> np.ndarray:
    """The k-th largest of each segment of `values` (segments of `lengths`, each longer than k).

    Segments are grouped by length (within a factor of 2) and padded into 2-D arrays, at most
    `chunk` cells at a time, so one np.partition per group does the work.
    """
    out = np.empty(len(lengths), dtype=values.dtype)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    groups = np.ceil(np.log2(lengths)).astype(np.int64)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        width = int(lengths[members].max())
        step = max(1, chunk // width)
        for first in range(0, len(members), step):
            rows = members[first : first + step]
            dense = np.full((len(rows), width), -np.inf, dtype=values.dtype)
            row_lengths = lengths[rows]
            local = np.repeat(np.arange(len(rows)), row_lengths)
            column = _ranges(np.zeros(len(rows), dtype=np.int64), row_lengths)
            dense[local, column] = values[_ranges(starts[rows], row_lengths)]
            out[rows] = np.partition(dense, width - k, axis=1)[:, width - k]
    return out


class TitleModel:
    """Scores tracks for a playlist title by how often they appear in playlists named alike."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.name_tracks = sp.csr_matrix((0, 0), dtype=np.float32)
        self.tokens: list[str] = []
        self.token_tracks = sp.csr_matrix((0, 0), dtype=np.float32)
        self._name_index: dict[str, int] = {}
        self._token_index: dict[str, int] = {}

    def fit(self, corpus: Corpus) -> TitleModel:
        normalized = corpus.playlists["name"].map(normalize_name)
        playlist_tracks = corpus.matrix()
        name_codes, names = pd.factorize(normalized)
        self.names = [str(n) for n in names]
        self.name_tracks = self._profile(name_codes, len(names), playlist_tracks)
        token_lists = normalized.str.split()
        exploded = token_lists.explode().dropna()
        token_codes, tokens = pd.factorize(exploded)
        self.tokens = [str(t) for t in tokens]
        rows = exploded.index.to_numpy()
        self.token_tracks = self._profile(token_codes, len(tokens), playlist_tracks, rows)
        self._index()
        return self

    @staticmethod
    def _profile(
        codes: np.ndarray, size: int, playlist_tracks: sp.csr_matrix, rows: np.ndarray | None = None
    ) -> sp.csr_matrix:
        """Per name (or word): share of its playlists holding each track, top tracks only."""
        rows = np.arange(len(codes)) if rows is None else rows
        valid = codes >= 0
        membership = sp.csr_matrix(
            (np.ones(valid.sum(), np.float32), (codes[valid], rows[valid])), shape=(size, playlist_tracks.shape[0])
        )
        membership.sum_duplicates()
        membership.data[:] = 1.0
        counts = np.asarray(membership.sum(axis=1)).ravel()
        profile = sp.diags(1.0 / np.maximum(counts, 1)).astype(np.float32) @ (membership @ playlist_tracks)
        return _keep_top(profile.astype(np.float32), TOP_PER_NAME)

    def _index(self) -> None:
        self._name_index = {n: i for i, n in enumerate(self.names)}
        self._token_index = {t: i for i, t in enumerate(self.tokens)}

    def score(self, title: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(track ids, scores) for a title, or None when no training playlist shares a word with it."""
        normalized = normalize_name(title)
        parts = []
        row = self._name_index.get(normalized)
        if row is not None:
            parts.append((self.name_tracks, row, 1.0))
        tokens = [self._token_index[t] for t in normalized.split() if t in self._token_index]
        for token in tokens:
            parts.append((self.token_tracks, token, TOKEN_WEIGHT / len(tokens)))
        if not parts:
            return None
        ids = np.concatenate([m.indices[m.indptr[r] : m.indptr[r + 1]] for m, r, _ in parts])
        values = np.concatenate([m.data[m.indptr[r] : m.indptr[r + 1]] * w for m, r, w in parts])
        if len(ids) == 0:
            return None
        unique, inverse = np.unique(ids, return_inverse=True)
        return unique.astype(np.int64), np.bincount(inverse, weights=values).astype(np.float32)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        arrays = {}
        for prefix, matrix in (("title.name", self.name_tracks), ("title.token", self.token_tracks)):
            arrays[f"{prefix}.indptr"] = matrix.indptr.astype(np.int64)
            arrays[f"{prefix}.indices"] = matrix.indices.astype(np.int32)
            arrays[f"{prefix}.data"] = matrix.data.astype(np.float32)
            arrays[f"{prefix}.shape"] = np.asarray(matrix.shape, dtype=np.int64)
        return arrays, {"title.names": self.names, "title.tokens": self.tokens}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> TitleModel:
        model = cls()
        matrices = []
        for prefix in ("title.name", "title.token"):
            parts = [arrays.pop(f"{prefix}.{k}") for k in ("data", "indices", "indptr", "shape")]
            matrices.append(sp.csr_matrix(tuple(parts[:3]), shape=tuple(parts[3])))
        model.name_tracks, model.token_tracks = matrices
        model.names, model.tokens = strings.pop("title.names"), strings.pop("title.tokens")
        model._index()
        return model
