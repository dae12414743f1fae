"""Shared state of the Streamlit app: the loaded dataset, fitted models, caches and the sidebar.

Per-user things (which dataset, trained models, results) live in `st.session_state`; only data
that never changes once made (a corpus read from a server folder, a t-SNE map for a fixed model)
goes through `st.cache_resource` / `st.cache_data`.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from songrec.corpus import Corpus
from songrec.ingest import load_corpus
from songrec.mpd import LoadReport, find_slice_files
from songrec.ui.jobs import FitJob

DEMO_PLAYLISTS = 2000
DEMO_SEED = 0
BASELINES = ("popularity", "itemknn", "ease", "als")


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetRef:
    """Which data a session looks at: `key` identifies it (models remember the key they were fitted on)."""

    key: str
    name: str
    kind: str  # demo, folder, upload
    files: tuple[str, ...] = ()


def demo_dir() -> Path:
    """Where the generated demo slices live: $SONGREC_DEMO_DIR, else a cache folder outside the repo."""
    configured = os.environ.get("SONGREC_DEMO_DIR")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "songrec" / f"demo-{DEMO_PLAYLISTS}-seed{DEMO_SEED}"


def data_dir() -> Path | None:
    """The server's data folder ($SONGREC_DATA_DIR): the only place the app reads folders from."""
    configured = os.environ.get("SONGREC_DATA_DIR")
    return Path(configured) if configured and Path(configured).is_dir() else None


def data_folders() -> dict[str, Path]:
    """The data folder and each of its sub-folders that hold slice files, by a display name."""
    root = data_dir()
    if root is None:
        return {}
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = {}
    for folder in candidates:
        if any(p.name.endswith((".json", ".json.gz")) for p in folder.iterdir() if p.is_file()):
            found["(top folder)" if folder == root else folder.name] = folder
    return found


def _signature(files: list[Path]) -> str:
    digest = hashlib.sha1()
    for path in files:
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class CorpusStore:
    """Corpora read from server-side files, shared by every session (a corpus is never modified once read).

    A small LRU rather than a cached function, so the loading session can show a per-file progress
    bar (Streamlit's cache would replay that bar's updates to later sessions and fail).
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: OrderedDict[tuple, tuple[Corpus, LoadReport]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, files: tuple[str, ...], signature: str, progress=None) -> tuple[Corpus, LoadReport]:
        key = (files, signature)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        # $SONGREC_CACHE_DIR: keep built corpora on disk too, so a restarted server reloads them in seconds
        loaded = load_corpus(list(files), progress=progress, cache_dir=os.environ.get("SONGREC_CACHE_DIR") or None)
        with self._lock:
            self._items[key] = loaded
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return loaded


@st.cache_resource(show_spinner=False)
def corpus_store() -> CorpusStore:
    return CorpusStore()


def _progress_bar(label: str):
    bar = st.progress(0.0, text=label)

    def update(done: int, total: int, name: str = "") -> None:
        bar.progress(done / max(total, 1), text=f"{label}: {done}/{total} files {Path(str(name)).name}")

    return bar, update


def load_demo() -> tuple[DatasetRef, Corpus, LoadReport]:
    folder = demo_dir()
    files = find_slice_files([folder]) if folder.is_dir() else []
    if not files:
        from songrec.synthetic import write_demo

        with st.spinner(f"Generating the demo data ({DEMO_PLAYLISTS:,} playlists) into {folder}…"):
            write_demo(folder, DEMO_PLAYLISTS, seed=DEMO_SEED)
        files = find_slice_files([folder])
    corpus, report = _load_with_progress(files, "Reading demo slices")
    ref = DatasetRef(f"demo:{folder}:{_signature(files)}", "Demo data (generated)", "demo",
                     tuple(str(f) for f in files))
    return ref, corpus, report


def load_folder(folder: Path, max_files: int | None) -> tuple[DatasetRef, Corpus, LoadReport]:
    """Read the first `max_files` slices of a folder under the server's data folder."""
    root = data_dir()
    if root is None:
        raise ValueError("no server data folder is configured (set SONGREC_DATA_DIR)")
    folder = folder.resolve()
    if folder != root.resolve() and root.resolve() not in folder.parents:
        raise ValueError("only folders inside the server's data folder can be read")
    files = find_slice_files([folder])
    if max_files:
        files = files[:max_files]
    corpus, report = _load_with_progress(files, f"Reading {folder.name}")
    name = f"{folder.name} ({len(files)} file{'s' if len(files) != 1 else ''})"
    ref = DatasetRef(f"folder:{folder}:{len(files)}:{_signature(files)}", name, "folder", tuple(str(f) for f in files))
    return ref, corpus, report


