"""The corpus: playlists as CSR arrays over integer track ids, plus track and playlist tables.

Built one slice at a time, so memory grows with unique tracks and entries (int32 arrays), never
with per-entry Python objects: the full MPD (1M playlists, 66M entries, 2.26M tracks) fits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from songrec.mpd import LoadReport, Slice

ProgressCallback = Callable[[int, int, str], None]
"""Called as (files done, files in all, file name) while a corpus loads."""


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
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        take = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        indices = self.indices[take]
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


class CorpusBuilder:
    """Adds decoded slices one at a time; `build()` returns the Corpus."""

    def __init__(self) -> None:
        self.report = LoadReport()
        self._track_ids: dict[str, int] = {}
        self._artist_ids: dict[str, int] = {}
        self._track_rows: list[tuple[str, str, int, str | None]] = []
        self._chunks: list[np.ndarray] = []
        self._lengths: list[int] = []
        self._playlists: list[tuple[int, str, int, str | None, str]] = []
        self._pids: dict[int, str] = {}

    def add(self, file: str, data: Slice) -> None:
        track_ids, artist_ids, track_rows = self._track_ids, self._artist_ids, self._track_rows
        for index, playlist in enumerate(data.playlists):
            if not playlist.tracks:
                self.report.warnings.append(f"{file} at playlists[{index}]: playlist pid {playlist.pid} has no tracks; skipped")
                continue
            if playlist.pid in self._pids:
                self.report.warnings.append(
                    f"{file} at playlists[{index}].pid: pid {playlist.pid} already loaded from "
                    f"{self._pids[playlist.pid]}; this copy skipped"
                )
                continue
            self._pids[playlist.pid] = file
            ids = []
            for track in playlist.tracks:
                tid = track_ids.get(track.track_uri)
                if tid is None:
                    tid = track_ids[track.track_uri] = len(track_rows)
                    aid = artist_ids.setdefault(track.artist_name, len(artist_ids))
                    track_rows.append((track.track_name, track.artist_name, aid, track.album_name))
                ids.append(tid)
            self._chunks.append(np.asarray(ids, dtype=np.int32))
            self._lengths.append(len(ids))
            self._playlists.append((playlist.pid, playlist.name, playlist.num_followers, playlist.description, file))
        self.report.files_read.append(file)

    def build(self) -> Corpus:
        indptr = np.zeros(len(self._lengths) + 1, dtype=np.int64)
        np.cumsum(self._lengths, out=indptr[1:])
        indices = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int32)
        names, artists, artist_ids, albums = zip(*self._track_rows) if self._track_rows else ((), (), (), ())
        tracks = pd.DataFrame(
            {
                "uri": pd.Series(list(self._track_ids.keys()), dtype=object),
                "name": pd.Series(names, dtype=object),
                "artist": pd.Series(artists, dtype=object),
                "artist_id": np.asarray(artist_ids, dtype=np.int32),
                "album": pd.Series(albums, dtype=object),
            }
        )
        tracks["count"] = np.bincount(indices, minlength=len(tracks)).astype(np.int64)
        pids, pnames, followers, descriptions, files = zip(*self._playlists) if self._playlists else ((),) * 5
        playlists = pd.DataFrame(
            {
                "pid": np.asarray(pids, dtype=np.int64),
                "name": pd.Series(pnames, dtype=object),
                "num_followers": np.asarray(followers, dtype=np.int64),
                "num_tracks": np.asarray(self._lengths, dtype=np.int64),
                "description": pd.Series(descriptions, dtype=object),
                "file": pd.Series(files, dtype=object),
            }
        )
        artists = np.asarray(list(self._artist_ids.keys()), dtype=object)
        return Corpus(indptr, indices, tracks, playlists, artists)


def load_corpus(
    sources: Iterable[str | os.PathLike | tuple[str, bytes]],
    max_files: int | None = None,
    progress: ProgressCallback | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
) -> tuple[Corpus, LoadReport]:
    """Read paths, folders or uploaded (name, bytes) pairs into one Corpus.

    Every good file is kept; every bad one is reported in the LoadReport with file, field and
    problem. `max_files` takes the first N files in slice order. Files stream through
    `songrec.cache` (only the fields the corpus keeps are decoded; `workers` processes decode, by
    default 2 for 256 MB of JSON or more). With `cache_dir` the built corpus is kept on disk and a
    later call with the same sources reads it back in seconds while no file has changed.
    """
    from songrec.cache import load_corpus_cached, read_corpus

    if cache_dir is not None:
        return load_corpus_cached(sources, cache_dir, max_files, progress, workers)
    return read_corpus(sources, max_files, progress, workers)
