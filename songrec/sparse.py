"""Sparse-matrix helpers shared by models: top-k pruning of rows, and CSR arrays checked before use."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from songrec.errors import UserError


class SparseFormatError(UserError):
    """CSR arrays that do not describe a matrix of the expected shape (a damaged or forged checkpoint)."""


def checked_csr(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int] | np.ndarray, name: str
) -> sp.csr_matrix:
    """A CSR matrix from saved arrays, after checking that they are one: scipy trusts its inputs, so a
    forged offsets table would otherwise index out of bounds later, deep inside a recommendation."""
    rows, columns = (int(v) for v in np.asarray(shape).reshape(-1)[:2]) if np.size(shape) == 2 else (-1, -1)
    if rows < 0 or columns < 0:
        raise SparseFormatError(f"{name}: shape {np.asarray(shape).tolist()} is not two sizes")
    if np.ndim(indptr) != 1 or len(indptr) != rows + 1 or np.asarray(indptr).dtype.kind not in "iu":
        raise SparseFormatError(f"{name}: {len(np.atleast_1d(indptr))} offsets for {rows} rows")
    indptr = np.asarray(indptr, dtype=np.int64)
    if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices) or len(indices) != len(data):
        raise SparseFormatError(f"{name}: offsets do not match {len(indices)} entries")
    if np.asarray(indices).dtype.kind not in "iu" or (len(indices) and (indices.min() < 0 or indices.max() >= columns)):
        raise SparseFormatError(f"{name}: column ids outside 0..{columns - 1}")
    if np.asarray(data).dtype.kind != "f" or not np.isfinite(data).all():
        raise SparseFormatError(f"{name}: values must be finite floats")
    return sp.csr_matrix((data, indices, indptr), shape=(rows, columns))


def keep_top(matrix: sp.csr_matrix, top: int) -> sp.csr_matrix:
    """Keep the `top` largest entries of each row; ties go to the earlier column (vectorised).

    Rows with at most `top` entries are kept whole without sorting; for the others the top-th
    largest value is found by one partition per group of rows of similar length, so the cost is
    linear in the entries (not a sort of all of them) and matrices of 10^8 entries take seconds.
    """
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    if top <= 0:
        return sp.csr_matrix(matrix.shape, dtype=matrix.dtype)
    counts = np.diff(matrix.indptr)
    heavy = np.flatnonzero(counts > top)
    if len(heavy) == 0:
        return sp.csr_matrix((matrix.data, matrix.indices, matrix.indptr), shape=matrix.shape)
    lengths = counts[heavy]
    where = _ranges(matrix.indptr[heavy], lengths)  # positions of the heavy rows' entries
    values = matrix.data[where]
    threshold = np.repeat(_kth_largest(values, lengths, top), lengths)
    greater = values > threshold
    equal = values == threshold
    # ties at the threshold: the first (top - #greater) of them in column order
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    tied = np.cumsum(equal)
    tied_rank = tied - np.repeat(tied[first] - equal[first], lengths)  # 1, 2, ... within a row
    room = top - np.add.reduceat(greater, first).astype(np.int64)
    keep = np.ones(matrix.nnz, dtype=bool)
    keep[where] = greater | (equal & (tied_rank <= np.repeat(room, lengths)))
    kept_counts = counts.copy()
    kept_counts[heavy] = top
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(kept_counts, out=indptr[1:])
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated arange(start, start + length) for each pair, without a Python loop."""
    total = int(lengths.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def _kth_largest(values: np.ndarray, lengths: np.ndarray, k: int, chunk: int = 1 << 24) -> np.ndarray:
    """The k-th largest of each segment of `values` (segments of `lengths`, each longer than k).

    Segments are grouped by length (within a factor of 2) and padded into 2-D arrays, at most
    `chunk` cells at a time, so one np.partition per group does the work.
    """
    out = np.empty(len(lengths), dtype=values.dtype)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    groups = np.ceil(np.log2(lengths)).astype(np.int64)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        width = int(lengths[members].max())
        step = max(1, chunk // width)
        for first in range(0, len(members), step):
            rows = members[first : first + step]
            dense = np.full((len(rows), width), -np.inf, dtype=values.dtype)
            row_lengths = lengths[rows]
            local = np.repeat(np.arange(len(rows)), row_lengths)
            column = _ranges(np.zeros(len(rows), dtype=np.int64), row_lengths)
            dense[local, column] = values[_ranges(starts[rows], row_lengths)]
            out[rows] = np.partition(dense, width - k, axis=1)[:, width - k]
    return out