def _load_with_progress(files: list[Path], label: str) -> tuple[Corpus, LoadReport]:
    bar, update = _progress_bar(label)
    try:
        return corpus_store().get(tuple(str(f) for f in files), _signature(files), progress=update)
    finally:
        bar.empty()


def load_uploads(uploads: list[tuple[str, bytes]]) -> tuple[DatasetRef, Corpus, LoadReport]:
    """Read uploaded (name, bytes) slices; kept in this session only."""
    digest = hashlib.sha1()
    for name, data in uploads:
        digest.update(name.encode() + b"\0" + hashlib.sha1(data).digest())
    bar, update = _progress_bar("Reading uploaded files")
    try:
        corpus, report = load_corpus(uploads, progress=update)
    finally:
        bar.empty()
    count = len(report.files_read)
    label = f"Uploaded ({count} file{'s' if count != 1 else ''})"
    ref = DatasetRef(f"upload:{digest.hexdigest()[:16]}", label, "upload", tuple(name for name, _ in uploads))
    return ref, corpus, report


def set_dataset(ref: DatasetRef, corpus: Corpus, report: LoadReport) -> None:
    ss = st.session_state
    ss["dataset"], ss["corpus"], ss["load_report"] = ref, corpus, report


def ensure_dataset() -> None:
    """Every session starts on the demo data."""
    if "corpus" not in st.session_state:
        set_dataset(*load_demo())


def corpus() -> Corpus:
    ensure_dataset()
    return st.session_state["corpus"]


def dataset() -> DatasetRef:
    ensure_dataset()
    return st.session_state["dataset"]


def load_report() -> LoadReport:
    return st.session_state.get("load_report") or LoadReport()


# --------------------------------------------------------------------------- models


@dataclass
class ModelEntry:
    """A fitted model and where it came from; `usable()` gives it in the current dataset's track ids."""

    label: str
    kind: str
    model: object
    dataset_key: str | None  # None: uploaded, trained on unknown data
    source: str = "fitted"  # fitted, trained, uploaded
    seconds: float = 0.0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    note: str = ""
    _aligned: dict = field(default_factory=dict, repr=False)

    def usable(self, ref: DatasetRef, data: Corpus):
        if self.dataset_key == ref.key:
            return self.model
        if ref.key not in self._aligned:
            from songrec.models.aligned import AlignedRecommender

            self._aligned.clear()
            self._aligned[ref.key] = AlignedRecommender(self.model, data)
        return self._aligned[ref.key]

    def describe(self) -> str:
        """One line: label, device, epochs, and "other data" when fitted on another dataset than the current one."""
        parts = [self.label]
        model = self.model
        device = getattr(model, "device", None)
        if device is not None:
            parts.append(str(getattr(device, "type", device)))
        if hasattr(model, "epochs_trained"):
            best = getattr(model, "best_epoch", 0)
            parts.append(f"{model.epochs_trained} epoch{'s' if model.epochs_trained != 1 else ''}"
                         + (f" (best {best})" if best else ""))
        if self.source == "uploaded":
            parts.append("uploaded")
        elif self.dataset_key != dataset().key:
            parts.append("other data")
        return " · ".join(parts)


def models() -> dict[str, ModelEntry]:
    return st.session_state.setdefault("models", {})


def add_model(entry: ModelEntry) -> None:
    models()[entry.label] = entry


def usable_models() -> dict[str, object]:
    """Every fitted model, speaking the current dataset's track ids."""
    ref, data = dataset(), corpus()
    return {label: entry.usable(ref, data) for label, entry in models().items()}


def model_token(label: str) -> str:
    entry = models().get(label)
    return f"{entry.token}:{dataset().key}" if entry else ""


def fit_baseline(kind: str, **params) -> ModelEntry:
    """Fit a baseline on the current dataset (with progress), store and return it."""
    from songrec.models import make_model

    data, ref = corpus(), dataset()
    bar = st.progress(0.0, text=f"Fitting {kind}…")

    def callback(progress) -> None:
        bar.progress(progress.fraction, text=f"Fitting {kind}: {progress.label}")

    started = time.perf_counter()
    try:
        model = make_model(kind, **params).fit(data, callback=callback)
    finally:
        bar.empty()
    entry = ModelEntry(kind, kind, model, ref.key, "fitted", time.perf_counter() - started)
    add_model(entry)
    return entry


def ensure_baseline(kind: str = "popularity") -> ModelEntry:
    """The named baseline, fitted now if this session has none yet for the current data."""
    entry = models().get(kind)
    if entry is None or entry.dataset_key != dataset().key:
        entry = fit_baseline(kind)
    return entry


def checkpoint_bytes(model) -> bytes:
    """The model as safetensors checkpoint bytes (for a download button)."""
    buffer = io.BytesIO()
    model.save(buffer)
    return buffer.getvalue()


