"""Train: the neural model (live loss curve, stop button, best epoch kept), baselines, checkpoints."""

import pandas as pd
import streamlit as st

from songrec import charts, explore
from songrec.models import model_names
from songrec.settings import SettingError
from songrec.ui import datasets, models, notebook, training, widgets
from songrec.ui.jobs import ordinal

widgets.page_header(
    "Train",
    "Fit the neural model with the notebook's settings (and a few more), or the baselines it has to beat. Training "
    "runs in the background: you can watch it here, stop it, use other pages, or reload the page and come back. "
    "At the bottom, the student notebook's model trained as written, beside the fix.",
)

corpus = datasets.corpus()
files = list(dict.fromkeys(corpus.playlists["file"].tolist()))
job = training.train_job()
running = job is not None and job.running

from songrec.models.network import available_devices  # noqa: E402  (imports torch: after the header)

st.subheader("Neural model")
saved = training.saved_settings()
with st.form("train_form"):
    chosen = {}
    for title, specs in training.setting_groups(len(files), available_devices()):
        st.markdown(f"**{title}**")
        chosen |= widgets.settings_form(specs, saved, columns=4, key=f"neural.{title.lower()}")
    submitted = st.form_submit_button("Train neural model", type="primary", disabled=running)

if submitted and not running:
    train_corpus = corpus
    max_files = int(chosen.get("max_files", 0))
    if 0 < max_files < len(files):
        train_corpus = corpus.subset(corpus.rows_from_files(files[:max_files]))
    try:
        training.start_training(chosen, train_corpus)
    except SettingError as exc:
        st.error(f"Not started: {exc}")
    else:
        st.rerun()  # draw the whole page again with the job on it (the form's button disabled, the sidebar)


@st.fragment(run_every=1.0 if running else None)
def training_view(polling: bool) -> None:
    job = training.train_job()
    if job is None:
        st.info("No neural model trained in this session yet. Pick settings above and press **Train neural model**.")
        return
    model = job.model
    status = job.status  # read once: the thread may finish while this view draws
    if status in ("queued", "running"):
        st.progress(job.fraction, text=job.describe())
        label = "Leave the queue" if status == "queued" else "Stop training"
        if st.button(label, icon=":material/stop_circle:", disabled=job.stopping):
            job.stop()
            st.toast(
                "Left the queue."
                if status == "queued"
                else "Stopping after the current step; the best epoch so far is kept."
            )
    elif polling:
        st.rerun()  # the job just ended: redraw the whole app (sidebar, model list)
    history = list(model.history)
    if history:
        st.altair_chart(charts.training_history(history), width="content")
        with st.expander("Per-epoch numbers"):
            st.dataframe(
                pd.DataFrame(history)
                .dropna(axis=1, how="all")  # no validation share: no validation column
                .rename(columns={"val_metric": "validation R-precision"}),
                hide_index=True,
            )
    if status in ("done", "stopped") and job.started:
        epochs = model.epochs_trained
        st.success(
            f"{'Trained' if status == 'done' else 'Stopped after'} {epochs} epoch{'s' if epochs != 1 else ''} "
            f"in {job.seconds:.1f} s on {model.device.type}; {model.kept_epoch()}."
        )
    elif status == "stopped":
        st.info("Left the queue before it started; nothing was trained.")
    elif status == "failed":
        st.error(f"Training failed — {job.error}")
        if job.details:  # a bug's traceback; a user's mistake is said in words alone
            with st.expander("Details"):
                st.code(job.details)


training_view(running)

# --------------------------------------------------------------------------- baselines
st.subheader("Baselines")
st.caption(
    "The floors the neural model must clear. Popularity recommends the same hits to everyone; item-kNN "
    "recommends tracks that share playlists with the seeds."
)
kinds = [k for k in model_names() if k != "neural"]
clicked = {}
for column, kind in zip(st.columns(max(len(kinds), 1)), kinds, strict=False):
    with column:
        entry = models.fitted_here(kind)
        clicked[kind] = st.button(f"{'Refit' if entry else 'Fit'} {kind}", key=f"fit_{kind}", width="stretch")
        if entry:
            st.caption(f"fitted in {entry.seconds:.1f} s")
params_of = {}
for kind in kinds:  # full width, a row of four: the hybrid has a dozen settings, too many for a sixth of the page
    specs = models.setting_specs(kind)
    params_of[kind] = {}
    if specs:
        with st.expander(f"{kind} settings"):
            params_of[kind] = widgets.settings_form(specs, models.saved_params(kind), columns=4, key=f"baseline.{kind}")
chosen = next((kind for kind in kinds if clicked[kind]), None)  # one button per run
if chosen is not None:
    try:
        models.fit_baseline(chosen, **params_of[chosen])
    except SettingError as exc:
        st.error(f"{chosen} not fitted: {exc}")
    except Exception as exc:  # a model still being written must not take the page down
        st.error(f"{chosen} could not be fitted: {type(exc).__name__}: {exc}")
    else:
        st.rerun()  # the buttons above were drawn before the fit: redraw them as "Refit"

# --------------------------------------------------------------------------- the notebook, as written
st.subheader("The notebook, as written")
st.caption(
    "The student notebook this project grew from recommended nearly the same songs for every playlist. Here its "
    "model is trained exactly as written, beside songrec's fixed model on the same playlists "
    f"({notebook.TEST_SHARE:.0%} held out to measure coverage and R-precision). Switch fixes on and train again "
    "to watch what each one changes."
)
replay = notebook.replay_job()
replaying = replay is not None and replay.running
saved_fixes = notebook.saved_fixes()
fixes = []
causes = explore.NOTEBOOK_CAUSES
for column, (number, cause) in zip(st.columns(len(causes)), enumerate(causes, 1), strict=True):
    with column:
        st.markdown(f"**{number}. {cause.title}**")
        st.caption(notebook.first_sentence(cause.why))
