"""t-SNE maps of track embeddings: most frequent tracks, labels, and vectors from models or an SVD."""

from __future__ import annotations

import numpy as np
import pytest

from songrec.corpus import Corpus
from songrec.genres import track_genres
from songrec.models import make_model
from songrec.models.aligned import AlignedRecommender
from songrec.projection import (
    model_embeddings,
    most_frequent,
    svd_embeddings,
    track_projection,
    tsne_coordinates,
    with_genres,
)


@pytest.fixture(scope="module")
def corpus(demo_corpus: Corpus) -> Corpus:
    return demo_corpus


def test_most_frequent_orders_by_count(corpus: Corpus) -> None:
    ids = most_frequent(corpus, np.arange(corpus.n_tracks), 50)
    counts = corpus.track_counts[ids]
    assert len(ids) == 50 and (np.diff(counts) <= 0).all()
    assert counts[0] == corpus.track_counts.max()


def test_svd_projection_columns_and_labels(corpus: Corpus) -> None:
    ids, vectors = svd_embeddings(corpus, dim=16)
    assert vectors.shape == (len(ids), 16)
    labels = track_genres(corpus)
    frame = track_projection(ids, vectors, corpus, n=150, perplexity=15, labels=labels)
    assert list(frame.columns) == ["x", "y", "track_id", "track", "artist", "count", "genre"]
    assert len(frame) == 150
    assert np.isfinite(frame[["x", "y"]].to_numpy()).all()
    assert frame["track_id"].tolist() == most_frequent(corpus, ids, 150).tolist()
    assert frame["track"].iat[0] == corpus.tracks["name"].iat[frame["track_id"].iat[0]]
    expected = [labels[t] if labels[t] is not None else "other" for t in frame["track_id"]]
    assert frame["genre"].tolist() == expected
    assert {"country", "hip-hop"} <= set(frame["genre"])


def test_genre_clusters_are_closer_than_random(corpus: Corpus) -> None:
    """Points of one genre lie nearer each other than points of different genres."""
    ids, vectors = svd_embeddings(corpus, dim=16)
    frame = track_projection(ids, vectors, corpus, n=120, perplexity=10, labels=track_genres(corpus))
    frame = frame[frame["genre"] != "other"]
    xy = frame[["x", "y"]].to_numpy()
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    same = frame["genre"].to_numpy()[:, None] == frame["genre"].to_numpy()[None]
    off_diagonal = ~np.eye(len(frame), dtype=bool)
    assert distance[same & off_diagonal].mean() < distance[~same].mean()


def test_perplexity_is_clipped_for_few_points() -> None:
    rng = np.random.default_rng(0)
    assert tsne_coordinates(rng.normal(size=(12, 4)), perplexity=50).shape == (12, 2)
    assert tsne_coordinates(rng.normal(size=(2, 4))).shape == (2, 2)
    assert tsne_coordinates(np.zeros((0, 4))).shape == (0, 2)


def test_with_genres_without_labels(corpus: Corpus) -> None:
    ids, vectors = svd_embeddings(corpus, dim=8)
    frame = track_projection(ids, vectors, corpus, n=30, perplexity=5)
    assert set(frame["genre"]) == {"other"}
    assert with_genres(frame, np.full(corpus.n_tracks, "x", dtype=object))["genre"].eq("x").all()


def test_model_embeddings(corpus: Corpus) -> None:
    neural = make_model("neural", **dict(epochs=1, embedding_dim=8, hidden_dim=16, val_share=0.0))
    neural.fit(corpus)
    ids, vectors = model_embeddings(neural, corpus)
    assert vectors.shape == (len(ids), 8) and ids.max() < corpus.n_tracks
    # a model wrapped for another corpus speaks that corpus's ids
    other = corpus.subset(np.arange(0, corpus.n_playlists, 2))
    aligned = AlignedRecommender(neural, other)
    mapped, mapped_vectors = model_embeddings(aligned, other)
    assert len(mapped) == len(ids) and np.allclose(mapped_vectors, vectors)
    with pytest.raises(ValueError, match="no track embeddings"):
        model_embeddings(make_model("popularity").fit(corpus), corpus)
