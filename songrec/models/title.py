"""Title model: tracks frequent in training playlists with the same normalized name or its words."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

from songrec.corpus import Corpus
from songrec.sparse import checked_csr, keep_top

_NON_WORD = re.compile(r"[^\w]+|_")
TOP_PER_NAME = 500
TOKEN_WEIGHT = 0.5


def normalize_name(name: str) -> str:
    """Lowercase words only: 'Country 🤠!!' and 'country' are the same playlist name."""
    return " ".join(_NON_WORD.sub(" ", name.lower()).split())


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
        return keep_top(profile.astype(np.float32), TOP_PER_NAME)

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
    def from_state(cls, arrays: dict[str, np.ndarray], strings: dict[str, list[str]], n_tracks: int) -> TitleModel:
        """The title model saved by `state`, its matrices checked against its names and `n_tracks`."""
        model = cls()
        model.names, model.tokens = strings.pop("title.names"), strings.pop("title.tokens")
        matrices = []
        for prefix, rows in (("title.name", len(model.names)), ("title.token", len(model.tokens))):
            parts = [arrays.pop(f"{prefix}.{k}") for k in ("data", "indices", "indptr", "shape")]
            matrices.append(checked_csr(*parts[:3], (rows, n_tracks), prefix))
        model.name_tracks, model.token_tracks = matrices
        model._index()
        return model
