"""Hostile and careless slice files, made here (no real data): each is an error of its own file, named
with its field and problem, while every good file beside it loads; nothing raises, nothing hangs,
nothing inflates past the size limit; names are escaped before `stats` prints them."""

from __future__ import annotations

import errno
import gzip
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest
from factories import playlist, slice_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from songrec.cli import main
from songrec.ingest import decode_lean, load_corpus, read_corpus
from songrec.mpd import MPDFormatError, Playlist, Track, decode, encode_slice, read_slice

LIMIT = 1 << 20
"""The size limit per file in these tests (SONGREC_MAX_FILE_SIZE), so a bomb stays small and fast."""

BOM = b"\xef\xbb\xbf"


def good(first_pid: int, count: int = 3, name: str = "good") -> bytes:
    return slice_bytes(
        [
            playlist(p, [f"spotify:track:{p}-{i}" for i in range(3)], name=name)
            for p in range(first_pid, first_pid + count)
        ]
    )


def with_field(first_pid: int, **fields) -> bytes:
    """A slice of one playlist whose fields are overridden (written as raw JSON, so any int goes)."""
    return slice_bytes([{**playlist(first_pid, ["spotify:track:a", "spotify:track:b"]), **fields}])


def zeros_gzip(size: int) -> bytes:
    """A gzip member of `size` zero bytes, made a megabyte at a time (a few KB per 8 MiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [packer.compress(chunk) for _ in range(size >> 20)]
    return b"".join(parts) + packer.flush()


def json_bomb(size: int) -> bytes:
    """Gzip of a slice-looking JSON text that repeats one playlist until it is `size` bytes."""
    fragment = json.dumps(playlist(7, ["spotify:track:x", "spotify:track:y"])).encode() + b","
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = fragment * ((1 << 20) // len(fragment))
    parts = [packer.compress(b'{"playlists": [')] + [packer.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + packer.flush()


def deep(levels: int) -> bytes:
    text = json.dumps({**playlist(50, ["spotify:track:a", "spotify:track:b"]), "junk": 0})
    nested = "[" * levels + "]" * levels
    return ('{"playlists": [' + text.replace('"junk": 0', f'"junk": {nested}') + "]}").encode()


BROKEN_DEFLATE = gzip.compress(good(60))[:10] + b"\xff" * 40  # gzip magic and header, then block type 3 (invalid)

# file name -> (bytes, field, a part of the problem); a field of None: the file loads
CASES: dict[str, tuple[bytes, str | None, str]] = {
    "mpd.slice.1000-1999.json.gz": (zeros_gzip(8 << 20), "", "inflates to more than the limit of 1 MiB per file"),
    "mpd.slice.2000-2999.json.gz": (json_bomb(4 << 20), "", "inflates to more than the limit of 1 MiB per file"),
    "mpd.slice.3000-3999.json": (b" " * (LIMIT * 3 // 2), "", "is 1.5 MiB, more than the limit of 1 MiB per file"),
    "mpd.slice.4000-4999.json.gz": (BROKEN_DEFLATE, "", "broken gzip data"),
    "mpd.slice.5000-5999.json": (with_field(5000, pid=2**63), "playlists[0].pid", "<= 9223372036854775807"),
    "mpd.slice.6000-6999.json": (with_field(6000, num_followers=2**64), "playlists[0].num_followers", "<="),
    "mpd.slice.7000-7999.json": (deep(1000), "playlists[0].junk", "nested too deeply"),
    "mpd.slice.8000-8999.json": (with_field(8000, pid=-1), "playlists[0].pid", "expected `int` >= 0"),
    "mpd.slice.9000-9999.json": (with_field(9000, num_followers=-5), "playlists[0].num_followers", ">= 0"),
    "mpd.slice.10000-10999.json": (with_field(10000, num_tracks=-2), "playlists[0].num_tracks", ">= 0"),
    "mpd.slice.11000-11999.json": (b"", "", "file is empty"),
    "mpd.slice.12000-12999.json": (b"  \n", "", "file is empty (only whitespace)"),
    "mpd.slice.13000-13999.json": (BOM + good(13000), None, ""),
    "mpd.slice.14000-14999.json.gz": (gzip.compress(BOM + good(14000)), None, ""),
}
CONTROL_NAMES = good(15000, name="evil\x00name\u202eReversed\x1b[31mred")
"""A good file whose playlist names hold NUL, a right-to-left override and a terminal colour escape."""
GOOD_PIDS = [*range(0, 3), *range(13000, 13003), *range(14000, 14003), *range(15000, 15003)]


@pytest.fixture(autouse=True)
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONGREC_MAX_FILE_SIZE", str(LIMIT))


@pytest.fixture()
def hostile_dir(tmp_path: Path) -> Path:
    """Every case above beside a good slice, plus a symlink loop named like a slice."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "mpd.slice.0-999.json").write_bytes(good(0))
    for name, (data, _, _) in CASES.items():
        (folder / name).write_bytes(data)
    (folder / "mpd.slice.15000-15999.json").write_bytes(CONTROL_NAMES)
    (folder / "mpd.slice.16000-16999.json").symlink_to("mpd.slice.16000-16999.json")
    return folder


