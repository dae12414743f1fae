"""Streaming ingest of MPD slices and an on-disk corpus cache.

Ingest reads one file at a time and never holds more than a file of JSON: a lean msgspec struct
decodes only the fields the corpus keeps (about half the work of the full `mpd.Slice`), each
file's URIs are mapped to local ids in one vectorised step, and only the file's distinct tracks
reach the global URI -> id table. With `workers` > 1, forked processes decode files while the
parent merges them, in file order, so the corpus is the same whatever the number of workers.

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
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
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


class _Packed(msgspec.Struct, array_like=True):
    """Strings as one text and their end offsets (None where `missing`)."""

    text: str
    ends: bytes  # int64 end offset of each string in text
    missing: bytes  # bool per string: None


class _FileData(msgspec.Struct, array_like=True):
    """One decoded file, ready to merge: its distinct tracks and its entries as local ids."""

    name: str
    error: tuple[str, str] | None = None  # (field, problem) of an MPDFormatError
    pids: bytes = b""  # int64 per playlist
    lengths: bytes = b""  # int64 per playlist
    entries: bytes = b""  # int32 local track id per entry, playlists concatenated
    playlist_names: list[str] = []
    followers: list[int] = []
    descriptions: list[str | None] = []
    uris: list[str] = []  # distinct tracks in first-seen order (local id = position)
    track_names: _Packed | None = None  # name, artist and album of each distinct track; the
    artists: _Packed | None = None  # merging process only unpacks the few it has not seen
    albums: _Packed | None = None


def _pack(values: list[str | None]) -> _Packed:
    lengths = np.fromiter((len(v) if v is not None else -1 for v in values), dtype=np.int64, count=len(values))
    ends = np.cumsum(np.maximum(lengths, 0))
    return _Packed("".join([v for v in values if v is not None]), ends.tobytes(), (lengths < 0).tobytes())


def _unpack(packed: _Packed, positions: list[int]) -> list[str | None]:
    """The values at `positions` only (a file's known tracks are never turned into strings)."""
    if not positions:
        return []
    at = np.asarray(positions, dtype=np.int64)
    ends = np.frombuffer(packed.ends, dtype=np.int64)
    stops = ends[at].tolist()
    starts = np.where(at > 0, ends[at - 1], 0).tolist()
    missing = np.frombuffer(packed.missing, dtype=bool)[at].tolist()
    text = packed.text
    return [None if gone else text[start:stop] for start, stop, gone in zip(starts, stops, missing, strict=True)]


_LEAN = msgspec.json.Decoder(_Slice)
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_FileData)


def _read_bytes(source: Source) -> tuple[str, bytes]:
    if isinstance(source, tuple):
        return source[0], bytes(source[1])
    path = Path(source)
    try:
        return str(path), path.read_bytes()
    except OSError as exc:
        raise MPDFormatError(str(path), "", f"cannot read file: {exc.strerror or exc}") from exc


def read_file_data(source: Source) -> _FileData:
    """Decode one slice (path or (name, bytes)) into its distinct tracks and local-id entries.

    Only the fields the corpus keeps are decoded; a file the lean decoder refuses is decoded by
    the full `mpd.Slice` reader so the error names the file, field and problem as it always has.
    """
    name = str(source[0]) if isinstance(source, tuple) else str(source)
    try:
        name, data = _read_bytes(source)
        data = _maybe_gunzip(data, name)
        try:
            playlists = _LEAN.decode(data).playlists
        except msgspec.DecodeError:
            decode(data, name)  # raises the precise MPDFormatError
            raise
        # the full reader also validates fields the corpus does not keep (types of pos, album_uri, ...)
    except MPDFormatError as exc:
        return _FileData(name=name, error=(exc.field, exc.problem))
    except msgspec.DecodeError as exc:  # accepted by the full reader but not the lean one: should not happen
        return _FileData(name=name, error=("", f"invalid JSON: {exc}"))
    lengths = np.fromiter((len(p.tracks) for p in playlists), dtype=np.int64, count=len(playlists))
    tracks = [t for p in playlists for t in p.tracks]
    if tracks:
        codes, uniques = pd.factorize(np.fromiter((t.track_uri for t in tracks), dtype=object, count=len(tracks)))
        first = np.unique(codes, return_index=True)[1]
        firsts = [tracks[i] for i in first.tolist()]
    else:
        codes, uniques, firsts = np.zeros(0, np.int64), [], []
    return _FileData(
        name=name,
        pids=np.fromiter((p.pid for p in playlists), dtype=np.int64, count=len(playlists)).tobytes(),
        lengths=lengths.tobytes(),
        entries=np.asarray(codes, dtype=np.int32).tobytes(),
        playlist_names=[p.name for p in playlists],
        followers=[p.num_followers for p in playlists],
        descriptions=[p.description for p in playlists],
        uris=list(uniques),
        track_names=_pack([t.track_name for t in firsts]),
        artists=_pack([t.artist_name for t in firsts]),
        albums=_pack([t.album_name for t in firsts]),
    )


def _read_encoded(source: Source) -> bytes:
    return _ENCODER.encode(read_file_data(source))


# --- merging -------------------------------------------------------------------------------------


