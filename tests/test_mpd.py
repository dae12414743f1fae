"""The MPD slice reader: good files decode, every bad file is reported by file, field and problem."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from factories import playlist, slice_bytes, track

from songrec.ingest import load_corpus
from songrec.mpd import (
    MPDFormatError,
    Playlist,
    Slice,
    Track,
    decode,
    encode_slice,
    find_slice_files,
    iter_slices,
    read_slice,
)


def good_playlists(first_pid: int = 0, count: int = 5) -> list[dict]:
    return [
        playlist(pid, [f"spotify:track:{pid}-{i}" for i in range(3)], name=f"list {pid}")
        for pid in range(first_pid, first_pid + count)
    ]


def error_of(data: bytes, name: str = "upload.json") -> MPDFormatError:
    with pytest.raises(MPDFormatError) as info:
        read_slice(data, name)
    return info.value


def assert_names(error: MPDFormatError, file: str, field: str) -> None:
    """The error and its message name the file and the field."""
    assert error.file == file
    assert error.field == field
    assert str(error).startswith(f"{file} at {field}: ")


# --- bad files: each names the file and the field -------------------------------------------------


def test_invalid_json_names_file_field_line_and_column(tmp_path: Path) -> None:
    data = slice_bytes(good_playlists())
    # a doubled comma after the second playlist's pid
    broken = data.replace(b'"pid": 1,', b'"pid": 1,,', 1)
    line = broken[: broken.index(b",,")].count(b"\n") + 1
    path = tmp_path / "mpd.slice.0-999.json"
    path.write_bytes(broken)
    with pytest.raises(MPDFormatError) as info:
        read_slice(path)
    error = info.value
    assert_names(error, str(path), "playlists[1]")
    assert f"invalid JSON at line {line}, column " in error.problem
    assert "line" in str(error) and "column" in str(error)


def test_invalid_json_inside_a_track_names_the_track_field() -> None:
    data = slice_bytes(good_playlists())
    broken = data.replace(b'"track_uri": "spotify:track:2-1"', b'"track_uri": spotify:track:2-1', 1)
    error = error_of(broken, "bad.json")
    assert_names(error, "bad.json", "playlists[2].tracks[1].track_uri")
    assert "invalid JSON at line" in error.problem


def test_truncated_file_names_file_and_field() -> None:
    data = slice_bytes(good_playlists())
    cut = data.index(b'"track_name": "Song spotify:track:3-2"') + len(b'"track_name": "Song spo')
    error = error_of(data[:cut], "mpd.slice.0-999.json")
    assert_names(error, "mpd.slice.0-999.json", "playlists[3].tracks[2].track_name")
    assert "truncated" in error.problem
    assert f"byte {cut}" in error.problem


def test_wrong_type_names_file_and_field() -> None:
    playlists = good_playlists()
    playlists[3]["tracks"][0]["track_uri"] = 12345
    error = error_of(slice_bytes(playlists), "typed.json")
    assert_names(error, "typed.json", "playlists[3].tracks[0].track_uri")
    assert "expected `str`, got `int`" in error.problem


def test_wrong_type_of_pid() -> None:
    playlists = good_playlists()
    playlists[2]["pid"] = "two"
    error = error_of(slice_bytes(playlists), "pid.json")
    assert_names(error, "pid.json", "playlists[2].pid")
    assert "expected `int`, got `str`" in error.problem


def test_missing_playlists_names_file_and_field() -> None:
    error = error_of(json.dumps({"info": {"slice": "0-999"}}).encode(), "noplaylists.json")
    assert_names(error, "noplaylists.json", "playlists")
    assert error.problem == "required field is missing"


def test_missing_track_uri_names_file_and_field() -> None:
    playlists = good_playlists()
    del playlists[0]["tracks"][1]["track_uri"]
    error = error_of(slice_bytes(playlists), "nouri.json")
    assert_names(error, "nouri.json", "playlists[0].tracks[1].track_uri")
    assert error.problem == "required field is missing"


def test_non_utf8_bytes_name_file_field_and_position() -> None:
    data = slice_bytes(good_playlists())
    # Latin-1 "é" (one byte 0xE9) inside the second playlist's name: not UTF-8
    broken = data.replace(b'"name": "list 1"', b'"name": "caf\xe9 1"', 1)
    offset = broken.index(b"\xe9")
    line = broken[:offset].count(b"\n") + 1
    column = offset - broken.rfind(b"\n", 0, offset)
    error = error_of(broken, "latin1.json")
    assert_names(error, "latin1.json", "playlists[1].name")
    assert "not valid UTF-8" in error.problem
    assert f"line {line}, column {column}" in error.problem


def test_broken_gzip_names_file(tmp_path: Path) -> None:
    """A gzip stream that is cut short: nothing inside can be read, so the field is the whole file."""
    path = tmp_path / "mpd.slice.0-999.json.gz"
    path.write_bytes(gzip.compress(slice_bytes(good_playlists()))[:-12])
    with pytest.raises(MPDFormatError) as info:
        read_slice(path)
    assert info.value.file == str(path)
    assert info.value.field == ""
    assert str(info.value).startswith(f"{path}: broken gzip data")


def test_unreadable_path_names_file(tmp_path: Path) -> None:
    missing = tmp_path / "mpd.slice.5000-5999.json"
    with pytest.raises(MPDFormatError) as info:
        read_slice(missing)
    assert info.value.file == str(missing)
    assert "cannot read file" in info.value.problem


def test_format_error_is_a_value_error_with_parts() -> None:
    error = MPDFormatError("a.json", "playlists[0].pid", "expected `int`, got `str`")
    assert isinstance(error, ValueError)
    assert str(error) == "a.json at playlists[0].pid: expected `int`, got `str`"
    assert str(MPDFormatError("a.json", "", "broken")) == "a.json: broken"


# --- good files ------------------------------------------------------------------------------------


def test_plain_json_decodes_every_field() -> None:
    data = slice_bytes([playlist(7, [track("spotify:track:x", "Nobody", "Hello")], name="Hi", description="d")])
    decoded = read_slice(data, "one.json")
    assert isinstance(decoded, Slice)
    (only,) = decoded.playlists
    assert (only.pid, only.name, only.num_followers, only.description) == (7, "Hi", 1, "d")
    assert only.tracks[0] == Track(artist_name="Nobody", track_uri="spotify:track:x", track_name="Hello")
    assert decoded.info is not None and decoded.info.slice == "0-999"


def test_json_gz_file_decodes(tmp_path: Path) -> None:
    data = slice_bytes(good_playlists())
    path = tmp_path / "mpd.slice.0-999.json.gz"
    path.write_bytes(gzip.compress(data))
    assert read_slice(path) == read_slice(data, "plain")
    assert find_slice_files([tmp_path]) == [path]
    corpus, report = load_corpus([tmp_path])
    assert corpus.n_playlists == 5 and report.files_read == [str(path)]


def test_uploaded_bytes_keep_their_name() -> None:
    good = slice_bytes(good_playlists())
    assert len(read_slice(good, "my upload.json").playlists) == 5
    assert len(read_slice(gzip.compress(good), "zipped.json.gz").playlists) == 5
    assert error_of(b"{", "my upload.json").file == "my upload.json"
    # without a name, the error still says it came from an upload
    with pytest.raises(MPDFormatError, match="<uploaded file>"):
        read_slice(b"{")
    corpus, report = load_corpus([("my upload.json", good)])
    assert report.files_read == ["my upload.json"]
    assert set(corpus.playlists["file"]) == {"my upload.json"}
    names = [name for name, _ in iter_slices([("u1.json", good), ("u2.json", b"[")])]
    assert names == ["u1.json", "u2.json"]


def test_zero_playlist_file_is_valid() -> None:
    data = slice_bytes([])
    assert read_slice(data, "empty.json").playlists == []
    corpus, report = load_corpus([("empty.json", data), ("good.json", slice_bytes(good_playlists()))])
    assert report.files_read == ["empty.json", "good.json"]
    assert not report.errors and not report.warnings
    assert corpus.n_playlists == 5


def test_playlist_without_tracks_is_skipped_with_a_warning() -> None:
    playlists = good_playlists(count=3)
    playlists[1]["tracks"] = []
    corpus, report = load_corpus([("holes.json", slice_bytes(playlists))])
    assert corpus.n_playlists == 2
    assert corpus.playlists["pid"].tolist() == [0, 2]
    assert not report.errors
    (warning,) = report.warnings
    assert "holes.json" in warning and "playlists[1]" in warning and "pid 1" in warning


def test_duplicate_pids_across_files_are_reported_and_not_merged(tmp_path: Path) -> None:
    first = tmp_path / "mpd.slice.0-999.json"
    second = tmp_path / "mpd.slice.1000-1999.json"
    first.write_bytes(slice_bytes(good_playlists(0, 3)))  # pids 0, 1, 2
    again = good_playlists(2, 3)  # pids 2, 3, 4: pid 2 again, with other tracks
    again[0]["tracks"] = [track("spotify:track:other")]
    second.write_bytes(slice_bytes(again))
    corpus, report = load_corpus([tmp_path])
    assert corpus.playlists["pid"].tolist() == [0, 1, 2, 3, 4]
    (warning,) = report.warnings
    assert str(first) in warning and str(second) in warning and "pid 2" in warning
    row = corpus.playlists.index[corpus.playlists["pid"] == 2][0]
    # the first copy is kept whole, the second neither replaces nor extends it
    kept = corpus.tracks["uri"].to_numpy()[corpus.playlist_tracks(row)].tolist()
    assert kept == ["spotify:track:2-0", "spotify:track:2-1", "spotify:track:2-2"]
    assert corpus.playlists["file"].iat[row] == str(first)


def test_folder_with_good_and_bad_files_keeps_every_good_one(tmp_path: Path) -> None:
    files = {
        "mpd.slice.0-999.json": slice_bytes(good_playlists(0)),
        "mpd.slice.1000-1999.json": b'{"playlists": [',
        "mpd.slice.2000-2999.json": slice_bytes(good_playlists(2000)),
        "mpd.slice.3000-3999.json": json.dumps({"playlists": [{"pid": 1, "tracks": []}]}).encode(),
        "mpd.slice.4000-4999.json.gz": gzip.compress(slice_bytes(good_playlists(4000))),
        "mpd.slice.5000-5999.json.gz": b"\x1f\x8b\x08\x00broken",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "notes.txt").write_text("not a slice")
    corpus, report = load_corpus([tmp_path])
    good = ["mpd.slice.0-999.json", "mpd.slice.2000-2999.json", "mpd.slice.4000-4999.json.gz"]
    assert report.files_read == [str(tmp_path / n) for n in good]
    assert corpus.n_playlists == 15
    assert sorted(corpus.playlists["pid"]) == [*range(5), *range(2000, 2005), *range(4000, 4005)]
    errors = {Path(e.file).name: e for e in report.errors}
    assert sorted(errors) == ["mpd.slice.1000-1999.json", "mpd.slice.3000-3999.json", "mpd.slice.5000-5999.json.gz"]
    assert "truncated" in errors["mpd.slice.1000-1999.json"].problem
    assert errors["mpd.slice.1000-1999.json"].field == "playlists[0]"
    assert errors["mpd.slice.3000-3999.json"].field == "playlists[0].name"
    assert "gzip" in errors["mpd.slice.5000-5999.json.gz"].problem


def test_slice_files_are_listed_in_slice_order(tmp_path: Path) -> None:
    names = ["mpd.slice.10000-10999.json", "mpd.slice.1000-1999.json", "mpd.slice.0-999.json.gz", "extra.json"]
    for name in names:
        (tmp_path / name).write_bytes(b"{}")
    found = [p.name for p in find_slice_files([tmp_path])]
    assert found == ["mpd.slice.0-999.json.gz", "mpd.slice.1000-1999.json", "mpd.slice.10000-10999.json", "extra.json"]


def test_max_files_and_progress(tmp_path: Path) -> None:
    for start in (0, 1000, 2000):
        (tmp_path / f"mpd.slice.{start}-{start + 999}.json").write_bytes(slice_bytes(good_playlists(start, 2)))
    calls = []
    corpus, report = load_corpus([tmp_path], max_files=2, progress=lambda d, t, n: calls.append((d, t, Path(n).name)))
    assert corpus.playlists["pid"].tolist() == [0, 1, 1000, 1001]
    assert calls == [(1, 2, "mpd.slice.0-999.json"), (2, 2, "mpd.slice.1000-1999.json")]


def test_encode_decode_round_trip() -> None:
    tracks = [Track(pos=0, artist_name="A", track_uri="spotify:track:1", track_name="S", duration_ms=1000)]
    original = [Playlist(name="x", pid=3, tracks=tracks, num_followers=4, collaborative="false")]
    data = encode_slice(original)
    assert data.startswith(b'{\n    "')  # 4-space indentation like the real slices
    assert decode(data, "x.json").playlists == original


# --- the real MPD excerpts (on the developers' machines only) ---------------------------------------


def test_real_full_format_slice_decodes(shared_data: Path) -> None:
    path = shared_data / "mpd-full-format" / "mpd.slice.0-999.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    decoded = read_slice(path)
    assert [p.pid for p in decoded.playlists] == list(range(29))
    first = decoded.playlists[0]
    assert first.name == "Throwbacks" and first.collaborative == "false"
    assert first.num_tracks == len(first.tracks) == 52
    assert first.tracks[0].pos == 0 and first.tracks[0].album_uri.startswith("spotify:album:")
    # the real data is not always self-consistent (pid 1 says 39 tracks and lists 40): nothing relies on num_tracks
    assert sum(len(p.tracks) for p in decoded.playlists) > 29 * 5
    assert decoded.info is not None and decoded.info.slice == "0-999"


def test_real_trimmed_sample_files_decode(shared_data: Path) -> None:
    folder = shared_data / "mpd-sample"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    files = find_slice_files([folder])
    assert len(files) == 699
    results = dict(iter_slices(files[:40]))
    errors = [r for r in results.values() if isinstance(r, MPDFormatError)]
    assert errors == []
    decoded = read_slice(folder / "mpd.slice.0-999.json")
    assert all(t.pos is None and t.album_uri is None for p in decoded.playlists for t in p.tracks)
    assert read_slice(folder / "mpd.slice.16000-16999.json").playlists == []
