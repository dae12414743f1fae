"""The command line: `python -m songrec <command>` (or the `songrec` script)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from songrec.config import TrainConfig
from songrec.corpus import Corpus, load_corpus
from songrec.mpd import LoadReport, MPDFormatError, find_slice_files


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


def _report(report: LoadReport) -> None:
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _load(
    paths: Sequence[str], cache_dir: str | None, max_files: int | None = None, exclude: Sequence[Path] = ()
) -> tuple[Corpus, LoadReport]:
    """Read slices with a progress bar; with a cache folder, a second load of the same files takes seconds."""
    files = find_slice_files(paths)
    excluded = {p.resolve() for p in exclude}
    files = [f for f in files if f.resolve() not in excluded]
    if max_files is not None:
        files = files[:max_files]
    corpus, report = load_corpus(files, progress=_progress("reading slices", "file"), cache_dir=cache_dir)
    _report(report)
    if corpus.n_playlists == 0:
        raise SystemExit(f"songrec: no playlists could be read from {', '.join(paths)}")
    return corpus, report


def _add_model_options(parser: argparse.ArgumentParser, shared: Sequence[str] = ()) -> None:
    parser.add_argument(
        "--model",
        default="itemknn",
        help="popularity, itemknn, ease, als, neural or hybrid (evaluate: several, comma-separated, in one table)",
    )
    parser.add_argument("--checkpoint", help="a saved model (.safetensors) instead of training one")
    _add_train_options(parser, shared)


def _add_train_options(parser: argparse.ArgumentParser, shared: Sequence[str] = ()) -> None:
    """One option per TrainConfig field; `shared` fields already have an option of the command
    (evaluate's --seed also seeds training) and are not added twice (argparse refuses that)."""
    group = parser.add_argument_group("neural model settings (defaults are the best measured)")
    for field in dataclasses.fields(TrainConfig):
        if field.name in shared:
            continue
        option = "--" + field.name.replace("_", "-")
        kind = type(field.default)
        if kind is bool:
            group.add_argument(option, type=lambda s: s.lower() in ("1", "true", "yes"), default=None, metavar="BOOL")
        else:
            group.add_argument(option, type=kind, default=None, help=f"default {field.default}")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    return dataclasses.replace(TrainConfig(), **given)


def _build_model(args: argparse.Namespace, corpus: Corpus, name: str | None = None):
    """The model `name` (default: --model) fitted on the corpus, or the --checkpoint loaded."""
    from songrec.models import load_model, make_model

    if args.checkpoint:
        model = load_model(args.checkpoint)
        print(f"loaded {model.name} model from {args.checkpoint}", file=sys.stderr)
        return model
    name = name or args.model
    started = time.perf_counter()
    if name == "neural":
        model = make_model("neural", config=_train_config(args))
        bar = tqdm(desc="training", unit="epoch", file=sys.stderr, leave=False)

        def on_progress(event) -> None:
            if event.epoch_end:
                bar.total = event.epochs
                bar.n = event.epoch
                bar.set_postfix(loss=f"{event.loss:.3f}", val=f"{event.val_metric:.4f}")
                bar.refresh()

        model.fit(corpus, callback=on_progress)
        bar.close()
        print(f"trained neural model on {model.device} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    else:
        bar = _progress(f"fitting {name}")
        model = make_model(name).fit(corpus, callback=lambda progress: bar(progress.done, progress.total))
        print(f"fitted {name} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return model


def cmd_stats(args: argparse.Namespace) -> int:
    corpus, report = _load(args.paths, args.cache_dir)
    stats = corpus.stats()
    stats["files_read"] = len(report.files_read)
    stats["files_with_errors"] = len(report.errors)
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
        return 0
    print(f"files read        {len(report.files_read)} ({len(report.errors)} with errors)")
    for key in ("playlists", "entries", "unique_tracks", "unique_artists"):
        print(f"{key.replace('_', ' '):<18}{stats[key]:,}")
    length = stats["length"]
    print(
        f"playlist length   min {length['min']}, median {length['median']:.0f}, "
        f"mean {length['mean']:.1f}, max {length['max']}"
    )
    print("most common tracks:")
    for row in stats["top_tracks"]:
        print(f"  {row['count']:>6}  {row['track']} - {row['artist']}")
    print("most common artists:")
    for row in stats["top_artists"]:
        print(f"  {row['count']:>6}  {row['artist']}")
    print("most common playlist names:")
    for row in stats["top_names"]:
        print(f"  {row['count']:>6}  {row['name']}")
    return 0


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
    lines = [f"{'category':<22}{'cases':>6}{'R-prec':>9}{'R-prec(tr)':>11}{'NDCG':>8}{'clicks':>8}{'hit@15':>8}"]
    rows = list(result["per_category"].items()) + [("overall", result["overall"])]
    for name, s in rows:
        lines.append(
            f"{name:<22}{s['cases']:>6}{s['r_precision']:>9.4f}{s['r_precision_tracks']:>11.4f}"
            f"{s['ndcg']:>8.4f}{s['clicks']:>8.2f}{s['hit_at_15']:>8.3f}"
        )
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from songrec.metrics import evaluate_model
    from songrec.protocol import make_cases

    if args.test:
        # each file read once: a test file inside a --train folder is held out, not loaded twice
        # (twice gave a duplicate-pid warning per playlist, or no test playlists when the two
        # spellings of its path differed)
        test_files = find_slice_files(args.test)
        held_out = {f.resolve() for f in test_files}
        train_files = [f for f in find_slice_files(args.train) if f.resolve() not in held_out]
        corpus, _ = _load([str(f) for f in train_files + test_files], args.cache_dir)
        train = corpus.subset(corpus.rows_from_files(str(f) for f in train_files))
        test = corpus.subset(corpus.rows_from_files(str(f) for f in test_files))
    else:
        corpus, _ = _load(args.train, args.cache_dir)
        train, test = corpus.split(args.test_share, seed=args.seed)
    print(f"train {train.n_playlists:,} playlists, test {test.n_playlists:,} playlists", file=sys.stderr)
    cases = make_cases(test, seed=args.seed, max_cases=args.max_cases)
    names = [name.strip() for name in args.model.split(",") if name.strip()] if not args.checkpoint else [None]
    results = []
    for name in names:
        started = time.perf_counter()
        model = _build_model(args, train, name)
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
    """One row per model: the three challenge metrics overall, and the fit time."""
    lines = [f"{'model':<12}{'cases':>6}{'R-prec':>9}{'NDCG':>8}{'clicks':>8}{'fit s':>8}"]
    for result in results:
        s = result["overall"]
        lines.append(
            f"{result['model']:<12}{s['cases']:>6}{s['r_precision']:>9.4f}{s['ndcg']:>8.4f}{s['clicks']:>8.2f}"
            f"{result['fit_seconds']:>8.1f}"
        )
    return "\n".join(lines)


def _align(model, corpus: Corpus):
    """A loaded model speaks its own track ids; evaluate it in the corpus ids via URIs."""
    from songrec.models.aligned import AlignedRecommender

    return AlignedRecommender(model, corpus)


def cmd_submit(args: argparse.Namespace) -> int:
    from songrec.challenge import read_challenge, submission_rows, write_submission

    challenge = read_challenge(args.challenge)
    if args.checkpoint:
        model = _build_model(args, None)
    else:
        corpus, _ = _load(args.train, args.cache_dir)
        model = _build_model(args, corpus)
    rows = submission_rows(model, challenge, progress=_progress("recommending", "playlist"))
    write_submission(args.out, rows, args.team, args.contact)
    print(f"wrote {len(rows)} playlists x 500 tracks to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    config = _train_config(args)
    corpus, _ = _load(args.data, args.cache_dir, max_files=config.max_files or None)
    args.model, args.checkpoint = "neural", None
    model = _build_model(args, corpus)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    model.save(args.out)
    print(f"saved {args.out} (best validation R-precision {model.best_val_metric:.4f} at epoch {model.best_epoch})")
    return 0


def build_parser() -> argparse.ArgumentParser:
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
    stats.set_defaults(run=cmd_stats)

    generate = commands.add_parser("generate", help="write generated demo slices in the MPD format")
    generate.add_argument("--playlists", type=int, default=2000)
    generate.add_argument(
        "--tracks", type=int, default=None, help="unique tracks (default: 2.26 per playlist, as in MPD)"
    )
    generate.add_argument("--out", required=True)
    generate.add_argument("--seed", type=int, default=0)
    generate.set_defaults(run=cmd_generate)

    challenge = commands.add_parser(
        "challenge-set", help="a challenge set in the official format from held-out playlists"
    )
    challenge.add_argument("paths", nargs="+")
    challenge.add_argument("--out", required=True)
    challenge.add_argument("--truth", help="also write the withheld tracks as JSON {pid: [uri, ...]}")
    challenge.add_argument("--seed", type=int, default=0)
    challenge.add_argument("--max-cases", type=int, default=None)
    challenge.set_defaults(run=cmd_challenge_set)

    evaluate = commands.add_parser("evaluate", help="train on --train and score on challenge cases from --test")
    evaluate.add_argument("--train", nargs="+", required=True)
    evaluate.add_argument("--test", nargs="+", help="held-out slices (files under --train are left out of training)")
    evaluate.add_argument("--test-share", type=float, default=0.1, help="without --test: share of playlists held out")
    evaluate.add_argument("--max-cases", type=int, default=None)
    evaluate.add_argument("--seed", type=int, default=0, help="seeds the split, the cases and training")
    evaluate.add_argument("--json", action="store_true")
    _add_model_options(evaluate, shared=("seed",))
    evaluate.set_defaults(run=cmd_evaluate)

    submit = commands.add_parser("submit", help="write an official submission for a challenge set")
    submit.add_argument("--train", nargs="+")
    submit.add_argument("--challenge", required=True)
    submit.add_argument("--out", required=True)
    submit.add_argument("--team", default="songrec")
    submit.add_argument("--contact", default="songrec@example.org")
    _add_model_options(submit)
    submit.set_defaults(run=cmd_submit)

    train = commands.add_parser("train", help="train the neural model and save a checkpoint")
    train.add_argument("--data", nargs="+", required=True)
    train.add_argument("--out", required=True)
    _add_train_options(train)
    train.set_defaults(run=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "submit" and not args.train and not args.checkpoint:
        raise SystemExit("songrec submit: give --train PATH (to train a model) or --checkpoint FILE")
    try:
        return args.run(args)
    except MPDFormatError as exc:
        print(f"songrec: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as exc:
        print(f"songrec: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
