"""Genre validation: for country, hip-hop and christmas playlists, how many of a model's top 15 stay in genre."""

import numpy as np
import pandas as pd
import streamlit as st

from songrec import charts, explore
from songrec.genres import DEFAULT_KEYWORDS, example_table, genre_match_counts, parse_keywords
from songrec.ui import cached, datasets, models, session, widgets

widgets.page_header(
    "Genre validation",
    "Playlists named for a genre (by keywords) seed each model with their first tracks — never their title. A track's "
    "genre is the genre it appears under most often. We count how many of the top recommendations carry the "
    "playlist's genre, beside the popularity baseline and the share a random track would have (base rate). "
    "A playlist's own vote is left out of the labels of its recommendations.",
)

corpus, ref = datasets.corpus(), datasets.dataset()
keywords = cached.keywords()

with (
    st.expander("Genre keywords (whole words of the playlist name, comma separated)"),
    st.form("keywords_form", border=False),
):
    cols = st.columns(len(keywords))
    edited = {
        genre: parse_keywords(col.text_input(genre, ", ".join(words), key=f"kw_{genre}"))
        for col, (genre, words) in zip(cols, keywords.items(), strict=True)
    }
    apply, reset = st.columns([1, 6])
    if apply.form_submit_button("Apply", type="primary"):
        cached.set_keywords(edited)
        keywords = edited
    if reset.form_submit_button("Reset to defaults"):
        cached.set_keywords(DEFAULT_KEYWORDS)
        for genre in DEFAULT_KEYWORDS:
            st.session_state.pop(f"kw_{genre}", None)
        st.rerun()

c = st.columns(3)
top_n = int(c[0].number_input("Top N recommendations", 5, 100, 15))
n_seeds = int(c[1].number_input("Seed tracks (first K of each playlist)", 1, 100, 10))
max_playlists = int(
    c[2].number_input(
        "Playlists per genre (at most)", 10, 5000, 300, step=50, help="A seeded random sample when a genre has more."
    )
)

models.ensure_baseline("popularity")
entries = models.models()
usable = models.usable_models()
order = models.ordered_labels()
chosen = st.multiselect("Models", order, default=order)
if "popularity" not in chosen:
    chosen.append("popularity")
if not any(entry.kind == "neural" for entry in entries.values()):
    st.caption("No neural model yet: train one on the **Train** page to see how it compares.")

kw_key = cached.keywords_key(keywords)
labels = cached.genre_labels(ref.key, kw_key, corpus)
params = (ref.key, kw_key, top_n, n_seeds, max_playlists)
cache = session.current().results.setdefault("genre_results", {})
results = {}
missing = [m for m in chosen if (params, models.model_token(m)) not in cache]
bar = st.progress(0.0, text="Scoring genre playlists…") if missing else None
for i, label in enumerate(chosen):
    key = (params, models.model_token(label))
    if key not in cache:
        cache[key] = {
            genre: genre_match_counts(
                usable[label],
                corpus,
                genre,
                keywords,
                n=top_n,
                n_seeds=n_seeds,
                max_playlists=max_playlists,
                model_name=label,
                labels=labels,
            )
            for genre in keywords
        }
        bar.progress((i + 1) / len(chosen), text=f"Scored {label}")
    results[label] = cache[key]
if bar is not None:
    bar.empty()
while len(cache) > 32:  # scores of earlier settings: keep the recent ones only
    del cache[next(iter(cache))]

genres = list(keywords)
summary = pd.DataFrame([results[m][g].summary() for g in genres for m in chosen])
if summary.empty or summary["playlists"].sum() == 0:
    st.warning("No playlist in this dataset is named for these genres. Edit the keywords above or load other data.")
    st.stop()

# --------------------------------------------------------------------------- overview
st.subheader(f"Matches in the top {top_n}, averaged over each genre's playlists")
st.altair_chart(charts.genre_matches(summary, chosen, genres, top_n), width="stretch")
table = summary.assign(
    share=summary["mean_share"].map(widgets.percent),
    base_rate=summary["base_rate"].map(widgets.percent),
)[["genre", "model", "playlists", "mean_matches", "share", "expected_by_chance", "base_rate"]]
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "mean_matches": st.column_config.NumberColumn(f"mean matches / {top_n}", format="%.2f"),
        "share": "share in genre",
        "expected_by_chance": st.column_config.NumberColumn("expected by chance", format="%.2f"),
        "base_rate": st.column_config.TextColumn("base rate", help="Share of the dataset's tracks with this label."),
    },
)

# --------------------------------------------------------------------------- per playlist
st.subheader("Per playlist")
tabs = st.tabs([f"{g} ({results[chosen[0]][g].per_playlist.shape[0]} playlists)" for g in genres])
for tab, genre in zip(tabs, genres, strict=True):
    with tab:
        per = pd.concat([results[m][genre].per_playlist.assign(model=m) for m in chosen])
        if per.empty:
            st.caption(f"No playlist named for {genre}.")
            continue
        st.altair_chart(charts.match_distribution(per, chosen, top_n), width="stretch")
        wide = per.pivot_table(index=["pid", "name"], columns="model", values="matches").reset_index()
        wide = wide[["pid", "name", *[m for m in chosen if m in wide]]]
        st.dataframe(wide, hide_index=True, height=220)

# --------------------------------------------------------------------------- examples
st.subheader("Three example playlists")
example_model = st.selectbox("Recommendations of", chosen, format_func=models.describer())
tabs = st.tabs(genres)
for tab, genre in zip(tabs, genres, strict=True):
    with tab:
        result = results[example_model][genre]
        per = result.per_playlist
        if per.empty:
            st.caption(f"No playlist named for {genre}.")
            continue
        picks = sorted(set(np.linspace(0, len(per) - 1, num=min(3, len(per))).round().astype(int).tolist()))
        cols = st.columns(len(picks))
        for column, position in zip(cols, picks, strict=True):
            with column:
                row = int(per["row"].iat[position])
                st.markdown(
                    f"**{per['name'].iat[position]}** · pid {per['pid'].iat[position]}  \n"
                    f"{per['matches'].iat[position]} of {top_n} in genre"
                )
                seeds = explore.tracks_table(corpus, corpus.playlist_tracks(row)[:n_seeds])
                with st.expander(f"{len(seeds)} seed tracks"):
                    st.dataframe(seeds[["track", "artist"]], hide_index=True)
                example = example_table(corpus, result, position)[["match", "track", "genre label"]]
                st.dataframe(
                    widgets.marked(example, "match"),
                    hide_index=True,
                    column_config={"match": st.column_config.TextColumn("", width="small")},
                    height=38 + 35 * top_n,
                )
