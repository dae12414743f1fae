"""The app's pages on the command line: recommend, genres and embed on generated data, genres on the real sample."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from songrec.cli import main
from songrec.corpus import Corpus
from songrec.mpd import find_slice_files


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    message = ""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code, message = (1, exc.code) if isinstance(exc.code, str) else (exc.code or 0, "")
    out, err = capsys.readouterr()
    return code, out, err + message


def test_recommend_by_uris_prints_rank_track_artist_score_reason(
    capsys: pytest.CaptureFixture, demo_dir: Path, demo_corpus: Corpus
) -> None:
    seeds = demo_corpus.tracks["uri"].to_numpy()[demo_corpus.playlist_tracks(0)[:5]].tolist()
    code, out, err = run(
        capsys, "recommend", "--train", demo_dir, "--model", "itemknn", "--seeds", ",".join(seeds), "--n", 12
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["rank", "track", "artist", "score", "reason"] and len(lines) == 13
    assert lines[1].split()[0] == "1" and "like “" in out  # item-kNN names the seeds it found the track through


def test_recommend_a_playlist_as_json_with_reasons(
    capsys: pytest.CaptureFixture, demo_dir: Path, demo_corpus: Corpus
) -> None:
    pid = int(demo_corpus.playlists["pid"].iat[3])
    code, out, err = run(capsys, "recommend", "--train", demo_dir, "--model", "ease", "--playlist", pid, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == "ease" and result["title"] == demo_corpus.playlists["name"].iat[3]
    assert [t["rank"] for t in result["tracks"]] == list(range(1, 16))
    own = set(demo_corpus.tracks["uri"].to_numpy()[demo_corpus.playlist_tracks(3)])
    assert not own & {t["uri"] for t in result["tracks"]}  # never a seed
    assert all(t["reason"] for t in result["tracks"])


def test_recommend_from_a_checkpoint_needs_data(
    capsys: pytest.CaptureFixture, demo_dir: Path, demo_corpus: Corpus, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "pop.safetensors"
    assert run(capsys, "train", "--data", demo_dir, "--model", "popularity", "--out", checkpoint)[0] == 0
    seed = demo_corpus.tracks["uri"].iat[0]
    code, _, err = run(capsys, "recommend", "--checkpoint", checkpoint, "--seeds", seed)
    assert code == 1 and "--checkpoint needs --data" in err
    code, out, err = run(capsys, "recommend", "--checkpoint", checkpoint, "--data", demo_dir, "--seeds", seed, "--json")
    assert code == 0, err
    assert len(json.loads(out)["tracks"]) == 15


def test_genres_table_beside_popularity(capsys: pytest.CaptureFixture, demo_dir: Path) -> None:
    code, out, err = run(
        capsys, "genres", "--train", demo_dir, "--model", "itemknn", "--json", "--keywords", "rock=rock,rock n roll"
    )
    assert code == 0, err
    rows = {(r["genre"], r["model"]): r for r in json.loads(out)}
    assert set(rows) == {(g, m) for g in ("country", "hip-hop", "christmas", "rock") for m in ("itemknn", "popularity")}
    for genre in ("country", "hip-hop", "christmas"):
        knn, popular = rows[genre, "itemknn"], rows[genre, "popularity"]
        assert knn["playlists"] > 0 and knn["mean_matches"] > popular["mean_matches"]
        assert knn["mean_matches"] > knn["expected_by_chance"]
    code, out, _ = run(capsys, "genres", "--train", demo_dir, "--model", "popularity")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["genre", "model", "playlists"]
    assert run(capsys, "genres", "--train", demo_dir, "--keywords", "rock")[0] == 1


def test_embed_writes_csv_and_a_self_contained_html_chart(
    capsys: pytest.CaptureFixture, demo_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "map.csv"
    code, _, err = run(capsys, "embed", "--train", demo_dir, "--n", 300, "--out", out)
    assert code == 0, err
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 300 and {"x", "y", "track", "artist", "genre", "uri"} <= set(rows[0])
    assert {"country", "christmas", "hip-hop"} <= {r["genre"] for r in rows}
    pytest.importorskip("vl_convert")
    page = tmp_path / "map.html"
    code, _, err = run(capsys, "embed", "--train", demo_dir, "--n", 200, "--out", page)
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert "vega-lite" in html.lower() and "cdn.jsdelivr" not in html and len(html) > 500_000  # the JS is inlined


def test_embed_a_model_s_embeddings(capsys: pytest.CaptureFixture, demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "notebook.csv"
    code, _, err = run(capsys, "embed", "--train", demo_dir, "--model", "notebook", "--n", 100, "--out", out)
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 101


def test_embed_a_checkpoint_s_embeddings_on_its_data(
    capsys: pytest.CaptureFixture, demo_dir: Path, demo_corpus: Corpus, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "neural.safetensors"
    tiny = ["--epochs", 1, "--members", 1, "--embedding-dim", 16, "--hidden-dim", 32, "--init", "random"]
    code, _, err = run(capsys, "train", "--data", demo_dir, "--model", "neural", *tiny, "--out", checkpoint)
    assert code == 0, err
    out = tmp_path / "neural.csv"
    code, _, err = run(capsys, "embed", "--checkpoint", checkpoint, "--out", out)
    assert code == 1 and "--checkpoint needs --data" in err and not out.exists()
    code, stdout, err = run(capsys, "embed", "--checkpoint", checkpoint, "--data", demo_dir, "--n", 150, "--out", out)
    assert code == 0, err
    assert f"loaded neural model from {checkpoint}" in err and "wrote 150 tracks" in stdout
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 150 and {"x", "y", "track", "artist", "genre", "uri"} <= set(rows[0])
    assert {r["uri"] for r in rows} <= set(demo_corpus.tracks["uri"])
    counts = dict(zip(demo_corpus.tracks["uri"], demo_corpus.track_counts, strict=True))
    assert min(counts[r["uri"]] for r in rows) >= sorted(counts.values())[-150]  # the most frequent tracks


def test_genres_on_held_out_real_playlists(capsys: pytest.CaptureFixture, shared_data: Path) -> None:
    sample = shared_data / "mpd-sample"
    held_out = find_slice_files([sample])[::10]
    code, out, err = run(capsys, "genres", "--train", sample, "--test", *held_out, "--model", "itemknn", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert {r["genre"] for r in rows} == {"country", "hip-hop", "christmas"}
    for row in rows:
        assert row["playlists"] > 0, row  # every genre has held-out playlists in the sample
    knn = {r["genre"]: r for r in rows if r["model"] == "itemknn"}
    assert all(knn[g]["mean_matches"] > knn[g]["expected_by_chance"] for g in knn)
