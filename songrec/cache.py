"""Streaming ingest of MPD slices and an on-disk corpus cache.

Ingest reads one file at a time and never holds more than a file of JSON: a lean msgspec struct
decodes only the fields the corpus keeps (the full `mpd.Slice` is only used to explain a file
the lean one refuses), and each entry costs one dict lookup, no Python object of its own. With
`workers` > 1 the files are cut into that many consecutive shares; forked processes build a
partial corpus of their share while this process builds the first, and the shares are merged in
file order, so the corpus (ids, order, report) is the same whatever the number of workers.

The cache keeps a built corpus as .npz arrays (CSR) plus Parquet tables (tracks, playlists,
artists) and a manifest.json naming every source file with its size and mtime; a later load of
the same sources takes seconds, and any added, removed, touched or changed file rebuilds it.

    corpus, report = load_corpus(paths, cache_dir=DEFAULT_CACHE_DIR)   # songrec.corpus
    corpus, report = load_corpus_cached(paths, cache_dir=DEFAULT_CACHE_DIR)  # the same
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import shutil
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from songrec.corpus import Corpus, ProgressCallback
from songrec.mpd import LoadReport, MPDFormatError, _maybe_gunzip, decode, find_slice_files

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = Path(os.environ.get("SONGREC_CACHE_DIR", ".songrec-cache"))
"""Where the CLI and app keep cached corpora (ignored by git); SONGREC_CACHE_DIR overrides it."""

PARALLEL_MIN_BYTES = 256 << 20
"""Below this much JSON, one process reads faster than starting workers."""

Source = str | os.PathLike | tuple[str, bytes]


# --- lean decoding -------------------------------------------------------------------------------


class _Track(msgspec.Struct, kw_only=True, gc=False):
    track_uri: str
    track_name: str
    artist_name: str
    album_name: str | None = None


class _Playlist(msgspec.Struct, kw_only=True, gc=False):
    name: str
    pid: int
    num_followers: int = 0
    description: str | None = None
    tracks: list[_Track]


class _Slice(msgspec.Struct, kw_only=True, gc=False):
    playlists: list[_Playlist]


_LEAN = msgspec.json.Decoder(_Slice)


def decode_lean(source: Source) -> tuple[str, list[_Playlist] | MPDFormatError]:
    """(file name, its playlists with the fields the corpus keeps) or (file name, its error).

    Fields the corpus does not keep (pos, album_uri, modified_at, ...) are skipped, not checked;
    a file the lean decoder refuses is decoded by the full `mpd.Slice` reader so the error names
    the file, field and problem exactly as `mpd.read_slice` does.
    """
    name = str(source[0]) if isinstance(source, tuple) else str(source)
    try:
        if isinstance(source, tuple):
            data = bytes(source[1])
        else:
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise MPDFormatError(name, "", f"cannot read file: {exc.strerror or exc}") from exc
        data = _maybe_gunzip(data, name)
        try:
            return name, _LEAN.decode(data).playlists
        except msgspec.DecodeError as exc:
            decode(data, name)  # raises the precise MPDFormatError
            return name, MPDFormatError(name, "", f"invalid JSON: {exc}")  # accepted by the full reader only
    except MPDFormatError as exc:
        return name, exc


# --- building ------------------------------------------------------------------------------------


class StreamingCorpusBuilder:
    """Builds a corpus file by file with the ids, order and report of the plain reference builder
    (tests/reference_builder.py)."""

    def __init__(self) -> None:
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
        name, result = decode_lean(source)
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

    def _artist_id(self, name: str) -> int:
        return self._artist_ids.setdefault(name, len(self._artist_ids))

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


def _expand(sources: Iterable[Source], max_files: int | None) -> list[Source]:
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


def _share_worker(index: int, sources: list[Source], messages) -> None:
    try:
        builder = StreamingCorpusBuilder()
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
) -> tuple[Corpus, LoadReport]:
    """`load_corpus` without a cache: the same corpus and report, read file by file.

    workers: processes reading files (default: 2 for 256 MB of JSON or more when called from the
    main thread, else 1). Uploaded (name, bytes) sources are always read by this process.
    """
    expanded = _expand(sources, max_files)
    workers = _default_workers(expanded) if workers is None else max(1, workers)
    total, done = len(expanded), 0
    builder = StreamingCorpusBuilder()

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
    children = [context.Process(target=_share_worker, args=(k, share, messages), daemon=True)
                for k, share in enumerate(shares[1:], start=1)]
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


# --- cache ---------------------------------------------------------------------------------------


def _manifest_files(files: Sequence[Path]) -> list[dict]:
    out = []
    for path in files:
        try:
            stat = path.stat()
            out.append({"file": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        except OSError:
            out.append({"file": str(path), "size": -1, "mtime_ns": -1})
    return out


def cache_key(sources: Sequence[str | os.PathLike], max_files: int | None = None) -> str:
    """The cache entry of a set of sources: the same folders (or files) and max_files share one."""
    named = [str(Path(s).resolve()) for s in sources]
    text = json.dumps({"sources": named, "max_files": max_files, "version": CACHE_VERSION})
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cache_path(
    cache_dir: str | os.PathLike, sources: Sequence[str | os.PathLike], max_files: int | None = None
) -> Path:
    return Path(cache_dir) / cache_key(sources, max_files)


def save_corpus(folder: str | os.PathLike, corpus: Corpus) -> None:
    """Write a corpus as arrays.npz + tracks/playlists/artists.parquet into `folder`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "arrays.npz", indptr=corpus.indptr, indices=corpus.indices)
    for name, frame in (("tracks", corpus.tracks), ("playlists", corpus.playlists)):
        columns = {}
        for column in frame.columns:
            values = frame[column]
            if values.dtype == object:
                columns[column] = pa.array(values.to_numpy(), type=pa.string(), from_pandas=False)
            else:
                columns[column] = pa.array(values.to_numpy())
        pq.write_table(pa.table(columns), folder / f"{name}.parquet", compression="zstd")
    artists = pa.table({"artist": pa.array(np.asarray(corpus.artists, dtype=object), type=pa.string())})
    pq.write_table(artists, folder / "artists.parquet", compression="zstd")


