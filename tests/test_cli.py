"""The command line, run in-process through songrec.cli.main (and once as `python -m songrec`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from factories import playlist, slice_bytes

from songrec import cli
from songrec.challenge import read_challenge
from songrec.checkpoint import CheckpointError
from songrec.cli import build_parser, main, model_params
from songrec.config import EvaluationSettings
from songrec.corpus import Corpus
from songrec.errors import UserError
from songrec.models import make_model
from songrec.mpd import read_slice
from songrec.protocol import CATEGORIES, CATEGORY_NAMES
from songrec.settings import SettingError, given_options
from songrec.sparse import SparseFormatError

COMMANDS = ("stats", "generate", "challenge-set", "evaluate", "submit", "train", "recommend", "genres", "embed")
SCORE_KEYS = {"r_precision", "r_precision_tracks", "ndcg", "clicks", "hit_at_15", "cases", "coverage"}


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `songrec argv...`; a SystemExit message counts as stderr, status 1."""
    message = ""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        if isinstance(exc.code, str):
            code, message = 1, exc.code
        else:
            code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err + message


@pytest.fixture(scope="module")
def two_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated slices in two files (1,100 playlists), for --train/--test."""
    folder = tmp_path_factory.mktemp("two-files")
    assert main(["generate", "--playlists", "1100", "--tracks", "1500", "--out", str(folder), "--seed", "1"]) == 0
    return folder


@pytest.fixture(scope="module")
def challenge(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(challenge set, truth) written by `challenge-set` from the demo data."""
    folder = tmp_path_factory.mktemp("challenge")
    out, truth = folder / "challenge.json", folder / "truth.json"
    assert main(["challenge-set", str(demo_dir), "--out", str(out), "--truth", str(truth), "--seed", "0"]) == 0
    return out, truth


# --- help -------------------------------------------------------------------------------------------------


def test_module_help_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "songrec", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys: pytest.CaptureFixture, command: str) -> None:
    """Regression: evaluate's --seed and the training options' --seed clashed, so no command ran."""
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: songrec {command}")


def test_a_setting_whose_help_holds_a_percent_sign_shows_it(capsys: pytest.CaptureFixture) -> None:
    """Regression: argparse formats help strings with %, so distill_fold_in's '40%' broke every --help."""
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    assert "for 40% of the exact teacher's cost" in " ".join(out.split())


def test_evaluate_seed_also_seeds_training() -> None:
    argv = ["evaluate", "--train", "x", "--seed", "7", "--model", "neural,als"]
    args = build_parser(argv).parse_args(argv)
    assert given_options(args, [EvaluationSettings], "evaluate") == {"seed": 7}
    assert model_params(args, "neural", shared={"seed": 7})["seed"] == 7
    assert model_params(args, "als", shared={"seed": 7})["seed"] == 7


# --- generate and stats ------------------------------------------------------------------------------------


def test_generate(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "generate", "--playlists", 50, "--out", tmp_path / "gen", "--seed", 2)
    assert code == 0
    assert "wrote 1 slice files (50 playlists)" in out
    (path,) = (tmp_path / "gen").iterdir()
    assert path.name == "mpd.slice.0-999.json"
    assert [p.pid for p in read_slice(path).playlists] == list(range(50))


def test_stats_json(capsys: pytest.CaptureFixture, demo_dir: Path, demo_corpus: Corpus) -> None:
    code, out, err = run(capsys, "stats", demo_dir, "--json")
    assert code == 0
    stats = json.loads(out)
    assert (stats["files_read"], stats["files_with_errors"]) == (1, 0)
    assert stats["playlists"] == 600
    assert stats["entries"] == demo_corpus.n_entries
    assert "error" not in err


def test_stats_text(capsys: pytest.CaptureFixture, demo_dir: Path) -> None:
    code, out, _ = run(capsys, "stats", demo_dir)
    assert code == 0
    assert "files loaded      1\nfiles with errors 0\n" in out
    assert "playlists         600" in out
    for heading in ("most common tracks:", "most common artists:", "most common playlist names:"):
        assert heading in out


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    good = [playlist(pid, [f"spotify:track:{pid}-{i}" for i in range(4)]) for pid in range(3)]
    bad = [playlist(10, ["spotify:track:x", "spotify:track:y"])]
    del bad[0]["tracks"][1]["track_uri"]
    (tmp_path / "mpd.slice.0-999.json").write_bytes(slice_bytes(good))
    (tmp_path / "mpd.slice.1000-1999.json").write_bytes(slice_bytes(bad))
    (tmp_path / "mpd.slice.2000-2999.json").write_bytes(slice_bytes(good).replace(b'"name": "my', b'"name": "\xff', 1))
    return tmp_path


