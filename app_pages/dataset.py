"""Dataset: choose the playlists (demo, uploaded slices, or a server folder) and look at them."""

import pandas as pd
import streamlit as st

from songrec import charts, explore
from songrec.ui import datasets, widgets

widgets.page_header(
    "Dataset",
    "Which playlists the models learn from: generated demo data, uploaded MPD slices, "
    "or slices from the server's data folder.",
)


def use(load) -> None:
    """Read and switch to new data; a folder or files that cannot be used leave the current data in place."""
    try:
        loaded = load()
    except datasets.DatasetError as exc:
        st.error(f"Not loaded: {exc}. The current dataset is kept.")
        return
    if not datasets.use(loaded):
        st.error("No playlist could be read from those files; the current dataset is kept.")


folders = datasets.data_folders()
sources = ["Demo data", "Upload slices"] + (["Server folder"] if folders else [])
current = {"demo": "Demo data", "upload": "Upload slices", "folder": "Server folder"}[datasets.dataset().kind]
source = st.segmented_control(
    "Source", sources, default=current if current in sources else "Demo data", key="dataset_source", required=True
)

if source == "Demo data":
    st.write(
        "Generated playlists in the MPD format: ten genres, invented artists and songs, Zipf-like "
        "popularity; the same playlists on every run."
    )
    if st.button("Use demo data", disabled=datasets.dataset().kind == "demo"):
        use(datasets.load_demo)

elif source == "Upload slices":
    uploads = st.file_uploader(
        "MPD slice files (.json or .json.gz); several at once",
        type=["json", "gz"],
        accept_multiple_files=True,
        key="slice_upload",
    )
    if st.button("Load uploaded files", type="primary", disabled=not uploads):
        use(lambda: datasets.load_uploads([(f.name, f.getvalue()) for f in uploads]))

elif source == "Server folder":
    name = st.selectbox("Folder in the server's data folder", list(folders))
    folder = folders[name]
    available = len(folder.files)
    count = st.number_input(
        "Files to load",
        min_value=1,
        max_value=available,
        value=min(available, 100),
        help=f"The first files in slice order; {available:,} in this folder.",
    )
    if st.button("Load folder", type="primary"):
        use(lambda: datasets.load_folder(folder, int(count)))
    st.caption("Folders are read only from the data folder the server was started with (SONGREC_DATA_DIR).")

ref, corpus, report = datasets.dataset(), datasets.corpus(), datasets.load_report()

# --------------------------------------------------------------------------- load report
if report.errors:
    st.error(
        f"{len(report.errors)} file{'s' if len(report.errors) != 1 else ''} could not be read "
        f"({len(report.files_read)} loaded). Each problem:"
    )
    st.dataframe(
        pd.DataFrame(
            [{"file": e.file.rsplit("/", 1)[-1], "field": e.field or "–", "problem": e.problem} for e in report.errors]
        ),
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
length = stats["length"]
cols[4].metric(
    "Median length",
    f"{length['median']:.0f}",
    help=f"mean {length['mean']:.1f}, min {length['min']}, max {length['max']}",
)

left, right = st.columns(2)
with left:
    st.markdown("**Playlist length**")
    st.altair_chart(charts.length_histogram(explore.length_histogram(corpus)), width="stretch")
with right:
    st.markdown("**Followers**")
    st.altair_chart(charts.follower_histogram(explore.follower_histogram(corpus)), width="stretch")

tops = [
    (pd.DataFrame(stats["top_tracks"]), "track", "Top tracks"),
    (pd.DataFrame(stats["top_artists"]), "artist", "Top artists"),
    (pd.DataFrame(stats["top_names"]), "name", "Top playlist names"),
]
for column, (frame, label, title) in zip(st.columns(3), tops, strict=True):
    with column:
        if len(frame):
            st.altair_chart(charts.top_items(frame, label, title), width="stretch")

# --------------------------------------------------------------------------- browser
st.subheader("Playlist browser")
query = st.text_input("Search playlist names", key="browse_query", placeholder="e.g. country")
found = explore.search_playlists(corpus, query, limit=500)
st.caption(
    f"{len(found):,} playlist{'s' if len(found) != 1 else ''} shown"
    + (" (first 500)" if len(found) == 500 else "")
    + " — click a row to see its tracks."
)
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
