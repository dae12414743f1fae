"""Reading MPD slices into a Corpus: a lean decode, a streaming builder, worker processes, the cache.

Ingest reads one file at a time and never holds more than a file of JSON: a lean msgspec struct
decodes only the fields the corpus keeps (the full `mpd.Slice` is only used to explain a file
the lean one refuses), and each entry costs one dict lookup, no Python object of its own. With
`workers` > 1 the files are cut into that many consecutive shares; forked processes build a
partial corpus of their share while this process builds the first, and the shares are merged in
file order, so the corpus (ids, order, report) is the same whatever the number of workers.

Every file is read under a size limit (`max_file_size`, default `mpd.DEFAULT_MAX_FILE_SIZE`) and
whatever is wrong with one file becomes an error of that file in the LoadReport; the other files
are read as if it were not there.

    corpus, report = load_corpus(paths)                          # every good file; report.errors
    corpus, report = load_corpus(paths, cache_dir=DEFAULT_CACHE_DIR)  # a second load takes seconds
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import traceback
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from songrec.cache import DEFAULT_CACHE_DIR, CacheEntry
from songrec.corpus import Corpus
from songrec.mpd import (
    Count,
    LoadReport,
    MPDFormatError,
    decode_json,
    file_size_limit,
    find_slice_files,
    inflate,
    json_text,
    read_file,
)

ProgressCallback = Callable[[int, int, str], None]
"""Called as (files done, files in all, file name) while a corpus loads."""

PARALLEL_MIN_BYTES = 256 << 20
"""Below this much JSON, one process reads faster than starting workers."""

Source = str | os.PathLike | tuple[str, bytes]

_INPUT_FAILURES = (OSError, EOFError, zlib.error, UnicodeError, OverflowError, RecursionError, MemoryError)
"""What a file's content can make reading raise besides MPDFormatError; each is that file's error."""


# --- lean decoding -------------------------------------------------------------------------------


class _Track(msgspec.Struct, kw_only=True, gc=False):
    track_uri: str
    track_name: str
    artist_name: str
    album_name: str | None = None


class _Playlist(msgspec.Struct, kw_only=True, gc=False):
    name: str
    pid: Count
    num_followers: Count = 0
    num_tracks: Count | None = None  # not kept, but checked like the full reader checks it
    description: str | None = None
    tracks: list[_Track]


class _Slice(msgspec.Struct, kw_only=True, gc=False):
    playlists: list[_Playlist]


_LEAN = msgspec.json.Decoder(_Slice)


def decode_lean(source: Source, max_size: int | None = None) -> tuple[str, list[_Playlist] | MPDFormatError]:
    """(file name, its playlists with the fields the corpus keeps) or (file name, its error).

    Fields the corpus does not keep (pos, album_uri, modified_at, ...) are skipped, not checked;
    a file the lean decoder refuses is decoded by the full `mpd.Slice` reader so the error names
    the file, field and problem exactly as `mpd.read_slice` does. At most `max_size` bytes of
    JSON are read (default `mpd.file_size_limit()`).
    """
    name = str(source[0]) if isinstance(source, tuple) else str(source)
    try:
        data = inflate(source[1], name, max_size) if isinstance(source, tuple) else read_file(source, name, max_size)
        try:
            return name, _LEAN.decode(json_text(data)).playlists
        except (msgspec.DecodeError, RecursionError) as exc:
            decode_json(data, name)  # raises the precise MPDFormatError
            return name, MPDFormatError(name, "", f"invalid JSON: {exc}")  # accepted by the full reader only
    except MPDFormatError as exc:
        return name, exc.to_keep()
    except _INPUT_FAILURES as exc:
        return name, MPDFormatError(name, "", f"cannot be read ({type(exc).__name__}: {exc})")


# --- building ------------------------------------------------------------------------------------


class StreamingCorpusBuilder:
    """Builds a corpus file by file with the ids, order and report of the plain reference builder
    (tests/reference_builder.py)."""

    def __init__(self, max_file_size: int | None = None) -> None:
        self.max_file_size = max_file_size
        self.report = LoadReport()
        self._track_ids: dict[str, int] = {}
        self._artist_ids: dict[str, int] = {}
        self._names: list[str] = []
        self._track_artist: list[int] = []
        self._albums: list[str | None] = []
        self._chunks: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._pids: dict[int, str] = {}
        self._pl_pids: list[np.ndarray] = []
        self._pl_names: list[str] = []
        self._pl_followers: list[int] = []
        self._pl_descriptions: list[str | None] = []
        self._pl_files: list[str] = []

    def add_source(self, source: Source) -> str:
        """Read and add one file (or (name, bytes) upload); returns its name."""
        name, result = decode_lean(source, self.max_file_size)
        if isinstance(result, MPDFormatError):
            self.report.errors.append(result)
        else:
            self.add(name, result)
        return name

    def add(self, file: str, playlists: list[_Playlist]) -> None:
        seen, kept = self._pids, []
        for index, playlist in enumerate(playlists):
            if not playlist.tracks:
                self.report.warnings.append(
                    f"{file} at playlists[{index}]: playlist pid {playlist.pid} has no tracks; skipped"
                )
            elif playlist.pid in seen:
                self.report.warnings.append(
                    f"{file} at playlists[{index}].pid: pid {playlist.pid} already loaded from "
                    f"{seen[playlist.pid]}; this copy skipped"
                )
            else:
                seen[playlist.pid] = file
                kept.append(playlist)
        tracks = [track for playlist in kept for track in playlist.tracks]
        track_ids = self._track_ids
        first_new = len(track_ids)
        setdefault = track_ids.setdefault
        # one dict operation per entry: a new URI takes the next id, in the order of first entries
        ids = np.array([setdefault(track.track_uri, len(track_ids)) for track in tracks], dtype=np.int32)
        if len(track_ids) > first_new:
            self._add_new(tracks, ids, first_new)
        self._chunks.append(ids)
        self._lengths.append(np.fromiter((len(p.tracks) for p in kept), dtype=np.int64, count=len(kept)))
        self._pl_pids.append(np.fromiter((p.pid for p in kept), dtype=np.int64, count=len(kept)))
        self._pl_names.extend([p.name for p in kept])
        self._pl_followers.extend([p.num_followers for p in kept])
        self._pl_descriptions.extend([p.description for p in kept])
        self._pl_files.extend([file] * len(kept))
        self.report.files_read.append(file)

    def _add_new(self, tracks: list[_Track], ids: np.ndarray, first_new: int) -> None:
        """Name, artist and album of the tracks that got ids from first_new on, from their first entry."""
        positions = np.flatnonzero(ids >= first_new)
        first = positions[np.unique(ids[positions], return_index=True)[1]]  # ordered by id
        firsts = [tracks[i] for i in first.tolist()]
        self._names.extend([t.track_name for t in firsts])
        artist_ids = self._artist_ids
        self._track_artist.extend([artist_ids.setdefault(t.artist_name, len(artist_ids)) for t in firsts])
        self._albums.extend([t.album_name for t in firsts])

    def export(self) -> dict:
        """This builder's share, to merge into the builder of the files before it (`merge`)."""
        return {
            "uris": list(self._track_ids),
            "names": self._names,
            "artists": list(self._artist_ids),
            "track_artist": np.asarray(self._track_artist, dtype=np.int32),
            "albums": self._albums,
            "indices": np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int32),
            "lengths": np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64),
            "pids": np.concatenate(self._pl_pids) if self._pl_pids else np.zeros(0, dtype=np.int64),
            "playlist_names": self._pl_names,
            "followers": self._pl_followers,
            "descriptions": self._pl_descriptions,
            "files": self._pl_files,
            "files_read": self.report.files_read,
            "errors": [(e.file, e.field, e.problem) for e in self.report.errors],
            "warnings": self.report.warnings,
        }

    def merge(self, share: dict) -> bool:
        """Append a share built from the files after this builder's; False (and nothing changed)
        when one of its playlists repeats a pid of this builder's (the share must then be re-read)."""
        pids = share["pids"].tolist()
        if any(pid in self._pids for pid in pids):
            return False
        self._pids.update(zip(pids, share["files"], strict=True))
        uris = share["uris"]
        get = self._track_ids.get
        found = np.array([get(uri, -1) for uri in uris], dtype=np.int64)
        new = np.flatnonzero(found < 0)
        first = len(self._track_ids)
        found[new] = np.arange(first, first + len(new))
        new_positions = new.tolist()
        new_uris = [uris[i] for i in new_positions]
        self._track_ids.update(zip(new_uris, range(first, first + len(new)), strict=True))
        names, albums, share_artists = share["names"], share["albums"], share["artists"]
        self._names.extend([names[i] for i in new_positions])
        artist_ids = self._artist_ids
        self._track_artist.extend(
            [artist_ids.setdefault(share_artists[a], len(artist_ids)) for a in share["track_artist"][new].tolist()]
        )
        self._albums.extend([albums[i] for i in new_positions])
        self._chunks.append(found.astype(np.int32)[share["indices"]])
        self._lengths.append(share["lengths"])
        self._pl_pids.append(share["pids"])
        self._pl_names.extend(share["playlist_names"])
        self._pl_followers.extend(share["followers"])
        self._pl_descriptions.extend(share["descriptions"])
        self._pl_files.extend(share["files"])
        self.report.files_read.extend(share["files_read"])
        self.report.errors.extend(MPDFormatError(*e) for e in share["errors"])
        self.report.warnings.extend(share["warnings"])
        return True

    def build(self) -> Corpus:
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int32)
        self._chunks = []
        artist_ids = np.asarray(self._track_artist, dtype=np.int32)
        names = _objects(list(self._artist_ids)).to_numpy()
        tracks = pd.DataFrame(
            {
                "uri": _objects(list(self._track_ids)),
                "name": _objects(self._names),
                "artist": pd.Series(names[artist_ids], dtype=object),
                "artist_id": artist_ids,
                "album": _objects(self._albums),
            }
        )
        tracks["count"] = np.bincount(indices, minlength=len(tracks)).astype(np.int64)
        playlists = pd.DataFrame(
            {
                "pid": np.concatenate(self._pl_pids) if self._pl_pids else np.zeros(0, dtype=np.int64),
                "name": _objects(self._pl_names),
                "num_followers": np.asarray(self._pl_followers, dtype=np.int64),
                "num_tracks": lengths.astype(np.int64),
                "description": _objects(self._pl_descriptions),
                "file": _objects(self._pl_files),
            }
        )
        return Corpus(indptr, indices, tracks, playlists, names)