def test_stats_reports_bad_files_and_counts_good_ones(capsys: pytest.CaptureFixture, mixed_folder: Path) -> None:
    code, out, err = run(capsys, "stats", mixed_folder)
    assert code == 0
    assert "files loaded      1\nfiles with errors 2\n" in out
    assert "playlists         3" in out
    missing = mixed_folder / "mpd.slice.1000-1999.json"
    assert f"error: {missing} at playlists[0].tracks[1].track_uri: required field is missing" in err
    latin = mixed_folder / "mpd.slice.2000-2999.json"
    assert f"error: {latin} at playlists[0].name: not valid UTF-8" in err
    code, out, _ = run(capsys, "stats", mixed_folder, "--json")
    stats = json.loads(out)
    assert (code, stats["files_read"], stats["files_with_errors"], stats["playlists"]) == (0, 1, 2, 3)


def test_stats_fails_only_when_nothing_could_be_read(capsys: pytest.CaptureFixture, mixed_folder: Path) -> None:
    (mixed_folder / "mpd.slice.0-999.json").unlink()
    code, out, err = run(capsys, "stats", mixed_folder)
    assert code != 0
    assert out == ""
    assert "mpd.slice.1000-1999.json at playlists[0].tracks[1].track_uri" in err
    assert "no playlists could be read" in err
    code, _, err = run(capsys, "stats", mixed_folder / "nothing-here.json")
    assert code != 0 and "nothing-here.json" in err and "cannot read file" in err


# --- challenge sets --------------------------------------------------------------------------------------------


def category_of(entry: dict) -> str:
    positions = [t["pos"] for t in entry["tracks"]]
    random = positions != list(range(len(positions)))
    matches = [
        c.name
        for c in CATEGORIES
        if c.n_seeds == entry["num_samples"] and c.with_title == ("name" in entry) and c.random_seeds == random
    ]
    assert len(matches) == 1, entry
    return matches[0]


def test_challenge_set_official_format(challenge: tuple[Path, Path], demo_corpus: Corpus) -> None:
    path, truth_path = challenge
    data = json.loads(path.read_bytes())
    assert set(data) == {"date", "version", "playlists"}
    playlists = data["playlists"]
    assert len(playlists) == 600
    categories = Counter(category_of(p) for p in playlists)
    assert set(categories) == set(CATEGORY_NAMES)
    no_title = {c.name for c in CATEGORIES if not c.with_title}
    names = dict(zip(demo_corpus.playlists["pid"], demo_corpus.playlists["name"], strict=True))
    for entry in playlists:
        assert set(entry) <= {"name", "pid", "num_holdouts", "num_samples", "num_tracks", "tracks"}
        assert ("name" in entry) == (category_of(entry) not in no_title)
        if "name" in entry:
            assert entry["name"] == names[entry["pid"]]
        assert entry["num_samples"] == len(entry["tracks"])
        assert entry["num_holdouts"] + entry["num_samples"] == entry["num_tracks"]
        assert entry["num_holdouts"] > 0
        for t in entry["tracks"]:
            assert {"pos", "artist_name", "track_uri", "track_name"} <= set(t)
    # it reads back with the typed reader
    assert len(read_challenge(path).playlists) == 600


def test_challenge_truth_is_the_withheld_tracks(challenge: tuple[Path, Path], demo_corpus: Corpus) -> None:
    path, truth_path = challenge
    playlists = {p["pid"]: p for p in json.loads(path.read_bytes())["playlists"]}
    truth = json.loads(truth_path.read_bytes())
    assert set(map(int, truth)) == set(playlists)
    uris = demo_corpus.tracks["uri"].to_numpy()
    for pid, withheld in truth.items():
        entry = playlists[int(pid)]
        seeds = [t["track_uri"] for t in entry["tracks"]]
        assert withheld and len(set(withheld)) == len(withheld)
        assert not set(withheld) & set(seeds)
        row = int((demo_corpus.playlists["pid"] == int(pid)).to_numpy().nonzero()[0][0])
        tracks = uris[demo_corpus.playlist_tracks(row)].tolist()
        assert [tracks[t["pos"]] for t in entry["tracks"]] == seeds
        assert sorted(seeds + withheld) == sorted(tracks)  # demo playlists repeat no track


# --- evaluate -------------------------------------------------------------------------------------------------------


def check_evaluation(result: dict, model: str) -> None:
    assert set(result) == {"overall", "per_category", "model", "fit_seconds"}
    assert result["model"] == model
    assert set(result["overall"]) == SCORE_KEYS
    assert result["per_category"], "some categories"
    assert set(result["per_category"]) <= set(CATEGORY_NAMES)
    for scores in result["per_category"].values():
        assert set(scores) == SCORE_KEYS
        assert scores["cases"] > 0
        assert 0 <= scores["r_precision"] <= 1 and 0 <= scores["ndcg"] <= 1 and 0 <= scores["clicks"] <= 51
    assert result["overall"]["cases"] == sum(s["cases"] for s in result["per_category"].values())


