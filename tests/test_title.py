"""The title model: playlists named alike get tracks of playlists named alike."""

from __future__ import annotations

import numpy as np

from songrec.corpus import Corpus
from songrec.models.title import TitleModel, normalize_name


def test_title_model_matches_names_and_words(demo_split: tuple[Corpus, Corpus]) -> None:
    train = demo_split[0]
    title = TitleModel().fit(train)
    assert normalize_name("  Country 🤠!! ") == "country"
    assert title.score("zzqx never seen") is None
    ids, values = title.score("COUNTRY 🤠")
    assert len(ids) > 0 and (values > 0).all()
    # the exact-name tracks score higher than tracks only sharing a word
    country_rows = np.flatnonzero(train.playlists["name"].map(normalize_name) == "country")
    in_country = np.unique(np.concatenate([train.playlist_tracks(r) for r in country_rows]))
    assert np.isin(ids[np.argsort(-values)[:20]], in_country).all()


# --- checkpoints: safetensors only, never a pickle -------------------------------------------------------
