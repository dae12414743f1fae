"""A 2-D map of track embeddings: t-SNE (scikit-learn) over the most frequent tracks.

Any model with `track_embeddings()` (the neural model) gives the vectors; `svd_embeddings` makes
vectors from the playlist-track matrix alone, so the map can be drawn before a model is trained.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from songrec.corpus import Corpus
from songrec.errors import UserError

if TYPE_CHECKING:
    import altair as alt


def model_embeddings(model, corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """(track ids of `corpus`, vectors) for a model that learned track embeddings.

    A model wrapped for another corpus (AlignedRecommender) is translated through track URIs;
    tracks the corpus does not know are dropped. Raises ValueError for a model without embeddings.
    """
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(model, "to_corpus"):
        ids, vectors = _own_embeddings(inner)
        mapped = np.asarray(model.to_corpus)[ids]
        keep = mapped >= 0
        return mapped[keep].astype(np.int64), vectors[keep]
    ids, vectors = _own_embeddings(model)
    if len(ids) and ids.max() >= corpus.n_tracks:
        raise ValueError("the model was trained on other data: wrap it for this corpus first")
    return ids, vectors


def _own_embeddings(model) -> tuple[np.ndarray, np.ndarray]:
    if not hasattr(model, "track_embeddings"):
        raise UserError(f"the {getattr(model, 'name', 'chosen')} model has no track embeddings")
    ids, vectors = model.track_embeddings()
    return np.asarray(ids, dtype=np.int64), np.asarray(vectors, dtype=np.float32)


def svd_embeddings(
    corpus: Corpus, dim: int = 32, max_tracks: int = 20_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Track vectors from a truncated SVD of the playlist-track matrix (the most frequent tracks only)."""
    from sklearn.decomposition import TruncatedSVD
    from threadpoolctl import threadpool_limits

    ids = most_frequent(corpus, np.arange(corpus.n_tracks), max_tracks)
    matrix = corpus.matrix()[:, ids].T.tocsr().astype(np.float32)
    dim = max(1, min(dim, min(matrix.shape) - 1))
    with threadpool_limits(limits=1):
        vectors = TruncatedSVD(n_components=dim, random_state=seed).fit_transform(matrix)
    return ids, vectors.astype(np.float32)


def most_frequent(corpus: Corpus, ids: np.ndarray, n: int) -> np.ndarray:
    """The n of `ids` in most playlists of the corpus (ties by id), most frequent first; unused ids dropped."""
    ids = np.asarray(ids, dtype=np.int64)
    counts = corpus.track_counts[ids]
    order = np.lexsort((ids, -counts))
    order = order[counts[order] > 0]
    return ids[order[:n]]


PCA_DIMS = 50
"""t-SNE runs on the first 50 principal components (as openTSNE and scikit-learn's guide advise):
distances change little, the neighbour search gets several times cheaper."""
TSNE_THREADS = 2
"""Native threads for t-SNE: both cores of the target machine, unless they are busy. On a busy machine
OpenMP threads fight over the cores (measured: 2,000 points took 120 s on two threads at load 10 on
2 cores, against 28 s on one), so `tsne_threads` falls back to one thread there."""
TSNE_ITERATIONS = 500
"""Gradient steps (scikit-learn's default is 1,000; the first 250 are early exaggeration)."""
TSNE_ANGLE = 0.8
"""Barnes-Hut's accuracy trade-off (scikit-learn's default 0.5; its guide calls 0.2-0.8 safe). Measured on
2,000 clustered points, 2 threads: 500 steps at angle 0.8 take 3.6 s with trustworthiness 0.9694,
against 9.7 s and 0.9707 for 1,000 steps at 0.5 (benchmarks/RESULTS.md, section 5)."""


def tsne_threads() -> int:
    """TSNE_THREADS while the load average leaves more than one core free (the one-minute load average
    trails a finished job for minutes, so an idle 2-core machine often reads 0.5-1), else 1."""
    try:
        free = (os.cpu_count() or 1) - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return 1
    return TSNE_THREADS if free > TSNE_THREADS - 1 else 1


