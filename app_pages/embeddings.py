"""Embeddings: a t-SNE map of the most frequent tracks, coloured by genre, one playlist highlighted."""

import numpy as np
import streamlit as st

from songrec import charts, explore
from songrec.genres import MORE_KEYWORDS
from songrec.projection import model_embeddings, with_genres
from songrec.ui import cached, datasets, models, widgets

widgets.page_header(
    "Embeddings",
    "Tracks that the model places close together should be ones that share playlists. "
    "t-SNE squeezes the learned vectors of the most frequent tracks into two dimensions.",
)

corpus, ref = datasets.corpus(), datasets.dataset()
SVD = "SVD of the playlist-track matrix (no training needed)"
sources = [*models.labels_where(lambda model: hasattr(model, "track_embeddings")), SVD]
if len(sources) == 1:
    st.caption(
        "No trained neural model yet, so the map shows plain co-occurrence vectors (an SVD). Train the neural "
        "model on the **Train** page to map its learned embeddings."
    )

with st.form("tsne_form"):
    c = st.columns([3, 2, 2, 2])
    source = c[0].selectbox("Vectors", sources, format_func=models.describer())
    n_tracks = c[1].number_input("Most frequent tracks (N)", 50, 5000, 1000, step=50)
    perplexity = c[2].slider("Perplexity", 2, 100, 30)
    more = c[3].checkbox(
        "Label more genres",
        value=True,
        help="Also rock, pop, edm, indie, latin, jazz and classical, besides the three validated.",
    )
    st.form_submit_button("Draw map", type="primary")

if source == SVD:
    ids, vectors = cached.svd_vectors(ref.key, corpus)
    token = f"svd:{ref.key}"
else:
    try:
        ids, vectors = model_embeddings(models.usable_models()[source], corpus)
    except ValueError as exc:
        st.error(str(exc))
        st.stop()
    token = models.model_token(source)

if len(ids) < 4:
    st.warning("Too few tracks with embeddings to draw a map.")
    st.stop()

with st.spinner(f"t-SNE of {min(int(n_tracks), len(ids)):,} tracks…"):
    projection = cached.tsne_map(token, int(n_tracks), float(perplexity), ids, vectors, corpus)

keywords = {**cached.keywords(), **(MORE_KEYWORDS if more else {})}
points = with_genres(projection, cached.genre_labels(ref.key, cached.keywords_key(keywords), corpus).tracks)

query = st.text_input("Highlight a playlist (search by name)", key="embed_query", placeholder="e.g. country")
highlight = np.zeros(len(points), dtype=bool)
found = explore.search_playlists(corpus, query, limit=300) if query else None
if found is not None:
    if found.empty:
        st.caption("No playlist matches that name.")
    else:
        row = st.selectbox("Playlist", found["row"].tolist(), format_func=lambda r: explore.playlist_label(corpus, r))
        highlight = np.isin(points["track_id"].to_numpy(), corpus.playlist_tracks(row))
        st.caption(
            f"{int(highlight.sum())} of its {corpus.lengths()[row]} tracks are among the mapped tracks "
            "(ringed in black)."
        )
points = points.assign(highlight=highlight)

genres = [g for g in keywords if (points["genre"] == g).any()]
st.altair_chart(charts.track_map(points, genres), width="stretch")
st.caption(
    f"{len(points):,} most frequent of {len(ids):,} tracks with vectors · perplexity {perplexity} · scroll to "
    "zoom, drag to pan, hover for the track · colour: the genre a track appears under most often."
)
