"""songrec's Streamlit app: `streamlit run app.py`. A thin router around the pages in app_pages/.

The folder is not called pages/: that name turns on Streamlit's older page discovery, which on a
fresh server (and in AppTest) runs a deep-linked page script without this router and its sidebar.
"""

import streamlit as st

from songrec.ui import datasets, training, widgets

st.set_page_config(page_title="songrec", page_icon=":material/queue_music:", layout="wide")

PAGES = [
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/dataset:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/recommend.py", title="Recommend", icon=":material/playlist_add:"),
    st.Page("app_pages/genres.py", title="Genre validation", icon=":material/category:"),
    st.Page("app_pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    st.Page("app_pages/evaluation.py", title="Evaluation", icon=":material/leaderboard:"),
]

page = st.navigation(PAGES)
datasets.ensure_dataset()
training.collect_training()
sidebar = st.sidebar.empty()
with sidebar.container():
    widgets.sidebar()
page.run()
with sidebar.container():  # again after the page, to show what it just loaded or fitted (skipped on st.stop)
    widgets.sidebar()
