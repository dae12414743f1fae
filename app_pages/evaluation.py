"""Evaluation: hold out playlists, fit each model on the rest, score them with the RecSys 2018 metrics."""

import contextlib
from dataclasses import replace

import pandas as pd
import streamlit as st

from songrec import charts, explore
from songrec.config import EvaluationSettings, TrainSettings
from songrec.models import model_names
from songrec.settings import SettingError, specs
from songrec.ui import datasets, session, training, widgets
from songrec.ui.jobs import ordinal

widgets.page_header(
    "Evaluation",
    "A share of the playlists is held out; every model is fitted on the rest and then continues each held-out "
    "playlist from its title and/or first tracks (the ten RecSys Challenge 2018 categories). R-precision and NDCG: "
    "higher is better; clicks (pages of ten before the first right track): lower is better; coverage: the share of "
    "distinct tracks in all the top 15s (low when every playlist gets the same songs).",
)

corpus, ref = datasets.corpus(), datasets.dataset()
user = session.current()
stored = user.results
# Smaller than the CLI's (all held-out playlists, 30 epochs), so a first evaluation in the app takes seconds.
# (A comment, not a docstring: Streamlit's magic would draw a bare string on the page.)
APP_DEFAULTS = {"test_share": 0.2, "max_cases": 500, "epochs": 10, "models": ["neural", "popularity", "itemknn"]}
last = {**APP_DEFAULTS, **user.settings.get("evaluation", {})}
epochs_spec = next(s for s in specs(TrainSettings) if s.name == "epochs")

with st.form("evaluation_form"):
    chosen_settings = widgets.settings_form(specs(EvaluationSettings), last, columns=4, key="evaluation")
    c = st.columns([1, 3])  # the model list gets the rest of the row: a quarter showed two names of five
    with c[0]:
        neural_epochs = replace(
            epochs_spec,
            label="Neural epochs",
            help=f"{epochs_spec.help} (the other neural settings are the Train page's last ones)",
        )
        epochs = widgets.setting_widget(neural_epochs, last["epochs"], "evaluation.epochs")
    chosen = c[1].multiselect("Models", model_names(), default=[m for m in last["models"] if m in model_names()])
    run = st.form_submit_button("Run evaluation", type="primary")

if run and chosen:
    try:
        settings = EvaluationSettings.build(chosen_settings)
    except SettingError as exc:
        st.error(f"Not run: {exc}")
        st.stop()
    user.settings["evaluation"] = {**settings.as_dict(), "epochs": int(epochs), "models": list(chosen)}
    neural = {**training.model_settings(), "epochs": int(epochs)}
    with st.status("Evaluating…", expanded=True) as status:
        train, test, cases = explore.holdout_cases(
            corpus, settings.test_share, settings.seed, settings.max_cases or None
        )
        st.write(f"Fitting on {train.n_playlists:,} playlists; scoring {len(cases):,} held-out playlists.")
        bar = st.progress(0.0, text="Fitting…")
        # Training the neural model takes one of the server's training slots, like the Train page's jobs.
        slot = (
            session.training_queue().slot(lambda place: bar.progress(0.0, text=f"waiting: {ordinal(place)} in line"))
            if "neural" in chosen
            else contextlib.nullcontext()
        )
        with slot:
            fitted = explore.fit_models(
                chosen,
                train,
                {"neural": neural},
                progress=lambda kind, event: bar.progress(event.fraction, text=f"Fitting {kind}: {event.label}"),
            )
        for kind, error in fitted.errors.items():
            st.error(f"{kind} could not be fitted: {error}")
        st.write(", ".join(f"{kind} fitted in {s:.1f} s" for kind, s in fitted.seconds.items()))
        bar.progress(0.0, text="Scoring…")
        results = explore.compare_models(
            fitted.models,
            test,
            cases,
            progress=lambda name, done, total: bar.progress(
                done / max(total, 1), text=f"Scoring {name}: {done}/{total}"
            ),
        )
        bar.empty()
        overall, per_category = explore.evaluation_tables(results)
        overall["fit seconds"] = overall["model"].map(fitted.seconds)
        stored["evaluation"] = {
            "dataset": ref.key,
            "overall": overall,
            "per_category": per_category,
            "cases": len(cases),
            "train": train.n_playlists,
            "share": settings.test_share,
            "importances": explore.feature_importances(fitted.models),
        }
        status.update(
            label=f"Evaluated {len(fitted.models)} models on {len(cases):,} held-out playlists",
            state="complete",
            expanded=False,
        )
elif run:
    st.warning("Choose at least one model.")

result = stored.get("evaluation")
if not result:
    st.info(
        "Choose models and press **Run evaluation**. The neural model is trained anew on the non-held-out "
        "playlists (a model trained on all playlists has seen the answers)."
    )
    st.stop()
if result["dataset"] != ref.key:
    st.warning("These results are for another dataset; run the evaluation again for the current one.")

overall, per_category = result["overall"], result["per_category"]
st.subheader(f"Overall — {result['cases']:,} held-out playlists, models fitted on {result['train']:,}")
st.dataframe(
    overall,
    hide_index=True,
    column_config={
        "r_precision": st.column_config.NumberColumn("R-precision", format="%.4f"),
        "ndcg": st.column_config.NumberColumn("NDCG", format="%.4f"),
        "clicks": st.column_config.NumberColumn("clicks ↓", format="%.2f"),
        "r_precision_tracks": st.column_config.NumberColumn("R-precision (tracks)", format="%.4f"),
        "hit_at_15": st.column_config.NumberColumn("hit@15", format="%.3f"),
        "coverage": st.column_config.NumberColumn(
            "coverage",
            format="percent",
            help="Distinct tracks in all the top 15 lists, divided by 15 × held-out playlists: low when a model "
            "recommends the same songs to everyone.",
        ),
        "fit seconds": st.column_config.NumberColumn("fit s", format="%.1f"),
    },
)
order = overall["model"].tolist()
for column, metric in zip(st.columns(4), ["r_precision", "ndcg", "clicks", "coverage"], strict=True):
    with column:
        st.altair_chart(charts.metric_bars(overall, metric, explore.METRIC_LABELS[metric]), width="stretch")

for name, importances in result.get("importances", {}).items():
    st.altair_chart(charts.feature_importances(importances, name), width="stretch")

st.subheader("Per category")
metric = st.segmented_control(
    "Metric",
    ["r_precision", "ndcg", "clicks", "coverage"],
    default="r_precision",
    required=True,
    format_func=explore.METRIC_LABELS.get,
    key="eval_metric",
)
st.altair_chart(charts.per_category_bars(per_category, metric, explore.METRIC_LABELS[metric], order), width="stretch")
categories = list(dict.fromkeys(per_category["category"]))
table = per_category.pivot_table(index="category", columns="model", values=metric, sort=False).reindex(categories)
st.dataframe(
    table.reset_index(),
    hide_index=True,
    column_config={m: st.column_config.NumberColumn(m, format="%.2f" if metric == "clicks" else "%.4f") for m in order},
)
st.download_button(
    "Download results (CSV)",
    pd.concat([overall.assign(category="overall"), per_category]).to_csv(index=False),
    file_name="songrec-evaluation.csv",
    mime="text/csv",
    on_click="ignore",
)
