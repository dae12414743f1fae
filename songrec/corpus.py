"""The corpus: playlists as CSR arrays over integer track ids, plus track and playlist tables.

Plain data: memory grows with unique tracks and entries (int32 arrays), never with per-entry
Python objects, so the full MPD (1M playlists, 66M entries, 2.26M tracks) fits. Reading slices
into a corpus is `songrec.ingest`'s job, keeping one on disk `songrec.cache`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp


def take_rows(indptr: np.ndarray, flat: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows `rows` of a CSR pair (offsets, flat values), as a new CSR pair, without a Python loop."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = indptr[rows + 1] - indptr[rows]
    out_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_ptr[1:])
    positions = np.repeat(indptr[rows] - out_ptr[:-1], lengths) + np.arange(out_ptr[-1])
    return out_ptr, flat[positions]


@dataclass
class Corpus:
    """Playlists over integer track ids.

    indptr/indices: playlist i holds tracks indices[indptr[i]:indptr[i+1]] in playlist order.
    tracks: uri, name, artist, artist_id, album, count (entries in this corpus).
    playlists: pid, name, num_followers, num_tracks, file.
    artists: artist names, indexed by artist_id.
    """

    indptr: np.ndarray
    indices: np.ndarray
    tracks: pd.DataFrame
    playlists: pd.DataFrame
    artists: np.ndarray

    @property
    def n_playlists(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_tracks(self) -> int:
        return len(self.tracks)

    @property
    def n_entries(self) -> int:
        return int(self.indptr[-1])

    def playlist_tracks(self, row: int) -> np.ndarray:
        return self.indices[self.indptr[row] : self.indptr[row + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    @cached_property
    def track_counts(self) -> np.ndarray:
        """Entries per track in this corpus (a subset counts only its own playlists)."""
        return np.bincount(self.indices, minlength=self.n_tracks).astype(np.int64)

    @cached_property
    def track_artist(self) -> np.ndarray:
        return self.tracks["artist_id"].to_numpy(np.int32)

    @cached_property
    def _uri_index(self) -> pd.Index:
        return pd.Index(self.tracks["uri"])

    def track_ids(self, uris: Iterable[str]) -> np.ndarray:
        """Track ids for URIs; -1 for a URI this corpus does not know."""
        return self._uri_index.get_indexer(list(uris)).astype(np.int64)

    def matrix(self) -> sp.csr_matrix:
        """Binary playlist x track matrix (a track repeated in a playlist counts once)."""
        data = np.ones(self.n_entries, dtype=np.float32)
        # copy=True: sum_duplicates works in place and would otherwise rewrite this corpus's indices
        matrix = sp.csr_matrix((data, self.indices, self.indptr), shape=(self.n_playlists, self.n_tracks), copy=True)
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def subset(self, rows: np.ndarray) -> Corpus:
        """The playlists at `rows`, with the same track ids (counts recomputed for the subset)."""
        rows = np.asarray(rows, dtype=np.int64)
        indptr, indices = take_rows(self.indptr, self.indices, rows)
        tracks = self.tracks.copy()
        tracks["count"] = np.bincount(indices, minlength=self.n_tracks)
        playlists = self.playlists.iloc[rows].reset_index(drop=True)
        return Corpus(indptr, indices, tracks, playlists, self.artists)

    def split(self, test_share: float, seed: int = 0) -> tuple[Corpus, Corpus]:
        """Random split of playlists into train and held-out parts that share track ids."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(self.n_playlists)
        n_test = int(round(self.n_playlists * test_share))
        return self.subset(np.sort(order[n_test:])), self.subset(np.sort(order[:n_test]))

    def rows_from_files(self, files: Iterable[str]) -> np.ndarray:
        wanted = {str(f) for f in files}
        return np.flatnonzero(self.playlists["file"].isin(wanted).to_numpy())

    def stats(self, top: int = 10) -> dict:
        """A summary: sizes, the length distribution and the most common tracks, artists and names."""
        lengths = self.lengths()
        counts = self.track_counts
        artist_counts = np.bincount(self.track_artist[self.indices], minlength=len(self.artists))
        top_tracks = np.argsort(-counts, kind="stable")[:top]
        top_artists = np.argsort(-artist_counts, kind="stable")[:top]
        names = self.playlists["name"].str.lower().str.strip().value_counts().head(top)
        used = counts > 0
        return {
            "playlists": self.n_playlists,
            "entries": self.n_entries,
            "unique_tracks": int(used.sum()),
            "unique_artists": int((artist_counts > 0).sum()),
            "length": {
                "min": int(lengths.min()) if len(lengths) else 0,
                "median": float(np.median(lengths)) if len(lengths) else 0.0,
                "mean": float(lengths.mean()) if len(lengths) else 0.0,
                "max": int(lengths.max()) if len(lengths) else 0,
            },
            "top_tracks": [
                {
                    "track": self.tracks["name"].iat[t],
                    "artist": self.tracks["artist"].iat[t],
                    "uri": self.tracks["uri"].iat[t],
                    "count": int(counts[t]),
                }
                for t in top_tracks
                if counts[t] > 0
            ],
            "top_artists": [
                {"artist": str(self.artists[a]), "count": int(artist_counts[a])}
                for a in top_artists
                if artist_counts[a] > 0
            ],
            "top_names": [{"name": n, "count": int(c)} for n, c in names.items()],
        }