def test_evaluate_json(capsys: pytest.CaptureFixture, demo_dir: Path) -> None:
    code, out, err = run(capsys, "evaluate", "--train", demo_dir, "--model", "popularity", "--max-cases", 60, "--json")
    assert code == 0, err
    result = json.loads(out)
    check_evaluation(result, "popularity")
    assert result["overall"]["cases"] == 60
    assert set(result["per_category"]) == set(CATEGORY_NAMES)
    assert "train 540 playlists, test 60 playlists" in err


def test_evaluate_with_held_out_files(
    capsys: pytest.CaptureFixture, two_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test file lies in the --train folder and is named another way (absolute, the folder relative)."""
    monkeypatch.chdir(two_files.parent)
    test_file = (two_files / "mpd.slice.1000-1999.json").resolve()
    code, out, err = run(
        capsys, "evaluate", "--train", two_files.name, "--test", test_file, "--model", "itemknn", "--json"
    )
    assert code == 0, err
    check_evaluation(json.loads(out), "itemknn")
    assert json.loads(out)["overall"]["cases"] == 100
    # the test file is held out of training, and read only once (no duplicate-pid warnings)
    assert "train 1,000 playlists, test 100 playlists" in err
    assert "warning" not in err


def test_evaluate_table(capsys: pytest.CaptureFixture, demo_dir: Path) -> None:
    code, out, _ = run(capsys, "evaluate", "--train", demo_dir, "--model", "itemknn", "--max-cases", 40)
    assert code == 0
    assert out.startswith("model: itemknn\ncategory")
    assert out.rstrip().splitlines()[-1].split()[:2] == ["overall", "40"]


def test_evaluate_several_models_in_one_table(capsys: pytest.CaptureFixture, demo_dir: Path) -> None:
    """Models compared on the same cases: one row each, item-kNN above popularity on R-precision."""
    code, out, err = run(capsys, "evaluate", "--train", demo_dir, "--model", "popularity,itemknn", "--max-cases", 60)
    assert code == 0, err
    header, *rows = out.strip().splitlines()
    assert header.split() == ["model", "cases", "R-prec", "NDCG", "clicks", "coverage", "fit", "s"]
    table = {row.split()[0]: [float(v) for v in row.split()[1:]] for row in rows}
    assert set(table) == {"popularity", "itemknn"}
    assert table["popularity"][0] == table["itemknn"][0] == 60
    assert table["itemknn"][1] > table["popularity"][1]
    assert table["itemknn"][4] > table["popularity"][4]  # popularity gives (nearly) one list for every playlist
    code, out, _ = run(
        capsys, "evaluate", "--train", demo_dir, "--model", "popularity,itemknn", "--max-cases", 60, "--json"
    )
    assert [r["model"] for r in json.loads(out)] == ["popularity", "itemknn"]


def test_evaluate_a_saved_model(
    capsys: pytest.CaptureFixture, demo_dir: Path, demo_corpus: Corpus, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "pop.safetensors"
    make_model("popularity").fit(demo_corpus.subset(list(range(300)))).save(checkpoint)
    code, out, err = run(
        capsys, "evaluate", "--train", demo_dir, "--checkpoint", checkpoint, "--max-cases", 30, "--json"
    )
    assert code == 0, err
    check_evaluation(json.loads(out), "popularity")
    assert f"loaded popularity model from {checkpoint}" in err


# --- submit ------------------------------------------------------------------------------------------------


def test_submit(capsys: pytest.CaptureFixture, demo_dir: Path, challenge: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = challenge
    out_path = tmp_path / "submission.csv"
    code, out, err = run(
        capsys,
        "submit",
        "--train",
        demo_dir,
        "--challenge",
        path,
        "--out",
        out_path,
        "--model",
        "itemknn",
        "--team",
        "team songrec",
        "--contact",
        "me@example.org",
    )
    assert code == 0, err
    assert "wrote 600 playlists x 500 tracks" in out
    lines = out_path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "team_info,team songrec,me@example.org"
    seeds = {p.pid: {t.track_uri for t in p.tracks} for p in read_challenge(path).playlists}
    assert len(lines) == 1 + len(seeds)
    pids = []
    for line in lines[1:]:
        pid, *uris = line.split(",")
        pids.append(int(pid))
        assert len(uris) == len(set(uris)) == 500
        assert all(u.startswith("spotify:track:") for u in uris)
        assert not set(uris) & seeds[int(pid)]
    assert pids == list(seeds)


def test_submit_from_a_checkpoint(
    capsys: pytest.CaptureFixture, demo_corpus: Corpus, challenge: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "knn.safetensors"
    make_model("itemknn").fit(demo_corpus).save(checkpoint)
    out_path = tmp_path / "submission.csv"
    code, _, err = run(capsys, "submit", "--checkpoint", checkpoint, "--challenge", challenge[0], "--out", out_path)
    assert code == 0, err
    lines = out_path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "team_info,songrec,songrec@example.org"
    assert all(len(line.split(",")) == 501 for line in lines[1:])


def test_submit_needs_a_model(capsys: pytest.CaptureFixture, challenge: tuple[Path, Path], tmp_path: Path) -> None:
    code, _, err = run(capsys, "submit", "--challenge", challenge[0], "--out", tmp_path / "s.csv")
    assert code != 0 and "--train" in err and "--checkpoint" in err


def test_submit_with_too_few_tracks_says_so(
    capsys: pytest.CaptureFixture, challenge: tuple[Path, Path], tmp_path: Path
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    (small / "mpd.slice.0-999.json").write_bytes(slice_bytes([playlist(1, ["spotify:track:a", "spotify:track:b"])]))
    code, _, err = run(
        capsys,
        "submit",
        "--train",
        small,
        "--challenge",
        challenge[0],
        "--out",
        tmp_path / "s.csv",
        "--model",
        "popularity",
    )
    assert code == 2
    assert "a submission needs 500" in err


def test_cache_dir_is_written_then_reused(demo_dir, tmp_path, capsys) -> None:
    cache = tmp_path / "cache"
    assert main(["--cache-dir", str(cache), "stats", str(demo_dir), "--json"]) == 0
    first = capsys.readouterr().out
    assert any(cache.iterdir()), "the first load should leave a cached corpus"
    assert main(["--cache-dir", str(cache), "stats", str(demo_dir), "--json"]) == 0
    assert capsys.readouterr().out == first


# --- errors: a user's mistake gets one line, a bug keeps its traceback -------------------------------------------


def _raises(error: Exception):
    def command(args) -> int:
        raise error

    return command


@pytest.mark.parametrize("error", [ValueError("an internal bug"), KeyError("track"), IndexError("row 7")])
def test_an_internal_error_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: Exception
) -> None:
    monkeypatch.setattr(cli, "cmd_generate", _raises(error))
    with pytest.raises(type(error)) as caught:
        main(["generate", "--out", str(tmp_path / "gen")])
    assert caught.value is error


def test_the_project_s_user_errors_get_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    from songrec.training import TrainingDiverged

    for error in (
        SettingError("neural setting epochs must be from 1 to 1000, not 0"),
        CheckpointError("m.safetensors: not a songrec checkpoint"),
        SparseFormatError("item_sims: offsets do not match 3 entries"),
        UserError("the popularity model has no track embeddings"),
        TrainingDiverged("the loss became NaN at epoch 2"),
        FileNotFoundError("no such file: x.json"),
    ):
        monkeypatch.setattr(cli, "cmd_generate", _raises(error))
        code, _, err = run(capsys, "generate", "--out", tmp_path / "gen")
        assert code == 2 and err == f"songrec: {error}\n", (error, err)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["recommend", "--seeds", "u:a", "--n", "0"], "argument --n: must be from 1 to 500, not 0"),
        (["embed", "--out", "map.csv", "--perplexity", "-1"], "argument --perplexity: must be from 1 to 1000, not -1"),
        (["embed", "--out", "map.csv", "--n", "0"], "argument --n: must be from 1 to 100_000, not 0"),
        (["generate", "--out", "gen", "--playlists", "0"], "argument --playlists: must be from 1 to 10_000_000, not 0"),
        (["generate", "--out", "gen", "--seed", "-1"], "argument --seed: must be from 0 to 2_147_483_647, not -1"),
        (["genres", "--train", "x", "--seeds", "0"], "argument --seeds: must be from 1 to 250, not 0"),
        (["genres", "--train", "x", "--max-playlists", "-3"], "argument --max-playlists: must be 1 or more, not -3"),
        (["challenge-set", "x", "--out", "c.json", "--max-cases", "0"], "argument --max-cases: must be from 1 to"),
        (["recommend", "--seeds", "u:a", "--n", "ten"], "argument --n: must be from 1 to 500, not ten"),
    ],
)
def test_a_command_s_numbers_are_range_checked(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *arguments)
    assert code == 2 and message in err and not out
    assert not any(tmp_path.iterdir())  # refused before anything is read or written


def test_training_on_too_little_data_is_a_message(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    lonely = [playlist(p, [f"spotify:track:only-{p}"]) for p in range(3)]  # no track is in two playlists
    (folder / "mpd.slice.0-999.json").write_bytes(slice_bytes(lonely))
    code, _, err = run(capsys, "train", "--data", folder, "--epochs", "1", "--out", tmp_path / "m.safetensors")
    assert code == 2 and err.splitlines()[-1].startswith("songrec: "), err
    assert "Traceback" not in err
