"""Which playlists a user looks at: the generated demo data, uploaded slices, or a folder on the server.

A user's dataset lives in their server-side session (`songrec.ui.session`), uploads included, so a
reload keeps it. Corpora read from server files are shared by every session through `CorpusStore`
(a corpus is never modified once read). Folders are read only from inside $SONGREC_DATA_DIR: a
symlink that leads out of it is neither listed nor read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from songrec.corpus import Corpus
from songrec.errors import UserError
from songrec.ingest import load_corpus
from songrec.mpd import LoadReport, find_slice_files
from songrec.ui.session import current

DEMO_PLAYLISTS = 2000
DEMO_SEED = 0

log = logging.getLogger(__name__)


class DatasetError(UserError):
    """Data that cannot be used, in words fit for the page (never a server path or a traceback)."""


@dataclass(frozen=True)
class DatasetRef:
    """Which data a session looks at: `key` identifies it (models remember the key they were fitted on)."""

    key: str
    name: str
    kind: str  # demo, folder, upload
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedData:
    ref: DatasetRef
    corpus: Corpus
    report: LoadReport


@dataclass(frozen=True)
class ServerFolder:
    """A folder under the server's data folder and the slice files it holds (none leading outside)."""

    name: str
    path: Path
    files: tuple[Path, ...]


def demo_dir() -> Path:
    """Where the generated demo slices live: $SONGREC_DEMO_DIR, else a cache folder outside the repo."""
    configured = os.environ.get("SONGREC_DEMO_DIR")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "songrec" / f"demo-{DEMO_PLAYLISTS}-seed{DEMO_SEED}"


def data_dir() -> Path | None:
    """The server's data folder ($SONGREC_DATA_DIR), resolved: the only place the app reads folders from."""
    configured = os.environ.get("SONGREC_DATA_DIR")
    if not configured:
        return None
    try:
        root = Path(configured).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return root if root.is_dir() else None


def inside(path: Path, root: Path) -> bool:
    """True when `path`, with every symlink followed, is `root` or under it (a broken or looping link is not)."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return resolved == root or root in resolved.parents


def _slice_files(folder: Path, root: Path) -> tuple[Path, ...]:
    """The folder's slice files in slice order, leaving out any that lead outside `root`."""
    try:
        files = find_slice_files([folder])
    except OSError:  # unreadable folder: nothing to offer
        return ()
    return tuple(f for f in files if inside(f, root) and f.is_file())


def data_folders() -> dict[str, ServerFolder]:
    """The data folder and each of its sub-folders that hold slice files, by display name."""
    root = data_dir()
    if root is None:
        return {}
    try:
        children = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError:
        return {}
    found = {}
    for folder in [root, *children]:
        if not inside(folder, root) or not folder.is_dir():
            continue
        files = _slice_files(folder, root)
        if files:
            name = "(top folder)" if folder == root else folder.name
            found[name] = ServerFolder(name, folder, files)
    return found


def _signature(files: list[Path]) -> str:
    digest = hashlib.sha1()
    for path in files:
        try:
            stat = path.stat()
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        except OSError:  # gone or unreadable: the load reports it per file
            digest.update(f"{path}:missing\n".encode())
    return digest.hexdigest()[:16]


class CorpusStore:
    """Corpora read from server-side files, shared by every session (a corpus is never modified once read).

    A small LRU rather than a cached function, so the loading session can show a per-file progress
    bar (Streamlit's cache would replay that bar's updates to later sessions and fail). One lock per
    key while loading: two sessions opening the same folder read it once, the second waits.
    """

    def __init__(self, size: int = 4, loader: Callable = load_corpus) -> None:
        self.size = size
        self.loader = loader
        self._items: OrderedDict[tuple, tuple[Corpus, LoadReport]] = OrderedDict()
        self._loading: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple) -> tuple[Corpus, LoadReport] | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def get(self, files: tuple[str, ...], signature: str, progress=None) -> tuple[Corpus, LoadReport]:
        key = (files, signature)
        found = self._cached(key)
        if found is not None:
            return found
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            found = self._cached(key)  # another session may have read it while this one waited
            if found is not None:
                return found
            try:
                # $SONGREC_CACHE_DIR: keep built corpora on disk too, so a restarted server reloads them in seconds
                loaded = self.loader(
                    list(files), progress=progress, cache_dir=os.environ.get("SONGREC_CACHE_DIR") or None
                )
                with self._lock:
                    self._items[key] = loaded
                    while len(self._items) > self.size:
                        self._items.popitem(last=False)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return loaded


@st.cache_resource(show_spinner=False)
def corpus_store() -> CorpusStore:
    return CorpusStore()


