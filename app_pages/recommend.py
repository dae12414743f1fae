"""Recommend: continue a dataset playlist (its later tracks held out and checked) or one you build."""

import numpy as np
import streamlit as st

from songrec import explore
from songrec.ui import datasets, models, session, widgets

widgets.page_header(
    "Recommend",
    "Pick a playlist from the dataset — the model is given its first tracks and we check "
    "its suggestions against the rest — or build your own from a title and some tracks.",
)

corpus = datasets.corpus()
entries = models.models()

if not entries:
    st.info("No model fitted yet. Fit a quick baseline here, or train the neural model on the **Train** page.")
    cols = st.columns(3)
    if cols[0].button("Fit popularity"):
        models.fit_baseline("popularity")
    if cols[1].button("Fit item-kNN", type="primary"):
        models.fit_baseline("itemknn")
    entries = models.models()
    if not entries:
        st.stop()

c = st.columns([2, 1, 2])
label = c[0].selectbox("Model", models.ordered_labels(), format_func=models.describer())
top_n = c[1].number_input("Recommendations", 5, 500, 20, step=5)
mode = c[2].segmented_control(
    "Playlist", ["From the dataset", "Build your own"], default="From the dataset", key="recommend_mode", required=True
)
model = models.usable_models()[label]


def table_height(rows: int) -> int:
    return min(38 + 35 * rows, 760)


REASON = st.column_config.TextColumn(
    "Why this song", help="The seeds this track shares most playlists with (or what the model itself says)."
)


def show_recommendations(table) -> None:
    config = {
        "rank": st.column_config.NumberColumn("#", width=40),
        "score": st.column_config.Column(
            "score", width=70, help="The model's score; – for fill-ins (title model, popularity)."
        ),
        "hit": st.column_config.TextColumn(
            "held out", width=70, help="✓: one of the playlist's held-out tracks — a right guess."
        ),
        "source": st.column_config.TextColumn(
            "from",
            width="small",
            help="model: scored by the model; fill-in: "
            "title model or popularity, when the model has nothing more to say.",
        ),
        "track": st.column_config.TextColumn("track"),
        "artist": st.column_config.TextColumn("artist"),
        "reason": REASON,
    }
    first = ["rank", "hit", "score"] if "hit" in table else ["rank", "score"]
    shown = table[first + ["track", "artist", "reason", "source"]]
    styled = widgets.marked(shown, "hit" if "hit" in shown else None, formats={"score": "{:.4f}"})
    st.dataframe(styled, hide_index=True, column_config=config, height=table_height(len(shown)))


def exports(table, seeds, pid: int, name: str) -> None:
    """Download the recommendations as CSV, and the playlist continued by them as an MPD slice."""
    stem = f"songrec-{explore.file_stem(name)}-{models.models()[label].kind}"
    c = st.columns(2)
    c[0].download_button(
        "Recommendations as CSV",
        explore.table_csv(table),
        file_name=f"{stem}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="export_csv",
        width="stretch",
        help="The table above: rank, track, artist, score, reason and Spotify URI per recommendation.",
    )
    c[1].download_button(
        "Playlist as MPD JSON",
        explore.playlist_slice(corpus, seeds, table, title=name, pid=pid, model_name=label),
        file_name=f"{stem}.json",
        mime="application/json",
        on_click="ignore",
        icon=":material/download:",
        key="export_slice",
        width="stretch",
        help="The seeds, then the recommendations in rank order, as a one-playlist slice of the Million Playlist "
        "Dataset's format: any MPD tool reads it, and so does songrec (Dataset page, Upload slices).",
    )


def compare(seeds, title: str | None, truth=None) -> None:
    """Two models, one playlist: a second model's list beside the first for the same seeds."""
    st.subheader("Two models, one playlist")
    others = [other for other in models.ordered_labels() if other != label]
    if not others:
        st.caption("Fit or train a second model (Train page) to see its list beside this one.")
        return
    other = st.selectbox("Second model", others, format_func=models.describer(), key="compare_model")
    both = explore.side_by_side(model, models.usable_models()[other], corpus, seeds, title, int(top_n), truth)
    m = st.columns(4)
    m[0].metric("In both lists", f"{both.shared} of {int(top_n)}")
    if both.hits is not None:
        m[1].metric(f"Held out found by {label}", both.hits[0])
        m[2].metric(f"Held out found by {other}", both.hits[1])
    st.caption(
        "Green: in both lists" + ("; ✓ held out: one of the playlist's held-out tracks." if truth is not None else ".")
    )
    config = {
        "rank": st.column_config.NumberColumn("#", width="small"),
        "hit": st.column_config.TextColumn("held out", width="small"),
        "in both": st.column_config.TextColumn("both", width="small"),
    }
    columns = [c for c in ["rank", "in both", "hit", "track", "artist"] if c in both.left]
    for column, (name, side) in zip(st.columns(2), [(label, both.left), (other, both.right)], strict=True):
        with column:
            st.markdown(f"**{name}**")
            st.dataframe(
                widgets.marked(side[columns], "in both", checks=["hit"]),
                hide_index=True,
                column_config=config,
                height=table_height(len(side)),
            )


