"""Every chart the app draws, and the colours they share: Altair only (no Streamlit), so pages stay thin.

A model keeps one colour on every page and in every chart, whatever else is selected: the fixed
palette below for the models songrec ships, and for any other name (an uploaded checkpoint's label, a
model added later) a colour picked by a hash of the name, never by its position in a selection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import altair as alt
import pandas as pd

from songrec.explore import AS_WRITTEN, FIXED, WITH_FIXES

SPOTIFY_GREEN = "#1DB954"
DARK_GREY = "#535353"
LIGHT_GREY = "#C8C8C8"

MODEL_COLOURS = {
    "neural": SPOTIFY_GREEN,
    "popularity": "#8C8C8C",
    "itemknn": "#2D46B9",
    "ease": "#F59B23",
    "als": "#AF2896",
    "hybrid": "#E8115B",
    "notebook": "#509BF5",
    "title": "#8C564B",
}
"""The models songrec ships, by registry name; grey for popularity, the floor every other model must clear."""

REPLAY_COLOURS = {AS_WRITTEN: MODEL_COLOURS["notebook"], WITH_FIXES: "#FFC864", FIXED: MODEL_COLOURS["neural"]}
"""The Train page's notebook replay, by label: as written is the notebook model and the fixed one the neural
model, in their own colours; the notebook with fixes in a colour of its own."""

OTHER_MODEL_COLOURS = ("#17BECF", "#BCBD22", "#E377C2", "#D62728", "#9467BD", "#FF7F0E", "#1F77B4", "#2CA02C")
"""For names outside MODEL_COLOURS, chosen by a hash of the name (see `model_colour`)."""

BASE_RATE = "base rate (random track)"
"""The genre chart's reference bar: what a random track would score."""

GENRE_COLOURS = {
    "country": "#F28E2B",
    "hip-hop": "#4E79A7",
    "christmas": "#E15759",
    "rock": "#76B7B2",
    "pop": "#59A14F",
    "edm": "#EDC948",
    "indie": "#B07AA1",
    "latin": "#FF9DA7",
    "jazz": "#9C755F",
    "classical": "#2D46B9",
    "other": LIGHT_GREY,
}
OTHER_GENRE_COLOURS = ("#86BCB6", "#F1CE63", "#D4A6C8", "#8CD17D", "#B6992D", "#499894", "#D37295", "#A0CBE8")


def _hashed(name: str, palette: Sequence[str]) -> str:
    """A colour from `palette` that depends on the name only (Python's hash() changes between runs; sha1 does not)."""
    return palette[int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big") % len(palette)]


def model_colour(name: str) -> str:
    """The colour of a model on every page: fixed for the shipped models, a stable hash of the name otherwise."""
    if name in MODEL_COLOURS:
        return MODEL_COLOURS[name]
    if name in REPLAY_COLOURS:
        return REPLAY_COLOURS[name]
    if name == BASE_RATE:
        return LIGHT_GREY
    return _hashed(name, OTHER_MODEL_COLOURS)


def genre_colour(genre: str) -> str:
    return GENRE_COLOURS.get(genre) or _hashed(genre, OTHER_GENRE_COLOURS)


def model_scale(names: Sequence[str]) -> alt.Scale:
    """A colour scale giving each name its own colour, the same in every chart."""
    names = list(dict.fromkeys(names))
    return alt.Scale(domain=names, range=[model_colour(n) for n in names])


# --------------------------------------------------------------------------- dataset


def length_histogram(lengths: pd.DataFrame) -> alt.Chart:
    """Playlists per length bin (`start`, `end`, `playlists`, from explore.length_histogram)."""
    return (
        alt.Chart(lengths)
        .mark_bar(color=SPOTIFY_GREEN)
        .encode(
            x=alt.X("start:Q", bin="binned", title="tracks in playlist"),
            x2="end:Q",
            y=alt.Y("playlists:Q", title="playlists"),
            tooltip=[alt.Tooltip("start:Q", title="from"), alt.Tooltip("end:Q", title="to (excl.)"), "playlists:Q"],
        )
        .properties(height=260)
    )


def follower_histogram(followers: pd.DataFrame) -> alt.Chart:
    """Playlists per follower bucket (`followers`, `order`, `playlists`, from explore.follower_histogram)."""
    return (
        alt.Chart(followers)
        .mark_bar(color=DARK_GREY)
        .encode(
            x=alt.X(
                "followers:N",
                sort=alt.SortField("order"),
                title="followers",
                axis=alt.Axis(labelAngle=0, labelOverlap=False),
            ),
            y=alt.Y("playlists:Q", title="playlists"),
            tooltip=["followers:N", "playlists:Q"],
        )
        .properties(height=260)
    )


def top_items(frame: pd.DataFrame, label: str, title: str) -> alt.Chart:
    """Horizontal bars of the most frequent tracks, artists or playlist names (`label` and `count` columns)."""
    return (
        alt.Chart(frame)
        .mark_bar(color=SPOTIFY_GREEN)
        .encode(
            x=alt.X("count:Q", title="playlists" if label != "artist" else "entries"),
            y=alt.Y(f"{label}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=200, labelOverlap=False)),
            tooltip=[f"{label}:N", "count:Q"] + (["artist:N"] if label == "track" else []),
        )
        .properties(height=max(120, 24 * len(frame)), title=title)
    )


# --------------------------------------------------------------------------- training


def training_history(history: Sequence[dict], model: str = "neural") -> alt.HConcatChart | alt.Chart:
    """Loss and validation R-precision per epoch, side by side (rows of `epoch`, `loss`, `val_metric`);
    the loss alone when the run held out no validation playlists (val_metric NaN)."""
    frame = pd.DataFrame(list(history))
    colour = model_colour(model)
    epoch = alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1))
    loss = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(color=colour), color=colour)
        .encode(
            x=epoch,
            y=alt.Y("loss:Q", scale=alt.Scale(zero=False)),
            tooltip=["epoch:Q", alt.Tooltip("loss:Q", format=".4f")],
        )
        .properties(title="Training loss", height=240)
    )
    if not frame["val_metric"].notna().any():
        return loss
    validation = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(color=DARK_GREY), color=DARK_GREY)
        .encode(
            x=epoch,
            y=alt.Y("val_metric:Q", title="validation R-precision", scale=alt.Scale(zero=False)),
            tooltip=["epoch:Q", alt.Tooltip("val_metric:Q", format=".4f", title="R-precision")],
        )
        .properties(title="Validation R-precision (held-out playlists)", height=240)
    )
    return alt.hconcat(loss, validation).resolve_scale(y="independent")


