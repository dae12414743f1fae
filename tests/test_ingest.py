"""Reading slices into a corpus (songrec.ingest): the streaming reader gives the reference reader's
corpus and report with one worker or several, and the data modules import each other without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from factories import playlist, slice_bytes, write_messy_slices
from reference_builder import assert_same_corpus, assert_same_report, reference_load

import songrec
from songrec.ingest import read_corpus
from songrec.mpd import find_slice_files
from songrec.synthetic import write_demo


@pytest.fixture()
def messy_dir(tmp_path: Path) -> Path:
    return write_messy_slices(tmp_path)


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


# --- one job per module, no cycles ----------------------------------------------------------------------

PACKAGE = Path(songrec.__file__).parent
DATA_MODULES = ("songrec.mpd", "songrec.corpus", "songrec.cache", "songrec.ingest", "songrec.checkpoint")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every songrec import in a file, those inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.startswith("songrec")]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("songrec"):
            found += [(node.module, alias.name) for alias in node.names]
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = {f"{m}.{n}" if f"{m}.{n}" in files else m for m, n in imports_of(path)}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def path_back(graph: dict[str, set[str]], start: str) -> list[str]:
    """A chain of imports from `start` back to itself, or [] when there is none."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, chain = stack.pop()
        for target in sorted(graph[module]):
            if target == start:
                return [*chain, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*chain, target]))
    return []


def test_the_data_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    for module in DATA_MODULES:
        assert path_back(graph, module) == [], " -> ".join(path_back(graph, module))
    # one job each: the corpus is plain data, the cache only saves and loads
    assert graph["songrec.corpus"] == set()
    assert graph["songrec.cache"] == {"songrec.corpus", "songrec.mpd"}
    assert "songrec.ingest" in graph["songrec.cli"] and "songrec.cache" not in graph["songrec.cli"]


def test_no_private_name_crosses_a_data_module() -> None:
    for path in PACKAGE.rglob("*.py"):
        for module, name in imports_of(path):
            if module in DATA_MODULES or module_name(path) in DATA_MODULES:
                assert not name.startswith("_"), f"{module_name(path)} imports {module}.{name}"


def test_the_builder_takes_the_size_limit_to_worker_processes(tmp_path: Path) -> None:
    for start in (0, 1000, 2000):
        (tmp_path / f"mpd.slice.{start}-{start + 999}.json").write_bytes(
            slice_bytes([playlist(start, ["u:a", "u:b"], name="x" * (start // 10))])
        )
    limit = len((tmp_path / "mpd.slice.1000-1999.json").read_bytes())
    for workers in (1, 3):
        corpus, report = read_corpus([tmp_path], workers=workers, max_file_size=limit)
        assert corpus.playlists["pid"].tolist() == [0, 1000]
        (error,) = report.errors
        assert error.file == str(tmp_path / "mpd.slice.2000-2999.json") and "more than the limit" in error.problem