for column, cause in zip(st.columns(len(causes)), causes, strict=True):  # a row of their own: aligned
    with column:
        if st.toggle("Fix it", value=cause.key in saved_fixes, key=f"notebook_fix.{cause.key}", help=cause.why):
            fixes.append(cause.key)
if st.button("Train the notebook and the fixed model", type="primary", disabled=replaying, key="notebook_replay"):
    notebook.start_replay(fixes)
    st.rerun()


@st.fragment(run_every=1.0 if replaying else None)
def replay_view(polling: bool) -> None:
    job = notebook.replay_job()
    status = job.status if job is not None else None
    if status in ("queued", "running"):
        place = job.place
        st.progress(
            job.fraction, text=f"waiting: {ordinal(place)} in line" if place else getattr(job.last, "label", "starting")
        )
        if st.button("Stop", icon=":material/stop_circle:", disabled=job.stopping, key="notebook_stop"):
            job.stop()
    elif polling:
        st.rerun()
    elif status == "failed":
        st.error(f"The replay failed — {job.error}")
    run = notebook.last_run()
    if run is None:
        if status not in ("queued", "running"):
            st.info("Press **Train the notebook and the fixed model** (seconds on the demo data).")
        return
    report = run.report
    summary = report.summary
    country, christmas = report.playlists
    st.markdown(
        f"Fixes on: **{notebook.cause_titles(run.fixes)}** (trained and measured in {run.seconds:.0f} s). "
        f"Top 15 of the country playlist **{country}** and the Christmas playlist **{christmas}**, "
        "each given its first 20 tracks; ✓ green: in both lists."
    )
    written = summary.iloc[0]
    for column, row in zip(st.columns(len(summary)), summary.itertuples(), strict=True):
        with column:
            st.markdown(f"**{row.model}**")
            first = row.model == written["model"]
            m = st.columns(3)
            m[0].metric(
                "Coverage",
                widgets.percent(row.coverage),
                delta=None if first else f"{100 * (row.coverage - written['coverage']):+.1f} pts",
                help="Distinct tracks in all the top 15 lists, divided by 15 × held-out playlists.",
            )
            m[1].metric(
                "R-precision",
                f"{row.r_precision:.3f}",
                delta=None if first else f"{row.r_precision - written['r_precision']:+.3f}",
            )
            m[2].metric("Overlap", f"{row.overlap}/15", help="Tracks in both the country and the Christmas top 15.")
            top = report.lists[row.model]
            st.dataframe(
                widgets.marked(top[["rank", "country track", "christmas track", "in both"]], "in both"),
                hide_index=True,
                column_order=["rank", "country track", "christmas track"],  # in both: the green rows
                column_config={"rank": st.column_config.NumberColumn("#", width=40)},
                height=38 + 35 * len(top),
            )
    st.markdown("**How sure each model is of its top 15**")
    st.altair_chart(
        charts.confidence_spread(report.confidences, float(summary["uniform"].max()), summary["model"].tolist()),
        width="stretch",
    )
    st.caption(
        "The softmax probability of each recommended track (log scale): solid lines for the country playlist, "
        "dashed for the Christmas one; the dotted line is "
        "1 / tracks, a model with no preference at all. A spread close to zero is the collapse: every track "
        "about as likely as any other, so nothing the playlist holds decides what comes first."
    )
    runs = notebook.runs_here()
    if len(runs) > 1:
        st.markdown("**Runs so far**: the notebook (with the fixes of each run) beside the fixed model")
        st.dataframe(
            notebook.runs_table(runs),
            hide_index=True,
            column_config={
                "coverage": st.column_config.NumberColumn(format="percent"),
                "fixed model's coverage": st.column_config.NumberColumn(format="percent"),
                "R-precision": st.column_config.NumberColumn(format="%.3f"),
                "fixed model's R-precision": st.column_config.NumberColumn(format="%.3f"),
            },
        )


replay_view(replaying)

# --------------------------------------------------------------------------- checkpoints
st.subheader("Checkpoints")
left, right = st.columns(2)
with left:
    labels = models.ordered_labels()
    if labels:
        label = st.selectbox("Model to download", labels, format_func=models.describer())
        entry = models.models()[label]
        st.download_button(
            "Download checkpoint (.safetensors)",
            data=lambda model=entry.model: models.checkpoint_bytes(model),
            file_name=f"songrec-{entry.kind}.safetensors",
            mime="application/octet-stream",
            on_click="ignore",
            icon=":material/download:",
        )
        st.caption("safetensors arrays plus a JSON header: no pickle, safe to share.")
    else:
        st.caption("Fit or train a model to download its checkpoint.")
with right:
    upload = st.file_uploader(
        "Load a checkpoint",
        key="checkpoint_upload",
        help="A .safetensors file saved by songrec (app or CLI). Anything else is refused.",
    )
    if upload is not None and st.button("Load checkpoint"):
        from songrec.checkpoint import CheckpointError

        try:
            entry = models.load_checkpoint_upload(upload.name, upload.getvalue())
        except CheckpointError as exc:
            st.error(f"Not loaded: {exc}")
        else:
            models.add_model(entry)
            st.success(f"Loaded {entry.describe()}; its tracks are matched to this dataset by Spotify URI.")