if mode == "From the dataset":
    query = st.text_input("Search playlist names", key="recommend_query", placeholder="e.g. christmas")
    found = explore.search_playlists(corpus, query, limit=None)
    found = found[found["tracks"] >= 2]
    if found.empty:
        st.warning("No playlist with two or more tracks matches that name.")
        st.stop()
    shown = f"{len(found):,} match{'es' if len(found) != 1 else ''}"
    shown += ", first 500 listed" if len(found) > 500 else ""
    found = found.head(500)
    row = st.selectbox(
        f"Playlist ({shown})",
        found["row"].tolist(),
        format_func=lambda r: explore.playlist_label(corpus, r),
        key="recommend_row",
    )
    length = int(corpus.lengths()[row])
    c = st.columns([2, 1])
    n_seeds = (
        c[0].slider("Seed tracks (the first K; the rest are held out)", 1, max(1, length - 1), min(10, length - 1))
        if length > 2
        else 1
    )
    use_title = c[1].checkbox("Give the model the title", value=True)
    seeds, truth = explore.holdout(corpus, row, n_seeds)
    if entries[label].dataset_key == datasets.dataset().key:
        st.caption(
            "This model was fitted on this dataset, this playlist included, so it has seen the held-out "
            "tracks: hits here look better than on new playlists. The **Evaluation** page holds playlists "
            "out before fitting."
        )
    title = str(corpus.playlists["name"].iat[row]) if use_title else None
    table = explore.recommendation_table(model, corpus, seeds, title, int(top_n), truth)
    scores = explore.holdout_scores(table["id"].to_numpy(), truth)
    m = st.columns(4)
    m[0].metric("Seeds given", len(seeds))
    m[1].metric("Held-out tracks", len(truth))
    m[2].metric(
        f"Found in top {int(top_n)}",
        f"{scores['hits']}",
        help="Recommendations that are among the playlist's held-out tracks.",
    )
    m[3].metric(
        "R-precision",
        f"{scores['r_precision']:.3f}" if np.isfinite(scores["r_precision"]) else "–",
        help="Share of the held-out tracks found among the first |held-out| recommendations "
        "(only the shown list counts).",
    )
    with st.expander(f"Seeds ({len(seeds)}) and held-out tracks ({len(truth)}) — ✓ green: found in the top list"):
        playlist = explore.tracks_table(corpus, corpus.playlist_tracks(row))[["#", "track", "artist"]]
        playlist.insert(1, "role", ["seed" if i < n_seeds else "held out" for i in range(len(playlist))])
        found_ids = set(table.loc[table["hit"], "id"].tolist())
        playlist.insert(2, "found", [t in found_ids for t in corpus.playlist_tracks(row)])
        st.dataframe(
            widgets.marked(playlist, "found"),
            hide_index=True,
            height=table_height(len(playlist)),
            column_config={
                "#": st.column_config.NumberColumn("#", width=40),
                "role": st.column_config.TextColumn("role", width=80),
                "found": st.column_config.TextColumn("✓", width=40, help="Recommended in the top list."),
            },
        )
    st.markdown(f"**Top {int(top_n)} from {label}** — ✓ green: a held-out track of the playlist, found")
    show_recommendations(table)
    exports(table, seeds, int(corpus.playlists["pid"].iat[row]), str(corpus.playlists["name"].iat[row]))
    compare(seeds, title, truth)

else:
    key = datasets.dataset().key  # track ids mean nothing in another dataset
    widget_key = f"custom_tracks:{key}"
    store: list[int] = session.current().results.setdefault(f"custom_seeds:{key}", [])
    if widget_key not in st.session_state:  # Streamlit drops a widget's state on runs that do not draw it
        st.session_state[widget_key] = list(store)
    title = st.text_input("Playlist title (optional)", key="custom_title", placeholder="e.g. road trip country")
    query = st.text_input("Search tracks or artists to add", key="track_query", placeholder="e.g. whiskey")
    found = explore.search_tracks(corpus, query, limit=50)
    # The picks stay in the options, after the search results, so a pick never changes the options' order.
    options = list(dict.fromkeys(found["id"].astype(int).tolist() + store))
    st.multiselect(
        "Tracks in your playlist",
        options,
        key=widget_key,
        format_func=lambda t: explore.track_label(corpus, t),
        placeholder="Search above, then pick tracks here",
    )
    store[:] = chosen = [int(t) for t in st.session_state[widget_key]]
    if query and found.empty:
        st.caption("No track or artist matches that search.")
    if not chosen and not title.strip():
        st.info("Give a title, some tracks, or both.")
        st.stop()
    table = explore.recommendation_table(model, corpus, chosen, title.strip() or None, int(top_n))
    described = f"Your playlist ({len(chosen)} track{'s' if len(chosen) != 1 else ''})" + (
        f" — “{title.strip()}”" if title.strip() else ""
    )
    if not chosen:
        st.caption("Title only: the tracks come from training playlists with the same name or its words.")
    else:
        with st.expander(described):
            st.dataframe(explore.tracks_table(corpus, chosen)[["#", "track", "artist", "playlists"]], hide_index=True)
    st.markdown(f"**Top {int(top_n)} from {label}** for {described[0].lower()}{described[1:]}")
    show_recommendations(table)
    exports(table, chosen, 0, title.strip() or "my playlist")
    compare(chosen, title.strip() or None)
