"""Streaming ingest and the on-disk corpus cache: the same corpus as the reference reader, and a
cache that is reused while the files are unchanged and rebuilt when any of them changes."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import playlist, slice_bytes, track
from reference_builder import CorpusBuilder

from songrec import cache
from songrec.cache import cache_path, load_corpus_cached, read_corpus
from songrec.corpus import Corpus, load_corpus
from songrec.mpd import LoadReport, MPDFormatError, find_slice_files, iter_slices
from songrec.synthetic import write_demo


def reference_load(sources, max_files=None) -> tuple[Corpus, LoadReport]:
    """The original reader: full typed decode, then CorpusBuilder one playlist and track at a time."""
    expanded = []
    for source in sources:
        expanded.extend([source] if isinstance(source, tuple) else find_slice_files([source]))
    expanded = expanded[:max_files] if max_files is not None else expanded
    builder = CorpusBuilder()
    for name, result in iter_slices(expanded):
        if isinstance(result, MPDFormatError):
            builder.report.errors.append(result)
        else:
            builder.add(name, result)
    return builder.build(), builder.report


def assert_same_corpus(a: Corpus, b: Corpus) -> None:
    assert a.indptr.dtype == b.indptr.dtype == np.int64
    assert a.indices.dtype == b.indices.dtype == np.int32
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)
    pd.testing.assert_frame_equal(a.tracks, b.tracks)
    pd.testing.assert_frame_equal(a.playlists, b.playlists)
    assert a.artists.dtype == b.artists.dtype == object
    assert a.artists.tolist() == b.artists.tolist()


def assert_same_report(a: LoadReport, b: LoadReport) -> None:
    assert a.files_read == b.files_read
    assert a.warnings == b.warnings
    assert [(e.file, e.field, e.problem) for e in a.errors] == [(e.file, e.field, e.problem) for e in b.errors]


@pytest.fixture()
def messy_dir(tmp_path: Path) -> Path:
    """Good, broken, gzip, empty-playlist and duplicate-pid files, with repeats and missing albums."""
    a, b = track("u:a", "X", "A"), {**track("u:b", "Y", "B"), "album_name": "Album B"}
    files = {
        "mpd.slice.0-999.json": slice_bytes([playlist(0, [a, b, a]), playlist(1, [b, "u:c"]), playlist(2, [])]),
        "mpd.slice.1000-1999.json": b'{"playlists": [',
        "mpd.slice.2000-2999.json": slice_bytes(
            [playlist(2000, ["u:d", "u:c"]), playlist(1, ["u:e", "u:a"]), playlist(2001, ["u:e", "u:f", "u:d"])]
        ),
        "mpd.slice.3000-3999.json.gz": gzip.compress(slice_bytes([playlist(3000, ["u:g", "u:a"], name="Rock 🎸")])),
        "mpd.slice.4000-4999.json": slice_bytes([]),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


# --- streaming ingest: the same corpus as the original reader -------------------------------------


def test_streaming_reader_equals_the_reference_on_messy_files(messy_dir: Path) -> None:
    corpus, report = read_corpus([messy_dir], workers=1)
    expected, expected_report = reference_load([messy_dir])
    assert_same_corpus(corpus, expected)
    assert_same_report(report, expected_report)
    assert len(report.errors) == 1 and len(report.warnings) == 2


def test_streaming_reader_equals_the_reference_on_demo_data(demo_dir: Path) -> None:
    assert_same_corpus(read_corpus([demo_dir], workers=1)[0], reference_load([demo_dir])[0])


def test_uploaded_bytes_and_max_files(messy_dir: Path) -> None:
    uploads = [(p.name, p.read_bytes()) for p in find_slice_files([messy_dir])]
    corpus, report = read_corpus(uploads, max_files=3)
    expected, expected_report = reference_load(uploads, max_files=3)
    assert_same_corpus(corpus, expected)
    assert_same_report(report, expected_report)


def test_two_workers_give_the_same_corpus(messy_dir: Path, demo_dir: Path) -> None:
    for folder in (messy_dir, demo_dir):
        one, one_report = read_corpus([folder], workers=1)
        two, two_report = read_corpus([folder], workers=2)
        assert_same_corpus(one, two)
        assert_same_report(one_report, two_report)


def test_shares_built_in_parallel_merge_into_the_same_corpus(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    write_demo(folder, 4500, seed=3, n_tracks=2000, workers=1)
    (folder / "mpd.slice.9000-9999.json").write_bytes(slice_bytes([playlist(9000, [])]))  # a warning
    expected, expected_report = reference_load([folder])
    for workers in (2, 3):
        calls: list[tuple[int, int]] = []
        corpus, report = read_corpus([folder], workers=workers, progress=lambda d, t, n, c=calls: c.append((d, t)))
        assert_same_corpus(corpus, expected)
        assert_same_report(report, expected_report)
        assert calls == [(i, 6) for i in range(1, 7)]


def test_real_sample_equals_the_reference(shared_data: Path) -> None:
    sample = shared_data / "mpd-sample"
    corpus, report = read_corpus([sample], max_files=120)
    expected, expected_report = reference_load([sample], max_files=120)
    assert_same_corpus(corpus, expected)
    assert_same_report(report, expected_report)


# --- the cache -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    write_demo(folder, 1200, seed=7, n_tracks=600)
    return folder


@pytest.fixture()
def data_dir(demo_template: Path, tmp_path: Path) -> Path:
    """Two generated slices (1,000 + 200 playlists) that a test may change."""
    return Path(shutil.copytree(demo_template, tmp_path / "data"))


def load_counting(monkeypatch: pytest.MonkeyPatch, *args, **kwargs) -> tuple[Corpus, LoadReport, int]:
    """load_corpus_cached, and how many times it read the slice files instead of the cache."""
    reads = []
    original = cache.read_corpus

    def counting(*a, **k):
        reads.append(1)
        return original(*a, **k)

    monkeypatch.setattr(cache, "read_corpus", counting)
    corpus, report = load_corpus_cached(*args, **kwargs)
    monkeypatch.setattr(cache, "read_corpus", original)
    return corpus, report, len(reads)


def test_second_load_comes_from_the_cache_and_is_equal(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    cache_dir = tmp_path / "cache"
    first, first_report, reads = load_counting(monkeypatch, [data_dir], cache_dir)
    assert reads == 1
    assert (cache_path(cache_dir, [data_dir]) / "manifest.json").is_file()
    calls = []
    second, second_report, reads = load_counting(
        monkeypatch, [data_dir], cache_dir, progress=lambda d, t, n: calls.append((d, t, n))
    )
    assert reads == 0
    assert calls == [(2, 2, "cache")]
    assert_same_corpus(first, second)
    assert_same_report(first_report, second_report)
    assert_same_corpus(second, reference_load([data_dir])[0])
    # the loaded corpus works like a fresh one
    assert second.track_ids(first.tracks["uri"].iloc[:3]).tolist() == [0, 1, 2]
    assert second.stats()["playlists"] == 1200


def test_load_corpus_takes_a_cache_dir(data_dir: Path, tmp_path: Path) -> None:
    first, _ = load_corpus([data_dir], cache_dir=tmp_path / "c")
    second, _ = load_corpus([data_dir], cache_dir=tmp_path / "c")
    assert_same_corpus(first, second)


def test_errors_and_warnings_are_cached_too(messy_dir: Path, tmp_path: Path, monkeypatch) -> None:
    _, first_report, _ = load_counting(monkeypatch, [messy_dir], tmp_path / "c")
    corpus, report, reads = load_counting(monkeypatch, [messy_dir], tmp_path / "c")
    assert reads == 0
    assert_same_report(report, first_report)
    assert isinstance(report.errors[0], MPDFormatError)
    assert_same_corpus(corpus, reference_load([messy_dir])[0])


def test_a_touched_file_invalidates(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    load_corpus_cached([data_dir], tmp_path / "c")
    target = data_dir / "mpd.slice.1000-1999.json"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    _, _, reads = load_counting(monkeypatch, [data_dir], tmp_path / "c")
    assert reads == 1
    _, _, reads = load_counting(monkeypatch, [data_dir], tmp_path / "c")
    assert reads == 0


def test_a_changed_file_invalidates(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    first, _ = load_corpus_cached([data_dir], tmp_path / "c")
    target = data_dir / "mpd.slice.1000-1999.json"
    stat = target.stat()
    target.write_bytes(slice_bytes([playlist(1000, ["u:new", "u:other"])]))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: the size still differs
    corpus, _, reads = load_counting(monkeypatch, [data_dir], tmp_path / "c")
    assert reads == 1
    assert corpus.n_playlists == 1001
    assert "u:new" in set(corpus.tracks["uri"])
    assert_same_corpus(corpus, reference_load([data_dir])[0])
    assert first.n_playlists == 1200


def test_a_removed_file_invalidates(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    load_corpus_cached([data_dir], tmp_path / "c")
    (data_dir / "mpd.slice.0-999.json").unlink()
    corpus, report, reads = load_counting(monkeypatch, [data_dir], tmp_path / "c")
    assert reads == 1
    assert corpus.n_playlists == 200 and len(report.files_read) == 1
    assert_same_corpus(corpus, reference_load([data_dir])[0])


def test_an_added_file_invalidates(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    load_corpus_cached([data_dir], tmp_path / "c")
    (data_dir / "mpd.slice.9000-9999.json").write_bytes(slice_bytes([playlist(9000, ["u:z", "u:y"])]))
    corpus, _, reads = load_counting(monkeypatch, [data_dir], tmp_path / "c")
    assert reads == 1 and corpus.n_playlists == 1201


def test_max_files_has_its_own_entry(data_dir: Path, tmp_path: Path) -> None:
    one, _ = load_corpus_cached([data_dir], tmp_path / "c", max_files=1)
    both, _ = load_corpus_cached([data_dir], tmp_path / "c")
    again, _ = load_corpus_cached([data_dir], tmp_path / "c", max_files=1)
    assert (one.n_playlists, both.n_playlists) == (1000, 1200)
    assert_same_corpus(one, again)


def test_a_damaged_entry_is_rebuilt(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    first, _ = load_corpus_cached([data_dir], tmp_path / "c")
    (cache_path(tmp_path / "c", [data_dir]) / "tracks.parquet").write_bytes(b"not parquet")
    corpus, _, reads = load_counting(monkeypatch, [data_dir], tmp_path / "c")
    assert reads == 1
    assert_same_corpus(first, corpus)


def test_uploads_are_not_cached(data_dir: Path, tmp_path: Path) -> None:
    uploads = [(p.name, p.read_bytes()) for p in find_slice_files([data_dir])]
    corpus, _ = load_corpus_cached(uploads, tmp_path / "c")
    assert corpus.n_playlists == 1200
    assert not (tmp_path / "c").exists()


def test_old_entries_are_evicted(data_dir: Path, tmp_path: Path) -> None:
    copies = []
    for i in range(3):
        copy = tmp_path / f"copy{i}"
        shutil.copytree(data_dir, copy)
        copies.append(copy)
        load_corpus_cached([copy], tmp_path / "c", keep=2)
    entries = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert entries == sorted(cache_path(tmp_path / "c", [c]).name for c in copies[1:])
