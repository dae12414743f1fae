"""Train: the neural model (live loss curve, stop button, best epoch kept), baselines, checkpoints."""

import altair as alt
import pandas as pd
import streamlit as st

from songrec.config import DataSettings, NetworkSettings, TrainSettings
from songrec.models import model_names
from songrec.ui import state

state.page_header("Train", "Fit the neural model with the notebook's settings (and a few more), or the baselines it "
                  "has to beat. Training runs in the background: you can watch it here, stop it, or use other pages.")

corpus, ref = state.corpus(), state.dataset()
files = list(dict.fromkeys(corpus.playlists["file"].tolist()))
job = state.train_job()
running = job is not None and job.running

from songrec.models.network import available_devices, pick_device  # noqa: E402  (imports torch: after the header)

devices = available_devices()
saved = {**NetworkSettings().as_dict(), **TrainSettings().as_dict(), **DataSettings().as_dict(),
         **(st.session_state.get("train_settings") or {})}
default_device = saved.get("device") if saved.get("device") in devices else pick_device("auto").type

st.subheader("Neural model")
with st.form("train_form"):
    c = st.columns(4)
    learning_rate = c[0].number_input("Learning rate", 1e-5, 1.0, float(saved["learning_rate"]), step=1e-4,
                                      format="%.4f")
    max_files = c[1].number_input("Files to load", 0, len(files), min(int(saved["max_files"]), len(files)),
                                  help=f"Train on the playlists of the first N of the {len(files)} loaded files "
                                       "(0 = all).")
    targets = c[2].number_input("Targets per playlist", 1, 1000, int(saved["targets_per_playlist"]),
                                help="Withheld tracks scored per playlist and step (the notebook's 'training sets').")
    epochs = c[3].number_input("Epochs", 1, 500, int(saved["epochs"]))
    c = st.columns(4)
    embedding_dim = c[0].number_input("Embedding size", 4, 1024, int(saved["embedding_dim"]), step=8)
    hidden_dim = c[1].number_input("Hidden size", 4, 4096, int(saved["hidden_dim"]), step=8)
    batch_size = c[2].number_input("Batch size", 1, 8192, int(saved["batch_size"]))
    dropout = c[3].slider("Dropout", 0.0, 0.9, float(saved["dropout"]), step=0.05)
    c = st.columns(5)
    min_track_count = c[0].number_input("Min track count", 1, 1000, int(saved["min_track_count"]),
                                        help="Tracks in fewer playlists are not scored by the network.")
    members = c[1].number_input("Networks", 1, 8, int(saved["members"]),
                                help="Networks trained side by side from different random starts; their averaged "
                                     "scores rank tracks (1 = one network, as in the notebook).")
    seed = c[2].number_input("Seed", 0, 2**31 - 1, int(saved["seed"]))
    device = c[3].selectbox("Device", devices, index=devices.index(default_device) if default_device in devices else 0,
                            help="Devices this server's torch can use.")
    submitted = c[4].form_submit_button("Train neural model", type="primary", disabled=running, width="stretch")

if submitted and not running:
    chosen = dict(learning_rate=float(learning_rate), max_files=int(max_files), targets_per_playlist=int(targets),
                  epochs=int(epochs), embedding_dim=int(embedding_dim), hidden_dim=int(hidden_dim),
                  batch_size=int(batch_size), dropout=float(dropout), min_track_count=int(min_track_count),
                  members=int(members), seed=int(seed), device=str(device))
    data = DataSettings(max_files=chosen.pop("max_files"))
    st.session_state["train_settings"] = {**chosen, "max_files": data.max_files}
    train_corpus = corpus
    if 0 < data.max_files < len(files):
        train_corpus = corpus.subset(corpus.rows_from_files(files[: data.max_files]))
    job = state.start_training(chosen, train_corpus)
    running = True


def history_chart(history: list[dict]) -> alt.Chart:
    frame = pd.DataFrame(history)
    loss = alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(color="#1DB954"), color="#1DB954").encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)), y=alt.Y("loss:Q", scale=alt.Scale(zero=False)),
        tooltip=["epoch:Q", alt.Tooltip("loss:Q", format=".4f")],
    ).properties(title="Training loss", height=240)
    val = alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(color="#535353"), color="#535353").encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("val_metric:Q", title="validation R-precision", scale=alt.Scale(zero=False)),
        tooltip=["epoch:Q", alt.Tooltip("val_metric:Q", format=".4f", title="R-precision")],
    ).properties(title="Validation R-precision (held-out playlists)", height=240)
    return alt.hconcat(loss, val).resolve_scale(y="independent")