def tsne_coordinates(vectors: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """2-D t-SNE coordinates of the vectors' cosine geometry; perplexity is clipped below the number of points.

    The vectors are scaled to unit length (so Euclidean distances rank pairs as cosine distances do),
    reduced to PCA_DIMS principal components, then mapped on `tsne_threads()` threads (timings and
    trustworthiness beside the former one-thread path: benchmarks/RESULTS.md, section 5).
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    count = len(vectors)
    if count == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if count < 4:
        return np.column_stack([np.arange(count), np.zeros(count)]).astype(np.float32)
    perplexity = float(min(max(perplexity, 1.0), (count - 1) / 3.0))
    points = np.asarray(vectors, dtype=np.float32)
    points = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    threads = tsne_threads()
    with threadpool_limits(limits=threads):
        if points.shape[1] > PCA_DIMS and count > PCA_DIMS:
            points = PCA(n_components=PCA_DIMS, random_state=seed).fit_transform(points).astype(np.float32)
        tsne = TSNE(
            n_components=2,
            perplexity=perplexity,
            init="pca",
            random_state=seed,
            n_jobs=threads,
            max_iter=TSNE_ITERATIONS,
            angle=TSNE_ANGLE,
        )
        return tsne.fit_transform(points).astype(np.float32)


def track_projection(
    ids: np.ndarray,
    vectors: np.ndarray,
    corpus: Corpus,
    n: int = 1000,
    perplexity: float = 30.0,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """t-SNE of the n most frequent tracks among `ids`: x, y, track_id, track, artist, count, genre.

    `labels` is a per-track-id genre array (None = no label, shown as "other").
    """
    ids = np.asarray(ids, dtype=np.int64)
    position = {int(t): i for i, t in enumerate(ids)}
    chosen = most_frequent(corpus, ids, n)
    points = tsne_coordinates(np.asarray(vectors)[[position[int(t)] for t in chosen]], perplexity, seed)
    frame = pd.DataFrame(
        {
            "x": points[:, 0] if len(points) else np.zeros(0),
            "y": points[:, 1] if len(points) else np.zeros(0),
            "track_id": chosen,
            "track": corpus.tracks["name"].to_numpy()[chosen],
            "artist": corpus.tracks["artist"].to_numpy()[chosen],
            "count": corpus.track_counts[chosen],
        }
    )
    return with_genres(frame, labels)


def with_genres(frame: pd.DataFrame, labels: np.ndarray | None) -> pd.DataFrame:
    """Set the `genre` column of a projection from a per-track-id label array."""
    frame = frame.copy()
    if labels is None:
        frame["genre"] = "other"
    else:
        values = np.asarray(labels, dtype=object)[frame["track_id"].to_numpy()]
        frame["genre"] = [v if v is not None else "other" for v in values]
    return frame


def projection_chart(frame: pd.DataFrame, title: str = "") -> alt.Chart:
    """An interactive Altair scatter of a projection (zoom, pan, tooltips; click a genre in the legend)."""
    import altair as alt

    genres = [g for g in dict.fromkeys(frame["genre"]) if g != "other"] + ["other"]
    pick = alt.selection_point(fields=["genre"], bind="legend")
    return (
        alt.Chart(frame, title=title)
        .mark_circle(size=40)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color("genre:N", sort=genres, legend=alt.Legend(title="genre label (click to pick)")),
            opacity=alt.condition(pick, alt.value(0.8), alt.value(0.08)),
            tooltip=["track:N", "artist:N", "genre:N", alt.Tooltip("count:Q", title="playlists")],
        )
        .add_params(pick)
        .properties(width=800, height=620)
        .interactive()
    )


def write_projection(frame: pd.DataFrame, path: str | os.PathLike, title: str = "") -> None:
    """The map as CSV (x, y, track, artist, genre, count, uri), or as a self-contained interactive
    HTML chart (its JavaScript inlined, so it opens offline) when the name ends in .html."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".html", ".htm"):
        try:
            import vl_convert  # noqa: F401  (Altair inlines the Vega JavaScript through it)
        except ImportError:
            raise UserError(
                f"{path}: a self-contained HTML chart needs vl-convert-python (pip install "
                "vl-convert-python); or write .csv"
            ) from None
        projection_chart(frame, title).save(str(path), inline=True)
        return
    columns = [c for c in ("x", "y", "track", "artist", "genre", "count", "uri", "track_id") if c in frame]
    frame[columns].to_csv(path, index=False)