class StreamingCorpusBuilder:
    """Merges decoded files into one corpus with the ids, order and report of `CorpusBuilder`."""

    def __init__(self) -> None:
        self.report = LoadReport()
        self._track_ids: dict[str, int] = {}
        self._artist_ids: dict[str, int] = {}
        self._artist_names: list[str] = []
        self._uris: list[str] = []
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

    def add(self, data: _FileData) -> None:
        file = data.name
        if data.error is not None:
            self.report.errors.append(MPDFormatError(file, *data.error))
            return
        pids = np.frombuffer(data.pids, dtype=np.int64)
        lengths = np.frombuffer(data.lengths, dtype=np.int64)
        entries = np.frombuffer(data.entries, dtype=np.int32)
        keep = np.ones(len(pids), dtype=bool)
        seen = self._pids
        for index, (pid, length) in enumerate(zip(pids.tolist(), lengths.tolist(), strict=True)):
            if length == 0:
                self.report.warnings.append(f"{file} at playlists[{index}]: playlist pid {pid} has no tracks; skipped")
                keep[index] = False
            elif pid in seen:
                self.report.warnings.append(
                    f"{file} at playlists[{index}].pid: pid {pid} already loaded from {seen[pid]}; this copy skipped"
                )
                keep[index] = False
            else:
                seen[pid] = file
        if not keep.all():
            entries = entries[np.repeat(keep, lengths)]
        # local ids in first-seen order over the kept entries (all of them, in order, when every
        # playlist is kept), then their global ids: one dict lookup per distinct track of the file
        uris = data.uris
        if keep.all():
            order = np.arange(len(uris), dtype=np.int64)
            ordered = uris
        elif len(entries):
            unique, first = np.unique(entries, return_index=True)
            order = unique[np.argsort(first, kind="stable")].astype(np.int64)
            ordered = [uris[i] for i in order.tolist()]
        else:
            order, ordered = np.zeros(0, dtype=np.int64), []
        track_ids = self._track_ids
        found = list(map(track_ids.get, ordered))
        new = [k for k, tid in enumerate(found) if tid is None]
        if new:
            local_new = order[new].tolist()
            first_id = len(self._uris)
            for offset, local in enumerate(local_new):
                found[new[offset]] = track_ids[uris[local]] = first_id + offset
                self._uris.append(uris[local])
            self._names.extend(_unpack(data.track_names, local_new))
            self._track_artist.extend(map(self._artist_id, _unpack(data.artists, local_new)))
            self._albums.extend(_unpack(data.albums, local_new))
        global_ids = np.asarray(found, dtype=np.int64)
        lookup = np.zeros(len(uris), dtype=np.int32)
        lookup[order] = global_ids
        self._chunks.append(lookup[entries])
        kept = np.flatnonzero(keep).tolist()
        self._lengths.append(lengths[keep])
        self._pl_pids.append(pids[keep])
        self._pl_names.extend([data.playlist_names[i] for i in kept])
        self._pl_followers.extend([data.followers[i] for i in kept])
        self._pl_descriptions.extend([data.descriptions[i] for i in kept])
        self._pl_files.extend([file] * len(kept))
        self.report.files_read.append(file)

    def _artist_id(self, name: str) -> int:
        aid = self._artist_ids.get(name)
        if aid is None:
            aid = self._artist_ids[name] = len(self._artist_names)
            self._artist_names.append(name)
        return aid

    def build(self) -> Corpus:
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int32)
        self._chunks = []
        artist_ids = np.asarray(self._track_artist, dtype=np.int32)
        names = np.asarray(self._artist_names + [""], dtype=object)[:-1]  # the +[""] keeps a 1-d object array
        tracks = pd.DataFrame(
            {
                "uri": _objects(self._uris),
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


def _default_workers(sources: Sequence[Source]) -> int:
    forkable = "fork" in multiprocessing.get_all_start_methods()
    if not forkable or threading.current_thread() is not threading.main_thread():
        return 1  # never fork from a server thread (Streamlit): one process reads in order
    total = 0
    for source in sources:
        try:
            total += len(source[1]) if isinstance(source, tuple) else os.stat(source).st_size
        except OSError:
            continue
    return min(2, os.cpu_count() or 1) if total >= PARALLEL_MIN_BYTES else 1


def _decoded(sources: list[Source], workers: int) -> Iterator[_FileData]:
    if workers <= 1:
        yield from map(read_file_data, sources)
        return
    paths = [s for s in sources if not isinstance(s, tuple)]
    if len(paths) != len(sources):  # uploads stay in this process (their bytes are here already)
        yield from map(read_file_data, sources)
        return
    # forked workers decode the next files while this process merges, in file order
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for encoded in pool.imap(_read_encoded, [str(p) for p in paths], chunksize=1):
            yield _DECODER.decode(encoded)


def read_corpus(
    sources: Iterable[Source],
    max_files: int | None = None,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> tuple[Corpus, LoadReport]:
    """`load_corpus` without a cache: the same corpus and report, read file by file.

    workers: processes decoding files (default: 2 for 256 MB of JSON or more when called from the
    main thread, else 1).
    """
    expanded = _expand(sources, max_files)
    workers = _default_workers(expanded) if workers is None else max(1, workers)
    builder = StreamingCorpusBuilder()
    for done, data in enumerate(_decoded(expanded, workers), start=1):
        builder.add(data)
        if progress is not None:
            progress(done, len(expanded), data.name)
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