def _object_column(column) -> np.ndarray:
    values = column.to_numpy(zero_copy_only=False)
    if values.dtype != object:
        values = values.astype(object)
    return values


def load_saved_corpus(folder: str | os.PathLike) -> Corpus:
    """Read a corpus written by `save_corpus` (same dtypes: object strings, int32/int64 arrays)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    with np.load(folder / "arrays.npz") as arrays:
        indptr, indices = arrays["indptr"], arrays["indices"]
    frames = {}
    for name in ("tracks", "playlists"):
        table = pq.read_table(folder / f"{name}.parquet")
        data = {}
        for field, column in zip(table.schema, table.columns, strict=True):
            if str(field.type) in ("string", "large_string"):
                data[field.name] = pd.Series(_object_column(column), dtype=object)
            else:
                data[field.name] = column.to_numpy()
        frames[name] = pd.DataFrame(data)
    artists = _object_column(pq.read_table(folder / "artists.parquet").column("artist"))
    return Corpus(indptr, indices, frames["tracks"], frames["playlists"], artists)


def _report_to_json(report: LoadReport) -> dict:
    return {
        "files_read": report.files_read,
        "errors": [[e.file, e.field, e.problem] for e in report.errors],
        "warnings": report.warnings,
    }


def _report_from_json(data: dict) -> LoadReport:
    return LoadReport(
        files_read=list(data["files_read"]),
        errors=[MPDFormatError(*e) for e in data["errors"]],
        warnings=list(data["warnings"]),
    )


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def load_corpus_cached(
    sources: Iterable[Source],
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
    max_files: int | None = None,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    keep: int = 4,
) -> tuple[Corpus, LoadReport]:
    """`load_corpus` through an on-disk cache in `cache_dir`.

    The entry is found by the sources (as given) and max_files; it is used when every file it was
    built from is still there with the same size and mtime, and no file was added, else the corpus
    is read again and the entry replaced. Uploaded (name, bytes) sources are never cached. On a hit
    `progress` is called once as (total, total, "cache"). At most `keep` entries stay in cache_dir
    (the least recently used go).
    """
    sources = list(sources)
    if any(isinstance(s, tuple) for s in sources):
        return read_corpus(sources, max_files, progress, workers)
    files = [Path(p) for p in _expand(sources, max_files)]
    folder = cache_path(cache_dir, sources, max_files)
    expected = {"version": CACHE_VERSION, "files": _manifest_files(files)}
    manifest = _read_manifest(folder)
    if manifest is not None and {k: manifest.get(k) for k in expected} == expected:
        try:
            corpus = load_saved_corpus(folder)
        except (OSError, ValueError, KeyError):
            corpus = None
        if corpus is not None:
            os.utime(folder / "manifest.json")  # recently used
            if progress is not None:
                progress(len(files), len(files), "cache")
            return corpus, _report_from_json(manifest["report"])
    corpus, report = read_corpus(files, None, progress, workers)
    try:
        _store(folder, corpus, {**expected, "report": _report_to_json(report), "created": time.time()})
        _evict(Path(cache_dir), keep)
    except OSError:
        pass  # a cache that cannot be written only costs time
    return corpus, report


def _store(folder: Path, corpus: Corpus, manifest: dict) -> None:
    """Write the entry beside its final place, then swap it in (readers never see half an entry)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(temporary, ignore_errors=True)
    save_corpus(temporary, corpus)
    (temporary / "manifest.json").write_text(json.dumps(manifest))
    old = folder.with_name(f"{folder.name}.old-{os.getpid()}-{threading.get_ident()}")
    if folder.exists():
        folder.rename(old)
    temporary.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _evict(cache_dir: Path, keep: int) -> None:
    entries = [p for p in cache_dir.iterdir() if p.is_dir() and (p / "manifest.json").exists() and "." not in p.name]
    entries.sort(key=lambda p: (p / "manifest.json").stat().st_mtime, reverse=True)
    for stale in entries[max(keep, 1) :]:
        shutil.rmtree(stale, ignore_errors=True)
