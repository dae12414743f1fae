"""The plain reference corpus builder (full typed decode, one playlist and track at a time).

songrec.ingest's streaming builder must give exactly its corpus and report (tests/test_ingest.py),
and so must a corpus read back from the cache (tests/test_cache.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from songrec.corpus import Corpus
from songrec.mpd import LoadReport, MPDFormatError, Slice, find_slice_files, iter_slices


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
                self.report.warnings.append(
                    f"{file} at playlists[{index}]: playlist pid {playlist.pid} has no tracks; skipped"
                )
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
        rows = self._track_rows
        names, artists, artist_ids, albums = zip(*rows, strict=True) if rows else ((), (), (), ())
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
        lists = self._playlists
        pids, pnames, followers, descriptions, files = zip(*lists, strict=True) if lists else ((),) * 5
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


def reference_load(sources, max_files=None) -> tuple[Corpus, LoadReport]:
    """The original reader: full typed decode, then CorpusBuilder one playlist and track at a time."""
    expanded = []
    for source in sources:
        expanded.extend([source] if isinstance(source, tuple) else find_slice_files([source]))
    expanded = expanded[:max_files] if max_files is not None else expanded
    builder = CorpusBuilder()
    for name, result in iter_slices(expanded):
        if isinstance(result, MPDFormatError):
            builder.report.errors.append(result)
        else:
            builder.add(name, result)
    return builder.build(), builder.report


def assert_same_corpus(a: Corpus, b: Corpus) -> None:
    assert a.indptr.dtype == b.indptr.dtype == np.int64
    assert a.indices.dtype == b.indices.dtype == np.int32
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)
    pd.testing.assert_frame_equal(a.tracks, b.tracks)
    pd.testing.assert_frame_equal(a.playlists, b.playlists)
    assert a.artists.dtype == b.artists.dtype == object
    assert a.artists.tolist() == b.artists.tolist()


def assert_same_report(a: LoadReport, b: LoadReport) -> None:
    assert a.files_read == b.files_read
    assert a.warnings == b.warnings
    assert [(e.file, e.field, e.problem) for e in a.errors] == [(e.file, e.field, e.problem) for e in b.errors]
