"""The on-disk corpus cache: a built corpus saved and loaded, with the files it was built from.

An entry keeps a corpus as .npz arrays (CSR) plus Parquet tables (tracks, playlists, artists)
and a manifest.json naming every source file with its size and mtime (and the load's options,
such as the size limit per file); a later load of the same sources takes seconds, and any
added, removed, touched or changed file rebuilds it. Reading slices is `songrec.ingest`'s job:

    corpus, report = load_corpus(paths, cache_dir=DEFAULT_CACHE_DIR)   # songrec.ingest
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from songrec.corpus import Corpus
from songrec.mpd import LoadReport, MPDFormatError

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = Path(os.environ.get("SONGREC_CACHE_DIR", ".songrec-cache"))
"""Where the CLI and app keep cached corpora (ignored by git); SONGREC_CACHE_DIR overrides it."""


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
    named = [os.path.realpath(s) for s in sources]  # Path.resolve raises on a symlink loop
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
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


class CacheEntry:
    """The cache entry of some sources: `load()` gives its corpus and report while it is still
    valid for `files` (the sources expanded) and `options`, `store()` replaces it."""

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        sources: Sequence[str | os.PathLike],
        max_files: int | None,
        files: Sequence[Path],
        options: dict | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.folder = cache_path(cache_dir, sources, max_files)
        self.expected = {"version": CACHE_VERSION, "files": _manifest_files(files), "options": options or {}}

    def load(self) -> tuple[Corpus, LoadReport] | None:
        """The cached corpus and report, or None when the entry is missing, stale or damaged."""
        manifest = _read_manifest(self.folder)
        if manifest is None or {k: manifest.get(k) for k in self.expected} != self.expected:
            return None
        try:
            corpus = load_saved_corpus(self.folder)
            report = _report_from_json(manifest["report"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        with contextlib.suppress(OSError):  # a read-only cache still serves
            os.utime(self.folder / "manifest.json")  # recently used
        return corpus, report

    def store(self, corpus: Corpus, report: LoadReport, keep: int = 4) -> None:
        """Write this entry (and keep at most `keep` entries in the cache folder); a cache that
        cannot be written only costs time, so that is no error."""
        try:
            _store(self.folder, corpus, {**self.expected, "report": _report_to_json(report), "created": time.time()})
            _evict(self.cache_dir, keep)
        except OSError:
            pass


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
