"""The checkpoint format: paths, bytes and open files both ways, and forged files refused by their
header (size, keys, version, dtypes, shapes, byte ranges, string tables) before anything big is made,
each message naming the file."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from songrec.checkpoint import (
    MAX_STRING_BYTES,
    Checkpoint,
    CheckpointError,
    checkpoint_kind,
    checkpoint_name,
    checkpoint_to_bytes,
    load_checkpoint,
    read_checkpoint,
    require,
    save_checkpoint,
)
from songrec.corpus import Corpus
from songrec.models import load_model, make_model

ARRAYS = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.linspace(0, 1, 4, dtype=np.float32)}
STRINGS = {"names": ["country 🤠", "", "Ünïcödé"], "none": []}
METADATA = {"format": "songrec-checkpoint", "version": "1", "kind": "itemknn", "config": '{"neighbours": 3}'}


def forge(tensors: dict[str, dict], data: bytes, metadata: dict | None = None) -> bytes:
    """A safetensors file written by hand: any header, any data."""
    header = json.dumps({"__metadata__": METADATA if metadata is None else metadata, **tensors}).encode()
    return len(header).to_bytes(8, "little") + header + data


def entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def strings_table(name: str, data: bytes, offsets: list[int]) -> tuple[dict[str, dict], bytes]:
    """The two arrays of a string table, offsets first (8-byte aligned), then the bytes."""
    packed = np.asarray(offsets, dtype="<i8").tobytes()
    tensors = {
        f"__str__.{name}.offsets": entry("I64", [len(offsets)], 0, len(packed)),
        f"__str__.{name}.data": entry("U8", [len(data)], len(packed), len(packed) + len(data)),
    }
    return tensors, packed + data


def assert_same(checkpoint: Checkpoint) -> None:
    assert checkpoint.config == {"neighbours": 3}
    assert checkpoint.kind == "itemknn" and checkpoint.version == 1
    assert checkpoint.arrays.keys() == ARRAYS.keys()
    for key, value in ARRAYS.items():
        np.testing.assert_array_equal(checkpoint.arrays[key], value)
        assert checkpoint.arrays[key].dtype == value.dtype
        assert checkpoint.arrays[key].flags.writeable
    assert checkpoint.strings == STRINGS


# --- paths, bytes and open files ----------------------------------------------------------------------------


def test_bytes_files_and_paths_round_trip(tmp_path: Path) -> None:
    data = checkpoint_to_bytes("itemknn", {"neighbours": 3}, ARRAYS, STRINGS)
    path = tmp_path / "deep" / "x.safetensors"
    save_checkpoint(path, "itemknn", {"neighbours": 3}, ARRAYS, STRINGS)
    buffer = io.BytesIO()
    save_checkpoint(buffer, "itemknn", {"neighbours": 3}, ARRAYS, STRINGS)
    with (tmp_path / "opened.safetensors").open("wb") as handle:
        save_checkpoint(handle, "itemknn", {"neighbours": 3}, ARRAYS, STRINGS)
    with (tmp_path / "opened.safetensors").open("rb") as handle:
        written = [buffer.getvalue(), path.read_bytes(), (tmp_path / "opened.safetensors").read_bytes()]
        sources = [path, str(path), data, bytearray(data), memoryview(data), io.BytesIO(data), handle, *written]
        for source in sources:
            assert_same(read_checkpoint(source, "itemknn"))
    config, arrays, strings = load_checkpoint(io.BytesIO(data), "itemknn")
    assert config == {"neighbours": 3} and strings == STRINGS


def test_the_kind_is_read_from_the_header_and_a_file_is_left_where_it_was(tmp_path: Path) -> None:
    data = checkpoint_to_bytes("itemknn", {}, ARRAYS)
    handle = io.BytesIO(b"xx" + data)
    handle.seek(2)
    assert checkpoint_kind(handle) == "itemknn"
    assert handle.tell() == 2
    assert_same_arrays = read_checkpoint(handle).arrays
    np.testing.assert_array_equal(assert_same_arrays["a"], ARRAYS["a"])
    assert checkpoint_kind(data) == "itemknn"
    assert checkpoint_kind(read_checkpoint(data)) == "itemknn"


def test_models_save_to_and_load_from_bytes_and_files(demo_split: tuple[Corpus, Corpus]) -> None:
    model = make_model("itemknn").fit(demo_split[0])
    buffer = io.BytesIO()
    model.save(buffer)
    data = buffer.getvalue()
    for source in (data, io.BytesIO(data)):
        loaded = load_model(source)
        assert type(loaded) is type(model) and loaded.config() == model.config()
        assert loaded.recommend([0, 1], n=20)[0].tolist() == model.recommend([0, 1], n=20)[0].tolist()
    assert type(model).load(io.BytesIO(data)).track_uris == model.track_uris


def test_the_app_round_trips_checkpoints_without_temporary_folders(
    demo_split: tuple[Corpus, Corpus], monkeypatch: pytest.MonkeyPatch
) -> None:
    from songrec.ui import models as state

    def no_folders(*args, **kwargs):
        raise AssertionError("a temporary folder was made")

    monkeypatch.setattr(tempfile, "TemporaryDirectory", no_folders)
    monkeypatch.setattr(tempfile, "mkdtemp", no_folders)
    model = make_model("popularity").fit(demo_split[0])
    data = state.checkpoint_bytes(model)
    entry = state.load_checkpoint_upload("mine.safetensors", data)
    assert entry.model.track_uris == model.track_uris and entry.note == "mine.safetensors"
    with pytest.raises(CheckpointError, match=r"^mine\.safetensors: checkpoint format version 99"):
        state.load_checkpoint_upload("mine.safetensors", data.replace(b'"version":"1"', b'"version":"99"'))


# --- every message names the file ---------------------------------------------------------------------------


def test_messages_name_the_file_however_it_was_given(tmp_path: Path) -> None:
    data = forge({}, b"", {**METADATA, "version": "99"})
    path = tmp_path / "v99.safetensors"
    path.write_bytes(data)
    upload = io.BytesIO(data)
    upload.name = "upload.safetensors"
    for source, name in ((path, str(path)), (data, "<checkpoint bytes>"), (upload, "upload.safetensors")):
        assert checkpoint_name(source) == name
        with pytest.raises(CheckpointError) as info:
            load_model(source)
        assert str(info.value).startswith(f"{name}: checkpoint format version 99 is unknown to this songrec")
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'missing'}: cannot read the checkpoint"):
        read_checkpoint(tmp_path / "missing")


def test_require_names_the_file() -> None:
    checkpoint = read_checkpoint(checkpoint_to_bytes("itemknn", {}, ARRAYS))
    checkpoint.require(True, "never raised")
    with pytest.raises(CheckpointError, match=r"^<checkpoint bytes>: vocabulary id 7 out of range$"):
        checkpoint.require(False, "vocabulary id 7 out of range")
    with pytest.raises(CheckpointError, match=r"^model\.safetensors: too wide$"):
        require(0, "model.safetensors", "too wide")


def test_an_unknown_model_kind_names_the_file() -> None:
    with pytest.raises(CheckpointError, match=r"^<checkpoint bytes>: unknown model 'gpt'"):
        load_model(forge({}, b"", {**METADATA, "kind": "gpt"}))


# --- forged headers ---------------------------------------------------------------------------------------------

FLOATS = {"w": entry("F32", [2, 2], 0, 16)}
SIXTEEN = bytes(16)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (forge(FLOATS, SIXTEEN, {**METADATA, "version": "99"}), "checkpoint format version 99 is unknown"),
        (forge(FLOATS, SIXTEEN, {**METADATA, "version": "one"}), "format version 'one' is not a number"),
        (forge(FLOATS, SIXTEEN, {**METADATA, "version": "1" * 400}), "is not a number"),
        (forge(FLOATS, SIXTEEN, {**METADATA, "extra": "x"}), "unknown header key 'extra'"),
        (forge(FLOATS, SIXTEEN, {**METADATA, "config": "[1, 2]"}), "settings are not a JSON object"),
        (forge(FLOATS, SIXTEEN, {**METADATA, "config": "{"}), "settings are not JSON"),
        (forge(FLOATS, SIXTEEN, {**METADATA, "config": "[" * 100_000}), "settings are not JSON"),
        (forge({"w": entry("F128", [2], 0, 32)}, bytes(32)), "unknown dtype 'F128'"),
        (forge({"w": {**entry("F32", [4], 0, 16), "note": 1}}, SIXTEEN), "is not described by exactly"),
        (forge({"w": entry("F32", [2, -2], 0, 16)}, SIXTEEN), "has the shape [2, -2]"),
        (forge({"w": entry("F32", [True], 0, 4)}, bytes(4)), "has the shape [True]"),
        (forge({"w": entry("F32", [1] * 9, 0, 4)}, bytes(4)), "has the shape"),
        (forge({"w": entry("F32", [4], 16, 0)}, SIXTEEN), "has the byte range [16, 0]"),
        (forge({"w": entry("F32", [3, 3], 0, 16)}, SIXTEEN), "of shape (3, 3) and dtype F32 needs 36 bytes"),
        (forge({"w": entry("F32", [2], 0, 8), "v": entry("F32", [2], 4, 12)}, bytes(12)), "starts at byte 4"),
        (forge({"w": entry("F32", [2], 8, 16)}, SIXTEEN), "'w' starts at byte 8 of the data"),
        (forge(FLOATS, bytes(12)), "it ends at byte"),
        (forge(FLOATS, bytes(20)), "bytes after the last array"),
        (forge({"__evil__": entry("U8", [1], 0, 1)}, b"x"), "unknown entry '__evil__'"),
        (forge({"__str__.x.data": entry("U8", [1], 0, 1)}, b"x"), "string table 'x' lacks its offsets"),
        (forge({"w": entry("F32", [25_000_000_000], 0, 100_000_000_000)}, b""), "more than the limit of 4 GiB"),
    ],
)
def test_forged_headers_are_refused_before_their_data_is_read(data: bytes, message: str) -> None:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(data)
    assert message in str(info.value)
    assert str(info.value).startswith("<checkpoint bytes>: ")


@pytest.mark.parametrize(
    ("data", "offsets", "message"),
    [
        (b"abc", [1, 3], "its offsets start at 1, not 0"),
        (b"abc", [0, 2], "its offsets end at 2, its data at 3"),
        (b"abc", [0, 3, 1, 3], "its offsets go backwards"),
        (b"abcd", [0, 4, 2, 4], "its offsets go backwards"),
        (b"\xff\xfe", [0, 1, 2], "entry 0 is not valid UTF-8"),
        (b"ok\xc3", [0, 2, 3], "entry 1 is not valid UTF-8"),
        (b"x" * (MAX_STRING_BYTES + 1), [0, MAX_STRING_BYTES + 1], "a string of 4,097 bytes, more than the 4,096"),
        (b"", [], "its offsets are not a row of int64"),
    ],
)
def test_forged_string_tables_are_refused(data: bytes, offsets: list[int], message: str) -> None:
    tensors, raw = strings_table("track_uris", data, offsets)
    with pytest.raises(CheckpointError, match=r"^<checkpoint bytes>: damaged checkpoint \(string table 'track_uris'"):
        read_checkpoint(forge(tensors, raw))
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(forge(tensors, raw))
    assert message in str(info.value)


def test_strings_at_the_limit_round_trip_and_longer_ones_are_not_saved() -> None:
    longest = "é" * (MAX_STRING_BYTES // 2)
    assert read_checkpoint(checkpoint_to_bytes("x", {}, {}, {"s": [longest, ""]})).strings == {"s": [longest, ""]}
    with pytest.raises(ValueError, match="string table 's': entry 1 is 4,097 bytes"):
        checkpoint_to_bytes("x", {}, {}, {"s": ["", "x" * (MAX_STRING_BYTES + 1)]})


def test_the_size_limit_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    data = checkpoint_to_bytes("itemknn", {}, ARRAYS)
    assert read_checkpoint(data, max_size=len(data)).kind == "itemknn"
    with pytest.raises(CheckpointError, match=f"checkpoint of {len(data)} bytes is more than the limit of 100 bytes"):
        read_checkpoint(data, max_size=100)
    monkeypatch.setenv("SONGREC_MAX_CHECKPOINT_SIZE", "100")
    with pytest.raises(CheckpointError, match="SONGREC_MAX_CHECKPOINT_SIZE raises it"):
        load_model(data)


def test_unaligned_arrays_are_copied_into_place() -> None:
    data = forge({"b": entry("U8", [1], 0, 1), "w": entry("F32", [1], 1, 5)}, b"\x07" + np.float32(2.5).tobytes())
    arrays = read_checkpoint(data).arrays
    assert arrays["w"].flags.aligned and arrays["w"].tolist() == [2.5] and arrays["b"].tolist() == [7]
