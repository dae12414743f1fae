"""The on-disk corpus cache: reused while the files are unchanged, rebuilt when any of them changes,
and the same corpus as the reference reader."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from factories import playlist, slice_bytes, write_messy_slices
from reference_builder import assert_same_corpus, assert_same_report, reference_load

from songrec import ingest
from songrec.cache import cache_path
from songrec.corpus import Corpus
from songrec.ingest import load_corpus, load_corpus_cached
from songrec.mpd import LoadReport, MPDFormatError, find_slice_files
from songrec.synthetic import write_demo


@pytest.fixture()
def messy_dir(tmp_path: Path) -> Path:
    return write_messy_slices(tmp_path)


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
    original = ingest.read_corpus

    def counting(*a, **k):
        reads.append(1)
        return original(*a, **k)

    monkeypatch.setattr(ingest, "read_corpus", counting)
    corpus, report = load_corpus_cached(*args, **kwargs)
    monkeypatch.setattr(ingest, "read_corpus", original)
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
