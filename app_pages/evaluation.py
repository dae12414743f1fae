"""Evaluation: hold out playlists, fit each model on the rest, score them with the RecSys 2018 metrics."""


import altair as alt
import pandas as pd
import streamlit as st

from songrec import explore
from songrec.models import model_names
from songrec.ui import state

state.page_header(
    "Evaluation",
    "A share of the playlists is held out; every model is fitted on the rest and then continues each held-out "
    "playlist from its title and/or first tracks (the ten RecSys Challenge 2018 categories). R-precision and NDCG: "
    "higher is better; clicks (pages of ten before the first right track): lower is better.",
)

corpus, ref = state.corpus(), state.dataset()
saved = st.session_state.get("train_settings") or {}

with st.form("evaluation_form"):
    c = st.columns(4)
    test_share = c[0].slider("Held-out share", 0.05, 0.5, 0.2, step=0.05)
    max_cases = c[1].number_input("Held-out playlists to score (at most)", 10, 100_000, 500, step=50)
    seed = c[2].number_input("Split seed", 0, 2**31 - 1, 0)
    epochs = c[3].number_input("Neural epochs", 1, 500, min(int(saved.get("epochs", 10)), 10),
                               help="The other neural settings are the Train page's last ones.")
    defaults = ["neural", "popularity", "itemknn"]
    chosen = st.multiselect("Models", model_names(), default=defaults)
    run = st.form_submit_button("Run evaluation", type="primary")

if run and chosen:
    neural_params = {**saved, "epochs": int(epochs)}
    with st.status("Evaluating…", expanded=True) as status:
        train, test, cases = explore.holdout_cases(corpus, float(test_share), int(seed), int(max_cases))
        st.write(f"Fitting on {train.n_playlists:,} playlists; scoring {len(cases):,} held-out playlists.")
        bar = st.progress(0.0, text="Fitting…")
        fitted = explore.fit_models(
            chosen, train, {"neural": neural_params},
            progress=lambda kind, event: bar.progress(event.fraction, text=f"Fitting {kind}: {event.label}"),
        )
        for kind, error in fitted.errors.items():
            st.error(f"{kind} could not be fitted: {error}")
        st.write(", ".join(f"{kind} fitted in {s:.1f} s" for kind, s in fitted.seconds.items()))
        bar.progress(0.0, text="Scoring…")
        results = explore.compare_models(
            fitted.models, test, cases,
            progress=lambda name, done, total: bar.progress(done / max(total, 1),
                                                            text=f"Scoring {name}: {done}/{total}"),
        )
        bar.empty()
        overall, per_category = explore.evaluation_tables(results)
        overall["fit seconds"] = overall["model"].map(fitted.seconds)
        st.session_state["evaluation"] = {
            "dataset": ref.key, "overall": overall, "per_category": per_category,
            "cases": len(cases), "train": train.n_playlists, "share": float(test_share),
        }
        status.update(label=f"Evaluated {len(fitted.models)} models on {len(cases):,} held-out playlists",
                      state="complete", expanded=False)
elif run:
    st.warning("Choose at least one model.")

result = st.session_state.get("evaluation")
if not result:
    st.info("Choose models and press **Run evaluation**. The neural model is trained anew on the non-held-out "
            "playlists (a model trained on all playlists has seen the answers).")
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
        "fit seconds": st.column_config.NumberColumn("fit s", format="%.1f"),
    },
)
order = overall["model"].tolist()
long = overall.melt(id_vars="model", value_vars=["r_precision", "ndcg", "clicks"], var_name="metric")
long["metric"] = long["metric"].map(explore.METRIC_LABELS)
cols = st.columns(3)
for column, metric in zip(cols, ["R-precision", "NDCG", "Clicks (lower is better)"], strict=True):
    with column:
        st.altair_chart(
            alt.Chart(long[long["metric"] == metric]).mark_bar().encode(
                x=alt.X("model:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
                y=alt.Y("value:Q", title=metric),
                color=alt.Color("model:N", sort=order, legend=None,
                                scale=alt.Scale(range=["#1DB954", "#535353", "#2D46B9", "#F59B23", "#AF2896"])),
                tooltip=["model:N", alt.Tooltip("value:Q", format=".4f")],
            ).properties(height=240, title=metric),
            width="stretch",
        )

st.subheader("Per category")
metric = st.segmented_control("Metric", ["r_precision", "ndcg", "clicks"], default="r_precision", required=True,
                              format_func=explore.METRIC_LABELS.get, key="eval_metric")
categories = list(dict.fromkeys(per_category["category"]))
st.altair_chart(
    alt.Chart(per_category).mark_bar().encode(
        x=alt.X("category:N", sort=categories, title=None, axis=alt.Axis(labelAngle=-30, labelLimit=160)),
        xOffset=alt.XOffset("model:N", sort=order),
        y=alt.Y(f"{metric}:Q", title=explore.METRIC_LABELS[metric]),
        color=alt.Color("model:N", sort=order, legend=alt.Legend(orient="bottom", title=None),
                        scale=alt.Scale(range=["#1DB954", "#535353", "#2D46B9", "#F59B23", "#AF2896"])),
        tooltip=["category:N", "model:N", alt.Tooltip(f"{metric}:Q", format=".4f"), "cases:Q"],
    ).properties(height=320),
    width="stretch",
)
table = per_category.pivot_table(index="category", columns="model", values=metric, sort=False).reindex(categories)
st.dataframe(table.reset_index(), hide_index=True,
             column_config={m: st.column_config.NumberColumn(m, format="%.2f" if metric == "clicks" else "%.4f")
                            for m in order})
st.download_button("Download results (CSV)", pd.concat([overall.assign(category="overall"), per_category]).to_csv(
    index=False), file_name="songrec-evaluation.csv", mime="text/csv", on_click="ignore")
