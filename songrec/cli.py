"""The command line: `python -m songrec <command>` (or the `songrec` script)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from songrec.config import DataSettings, EvaluationSettings
from songrec.corpus import Corpus
from songrec.errors import UserError
from songrec.ingest import load_corpus
from songrec.mpd import LoadReport, MPDFormatError, find_slice_files, parse_size
from songrec.settings import (
    SettingError,
    Settings,
    SettingSpec,
    add_options,
    coerce,
    given_options,
    parse_param,
    specs,
)


def _progress(desc: str, unit: str = "it"):
    """A tqdm bar on stderr driven by (done, total[, label]) callbacks."""
    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(done: int, total: int, *_: object) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


_UNPRINTABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}
"""Unicode categories a terminal would act on rather than show: controls (NUL, ESC, newline),
format characters (U+202E turns text around), lone surrogates and line separators."""


def printable(text: object) -> str:
    """`text` with every control or format character written as an escape (\\x00, \\u202e), so
    names from a file can never move the cursor, turn the line around or hide what follows."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in _UNPRINTABLE else c for c in text)


def _report(report: LoadReport) -> None:
    for error in report.errors:
        print(f"error: {printable(error)}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)


def _load(
    paths: Sequence[str],
    cache_dir: str | None,
    max_files: int | None = None,
    exclude: Sequence[Path] = (),
    max_file_size: int | None = None,
) -> tuple[Corpus, LoadReport]:
    """Read slices with a progress bar; with a cache folder, a second load of the same files takes seconds."""
    files = find_slice_files(paths)
    excluded = {os.path.realpath(p) for p in exclude}  # realpath, not Path.resolve: a symlink loop is a file error
    files = [f for f in files if os.path.realpath(f) not in excluded]
    if max_files is not None:
        files = files[:max_files]
    corpus, report = load_corpus(
        files, progress=_progress("reading slices", "file"), cache_dir=cache_dir, max_file_size=max_file_size
    )
    _report(report)
    if corpus.n_playlists == 0:
        raise SystemExit(f"songrec: no playlists could be read from {', '.join(paths)}")
    return corpus, report


DEFAULT_MODEL = "itemknn"


def _model_names(model: str | None, command: str | None) -> list[str]:
    """The names in a --model value (comma-separated); without one, the command's default model."""
    default = "neural" if command == "train" else DEFAULT_MODEL
    return [name.strip() for name in (model or default).split(",") if name.strip()]


def _chosen_models(argv: Sequence[str]) -> list[str]:
    """The model names given with --model (before the full parse, which adds their settings as options)."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--model", default=None)
    probe.add_argument("command", nargs="?")
    known, _ = probe.parse_known_args(argv)
    return _model_names(known.model, known.command)


def _settings_classes(names: Sequence[str]) -> list[type[Settings]]:
    """Each settings class of the named models, once (unknown names are reported when models are made)."""
    from songrec.models import model_class, model_names

    classes: list[type[Settings]] = []
    for name in names:
        if name in model_names():
            classes += [c for c in model_class(name).settings_classes if c not in classes]
    return classes


def _add_model_options(
    parser: argparse.ArgumentParser, models: Sequence[str], skip: Sequence[str] = (), several: bool = False
) -> None:
    """--model, --param and one option per setting of the chosen models (`skip`: the command's own)."""
    from songrec.models import model_summaries

    listing = "; ".join(f"{name}: {summary}" for name, summary in model_summaries().items())
    parser.add_argument(
        "--model",
        default=None,
        help=("several, comma-separated, are compared in one table. " if several else "") + listing,
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any model setting (repeatable); MODEL.KEY=VALUE sets it for one of several models",
    )
    classes = _settings_classes(models)
    if classes:
        title = f"{', '.join(models)} settings (defaults are the best measured; `--model NAME --help` lists another's)"
        add_options(parser, classes, title, skip=skip)


def model_params(args: argparse.Namespace, name: str, shared: dict | None = None) -> dict:
    """The settings given for model `name`: generated options, then --param (which wins), checked."""
    from songrec.models import model_class

    classes = model_class(name).settings_classes
    owned = {spec.name for cls in classes for spec in specs(cls)}
    params = {k: v for k, v in (shared or {}).items() if k in owned}
    params.update(given_options(args, classes, name))
    several = len(_chosen_models_of(args)) > 1
    texts: dict[str, str] = {}
    for text in args.param:
        key, value = parse_param(text)
        target, dot, key = key.rpartition(".")
        if dot and target != name:
            continue
        if several and not dot and key not in owned:
            continue  # an unprefixed setting reaches the models that have it
        texts[key] = value
    params.update(coerce(classes, texts, name))
    _check_device(params.get("device"), name)
    return params


def _check_device(device: object, name: str) -> None:
    """A GPU asked for that this machine lacks is the user's mistake (a message), found before data is read."""
    if device not in ("cuda", "mps"):
        return
    from songrec.models.network import device_problem  # torch: only when a GPU is named

    problem = device_problem(str(device))
    if problem:
        raise SettingError(f"{name} setting device: {problem}")


def _chosen_models_of(args: argparse.Namespace) -> list[str]:
    return _model_names(args.model, args.command)


def _check_params(args: argparse.Namespace) -> None:
    """Every --param must reach at least one chosen model (a typo is an error, not a silent default)."""
    from songrec.models import model_class

    names = _chosen_models_of(args)
    for text in args.param:
        key, _ = parse_param(text)
        target, dot, key = key.rpartition(".")
        owners = [n for n in names if (not dot or n == target)]
        if not any(key in {s.name for c in model_class(n).settings_classes for s in specs(c)} for n in owners):
            known = ", ".join(names)
            raise SettingError(f"--param {text}: no setting {key!r} in {target if dot else known}")


def _build_model(args: argparse.Namespace, corpus: Corpus | None, name: str, shared: dict | None = None):
    """The model `name` fitted on the corpus with its settings from the command line, or --checkpoint loaded."""
    from songrec.models import load_model, make_model

    if args.checkpoint:
        model = load_model(args.checkpoint)
        print(f"loaded {model.name} model from {args.checkpoint}", file=sys.stderr)
        return model
    model = make_model(name, **model_params(args, name, shared))
    started = time.perf_counter()
    bar = tqdm(
        desc=f"fitting {name}",
        total=1.0,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
    )

    def on_progress(progress) -> None:
        bar.n = round(progress.fraction, 4)
        bar.set_postfix_str(progress.label, refresh=False)
        bar.refresh()

    try:
        model.fit(corpus, callback=on_progress)
    finally:
        bar.close()
    where = f" on {model.device}" if getattr(model, "device", None) is not None else ""
    print(f"fitted {name}{where} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    if getattr(model, "diverged", ""):
        print(f"warning: {model.diverged}", file=sys.stderr)
    return model


def cmd_stats(args: argparse.Namespace) -> int:
    corpus, report = _load(args.paths, args.cache_dir, max_file_size=args.max_file_size)
    stats = corpus.stats()
    stats["files_read"] = len(report.files_read)
    stats["files_with_errors"] = len(report.errors)
    if args.json:
        print(_escape_json(json.dumps(stats, indent=2, ensure_ascii=False)))
        return 0
    print(f"files loaded      {len(report.files_read)}")
    print(f"files with errors {len(report.errors)}")
    for key in ("playlists", "entries", "unique_tracks", "unique_artists"):
        print(f"{key.replace('_', ' '):<18}{stats[key]:,}")
    length = stats["length"]
    print(
        f"playlist length   min {length['min']}, median {length['median']:.0f}, "
        f"mean {length['mean']:.1f}, max {length['max']}"
    )
    print("most common tracks:")
    for row in stats["top_tracks"]:
        print(f"  {row['count']:>6}  {printable(row['track'])} - {printable(row['artist'])}")
    print("most common artists:")
    for row in stats["top_artists"]:
        print(f"  {row['count']:>6}  {printable(row['artist'])}")
    print("most common playlist names:")
    for row in stats["top_names"]:
        print(f"  {row['count']:>6}  {printable(row['name'])}")
    return 0


def _escape_json(text: str) -> str:
    """JSON text with the characters a terminal acts on as \\u escapes (json.dumps escapes only
    those below U+0020; the layout's own newlines stay)."""
    return "".join(json.dumps(c)[1:-1] if c != "\n" and unicodedata.category(c) in _UNPRINTABLE else c for c in text)


def cmd_generate(args: argparse.Namespace) -> int:
    from songrec.synthetic import write_demo

    started = time.perf_counter()
    paths = write_demo(args.out, args.playlists, args.seed, args.tracks, progress=_progress("generating", "file"))
    seconds = time.perf_counter() - started
    print(f"wrote {len(paths)} slice files ({args.playlists:,} playlists) to {args.out} in {seconds:.1f}s")
    return 0


def cmd_challenge_set(args: argparse.Namespace) -> int:
    from songrec.challenge import build_challenge_set, write_challenge_set, write_truth
    from songrec.protocol import make_cases

    corpus, _ = _load(args.paths, args.cache_dir)
    cases = make_cases(corpus, seed=args.seed, max_cases=args.max_cases)
    write_challenge_set(args.out, build_challenge_set(corpus, cases))
    if args.truth:
        write_truth(args.truth, corpus, cases)
    print(f"wrote {len(cases)} challenge playlists to {args.out}")
    return 0


def _evaluation_table(result: dict) -> str:
    lines = [
        f"{'category':<22}{'cases':>6}{'R-prec':>9}{'R-prec(tr)':>11}{'NDCG':>8}{'clicks':>8}{'hit@15':>8}{'cover':>8}"
    ]
    rows = list(result["per_category"].items()) + [("overall", result["overall"])]
    for name, s in rows:
        lines.append(
            f"{name:<22}{s['cases']:>6}{s['r_precision']:>9.4f}{s['r_precision_tracks']:>11.4f}"
            f"{s['ndcg']:>8.4f}{s['clicks']:>8.2f}{s['hit_at_15']:>8.3f}{s['coverage']:>8.3f}"
        )
    return "\n".join(lines)


def _load_held_out(args: argparse.Namespace) -> tuple[Corpus, np.ndarray, np.ndarray]:
    """(corpus of --train and --test, training rows, test rows), each file read once: a test file inside a
    --train folder is held out, not loaded twice (twice gave a duplicate-pid warning per playlist, or no
    test playlists when the two spellings of its path differed). realpath, not resolve: a symlink loop is
    a per-file error of the load, not an exception here."""
    test_files = find_slice_files(args.test)
    held_out = {os.path.realpath(f) for f in test_files}
    train_files = [f for f in find_slice_files(args.train) if os.path.realpath(f) not in held_out]
    corpus, _ = _load([str(f) for f in train_files + test_files], args.cache_dir)
    train_rows = corpus.rows_from_files(str(f) for f in train_files)
    return corpus, train_rows, corpus.rows_from_files(str(f) for f in test_files)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from songrec.metrics import evaluate_model
    from songrec.protocol import make_cases

    holdout = EvaluationSettings.build({k: v for k, v in given_options(args, [EvaluationSettings], "evaluate").items()})
    names = _chosen_models_of(args) if not args.checkpoint else [None]
    _check_params(args)
    if args.test:
        corpus, train_rows, test_rows = _load_held_out(args)
        train, test = corpus.subset(train_rows), corpus.subset(test_rows)
    else:
        corpus, _ = _load(args.train, args.cache_dir)
        train, test = corpus.split(holdout.test_share, seed=holdout.seed)
    print(f"train {train.n_playlists:,} playlists, test {test.n_playlists:,} playlists", file=sys.stderr)
    if train.n_playlists == 0 or test.n_playlists == 0:
        raise SystemExit("songrec evaluate: the split leaves no training or no test playlist")
    cases = make_cases(test, seed=holdout.seed, max_cases=holdout.max_cases or None)
    results = []
    for name in names:
        started = time.perf_counter()
        model = _build_model(args, train, name, shared={"seed": holdout.seed})
        fit_seconds = time.perf_counter() - started
        if args.checkpoint:
            model = _align(model, corpus)
        evaluation = evaluate_model(model, cases, corpus.track_artist, progress=_progress("evaluating", "case"))
        result = {**evaluation.as_dict(), "model": model.name, "fit_seconds": round(fit_seconds, 1)}
        if hasattr(model, "candidate_recall"):  # two-stage models: the share of withheld tracks stage 1 proposes
            recall = model.candidate_recall(cases)
            result["candidate_recall"] = recall["overall"]
            result["candidate_recall_per_category"] = recall["per_category"]
        results.append(result)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    elif len(results) == 1:
        print(f"model: {results[0]['model']}")
        print(_evaluation_table(results[0]))
    else:
        print(_comparison_table(results))
    for result in results if not args.json else []:
        if "candidate_recall" in result:
            prefix = f"{result['model']} " if len(results) > 1 else ""
            print(f"{prefix}candidate recall {result['candidate_recall']:.4f}")
    return 0


def _comparison_table(results: list[dict]) -> str:
    """One row per model: the three challenge metrics and coverage overall, and the fit time."""
    lines = [f"{'model':<12}{'cases':>6}{'R-prec':>9}{'NDCG':>8}{'clicks':>8}{'coverage':>10}{'fit s':>8}"]
    for result in results:
        s = result["overall"]
        lines.append(
            f"{result['model']:<12}{s['cases']:>6}{s['r_precision']:>9.4f}{s['ndcg']:>8.4f}{s['clicks']:>8.2f}"
            f"{s['coverage']:>10.4f}{result['fit_seconds']:>8.1f}"
        )
    return "\n".join(lines)


def _align(model, corpus: Corpus):
    """A loaded model speaks its own track ids; evaluate it in the corpus ids via URIs."""
    from songrec.models.aligned import AlignedRecommender

    return AlignedRecommender(model, corpus)


def cmd_submit(args: argparse.Namespace) -> int:
    from songrec.challenge import read_challenge, submission_rows, write_submission

    _check_params(args)
    (name,) = _chosen_models_of(args)[:1] or [DEFAULT_MODEL]
    challenge = read_challenge(args.challenge)
    corpus = None if args.checkpoint else _load(args.train, args.cache_dir)[0]
    model = _build_model(args, corpus, name)
    rows = submission_rows(model, challenge, progress=_progress("recommending", "playlist"))
    write_submission(args.out, rows, args.team, args.contact)
    print(f"wrote {len(rows)} playlists x 500 tracks to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    _check_params(args)
    data = DataSettings.build(given_options(args, [DataSettings], "data"))
    (name,) = _chosen_models_of(args)[:1]
    model_params(args, name)  # the settings are checked before any file is read
    corpus, _ = _load(args.data, args.cache_dir, max_files=data.max_files or None)
    args.checkpoint = None
    model = _build_model(args, corpus, name)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    model.save(args.out)
    kept = f" ({model.kept_epoch()})" if hasattr(model, "kept_epoch") else ""
    print(f"saved {args.out}{kept}")
    return 0


def _model_and_corpus(args: argparse.Namespace, name: str | None = None):
    """(model in the corpus's track ids, the corpus): fitted on --train, or --checkpoint aligned to --data."""
    if args.checkpoint:
        if not args.data:
            raise SystemExit(f"songrec {args.command}: --checkpoint needs --data PATH (the slices naming its tracks)")
        corpus, _ = _load(args.data, args.cache_dir)
        return _align(_build_model(args, None, ""), corpus), corpus
    if not args.train:
        raise SystemExit(f"songrec {args.command}: give --train PATH (to fit a model) or --checkpoint FILE")
    _check_params(args)
    corpus, _ = _load(args.train, args.cache_dir)
    return _build_model(args, corpus, name or _chosen_models_of(args)[0]), corpus


def _seed_playlist(args: argparse.Namespace, corpus: Corpus) -> tuple[list[str], str | None]:
    """(seed URIs, title) from --seeds and --title, or from playlist --playlist of --data (else --train)."""
    if args.playlist is None:
        if not args.seeds:
            raise SystemExit("songrec recommend: give --seeds URI,... or --playlist PID")
        return [u.strip() for u in args.seeds.split(",") if u.strip()], args.title
    source = corpus
    if args.data and not args.checkpoint:
        source, _ = _load(args.data, args.cache_dir)
    rows = np.flatnonzero(source.playlists["pid"].to_numpy() == args.playlist)
    if not len(rows):
        raise SystemExit(f"songrec recommend: no playlist with pid {args.playlist} in the data")
    row = int(rows[0])
    uris = source.tracks["uri"].to_numpy()[source.playlist_tracks(row)].tolist()
    return uris, args.title if args.title is not None else str(source.playlists["name"].iat[row])


def cmd_recommend(args: argparse.Namespace) -> int:
    from songrec import explore

    model, corpus = _model_and_corpus(args)
    uris, title = _seed_playlist(args, corpus)
    seeds = corpus.track_ids(uris)
    unknown = int((seeds < 0).sum())
    if unknown:
        print(f"warning: {unknown} of {len(uris)} seed tracks are not in the data and are ignored", file=sys.stderr)
    table = explore.recommendation_table(model, corpus, seeds[seeds >= 0], title or None, args.n)
    if args.json:
        rows = table[["rank", "track", "artist", "uri", "score", "reason", "source"]].to_dict("records")
        for row in rows:
            row["score"] = None if np.isnan(row["score"]) else float(row["score"])
            row["rank"] = int(row["rank"])
        print(
            json.dumps(
                {"model": model.name, "title": title, "seeds": len(uris), "tracks": rows}, indent=2, ensure_ascii=False
            )
        )
        return 0
    print(f"{'rank':>4}  {'track':<36}{'artist':<24}{'score':>10}  reason")
    for row in table.itertuples():
        score = "–" if np.isnan(row.score) else f"{row.score:.4f}"
        print(f"{row.rank:>4}  {str(row.track)[:35]:<36}{str(row.artist)[:23]:<24}{score:>10}  {row.reason}")
    return 0


def _keywords(texts: Sequence[str]) -> dict[str, list[str]]:
    """The default genres, with `genre=word,word` replacing (or adding) a genre's keywords."""
    from songrec.genres import DEFAULT_KEYWORDS, parse_keywords

    keywords = {genre: list(words) for genre, words in DEFAULT_KEYWORDS.items()}
    for text in texts:
        genre, sep, words = text.partition("=")
        if not sep or not genre.strip() or not parse_keywords(words):
            raise SystemExit(f"songrec genres: --keywords takes genre=word,word, not {text!r}")
        keywords[genre.strip().lower()] = parse_keywords(words)
    return keywords


def cmd_genres(args: argparse.Namespace) -> int:
    from songrec.genres import genre_labels, genre_match_counts

    keywords = _keywords(args.keywords)
    names = list(dict.fromkeys([*_chosen_models_of(args), "popularity"]))  # always beside popularity
    _check_params(args)
    within = None
    if args.test:
        corpus, train_rows, within = _load_held_out(args)
        train = corpus.subset(train_rows)
        print(f"train {train.n_playlists:,} playlists; genre playlists from {len(within):,} held out", file=sys.stderr)
    else:
        corpus, _ = _load(args.train, args.cache_dir)
        train = corpus
    labels = genre_labels(corpus, keywords)
    rows = []
    for name in names:
        model = _build_model(args, train, name)
        for genre in keywords:
            result = genre_match_counts(
                model,
                corpus,
                genre,
                keywords,
                n=args.n,
                n_seeds=args.seeds,
                max_playlists=args.max_playlists,
                model_name=name,
                labels=labels,
                within=within,
            )
            rows.append(result.summary())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'genre':<12}{'model':<12}{'playlists':>10}{f'matches/{args.n}':>12}{'share':>8}{'chance':>8}"
        f"{'base rate':>11}"
    )
    for row in rows:
        matches = "–" if row["playlists"] == 0 else f"{row['mean_matches']:.2f}"
        share = "–" if row["playlists"] == 0 else f"{row['mean_share']:.1%}"
        print(
            f"{row['genre']:<12}{row['model']:<12}{row['playlists']:>10}{matches:>12}{share:>8}"
            f"{row['expected_by_chance']:>8.2f}{row['base_rate']:>11.1%}"
        )
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from songrec.genres import DEFAULT_KEYWORDS, MORE_KEYWORDS, track_genres
    from songrec.projection import model_embeddings, svd_embeddings, track_projection, write_projection

    if not args.checkpoint and (args.model or "svd") == "svd":
        if not args.train:
            raise SystemExit("songrec embed: give --train PATH or --checkpoint FILE")
        corpus, _ = _load(args.train, args.cache_dir)
        ids, vectors = svd_embeddings(corpus)
        source = "SVD of the playlist-track matrix"
    else:
        model, corpus = _model_and_corpus(args)
        ids, vectors = model_embeddings(model, corpus)
        source = f"{model.name} embeddings"
    labels = track_genres(corpus, {**DEFAULT_KEYWORDS, **MORE_KEYWORDS})
    started = time.perf_counter()
    frame = track_projection(ids, vectors, corpus, args.n, args.perplexity, labels)
    frame["uri"] = corpus.tracks["uri"].to_numpy()[frame["track_id"].to_numpy()]
    print(f"t-SNE of {len(frame):,} tracks in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    write_projection(frame, args.out, f"{source}: t-SNE of the {len(frame):,} most frequent tracks")
    print(f"wrote {len(frame):,} tracks to {args.out}")
    return 0


def _number_option(
    parser: argparse.ArgumentParser,
    option: str,
    kind: type,
    default: int | float | None,
    help: str,
    low: float | None = None,
    high: float | None = None,
) -> None:
    """A command's own number option, converted and range-checked like a setting (its range in the help)."""
    spec = SettingSpec(option.removeprefix("--").replace("-", "_"), kind, default, help, "", low, high)
    parser.add_argument(option, type=spec.argument, default=default, help=spec.option_help())


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; `argv` decides which models' settings become options (those named by --model)."""
    models = _chosen_models(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="songrec", description="Playlist continuation on MPD-format data.")
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("SONGREC_CACHE_DIR") or None,
        help="keep loaded corpora here and reuse them while the files are unchanged (default: $SONGREC_CACHE_DIR; "
        "no caching when unset)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    stats = commands.add_parser("stats", help="summarise MPD slice files or folders")
    stats.add_argument("paths", nargs="+")
    stats.add_argument("--json", action="store_true")
    stats.add_argument(
        "--max-file-size",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="refuse a file holding more JSON than this once inflated, e.g. 512M or 2G "
        "(default: $SONGREC_MAX_FILE_SIZE, else 256M)",
    )
    stats.set_defaults(run=cmd_stats)

    generate = commands.add_parser("generate", help="write generated demo slices in the MPD format")
    _number_option(generate, "--playlists", int, 2000, "playlists to generate", low=1, high=10_000_000)
    _number_option(
        generate, "--tracks", int, None, "unique tracks (default: 2.26 per playlist, as in MPD)", low=1, high=10_000_000
    )
    generate.add_argument("--out", required=True)
    _number_option(generate, "--seed", int, 0, "seeds the generated playlists", low=0, high=2**31 - 1)
    generate.set_defaults(run=cmd_generate)

    challenge = commands.add_parser(
        "challenge-set", help="a challenge set in the official format from held-out playlists"
    )
    challenge.add_argument("paths", nargs="+")
    challenge.add_argument("--out", required=True)
    challenge.add_argument("--truth", help="also write the withheld tracks as JSON {pid: [uri, ...]}")
    _number_option(challenge, "--seed", int, 0, "seeds the choice of cases", low=0, high=2**31 - 1)
    _number_option(
        challenge, "--max-cases", int, None, "challenge playlists at most (default: all)", low=1, high=10_000_000
    )
    challenge.set_defaults(run=cmd_challenge_set)

    evaluate = commands.add_parser("evaluate", help="train on --train and score on challenge cases from --test")
    evaluate.add_argument("--train", nargs="+", required=True)
    evaluate.add_argument("--test", nargs="+", help="held-out slices (files under --train are left out of training)")
    evaluate.add_argument("--json", action="store_true")
    add_options(evaluate, [EvaluationSettings], "evaluation")
    evaluate.add_argument("--checkpoint", help="a saved model (.safetensors) instead of training one")
    _add_model_options(evaluate, models, skip=EvaluationSettings.names(), several=True)
    evaluate.set_defaults(run=cmd_evaluate)

    submit = commands.add_parser("submit", help="write an official submission for a challenge set")
    submit.add_argument("--train", nargs="+")
    submit.add_argument("--challenge", required=True)
    submit.add_argument("--out", required=True)
    submit.add_argument("--team", default="songrec")
    submit.add_argument("--contact", default="songrec@example.org")
    submit.add_argument("--checkpoint", help="a saved model (.safetensors) instead of training one")
    _add_model_options(submit, models)
    submit.set_defaults(run=cmd_submit)

    train = commands.add_parser("train", help="fit a model (default: the neural model) and save a checkpoint")
    train.add_argument("--data", nargs="+", required=True)
    train.add_argument("--out", required=True)
    add_options(train, [DataSettings], "data")
    _add_model_options(train, models)
    train.set_defaults(run=cmd_train)

    recommend = commands.add_parser("recommend", help="continue one playlist: rank, track, artist, score, reason")
    recommend.add_argument("--train", nargs="+", help="slices to fit the model on")
    recommend.add_argument("--checkpoint", help="a saved model (.safetensors) instead of fitting one (needs --data)")
    recommend.add_argument("--data", nargs="+", help="slices naming the tracks (--checkpoint) or holding --playlist")
    recommend.add_argument("--seeds", help="the playlist's tracks as Spotify URIs, comma-separated")
    recommend.add_argument("--playlist", type=int, help="or: the pid of a playlist in the data (its tracks and title)")
    recommend.add_argument("--title", help="the playlist's title (with --playlist: instead of its own)")
    _number_option(recommend, "--n", int, 15, "recommendations", low=1, high=500)
    recommend.add_argument("--json", action="store_true")
    _add_model_options(recommend, models)
    recommend.set_defaults(run=cmd_recommend)

    genres = commands.add_parser("genres", help="genre validation: matches in the top 15 of genre-named playlists")
    genres.add_argument("--train", nargs="+", required=True)
    genres.add_argument(
        "--test",
        nargs="+",
        help="held-out slices: genre playlists only from these (files under --train are left out of fitting)",
    )
    genres.add_argument(
        "--keywords",
        nargs="+",
        default=[],
        metavar="GENRE=WORD,WORD",
        help="a genre's keywords (whole words of playlist names), replacing or adding to country, "
        "hip-hop and christmas",
    )
    _number_option(genres, "--n", int, 15, "top N recommendations counted", low=1, high=500)
    _number_option(genres, "--seeds", int, 10, "seed tracks: the first K of each playlist", low=1, high=250)
    _number_option(genres, "--max-playlists", int, 300, "playlists per genre at most", low=1)
    genres.add_argument("--json", action="store_true")
    genres.set_defaults(checkpoint=None)
    _add_model_options(genres, models, several=True)
    genres.set_defaults(run=cmd_genres)

    embed = commands.add_parser("embed", help="t-SNE map of track vectors as CSV, or an interactive .html chart")
    embed.add_argument("--train", nargs="+", help="slices: SVD vectors (default) or a fitted --model's embeddings")
    embed.add_argument("--checkpoint", help="a saved model with embeddings (neural, notebook); needs --data")
    embed.add_argument("--data", nargs="+", help="with --checkpoint: slices naming its tracks")
    _number_option(embed, "--n", int, 2000, "the most frequent tracks mapped", low=1, high=100_000)
    _number_option(embed, "--perplexity", float, 30.0, "t-SNE's neighbourhood size", low=1.0, high=1000.0)
    embed.add_argument("--out", required=True, help="FILE.csv (x, y, track, artist, genre, ...) or FILE.html")
    _add_model_options(embed, [m for m in models if m != DEFAULT_MODEL])
    embed.set_defaults(run=cmd_embed)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    if args.command == "submit" and not args.train and not args.checkpoint:
        raise SystemExit("songrec submit: give --train PATH (to train a model) or --checkpoint FILE")
    try:
        return args.run(args)
    except MPDFormatError as exc:
        print(f"songrec: {exc}", file=sys.stderr)
        return 1
    except (UserError, FileNotFoundError) as exc:  # a user's mistake: one line; anything else is a bug
        print(f"songrec: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
