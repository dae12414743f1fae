"""Item-kNN: tracks that share playlists with the seeds, by cosine similarity on the playlist-track matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from songrec.corpus import Corpus
from songrec.models.base import FitCallback, Recommender, Scores
from songrec.models.title import _keep_top


def cosine_neighbours(
    playlist_tracks: sp.csr_matrix, neighbours: int, block: int = 4096, alpha: float = 0.5, callback: FitCallback | None = None
) -> sp.csr_matrix:
    """Each track's `neighbours` most similar tracks: co-occurrence / (count_i^alpha * count_j^(1-alpha)).

    Computed a block of tracks at a time and pruned per row, so memory stays at
    n_tracks x neighbours however large the co-occurrence matrix would be.
    """
    track_playlists = playlist_tracks.T.tocsr()
    counts = np.asarray(playlist_tracks.sum(axis=0)).ravel().astype(np.float32)
    left = np.power(np.maximum(counts, 1.0), -alpha)
    right = np.power(np.maximum(counts, 1.0), -(1.0 - alpha))
    n_tracks = playlist_tracks.shape[1]
    blocks = []
    for start in range(0, n_tracks, block):
        stop = min(start + block, n_tracks)
        cooc = (track_playlists[start:stop] @ playlist_tracks).tocsr()
        cooc.setdiag(0, k=start)
        cooc.eliminate_zeros()
        rows = np.repeat(np.arange(stop - start), np.diff(cooc.indptr))
        cooc.data = cooc.data * left[start + rows] * right[cooc.indices]
        blocks.append(_keep_top(cooc, neighbours))
        if callback is not None:
            callback({"tracks_done": stop, "tracks": n_tracks})
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, 0), dtype=np.float32)


class ItemKNNRecommender(Recommender):
    """Score = summed similarity of a track to the seeds over each seed's top-k neighbours."""

    name = "itemknn"

    def __init__(self, neighbours: int = 500, alpha: float = 0.9) -> None:
        super().__init__()
        self.neighbours = neighbours
        self.alpha = alpha
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def config(self) -> dict:
        return {"neighbours": self.neighbours, "alpha": self.alpha}

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        self.similarity = cosine_neighbours(corpus.matrix(), self.neighbours, alpha=self.alpha, callback=callback).astype(
            np.float32
        )

    def _score(self, seeds: np.ndarray) -> Scores | None:
        sim = self.similarity
        starts, ends = sim.indptr[seeds], sim.indptr[seeds + 1]
        if (ends - starts).sum() == 0:
            return None
        take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        unique, inverse = np.unique(sim.indices[take], return_inverse=True)
        return unique.astype(np.int64), np.bincount(inverse, weights=sim.data[take]).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "indptr": self.similarity.indptr.astype(np.int64),
            "indices": self.similarity.indices.astype(np.int32),
            "data": self.similarity.data.astype(np.float32),
            "shape": np.asarray(self.similarity.shape, dtype=np.int64),
        }

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        self.similarity = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(arrays["shape"]))
