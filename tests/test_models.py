"""The model registry, shared scoring helpers, and safe loading of checkpoints."""

from __future__ import annotations

import os
import pickle
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pytest
from factories import corpus_of, playlist
from safetensors.numpy import save_file

from songrec.checkpoint import CheckpointError, checkpoint_kind, load_checkpoint, save_checkpoint
from songrec.corpus import Corpus
from songrec.models import load_model, make_model, model_class, model_names
from songrec.models.aligned import AlignedRecommender
from songrec.models.base import top_n
from songrec.models.itemknn import ItemKNNRecommender
from songrec.models.popularity import PopularityRecommender


def test_model_registry() -> None:
    assert {"popularity", "itemknn"} <= set(model_names())
    assert model_class("popularity") is PopularityRecommender
    assert model_class("itemknn") is ItemKNNRecommender
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model_class("nope")


def test_top_n_skips_excluded_and_non_finite() -> None:
    candidates = np.array([5, 6, 7, 8, 9])
    values = np.array([0.1, np.nan, 0.9, 0.5, np.inf * -1])
    ids, scores = top_n(candidates, values, 2, exclude=np.array([7]))
    assert ids.tolist() == [8, 5]
    np.testing.assert_allclose(scores, [0.5, 0.1])
    assert top_n(candidates, values, 10, np.array([], dtype=np.int64))[0].tolist() == [7, 8, 5]
    assert len(top_n(np.array([], dtype=np.int64), np.array([]), 5, np.array([1]))[0]) == 0


class RunsCode:
    """A pickle payload: unpickling it runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_loading_a_pickle_never_runs_it(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(RunsCode(f"touch {shlex.quote(str(marker))}"), protocol=protocol)
    path = tmp_path / "model.safetensors"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match="not a songrec checkpoint"):
        load_model(path)
    for load in (ItemKNNRecommender.load, load_checkpoint, checkpoint_kind):
        with pytest.raises(CheckpointError):
            load(path)
    assert not marker.exists()
    # the payload is live: unpickling it really would have created the file
    pickle.loads(payload)
    assert marker.exists()


def test_loading_a_torch_style_zip_with_a_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(RunsCode(f"touch {shlex.quote(str(marker))}")))
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def test_other_files_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    text = tmp_path / "notes.safetensors"
    text.write_text("just some text that is not a checkpoint\n" * 3)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign))
    odd = tmp_path / "odd.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(odd), metadata={"format": "songrec-checkpoint"})
    for path, message in (
        (empty, "file too short"),
        (text, "not a songrec checkpoint"),
        (foreign, "format is None"),
        (odd, "names no model kind"),
    ):
        with pytest.raises(CheckpointError, match=message):
            load_model(path)


def test_a_header_with_odd_metadata_is_refused(tmp_path: Path) -> None:
    header = b'{"__metadata__": "not a mapping"}'
    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(CheckpointError, match="not a songrec checkpoint"):
        load_model(path)


def test_a_model_of_another_kind_is_refused(tmp_path: Path, demo_split: tuple[Corpus, Corpus]) -> None:
    path = tmp_path / "pop.safetensors"
    make_model("popularity").fit(demo_split[0]).save(path)
    assert checkpoint_kind(path) == "popularity"
    with pytest.raises(CheckpointError, match="holds a 'popularity' model, not 'itemknn'"):
        ItemKNNRecommender.load(path)


def test_a_damaged_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    save_checkpoint(path, "popularity", {}, {"popularity": np.ones(1000, np.float32)})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        load_checkpoint(path)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "x.safetensors"
    arrays = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.linspace(0, 1, 4, dtype=np.float32)}
    strings = {"names": ["country 🤠", "", "Ünïcödé"], "none": []}
    save_checkpoint(path, "itemknn", {"neighbours": 3, "alpha": 0.5}, arrays, strings)
    config, loaded, loaded_strings = load_checkpoint(path, "itemknn")
    assert config == {"neighbours": 3, "alpha": 0.5}
    assert loaded.keys() == arrays.keys()
    for key in arrays:
        np.testing.assert_array_equal(loaded[key], arrays[key])
        assert loaded[key].dtype == arrays[key].dtype
    assert loaded_strings == strings
    assert not path.read_bytes().startswith(b"\x80"), "not a pickle"


# --- a saved model on another corpus (AlignedRecommender) ---------------------------------------------------------


def _aligned_pair() -> tuple[AlignedRecommender, Corpus]:
    """Popularity fitted where x1, x2, x3 are the most played tracks, aligned to a corpus without them.

    model ids: x1 0, x2 1, x3 2, a 3, b 4, c 5, d 6 (a-d played once each); corpus ids: e 0, a 1, b 2, c 3,
    d 4 (e unknown to the model, d the corpus's last track)."""
    trained = corpus_of(
        [playlist(1, ["x1", "x2", "x3", "a"]), playlist(2, ["x1", "x2", "x3", "b"])]
        + [playlist(3, ["x1", "x2", "x3", "c"]), playlist(4, ["x1", "d"])]
    )
    corpus = corpus_of([playlist(10, ["e", "a"]), playlist(11, ["b", "c", "e"]), playlist(12, ["d"])])
    return AlignedRecommender(make_model("popularity").fit(trained), corpus), corpus


def test_aligned_model_ignores_negative_and_out_of_range_excludes() -> None:
    aligned, corpus = _aligned_pair()
    a, b, c, d = corpus.track_ids(["a", "b", "c", "d"]).tolist()
    assert d == corpus.n_tracks - 1
    ids, _ = aligned.recommend([], n=4, exclude=[-1])
    assert ids.tolist() == [a, b, c, d]  # -1 is no track: it must not exclude the last one
    (ids, _), (other, _) = aligned.recommend_batch([[], [a]], [None, None], 3, [[-5, 99, b], None])
    assert ids.tolist() == [a, c, d] and other.tolist() == [b, c, d]


def test_aligned_model_returns_n_tracks_when_its_best_are_unknown_here() -> None:
    aligned, corpus = _aligned_pair()
    a, b, c, d, e = corpus.track_ids(["a", "b", "c", "d", "e"]).tolist()
    for n in (1, 2, 3, 4):  # the model's top 3 are not in the corpus: it is asked again for more
        assert aligned.recommend([], n=n)[0].tolist() == [a, b, c, d][:n]
        ids, scores = aligned.recommend([e], n=n)  # e is unknown to the model: no seed it knows
        assert ids.tolist() == [a, b, c, d][:n]
    ids, scores = aligned.recommend([a], n=4)  # the model has three more tracks here: e (the most played) fills
    assert ids.tolist() == [b, c, d, e] and np.isnan(scores[-1]) and np.isfinite(scores[:3]).all()
    (first, _), (second, _) = aligned.recommend_batch([[b], [e, c]], [None, None], 5)
    assert first.tolist() == [a, c, d, e] and second.tolist() == [a, b, d]  # every track but the seeds
    assert len(aligned.recommend([], n=500)[0]) == corpus.n_tracks


def test_aligned_model_explains_in_its_corpus_by_default() -> None:
    aligned, corpus = _aligned_pair()
    seeds, ids = corpus.track_ids(["e"]), corpus.track_ids(["a", "b", "d"])
    assert aligned.explain(seeds, ids) == aligned.explain(seeds, ids, corpus)
    assert aligned.explain(seeds, ids, corpus=corpus)[0]  # a co-occurs with the seed e