def _progress_bar(label: str):
    bar = st.progress(0.0, text=label)

    def update(done: int, total: int, name: str = "") -> None:
        bar.progress(done / max(total, 1), text=f"{label}: {done}/{total} files {Path(str(name)).name}")

    return bar, update


def _guarded(read: Callable[[], tuple[Corpus, LoadReport]], what: str) -> tuple[Corpus, LoadReport]:
    """Run a load; anything but a per-file error (those are in the report) becomes a DatasetError.

    The page shows a short message without server paths; the server log keeps the traceback.
    """
    try:
        return read()
    except DatasetError:
        raise
    except Exception as exc:
        log.exception("reading %s failed", what)
        message = str(exc)
        for secret in filter(None, [str(data_dir() or ""), str(demo_dir()), os.environ.get("SONGREC_CACHE_DIR")]):
            message = message.replace(secret, "…")
        raise DatasetError(f"{what} could not be read ({type(exc).__name__}: {message})") from None


def load_demo() -> LoadedData:
    folder = demo_dir()
    files = find_slice_files([folder]) if folder.is_dir() else []
    if not files:
        from songrec.synthetic import write_demo

        with st.spinner(f"Generating the demo data ({DEMO_PLAYLISTS:,} playlists)…"):
            write_demo(folder, DEMO_PLAYLISTS, seed=DEMO_SEED)
        files = find_slice_files([folder])
    corpus, report = _load_with_progress(files, "Reading demo slices", "The demo data")
    ref = DatasetRef(
        f"demo:{folder}:{_signature(files)}", "Demo data (generated)", "demo", tuple(str(f) for f in files)
    )
    return LoadedData(ref, corpus, report)


def load_folder(folder: ServerFolder | Path, max_files: int | None) -> LoadedData:
    """Read the first `max_files` slices of a folder under the server's data folder; DatasetError otherwise."""
    root = data_dir()
    if root is None:
        raise DatasetError("no server data folder is configured (set SONGREC_DATA_DIR)")
    path = folder.path if isinstance(folder, ServerFolder) else Path(folder)
    if not inside(path, root):
        raise DatasetError(f"{path.name!r} is not inside the server's data folder (a link leading out of it?)")
    files = list(_slice_files(path, root))
    if not files:
        raise DatasetError(f"{path.name!r} holds no slice files (.json or .json.gz) inside the server's data folder")
    if max_files:
        files = files[:max_files]
    resolved = path.resolve()
    corpus, report = _load_with_progress(files, f"Reading {path.name}", f"The folder {path.name!r}")
    name = f"{path.name} ({len(files)} file{'s' if len(files) != 1 else ''})"
    ref = DatasetRef(
        f"folder:{resolved}:{len(files)}:{_signature(files)}", name, "folder", tuple(str(f) for f in files)
    )
    return LoadedData(ref, corpus, report)


def _load_with_progress(files: list[Path], label: str, what: str) -> tuple[Corpus, LoadReport]:
    bar, update = _progress_bar(label)
    try:
        return _guarded(lambda: corpus_store().get(tuple(str(f) for f in files), _signature(files), update), what)
    finally:
        bar.empty()


def load_uploads(uploads: list[tuple[str, bytes]]) -> LoadedData:
    """Read uploaded (name, bytes) slices; kept in this user's session only."""
    digest = hashlib.sha1()
    for name, data in uploads:
        digest.update(name.encode() + b"\0" + hashlib.sha1(data).digest())
    bar, update = _progress_bar("Reading uploaded files")
    try:
        corpus, report = _guarded(lambda: load_corpus(uploads, progress=update), "The uploaded files")
    finally:
        bar.empty()
    count = len(report.files_read)
    label = f"Uploaded ({count} file{'s' if count != 1 else ''})"
    ref = DatasetRef(f"upload:{digest.hexdigest()[:16]}", label, "upload", tuple(name for name, _ in uploads))
    return LoadedData(ref, corpus, report)


def use(loaded: LoadedData) -> bool:
    """Switch this user to newly read data; with no playlist read, keep the current data (False).

    Either way the load report of this attempt is what the Dataset page shows next.
    """
    user = current()
    user.results["load_report"] = loaded.report
    if loaded.corpus.n_playlists == 0:
        return False
    user.dataset = loaded
    return True


def ensure_dataset() -> LoadedData:
    """This user's data; every session starts on the demo data."""
    user = current()
    if user.dataset is None:
        with user.lock:
            if user.dataset is None:
                user.dataset = load_demo()
    return user.dataset


def corpus() -> Corpus:
    return ensure_dataset().corpus


def dataset() -> DatasetRef:
    return ensure_dataset().ref


def load_report() -> LoadReport:
    """The report of the last load this user asked for (the current data's, or a rejected attempt's)."""
    return current().results.get("load_report") or ensure_dataset().report