def expected_errors(folder: Path) -> dict[str, tuple[str, str]]:
    errors = {str(folder / n): (f, p) for n, (_, f, p) in CASES.items() if f is not None}
    errors[str(folder / "mpd.slice.16000-16999.json")] = ("", "cannot read file: Too many levels of symbolic links")
    return errors


def assert_report(report, expected: dict[str, tuple[str, str]]) -> None:
    got = {e.file: e for e in report.errors}
    assert sorted(got) == sorted(expected)
    for file, (field, problem) in expected.items():
        assert got[file].field == field, (file, got[file])
        assert problem in got[file].problem, (file, got[file])
        assert str(got[file]).startswith(file)


@pytest.mark.parametrize("name", list(CASES))
def test_each_bad_file_is_its_own_error_and_the_good_file_loads(name: str) -> None:
    data, field, problem = CASES[name]
    corpus, report = load_corpus([(name, data), ("good.json", good(0))])
    if field is None:
        assert not report.errors, report.errors
        assert report.files_read == [name, "good.json"]
        assert corpus.n_playlists == 6
    else:
        assert_report(report, {name: (field, problem)})
        assert report.files_read == ["good.json"]
        assert corpus.playlists["pid"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_folder_of_hostile_files_loads_every_good_one(hostile_dir: Path, workers: int) -> None:
    corpus, report = read_corpus([hostile_dir], workers=workers)
    assert sorted(corpus.playlists["pid"]) == GOOD_PIDS
    assert len(report.files_read) == 4
    assert_report(report, expected_errors(hostile_dir))
    # a kept error holds no traceback: its frames would keep each bomb's megabytes alive with the report
    assert all(e.__traceback__ is None and e.__context__ is None for e in report.errors)


def test_the_cached_load_and_the_size_limit_option(hostile_dir: Path, tmp_path: Path) -> None:
    corpus, report = load_corpus([hostile_dir], cache_dir=tmp_path / "cache")
    assert_report(report, expected_errors(hostile_dir))
    # a larger limit is another load: the plain file of spaces is then read (and is empty)
    corpus, report = load_corpus([hostile_dir], cache_dir=tmp_path / "cache", max_file_size=2 * LIMIT)
    spaces = str(hostile_dir / "mpd.slice.3000-3999.json")
    assert {e.file: e.problem for e in report.errors}[spaces] == "file is empty (only whitespace)"
    assert sorted(corpus.playlists["pid"]) == GOOD_PIDS


def test_a_bomb_is_refused_while_it_inflates(tmp_path: Path) -> None:
    """64 MiB of zeros in 64 KB of gzip, a 1 MiB limit: never more than a few MiB in memory."""
    path = tmp_path / "mpd.slice.0-999.json.gz"
    path.write_bytes(zeros_gzip(64 << 20))
    tracemalloc.start()
    try:
        name, result = decode_lean(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(result, MPDFormatError) and "inflates to more than the limit of 1 MiB per file" in result.problem
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB: the whole file was inflated"
    with pytest.raises(MPDFormatError, match="inflates to more than the limit of 1 MiB per file"):
        read_slice(path)
    with pytest.raises(MPDFormatError, match="inflates to more than the limit of 1 MiB per file"):
        decode(path.read_bytes(), "upload.json.gz")


def test_the_limit_is_a_parameter_and_an_environment_variable(tmp_path: Path, monkeypatch) -> None:
    data = good(0)
    assert load_corpus([("a.json", data)], max_file_size=len(data))[0].n_playlists == 3
    _, report = load_corpus([("a.json", data)], max_file_size=len(data) - 1)
    assert "more than the limit of" in report.errors[0].problem
    monkeypatch.setenv("SONGREC_MAX_FILE_SIZE", "2K")
    _, report = load_corpus([("a.json", b" " * 3000)])
    assert report.errors[0].problem.startswith("is 2.9 KiB, more than the limit of 2 KiB per file")
    monkeypatch.setenv("SONGREC_MAX_FILE_SIZE", "lots")
    with pytest.raises(ValueError, match="SONGREC_MAX_FILE_SIZE"):
        load_corpus([("a.json", data)])


def test_a_bom_file_decodes_like_the_plain_one() -> None:
    assert read_slice(BOM + good(0), "bom.json") == read_slice(good(0), "plain.json")
    error = pytest.raises(MPDFormatError, read_slice, BOM + b'{"playlists": [', "cut.json").value
    assert error.field == "playlists[0]" and "truncated: it ends at byte 18 (line 1, column 19)" in error.problem
    error = pytest.raises(MPDFormatError, read_slice, BOM + b"{,}", "comma.json").value
    assert "invalid JSON at line 1, column 5" in error.problem


# --- unreadable files and folders, symlink loops ------------------------------------------------------------
# The tests run as root, whom chmod does not stop: a PermissionError is raised by patching the one call
# that would meet it (Path.open for a file; listing for a folder), exactly where the OS would raise it.


def deny(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    def refused(path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    real_open, real_iterdir, real_scandir = pathlib.Path.open, pathlib.Path.iterdir, os.scandir
    monkeypatch.setattr(pathlib.Path, "open", lambda p, *a, **k: refused(p) if p == target else real_open(p, *a, **k))
    monkeypatch.setattr(pathlib.Path, "iterdir", lambda p: refused(p) if p == target else real_iterdir(p))
    monkeypatch.setattr(os, "scandir", lambda p=".": refused(p) if Path(p) == target else real_scandir(p))


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unreadable_file_and_an_unlistable_folder_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    folder, locked = tmp_path / "data", tmp_path / "locked"
    folder.mkdir()
    locked.mkdir()
    (locked / "mpd.slice.0-999.json").write_bytes(good(900))
    (folder / "mpd.slice.0-999.json").write_bytes(good(0))
    secret = folder / "mpd.slice.1000-1999.json"
    secret.write_bytes(good(1000))
    (folder / "mpd.slice.2000-2999.json").write_bytes(good(2000))
    deny(monkeypatch, secret)
    deny(monkeypatch, locked)
    corpus, report = read_corpus([folder, locked], workers=workers)
    assert sorted(corpus.playlists["pid"]) == [0, 1, 2, 2000, 2001, 2002]
    assert_report(
        report,
        {
            str(secret): ("", "cannot read file: Permission denied"),
            str(locked): ("", "cannot list folder: Permission denied"),
        },
    )


def test_real_permissions_in_a_subprocess(tmp_path: Path) -> None:
    """The same without patching, where the OS can refuse: root loses its right to read anything
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) under setpriv, so chmod 000 holds."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: chmod cannot refuse root")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    folder, locked = tmp_path / "data", tmp_path / "locked"
    folder.mkdir()
    locked.mkdir()
    (folder / "mpd.slice.0-999.json").write_bytes(good(0))
    (folder / "mpd.slice.1000-1999.json").write_bytes(good(1000))
    (locked / "mpd.slice.0-999.json").write_bytes(good(2000))
    (folder / "mpd.slice.1000-1999.json").chmod(0)
    locked.chmod(0)
    try:
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "songrec", "stats", str(folder), str(locked)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
            check=False,
        )
    finally:
        locked.chmod(0o755)
    if result.returncode and "setpriv" in result.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert f"error: {folder / 'mpd.slice.1000-1999.json'}: cannot read file: Permission denied" in result.stderr
    assert f"error: {locked}: cannot list folder: Permission denied" in result.stderr
    assert "files loaded      1\nfiles with errors 2\n" in result.stdout


def test_a_symlink_loop_given_as_the_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "mpd.slice.0-999.json").write_bytes(good(0))
    for cache in ([], ["--cache-dir", str(tmp_path / "cache")]):
        assert main([*cache, "stats", str(loop), str(tmp_path / "good")]) == 0
        out, err = capsys.readouterr()
        assert f"error: {loop}: cannot read file: Too many levels of symbolic links" in err
        assert "playlists         3" in out


# --- songrec stats on the whole folder ----------------------------------------------------------------------


def test_stats_names_every_bad_file_and_counts_the_good_ones(hostile_dir: Path, capsys) -> None:
    (hostile_dir / "mpd.slice.17000-17999.\u202ejson.txt.json").write_bytes(b"[")
    assert main(["stats", str(hostile_dir)]) == 0
    out, err = capsys.readouterr()
    assert "files loaded      4\nfiles with errors 14\n" in out
    assert "playlists         12\n" in out
    lines = err.splitlines()
    for file, (field, problem) in expected_errors(hostile_dir).items():
        start = f"error: {file}{f' at {field}' if field else ''}: "
        (line,) = [line for line in lines if line.startswith(start)]
        assert problem in line
    # names from files are escaped: no NUL, no bidi override, no escape sequence reaches the terminal
    assert "evil\\x00name\\u202ereversed\\x1b[31mred" in out  # names are counted lowercased
    assert "mpd.slice.17000-17999.\\u202ejson.txt.json" in err
    for raw in ("\x00", "\u202e", "\x1b"):
        assert raw not in out and raw not in err
    assert main(["stats", str(hostile_dir), "--json"]) == 0
    out, _ = capsys.readouterr()
    assert "\u202e" not in out and "\x00" not in out
    stats = json.loads(out)
    assert (stats["files_read"], stats["files_with_errors"], stats["playlists"]) == (4, 14, 12)
    assert {"name": "evil\x00name\u202ereversed\x1b[31mred", "count": 3} in stats["top_names"]


def test_stats_max_file_size_option(tmp_path: Path, capsys) -> None:
    (tmp_path / "mpd.slice.0-999.json").write_bytes(good(0))
    with pytest.raises(SystemExit, match="no playlists could be read"):
        main(["stats", str(tmp_path), "--max-file-size", "100"])
    _, err = capsys.readouterr()
    assert "is 2.3 KiB, more than the limit of 100 bytes per file" in err
    assert main(["stats", str(tmp_path), "--max-file-size", "1M"]) == 0


# --- property-based: the decoder never raises or hangs --------------------------------------------------------

names = st.text(max_size=12)
counts = st.integers(min_value=0, max_value=2**63 - 1)
tracks = st.builds(
    Track,
    artist_name=names,
    track_uri=names,
    track_name=names,
    pos=st.none() | st.integers(0, 300),
    album_name=st.none() | names,
)
playlists = st.builds(
    Playlist,
    name=names,
    pid=counts,
    num_followers=counts,
    num_tracks=st.none() | counts,
    description=st.none() | names,
    tracks=st.lists(tracks, max_size=4),
)
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
GZIP_HEADER = gzip.compress(b"")[:10]
"""A valid gzip header: what follows it is read as deflate data."""


@settings(FUZZ, max_examples=60)
@given(st.lists(playlists, max_size=4), st.sampled_from([0, 2]), st.booleans())
def test_valid_slices_round_trip(items: list[Playlist], indent: int, zipped: bool) -> None:
    data = encode_slice(items, indent=indent)
    data = gzip.compress(data) if zipped else data
    assert decode(data, "x.json").playlists == items
    name, lean = decode_lean(("x.json", data))
    assert [(p.pid, p.name, p.num_followers, [t.track_uri for t in p.tracks]) for p in lean] == [
        (p.pid, p.name, p.num_followers, [t.track_uri for t in p.tracks]) for p in items
    ]


def check_never_raises(data: bytes) -> None:
    name, result = decode_lean(("fuzz.json", data))
    assert name == "fuzz.json"
    assert isinstance(result, list | MPDFormatError)
    if isinstance(result, MPDFormatError):
        assert result.file == "fuzz.json" and result.problem
    corpus, report = load_corpus([("fuzz.json", data), ("good.json", good(10**6))])
    assert 10**6 in set(corpus.playlists["pid"])
    assert len(report.files_read) + len(report.errors) == 2


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_a_file_error(data: bytes) -> None:
    check_never_raises(data)
    check_never_raises(b"\x1f\x8b" + data)
    check_never_raises(GZIP_HEADER + data)


@FUZZ
@given(st.integers(), st.integers(), st.integers())
def test_any_number_in_a_count_is_a_value_or_a_field_error(pid: int, followers: int, tracks: int) -> None:
    data = with_field(0, pid=pid, num_followers=followers, num_tracks=tracks)
    corpus, report = load_corpus([("numbers.json", data)])
    valid = [0 <= n < 2**63 for n in (pid, tracks, followers)]  # in the order of the file
    if all(valid):
        assert corpus.playlists[["pid", "num_followers"]].values.tolist() == [[pid, followers]]
    else:
        (error,) = report.errors
        first_bad = ["pid", "num_tracks", "num_followers"][valid.index(False)]
        assert error.field == f"playlists[0].{first_bad}"


@FUZZ
@given(st.data())
def test_damaged_slices_are_a_file_error(draw: st.DataObject) -> None:
    data = bytearray(good(0, 2))
    for _ in range(draw.draw(st.integers(1, 4))):
        position = draw.draw(st.integers(0, len(data) - 1))
        data[position] = draw.draw(st.sampled_from(b'{}[]",:-019e\\\x00\xff '))
    cut = draw.draw(st.integers(0, len(data)))
    check_never_raises(bytes(data[:cut]))
