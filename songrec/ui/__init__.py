"""The Streamlit app's parts (sessions, datasets, models, training jobs, caches, widgets): the only part of
songrec that imports Streamlit; nothing else in songrec imports this package."""