@st.fragment(run_every=1.0 if running else None)
def training_view(polling: bool) -> None:
    job = state.train_job()
    if job is None:
        st.info("No neural model trained in this session yet. Pick settings above and press **Train neural model**.")
        return
    model = job.model
    status = job.status  # read once: the thread may finish while this view draws
    if status in ("pending", "running"):
        st.progress(job.fraction, text=job.describe())
        if st.button("Stop training", icon=":material/stop_circle:", disabled=job.stopping):
            job.stop()
            st.toast("Stopping after the current step; the best epoch so far is kept.")
    elif polling:
        st.rerun()  # the job just ended: redraw the whole app (sidebar, model list)
    history = list(model.history)
    if history:
        st.altair_chart(history_chart(history), width="content")
        table = pd.DataFrame(history).rename(columns={"val_metric": "validation R-precision"})
        with st.expander("Per-epoch numbers"):
            st.dataframe(table, hide_index=True)
    if status in ("done", "stopped"):
        best = f"best epoch {model.best_epoch} (validation R-precision {model.best_val_metric:.4f}) kept" \
            if model.best_epoch else "stopped before the first epoch ended: the weights are the partly trained ones"
        st.success(f"{'Trained' if status == 'done' else 'Stopped after'} {model.epochs_trained} epoch"
                   f"{'s' if model.epochs_trained != 1 else ''} in {job.seconds:.1f} s on {model.device.type}; {best}.")
    elif status == "failed":
        st.error(f"Training failed — {job.error}")
        with st.expander("Details"):
            st.code(job.details or "")


training_view(running)

# --------------------------------------------------------------------------- baselines
st.subheader("Baselines")
st.caption("The floors the neural model must clear. Popularity recommends the same hits to everyone; item-kNN "
           "recommends tracks that share playlists with the seeds.")
kinds = [k for k in model_names() if k != "neural"]
cols = st.columns(max(len(kinds), 1))
for column, kind in zip(cols, kinds, strict=False):
    with column:
        entry = state.models().get(kind)
        fitted = entry is not None and entry.dataset_key == ref.key
        if st.button(f"{'Refit' if fitted else 'Fit'} {kind}", key=f"fit_{kind}", width="stretch"):
            try:
                entry = state.fit_baseline(kind)
                fitted = True
            except Exception as exc:  # a model still being written must not take the page down
                st.error(f"{kind} could not be fitted: {type(exc).__name__}: {exc}")
        if fitted:
            st.caption(f"fitted in {entry.seconds:.1f} s")

# --------------------------------------------------------------------------- checkpoints
st.subheader("Checkpoints")
left, right = st.columns(2)
with left:
    entries = state.models()
    if entries:
        label = st.selectbox("Model to download", list(entries), index=len(entries) - 1 if "neural" not in entries
                             else list(entries).index("neural"))
        model = entries[label].model
        st.download_button(
            "Download checkpoint (.safetensors)",
            data=lambda model=model: state.checkpoint_bytes(model),
            file_name=f"songrec-{entries[label].kind}.safetensors",
            mime="application/octet-stream",
            on_click="ignore",
            icon=":material/download:",
        )
        st.caption("safetensors arrays plus a JSON header: no pickle, safe to share.")
    else:
        st.caption("Fit or train a model to download its checkpoint.")
with right:
    upload = st.file_uploader("Load a checkpoint", key="checkpoint_upload",
                              help="A .safetensors file saved by songrec (app or CLI). Anything else is refused.")
    if upload is not None and st.button("Load checkpoint"):
        from songrec.checkpoint import CheckpointError

        try:
            entry = state.load_checkpoint_upload(upload.name, upload.getvalue())
        except CheckpointError as exc:
            st.error(f"Not loaded: {exc}")
        else:
            state.add_model(entry)
            st.success(f"Loaded {entry.describe()}; its tracks are matched to this dataset by Spotify URI.")