def load_checkpoint_upload(name: str, data: bytes) -> ModelEntry:
    """A model from uploaded checkpoint bytes; raises CheckpointError / ValueError with a clear message."""
    from songrec.checkpoint import CheckpointError
    from songrec.models import load_model

    upload = io.BytesIO(data)
    upload.name = name  # how the checkpoint's messages name it
    try:
        model = load_model(upload)
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{name}: not a usable songrec checkpoint ({type(exc).__name__}: {exc})") from None
    label = f"{model.name} (uploaded {Path(name).stem})"
    return ModelEntry(label, model.name, model, None, "uploaded", note=name)


# --------------------------------------------------------------------------- training jobs


def train_job() -> FitJob | None:
    return st.session_state.get("train_job")


def start_training(config, train_corpus: Corpus) -> FitJob:
    from songrec.models.neural import NeuralRecommender

    model = NeuralRecommender(config=config)
    job = FitJob(model, train_corpus, "neural", meta={"dataset_key": dataset().key, "config": config})
    st.session_state["train_job"] = job
    st.session_state.pop("train_job_collected", None)
    return job.start()


def collect_training() -> None:
    """Once a training job has ended, keep its model (best epoch's weights) as the session's neural model."""
    job = train_job()
    if job is None or job.running or st.session_state.get("train_job_collected") is job:
        return
    st.session_state["train_job_collected"] = job
    if job.status in ("done", "stopped") and getattr(job.model, "network", None) is not None:
        note = "stopped early" if job.status == "stopped" else ""
        add_model(ModelEntry("neural", "neural", job.model, job.meta.get("dataset_key"), "trained", job.seconds,
                             note=note))


# --------------------------------------------------------------------------- genres


def keywords() -> dict[str, list[str]]:
    from songrec.genres import DEFAULT_KEYWORDS

    return st.session_state.setdefault("keywords", {g: list(w) for g, w in DEFAULT_KEYWORDS.items()})


# --------------------------------------------------------------------------- caches


@st.cache_data(show_spinner=False, max_entries=8)
def tsne_map(token: str, n: int, perplexity: float, _ids: np.ndarray, _vectors: np.ndarray, _corpus: Corpus):
    """t-SNE of one model's embeddings (token names model + dataset, so the unhashed arrays are fixed)."""
    from songrec.projection import track_projection

    del token
    return track_projection(_ids, _vectors, _corpus, n=n, perplexity=perplexity)


@st.cache_data(show_spinner=False, max_entries=8)
def genre_labels(dataset_key: str, keywords_key: tuple, _corpus: Corpus):
    """The GenreLabels (playlist and track genres, per-track counts) of a dataset for some keyword lists."""
    from songrec.genres import genre_labels as compute

    del dataset_key
    return compute(_corpus, {genre: list(words) for genre, words in keywords_key})


def keywords_key(keywords: dict[str, list[str]]) -> tuple:
    return tuple((genre, tuple(words)) for genre, words in keywords.items())


@st.cache_data(show_spinner=False, max_entries=4)
def svd_vectors(dataset_key: str, _corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    from songrec.projection import svd_embeddings

    del dataset_key
    return svd_embeddings(_corpus)


# --------------------------------------------------------------------------- layout


def sidebar() -> None:
    """Always visible: the loaded dataset, the fitted models and a running training job."""
    ref, data = dataset(), corpus()
    with st.container():
        st.markdown("**Dataset**")
        st.markdown(f"{ref.name}  \n{data.n_playlists:,} playlists · {data.n_tracks:,} tracks")
        st.markdown("**Models**")
        entries = list(models().values())
        if not entries:
            st.caption("None fitted yet — see Train.")
        for entry in entries:
            st.markdown(f"- {entry.describe()}")
        job = train_job()
        if job is not None and job.running:
            st.progress(job.fraction, text=f"Training the neural model — {job.describe()}")


HIT_COLOUR = "background-color: rgba(29, 185, 84, 0.18)"


def marked(frame, column: str | None, mark: str = "✓", formats: dict | None = None):
    """A styled table: rows with a true `column` tinted green and that column shown as a ✓ mark.

    `formats` ({column: "{:.4f}"}) format numbers; a missing value shows as "–".
    """
    frame = frame.reset_index(drop=True)
    flags = frame[column].astype(bool).to_numpy() if column else np.zeros(len(frame), bool)
    shown = frame.assign(**{column: [mark if f else "" for f in flags]}) if column else frame
    styler = shown.style.apply(lambda row: [HIT_COLOUR if flags[row.name] else ""] * len(row), axis=1)
    return styler.format(formats or {}, na_rep="–")


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


def percent(value: float) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"