def _objects(values: Sequence) -> pd.Series:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return pd.Series(array, dtype=object)


def expand_sources(sources: Iterable[Source], max_files: int | None = None) -> list[Source]:
    """Folders expanded to their slice files in slice order, uploads kept; the first `max_files`."""
    expanded: list[Source] = []
    for source in sources:
        expanded.extend([source] if isinstance(source, tuple) else find_slice_files([source]))
    return expanded[:max_files] if max_files is not None else expanded


def _size(source: Source) -> int:
    try:
        return len(source[1]) if isinstance(source, tuple) else os.stat(source).st_size
    except OSError:
        return 0


def _default_workers(sources: Sequence[Source]) -> int:
    forkable = "fork" in multiprocessing.get_all_start_methods()
    if not forkable or threading.current_thread() is not threading.main_thread():
        return 1  # never fork from a server thread (Streamlit): one process reads in order
    total = sum(_size(s) for s in sources)
    return min(2, os.cpu_count() or 1) if total >= PARALLEL_MIN_BYTES else 1


def _shares(sources: list[Source], parts: int) -> list[list[Source]]:
    """Consecutive shares of about equal bytes."""
    sizes = np.cumsum([max(_size(s), 1) for s in sources])
    cuts = np.searchsorted(sizes, sizes[-1] * np.arange(1, parts) / parts, side="right")
    bounds = [0, *sorted(set(int(c) for c in cuts if 0 < c < len(sources))), len(sources)]
    return [sources[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _share_worker(index: int, sources: list[Source], max_size: int, messages) -> None:
    try:
        builder = StreamingCorpusBuilder(max_size)
        for source in sources:
            messages.put(("file", index, builder.add_source(source)))
        messages.put(("share", index, builder.export()))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        messages.put(("error", index, traceback.format_exc()))


def read_corpus(
    sources: Iterable[Source],
    max_files: int | None = None,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    max_file_size: int | None = None,
) -> tuple[Corpus, LoadReport]:
    """`load_corpus` without a cache: the same corpus and report, read file by file.

    workers: processes reading files (default: 2 for 256 MB of JSON or more when called from the
    main thread, else 1). Uploaded (name, bytes) sources are always read by this process.
    """
    limit = file_size_limit(max_file_size)
    expanded = expand_sources(sources, max_files)
    workers = _default_workers(expanded) if workers is None else max(1, workers)
    total, done = len(expanded), 0
    builder = StreamingCorpusBuilder(limit)

    def advance(name: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, name)

    parallel = workers > 1 and len(expanded) > 1 and "fork" in multiprocessing.get_all_start_methods()
    if not parallel or any(isinstance(s, tuple) for s in expanded):
        for source in expanded:
            advance(builder.add_source(source))
        return builder.build(), builder.report

    shares = _shares(expanded, workers)
    context = multiprocessing.get_context("fork")
    messages = context.Queue()
    children = [
        context.Process(target=_share_worker, args=(k, share, limit, messages), daemon=True)
        for k, share in enumerate(shares[1:], start=1)
    ]
    for child in children:
        child.start()
    received: dict[int, dict] = {}

    def drain(block: bool) -> None:
        while True:
            try:
                kind, index, payload = messages.get(timeout=1.0) if block else messages.get_nowait()
            except queue.Empty:
                if not block:
                    return
                if any(c.exitcode not in (None, 0) for c in children):
                    raise RuntimeError("a corpus worker process died (out of memory?)") from None
                continue
            if kind == "file":
                advance(payload)
            elif kind == "share":
                received[index] = payload
            else:
                raise RuntimeError(f"a corpus worker failed:\n{payload}")
            if block:
                return

    try:
        for source in shares[0]:
            advance(builder.add_source(source))
            drain(block=False)
        while len(received) < len(children):
            drain(block=True)
    finally:
        for child in children:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
    for index in range(1, len(shares)):
        if not builder.merge(received.pop(index)):
            for source in shares[index]:  # a pid repeats across shares: read this share again, in order
                builder.add_source(source)
    return builder.build(), builder.report


# --- the cache and the entry point ----------------------------------------------------------------


def load_corpus_cached(
    sources: Iterable[Source],
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
    max_files: int | None = None,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    keep: int = 4,
    max_file_size: int | None = None,
) -> tuple[Corpus, LoadReport]:
    """`load_corpus` through an on-disk cache in `cache_dir` (`songrec.cache.CacheEntry`).

    The entry is found by the sources (as given) and max_files; it is used when every file it was
    built from is still there with the same size and mtime, no file was added and the size limit
    is the same, else the corpus is read again and the entry replaced. Uploaded (name, bytes)
    sources are never cached. On a hit `progress` is called once as (total, total, "cache"). At
    most `keep` entries stay in cache_dir (the least recently used go).
    """
    sources = list(sources)
    limit = file_size_limit(max_file_size)
    if any(isinstance(s, tuple) for s in sources):
        return read_corpus(sources, max_files, progress, workers, limit)
    files = [Path(p) for p in expand_sources(sources, max_files)]
    entry = CacheEntry(cache_dir, sources, max_files, files, {"max_file_size": limit})
    cached = entry.load()
    if cached is not None:
        if progress is not None:
            progress(len(files), len(files), "cache")
        return cached
    corpus, report = read_corpus(files, None, progress, workers, limit)
    entry.store(corpus, report, keep)
    return corpus, report


def load_corpus(
    sources: Iterable[Source],
    max_files: int | None = None,
    progress: ProgressCallback | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    max_file_size: int | None = None,
) -> tuple[Corpus, LoadReport]:
    """Read paths, folders or uploaded (name, bytes) pairs into one Corpus.

    Every good file is kept; every bad one is reported in the LoadReport with file, field and
    problem. `max_files` takes the first N files in slice order. Files stream one at a time (only
    the fields the corpus keeps are decoded; `workers` processes decode, by default 2 for 256 MB
    of JSON or more). A file holding more than `max_file_size` bytes of JSON once inflated
    (default $SONGREC_MAX_FILE_SIZE, else 256 MiB) is refused as it inflates. With `cache_dir` the
    built corpus is kept on disk and a later call with the same sources reads it back in seconds
    while no file has changed.
    """
    if cache_dir is not None:
        return load_corpus_cached(sources, cache_dir, max_files, progress, workers, max_file_size=max_file_size)
    return read_corpus(sources, max_files, progress, workers, max_file_size)
