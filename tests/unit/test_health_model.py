from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from techtouch.domain.health import score_health
from techtouch.settings import HealthModel, HealthWeights


def frame(**columns: list) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=pd.Index([f"A{i}" for i in range(n)], name="account_id"))


MODEL = HealthModel()


def test_steady_engaged_happy_customer_is_green_and_silent_one_is_red() -> None:
    signals = frame(
        active_days_30d=[22, 0],
        usage_change_30d=[0.05, -1.0],
        **{
            "milestone.configured": [True, False],
            "milestone.trained": [True, False],
            "milestone.live": [True, False],
            "survey.nps": ["10", "2"],
        },
        days_to_renewal=[300, 20],
        renewal_signed=[False, False],
    )
    scored = score_health(signals, MODEL)
    assert scored.loc["A0", "color"] == "green"
    assert scored.loc["A1", "color"] == "red"
    assert scored.loc["A0", "score"] > 90
    assert scored.loc["A1", "score"] < 20


def test_usage_drop_lowers_the_usage_dimension_proportionally() -> None:
    signals = frame(active_days_30d=[20, 20, 20], usage_change_30d=[0.0, -0.3, -0.6])
    usage = score_health(signals, MODEL)["usage_score"].tolist()
    assert usage == pytest.approx([100.0, 85.0, 70.0])


def test_new_account_without_baseline_counts_as_steady_when_active() -> None:
    signals = frame(active_days_30d=[10, 0], usage_change_30d=[np.nan, np.nan])
    usage = score_health(signals, MODEL)["usage_score"].tolist()
    assert usage == pytest.approx([75.0, 0.0])


def test_sentiment_averages_the_latest_answers_and_defaults_to_neutral() -> None:
    signals = frame(
        **{
            "survey.nps": ["9", None, None],
            "survey.csat": ["5", None, None],
            "survey.renewal": ["not_likely", None, "unsure"],
        }
    )
    sentiment = score_health(signals, MODEL)["sentiment_score"].tolist()
    assert sentiment == pytest.approx([(90 + 100 + 0) / 3, MODEL.neutral_sentiment, 50.0])


def test_renewal_proximity_counts_only_inside_the_window_and_a_signature_clears_it() -> None:
    signals = frame(days_to_renewal=[200, 120, 60, 0, 10, np.nan], renewal_signed=[False] * 4 + [True, False])
    renewal = score_health(signals, MODEL)["renewal_score"].tolist()
    assert renewal == pytest.approx([100.0, 100.0, 70.0, 40.0, 100.0, 100.0])


def test_weights_and_thresholds_come_from_the_model() -> None:
    signals = frame(active_days_30d=[20], usage_change_30d=[0.0], days_to_renewal=[400])
    only_usage = HealthModel(weights=HealthWeights(usage=1, engagement=0, sentiment=0, renewal=0))
    assert score_health(signals, only_usage)["score"].iloc[0] == 100.0
    strict = HealthModel(
        weights=HealthWeights(usage=0, engagement=1, sentiment=0, renewal=0), green=99, yellow=98
    )
    assert score_health(signals, strict)["color"].iloc[0] == "red"


def test_model_rejects_inverted_thresholds_and_all_zero_weights() -> None:
    with pytest.raises(ValueError, match="must not exceed"):
        HealthModel(green=40, yellow=60)
    with pytest.raises(ValueError, match="positive"):
        HealthWeights(usage=0, engagement=0, sentiment=0, renewal=0)
