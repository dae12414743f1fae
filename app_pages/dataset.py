"""Dataset: choose the playlists (demo, uploaded slices, or a server folder) and look at them."""

import altair as alt
import pandas as pd
import streamlit as st

from songrec import explore
from songrec.ui import state

state.page_header("Dataset", "Which playlists the models learn from: generated demo data, uploaded MPD slices, "
                  "or slices from the server's data folder.")



def use(loaded) -> None:
    """Switch to newly read data, unless no playlist could be read (then keep the current data)."""
    ref, data, report = loaded
    if data.n_playlists == 0:
        st.error("No playlist could be read from those files; the current dataset is kept.")
        st.session_state["load_report"] = report
    else:
        state.set_dataset(ref, data, report)


folders = state.data_folders()
sources = ["Demo data", "Upload slices"] + (["Server folder"] if folders else [])
current = {"demo": "Demo data", "upload": "Upload slices", "folder": "Server folder"}[state.dataset().kind]
source = st.segmented_control("Source", sources, default=current if current in sources else "Demo data",
                              key="dataset_source", required=True)

if source == "Demo data":
    st.write("Generated playlists in the MPD format: ten genres, invented artists and songs, Zipf-like "
             "popularity; the same playlists on every run.")
    if st.button("Use demo data", disabled=state.dataset().kind == "demo"):
        use(state.load_demo())

elif source == "Upload slices":
    uploads = st.file_uploader(
        "MPD slice files (.json or .json.gz); several at once",
        type=["json", "gz"],
        accept_multiple_files=True,
        key="slice_upload",
    )
    if st.button("Load uploaded files", type="primary", disabled=not uploads):
        use(state.load_uploads([(f.name, f.getvalue()) for f in uploads]))

elif source == "Server folder":
    names = list(folders)
    name = st.selectbox("Folder in the server's data folder", names)
    available = len([p for p in folders[name].iterdir() if p.name.endswith((".json", ".json.gz"))])
    count = st.number_input("Files to load", min_value=1, max_value=available, value=min(available, 100),
                            help=f"The first files in slice order; {available:,} in this folder.")
    if st.button("Load folder", type="primary"):
        use(state.load_folder(folders[name], int(count)))
    st.caption("Folders are read only from the data folder the server was started with (SONGREC_DATA_DIR).")

ref, corpus, report = state.dataset(), state.corpus(), state.load_report()

# --------------------------------------------------------------------------- load report
if report.errors:
    st.error(f"{len(report.errors)} file{'s' if len(report.errors) != 1 else ''} could not be read "
             f"({len(report.files_read)} loaded). Each problem:")
    st.dataframe(
        pd.DataFrame([{"file": e.file.rsplit('/', 1)[-1], "field": e.field or "–", "problem": e.problem}
                      for e in report.errors]),
        hide_index=True,
    )
if report.warnings:
    with st.expander(f"{len(report.warnings)} warning{'s' if len(report.warnings) != 1 else ''}"):
        st.write("\n".join(f"- {w}" for w in report.warnings[:200]))

# --------------------------------------------------------------------------- overview
st.subheader(ref.name)
stats = corpus.stats(top=12)
cols = st.columns(5)
cols[0].metric("Playlists", f"{stats['playlists']:,}")
cols[1].metric("Track entries", f"{stats['entries']:,}")
cols[2].metric("Unique tracks", f"{stats['unique_tracks']:,}")
cols[3].metric("Artists", f"{stats['unique_artists']:,}")
cols[4].metric("Median length", f"{stats['length']['median']:.0f}", help=f"mean {stats['length']['mean']:.1f}, "
               f"min {stats['length']['min']}, max {stats['length']['max']}")

left, right = st.columns(2)
with left:
    st.markdown("**Playlist length**")
    lengths = explore.length_histogram(corpus)
    st.altair_chart(
        alt.Chart(lengths).mark_bar(color="#1DB954").encode(
            x=alt.X("start:Q", bin="binned", title="tracks in playlist"),
            x2="end:Q",
            y=alt.Y("playlists:Q", title="playlists"),
            tooltip=[alt.Tooltip("start:Q", title="from"), alt.Tooltip("end:Q", title="to (excl.)"), "playlists:Q"],
        ).properties(height=260),
        width="stretch",
    )
with right:
    st.markdown("**Followers**")
    followers = explore.follower_histogram(corpus)
    st.altair_chart(
        alt.Chart(followers).mark_bar(color="#535353").encode(
            x=alt.X("followers:N", sort=alt.SortField("order"), title="followers",
                    axis=alt.Axis(labelAngle=0, labelOverlap=False)),
            y=alt.Y("playlists:Q", title="playlists"),
            tooltip=["followers:N", "playlists:Q"],
        ).properties(height=260),
        width="stretch",
    )


def top_chart(frame: pd.DataFrame, label: str, title: str) -> alt.Chart:
    return alt.Chart(frame).mark_bar(color="#1DB954").encode(
        x=alt.X("count:Q", title="playlists" if label != "artist" else "entries"),
        y=alt.Y(f"{label}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=200, labelOverlap=False)),
        tooltip=[f"{label}:N", "count:Q"] + (["artist:N"] if label == "track" else []),
    ).properties(height=max(120, 24 * len(frame)), title=title)


cols = st.columns(3)
charts = [
    (pd.DataFrame(stats["top_tracks"]), "track", "Top tracks"),
    (pd.DataFrame(stats["top_artists"]), "artist", "Top artists"),
    (pd.DataFrame(stats["top_names"]), "name", "Top playlist names"),
]
for column, (frame, label, title) in zip(cols, charts, strict=True):
    with column:
        if len(frame):
            st.altair_chart(top_chart(frame, label, title), width="stretch")

# --------------------------------------------------------------------------- browser
st.subheader("Playlist browser")
query = st.text_input("Search playlist names", key="browse_query", placeholder="e.g. country")
found = explore.search_playlists(corpus, query, limit=500)
st.caption(f"{len(found):,} playlist{'s' if len(found) != 1 else ''} shown"
           + (" (first 500)" if len(found) == 500 else "") + " — click a row to see its tracks.")
selection = st.dataframe(
    found.drop(columns=["row"]),
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="browse_table",
    height=260,
)
picked = selection.selection.rows if selection is not None else []
if picked:
    row = int(found["row"].iat[picked[0]])
    st.markdown(f"**{explore.playlist_label(corpus, row)}**")
    st.dataframe(explore.tracks_table(corpus, corpus.playlist_tracks(row)), hide_index=True, height=300)
