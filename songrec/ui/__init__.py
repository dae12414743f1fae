"""The Streamlit app's helpers. `songrec.ui.state` imports streamlit; nothing else in songrec imports this package."""
