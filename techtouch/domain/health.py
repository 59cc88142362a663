"""Health scores: weighted dimensions (handbook ch. 9), vectorized over every account at once.

`score_health` is a pure function of a signals frame and the model, so the unit tests
exercise it on hand-built frames; techtouch.services.health reads the signals and stores
the daily snapshot that trends (and the risk journey) read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from techtouch.domain.policy import HealthModel

RENEWAL_ANSWER_SCORES = {"likely": 100.0, "unsure": 50.0, "not_likely": 0.0}
DIMENSIONS = ("usage", "engagement", "sentiment", "renewal")
MILESTONE_NAMES = ("configured", "trained", "live")


def _column(frame: pd.DataFrame, name: str, default: object) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(default, index=frame.index)


def score_health(signals: pd.DataFrame, model: HealthModel) -> pd.DataFrame:
    """Score each account 0-100 per dimension, weight them, bucket the total.

    `signals` has one row per account: active_days_30d, usage_change_30d (NaN when there is no
    baseline), milestone.* flags, opened_30d/clicked_30d, survey.nps/csat/renewal answers,
    days_to_renewal (NaN when none), renewal_signed (bool).
    """
    out = pd.DataFrame(index=signals.index)

    active = _column(signals, "active_days_30d", 0).fillna(0).astype(float)
    change = _column(signals, "usage_change_30d", np.nan).astype(float)
    frequency = (active / model.active_days_target).clip(0, 1)
    # No baseline yet (a new account ramping up) counts as holding steady when it is active.
    trend = (1.0 + change).clip(0, 1).where(change.notna(), (active > 0).astype(float))
    out["usage_score"] = 100.0 * (0.5 * frequency + 0.5 * trend)

    reached = sum(
        _column(signals, f"milestone.{name}", False).fillna(False).astype(bool).astype(float)
        for name in MILESTONE_NAMES
    ) / len(MILESTONE_NAMES)
    opened = _column(signals, "opened_30d", 0).fillna(0).astype(float)
    clicked = _column(signals, "clicked_30d", 0).fillna(0).astype(float)
    responsiveness = ((opened + 2 * clicked) / 3).clip(0, 1)
    out["engagement_score"] = 100.0 * (0.7 * reached + 0.3 * responsiveness)

    answers = pd.DataFrame(
        {
            "nps": pd.to_numeric(_column(signals, "survey.nps", np.nan), errors="coerce") * 10.0,
            "csat": (pd.to_numeric(_column(signals, "survey.csat", np.nan), errors="coerce") - 1) * 25.0,
            "renewal": _column(signals, "survey.renewal", np.nan).map(RENEWAL_ANSWER_SCORES),
        },
        index=signals.index,
    ).astype(float)
    out["sentiment_score"] = answers.mean(axis=1, skipna=True).fillna(model.neutral_sentiment)

    days = _column(signals, "days_to_renewal", np.nan).astype(float)
    signed = _column(signals, "renewal_signed", False).fillna(False).astype(bool)
    proximity = 40.0 + 60.0 * (days.clip(lower=0) / model.renewal_window_days).clip(0, 1)
    out["renewal_score"] = proximity.where(days.notna() & (days <= model.renewal_window_days), 100.0)
    out.loc[signed, "renewal_score"] = 100.0

    weights = model.weights.model_dump()
    total = sum(weights.values())
    out["score"] = sum(out[f"{d}_score"] * weights[d] for d in DIMENSIONS) / total
    out["score"] = out["score"].round(1)
    out["color"] = np.select(
        [out["score"] >= model.green, out["score"] >= model.yellow], ["green", "yellow"], "red"
    )
    return out
