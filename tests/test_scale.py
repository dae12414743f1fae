"""What makes the full MPD size tractable: fast top-k pruning, item-kNN in blocks, workers and a
work budget, and the parallel demo generator; each is the same as the simple path where it should be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from songrec.corpus import Corpus
from songrec.models import make_model
from songrec.models.itemknn import cosine_neighbours
from songrec.sparse import keep_top
from songrec.synthetic import iter_demo_slices, write_demo


def keep_top_by_sorting(matrix: sp.csr_matrix, top: int) -> sp.csr_matrix:
    """The plain definition: sort each row by value (ties: earlier column first), keep `top`."""
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((-matrix.data, rows))
    rank = np.arange(len(order)) - matrix.indptr[rows[order]]
    keep = np.sort(order[rank < top])
    counts = np.bincount(rows[keep], minlength=matrix.shape[0])
    return sp.csr_matrix(
        (matrix.data[keep], matrix.indices[keep], np.concatenate([[0], np.cumsum(counts)])), shape=matrix.shape
    )


def assert_same_matrix(a: sp.csr_matrix, b: sp.csr_matrix) -> None:
    assert a.shape == b.shape
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)


def testkeep_top_equals_sorting_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        rows, cols = int(rng.integers(1, 30)), int(rng.integers(1, 80))
        matrix = sp.random(rows, cols, density=float(rng.random()), format="csr", rng=rng, dtype=np.float32)
        matrix.data = np.round(matrix.data * rng.integers(1, 6)) + 1  # many ties
        top = int(rng.integers(1, 25))
        kept = keep_top(matrix.copy(), top)
        assert_same_matrix(kept, keep_top_by_sorting(matrix, top))
        assert np.diff(kept.indptr).max(initial=0) <= top


def test_neighbours_are_the_same_in_blocks_and_workers(demo_corpus: Corpus) -> None:
    matrix = demo_corpus.matrix()
    whole = cosine_neighbours(matrix, 50, alpha=0.9)
    assert_same_matrix(cosine_neighbours(matrix, 50, alpha=0.9, block=97, block_products=10_000), whole)
    assert_same_matrix(cosine_neighbours(matrix, 50, alpha=0.9, block=300, workers=2), whole)


def test_a_work_budget_samples_each_tracks_playlists(demo_corpus: Corpus) -> None:
    matrix = demo_corpus.matrix()
    lengths = np.diff(matrix.indptr).astype(float)
    exact_work = float(lengths @ lengths)
    sampled = cosine_neighbours(matrix, 30, alpha=0.9, max_products=int(exact_work / 5), seed=1)
    assert sampled.shape == (demo_corpus.n_tracks, demo_corpus.n_tracks)
    assert np.diff(sampled.indptr).max() <= 30
    cooc = (matrix.T @ matrix).tocsr()
    for track in np.flatnonzero(demo_corpus.track_counts > 3)[:50]:
        neighbours = sampled.indices[sampled.indptr[track] : sampled.indptr[track + 1]]
        assert len(neighbours) and track not in neighbours
        assert (cooc[track, neighbours].toarray() > 0).all()
    again = cosine_neighbours(matrix, 30, alpha=0.9, max_products=int(exact_work / 5), seed=1)
    assert_same_matrix(sampled, again)
    # under the budget nothing changes
    assert_same_matrix(
        cosine_neighbours(matrix, 30, alpha=0.9, max_products=int(exact_work * 2)),
        cosine_neighbours(matrix, 30, alpha=0.9),
    )


def test_min_count_leaves_rare_tracks_out(demo_corpus: Corpus) -> None:
    counts = demo_corpus.track_counts
    sim = cosine_neighbours(demo_corpus.matrix(), 40, min_count=3)
    rare = counts < 3
    assert rare.any()
    assert (np.diff(sim.indptr)[rare] == 0).all()
    assert not rare[sim.indices].any()


def test_itemknn_caps_neighbours_by_max_entries(demo_corpus: Corpus) -> None:
    model = make_model("itemknn", neighbours=200, max_entries=demo_corpus.n_tracks * 7).fit(demo_corpus)
    assert np.diff(model.similarity.indptr).max() == 7
    assert model.config()["neighbours"] == 200
    assert model.config()["max_entries"] == demo_corpus.n_tracks * 7
    ids, _ = model.recommend(demo_corpus.playlist_tracks(0)[:5], None, n=20)
    assert len(ids) == 20


def test_parallel_generator_writes_the_same_bytes(tmp_path: Path) -> None:
    paths = write_demo(tmp_path, 2500, seed=2, n_tracks=900, workers=2)
    expected = dict(iter_demo_slices(2500, seed=2, n_tracks=900))
    assert [p.name for p in paths] == list(expected)
    assert all(p.read_bytes() == expected[p.name] for p in paths)
