"""Forged or damaged checkpoints are refused with a message naming the file, before anything big is
made: never a traceback, never a silently broken model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from factories import FAST_NEURAL

from songrec.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from songrec.corpus import Corpus
from songrec.models import load_model, make_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, demo_split: tuple[Corpus, Corpus]) -> dict[str, Path]:
    """A small saved model of each kind that has arrays to forge."""
    folder = tmp_path_factory.mktemp("genuine")
    models = {
        "neural": make_model("neural", **{**FAST_NEURAL, "epochs": 1, "members": 1}),
        "als": make_model("als", factors=8, iterations=2),
        "ease": make_model("ease", max_items=300),
        "itemknn": make_model("itemknn", neighbours=20),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = folder / f"{name}.safetensors"
        model.fit(demo_split[0]).save(paths[name])
    return paths


def forge(source: Path, target: Path, change: Callable[[dict, dict, dict], None]) -> Path:
    config, arrays, strings = load_checkpoint(source)
    change(config, arrays, strings)
    kind = {"neural.": "neural"}.get(source.stem + ".", source.stem)
    save_checkpoint(target, kind, config, arrays, strings)
    return target


def refused(path: Path, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_the_genuine_files_load(saved: dict[str, Path]) -> None:
    for name, path in saved.items():
        assert load_model(path).name == name


def test_a_huge_layer_in_the_config_is_refused_before_it_is_made(saved, tmp_path) -> None:
    path = forge(saved["neural"], tmp_path / "huge.safetensors", lambda c, a, s: c.update(hidden_dim=10_000_000))
    refused(path, "hidden_dim must be from 4 to 4096, not 10000000")


def test_an_unknown_setting_is_refused(saved, tmp_path) -> None:
    path = forge(saved["neural"], tmp_path / "unknown.safetensors", lambda c, a, s: c.update(colour="blue"))
    refused(path, "unknown neural setting colour")


def test_a_missing_array_is_refused(saved, tmp_path) -> None:
    path = forge(saved["neural"], tmp_path / "missing.safetensors", lambda c, a, s: a.pop("model.vocab_ids"))
    refused(path, "no 'vocab_ids' array")


@pytest.mark.parametrize("bad_id", [-1, 10**12])
def test_vocabulary_ids_out_of_range_are_refused(saved, tmp_path, bad_id: int) -> None:
    def change(config, arrays, strings) -> None:
        arrays["model.vocab_ids"] = arrays["model.vocab_ids"].copy()
        arrays["model.vocab_ids"][3] = bad_id

    refused(forge(saved["neural"], tmp_path / "ids.safetensors", change), "vocabulary ids outside")


def test_weights_of_the_wrong_shape_are_refused(saved, tmp_path) -> None:
    def change(config, arrays, strings) -> None:
        config["embedding_dim"] = config["embedding_dim"] * 2

    refused(forge(saved["neural"], tmp_path / "shape.safetensors", change), "weight has shape", "the settings say")


def test_nan_weights_are_refused(saved, tmp_path) -> None:
    def change(config, arrays, strings) -> None:
        arrays["model.net.bias"] = np.full_like(arrays["model.net.bias"], np.nan)

    refused(forge(saved["neural"], tmp_path / "nan.safetensors", change), "NaN")


def test_a_track_table_shorter_than_popularity_is_refused(saved, tmp_path) -> None:
    path = forge(saved["als"], tmp_path / "als.safetensors", lambda c, a, s: s.update(track_uris=s["track_uris"][:5]))
    refused(path, "popularity has shape")


def test_als_factors_of_the_wrong_shape_are_refused(saved, tmp_path) -> None:
    def change(config, arrays, strings) -> None:
        arrays["model.item_factors"] = arrays["model.item_factors"][:, :4].copy()

    refused(forge(saved["als"], tmp_path / "als.safetensors", change), "item_factors has shape")


def test_ease_ids_out_of_range_are_refused(saved, tmp_path) -> None:
    def change(config, arrays, strings) -> None:
        arrays["model.item_ids"] = arrays["model.item_ids"] + 10**9

    refused(forge(saved["ease"], tmp_path / "ease.safetensors", change), "track ids outside")


@pytest.mark.parametrize("part", ["indptr", "indices"])
def test_itemknn_similarity_arrays_that_index_out_of_bounds_are_refused(saved, tmp_path, part: str) -> None:
    def change(config, arrays, strings) -> None:
        arrays[f"model.{part}"] = arrays[f"model.{part}"].copy()
        arrays[f"model.{part}"][-1] = 10**12 if part == "indptr" else -7

    message = refused(forge(saved["itemknn"], tmp_path / "knn.safetensors", change), "similarity")
    assert "offsets" in message or "column ids" in message


def test_title_model_arrays_are_checked(saved, tmp_path) -> None:
    def change(config, arrays, strings) -> None:
        arrays["title.name.indices"] = arrays["title.name.indices"] + 10**6

    refused(forge(saved["als"], tmp_path / "title.safetensors", change), "title.name", "column ids outside")