def confidence_spread(confidences: pd.DataFrame, uniform: float, order: Sequence[str]) -> alt.LayerChart:
    """The softmax confidence of each rank of the top 15, per model (`model`, `playlist`, `rank`,
    `confidence`, from explore.collapse_report), on a log scale beside 1 / tracks: a collapsed model's
    line lies flat on that floor, a working one starts well above it and falls."""
    order = list(order)
    colours = alt.Color("model:N", scale=model_scale(order), legend=alt.Legend(orient="bottom", title=None))
    lines = (
        alt.Chart(confidences)
        .mark_line(point=True)
        .encode(
            x=alt.X("rank:O", title="rank in the top 15", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("confidence:Q", title="softmax confidence", scale=alt.Scale(type="log")),
            color=colours,
            strokeDash=alt.StrokeDash(  # solid: the country playlist, dashed: the Christmas one
                "playlist:N", scale=alt.Scale(domain=["country", "christmas"], range=[[1, 0], [5, 3]]), legend=None
            ),
            detail="playlist:N",
            tooltip=["model:N", "playlist:N", "rank:O", alt.Tooltip("confidence:Q", format=".5f")],
        )
    )
    floor = (
        alt.Chart(pd.DataFrame({"uniform": [uniform], "label": ["1 / tracks: no preference at all"]}))
        .mark_rule(color=DARK_GREY, strokeDash=[2, 2])
        .encode(y="uniform:Q", tooltip=["label:N", alt.Tooltip("uniform:Q", format=".5f")])
    )
    return (lines + floor).properties(height=300)


# --------------------------------------------------------------------------- evaluation


def metric_bars(overall: pd.DataFrame, metric: str, title: str) -> alt.Chart:
    """One bar per model for one metric column of the overall table (models in the table's order)."""
    order = overall["model"].tolist()
    # four charts share a row: past three models, level labels overlap and Vega-Lite hides every other one
    angle = 0 if len(order) <= 3 else -40
    return (
        alt.Chart(overall[["model", metric]].rename(columns={metric: "value"}))
        .mark_bar()
        .encode(
            x=alt.X("model:N", sort=order, title=None, axis=alt.Axis(labelAngle=angle, labelOverlap=False)),
            y=alt.Y("value:Q", title=title),
            color=alt.Color("model:N", scale=model_scale(order), legend=None),
            tooltip=["model:N", alt.Tooltip("value:Q", format=".4f", title=title)],
        )
        .properties(height=240, title=title)
    )


def per_category_bars(per_category: pd.DataFrame, metric: str, title: str, order: Sequence[str]) -> alt.Chart:
    """Grouped bars: challenge category on x, one bar per model (in `order`), height the metric."""
    categories = list(dict.fromkeys(per_category["category"]))
    return (
        alt.Chart(per_category)
        .mark_bar()
        .encode(
            x=alt.X("category:N", sort=categories, title=None, axis=alt.Axis(labelAngle=-30, labelLimit=160)),
            xOffset=alt.XOffset("model:N", sort=list(order)),
            y=alt.Y(f"{metric}:Q", title=title),
            color=alt.Color("model:N", scale=model_scale(order), legend=alt.Legend(orient="bottom", title=None)),
            tooltip=["category:N", "model:N", alt.Tooltip(f"{metric}:Q", format=".4f"), "cases:Q"],
        )
        .properties(height=320)
    )


# --------------------------------------------------------------------------- genre validation


def feature_importances(table: pd.DataFrame, model: str = "hybrid") -> alt.Chart:
    """How much each feature's splits improved the ranking (LightGBM gain, as a share), largest first."""
    frame = table.assign(share=table["gain"] / max(float(table["gain"].sum()), 1e-12))
    return (
        alt.Chart(frame)
        .mark_bar(color=model_colour(model))
        .encode(
            x=alt.X("share:Q", title="share of the ranking's gain", axis=alt.Axis(format="%")),
            # every feature named in full: Vega-Lite would otherwise drop every other label and cut long ones
            y=alt.Y("feature:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=240)),
            tooltip=["feature:N", alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(title=f"What the {model}'s ranking looks at", height=alt.Step(18))
    )


def genre_matches(summary: pd.DataFrame, models: Sequence[str], genres: Sequence[str], top_n: int) -> alt.Chart:
    """Mean in-genre tracks in the top N per genre and model, beside the base rate a random track would give.

    `summary` has one row per genre and model: `genre`, `model`, `mean_matches`, `expected_by_chance`.
    """
    chance = summary.drop_duplicates("genre")
    bars = pd.concat(
        [
            summary[["genre", "model", "mean_matches"]],
            chance.assign(model=BASE_RATE, mean_matches=chance["expected_by_chance"])[
                ["genre", "model", "mean_matches"]
            ],
        ]
    )
    order = [*models, BASE_RATE]
    return (
        alt.Chart(bars)
        .mark_bar()
        .encode(
            x=alt.X("genre:N", sort=list(genres), title=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("model:N", sort=order),
            y=alt.Y("mean_matches:Q", title=f"matching tracks in top {top_n}", scale=alt.Scale(domain=[0, top_n])),
            color=alt.Color("model:N", scale=model_scale(order), legend=alt.Legend(orient="bottom", title=None)),
            tooltip=["genre:N", "model:N", alt.Tooltip("mean_matches:Q", format=".2f", title="mean matches")],
        )
        .properties(height=320)
    )


def match_distribution(per_playlist: pd.DataFrame, models: Sequence[str], top_n: int) -> alt.Chart:
    """How many playlists got 0, 1, ... top_n in-genre tracks, per model (`model`, `matches` per playlist)."""
    counts = per_playlist.groupby(["model", "matches"]).size().reset_index(name="playlists")
    return (
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X(
                "matches:O", title=f"matching tracks in top {top_n}", scale=alt.Scale(domain=list(range(top_n + 1)))
            ),
            xOffset=alt.XOffset("model:N", sort=list(models)),
            y=alt.Y("playlists:Q"),
            color=alt.Color("model:N", scale=model_scale(models), legend=alt.Legend(orient="bottom", title=None)),
            tooltip=["model:N", "matches:O", "playlists:Q"],
        )
        .properties(height=220)
    )


# --------------------------------------------------------------------------- embeddings


def track_map(points: pd.DataFrame, genres: Sequence[str]) -> alt.LayerChart:
    """A 2-D map of tracks (`x`, `y`, `genre`, `track`, `artist`, `count`, `highlight`), coloured by genre.

    Clicking a legend entry fades the other genres; highlighted tracks (one playlist) are ringed in black.
    """
    domain = [*[g for g in genres if g != "other"], "other"]
    legend = alt.selection_point(fields=["genre"], bind="legend")
    colours = alt.Color(
        "genre:N",
        scale=alt.Scale(domain=domain, range=[genre_colour(g) for g in domain]),
        legend=alt.Legend(title="genre label (click to pick)", orient="right"),
    )
    base = alt.Chart(points).encode(
        x=alt.X("x:Q", axis=None),
        y=alt.Y("y:Q", axis=None),
        tooltip=["track:N", "artist:N", "genre:N", alt.Tooltip("count:Q", title="playlists")],
    )
    dots = (
        base.mark_circle(size=40)
        .encode(color=colours, opacity=alt.condition(legend, alt.value(0.8), alt.value(0.08)))
        .add_params(legend)
    )
    ring = base.transform_filter(alt.datum.highlight).mark_point(size=140, color="black", strokeWidth=2, filled=False)
    return (dots + ring).properties(height=620).interactive()
