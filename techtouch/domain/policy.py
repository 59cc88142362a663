"""The business rules that configuration tunes: the health model, senders, delivery rules.

Plain pydantic models, so the domain can take them as arguments without knowing where
they were read from (techtouch.settings reads them from the environment and TOML).
"""

from __future__ import annotations

from datetime import time

from pydantic import BaseModel, Field, model_validator


class HealthWeights(BaseModel):
    usage: float = Field(0.35, ge=0)
    engagement: float = Field(0.20, ge=0)
    sentiment: float = Field(0.25, ge=0)
    renewal: float = Field(0.20, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> HealthWeights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one health weight must be positive")
        return self


class HealthModel(BaseModel):
    """Weighted dimensions scored 0-100, bucketed red / yellow / green (handbook ch. 9)."""

    weights: HealthWeights = HealthWeights()
    green: float = Field(70, ge=0, le=100, description="score at or above: green")
    yellow: float = Field(45, ge=0, le=100, description="score at or above: yellow; below: red")
    active_days_target: int = Field(20, gt=0, description="active days in 30 that count as full usage")
    neutral_sentiment: float = Field(60, ge=0, le=100, description="sentiment when no survey answered")
    renewal_window_days: int = Field(120, gt=0, description="renewal proximity starts to weigh inside it")

    @model_validator(mode="after")
    def _ordered(self) -> HealthModel:
        if self.yellow > self.green:
            raise ValueError(f"health.yellow ({self.yellow}) must not exceed health.green ({self.green})")
        return self


class Sender(BaseModel):
    name: str
    email: str
    title: str = ""


DEFAULT_SENDERS = {
    "success": Sender(
        name="The Customer Success team", email="success@techtouch.example", title="Customer Success"
    ),
    "vp_cs": Sender(
        name="Dana Whitfield", email="dana.whitfield@techtouch.example", title="VP of Customer Success"
    ),
    "support": Sender(name="Support", email="support@techtouch.example", title="Support"),
}


class Delivery(BaseModel):
    """Rules that hold across journeys: frequency caps and the recipient's business hours."""

    max_per_day: int = Field(1, ge=1, description="automated messages per contact per day")
    max_per_7d: int = Field(3, ge=1, description="automated messages per contact per rolling 7 days")
    business_start: str = Field("09:00", description="local time sends may start")
    business_end: str = Field("17:00", description="local time sends must be scheduled before")
    business_days: list[int] = Field([0, 1, 2, 3, 4], description="weekdays, Monday = 0")
    cta_due_days: dict[str, int] = {"high": 1, "medium": 3, "low": 7}
    reconcile_after_minutes: float = Field(
        60,
        ge=0,
        description="an ambiguous email attempt with no provider event after this long is sent again",
    )
    claim_lease_minutes: float = Field(
        10, ge=0, description="a delivery attempt younger than this may still be in flight: left alone"
    )
    expire_after_hours: float = Field(
        24,
        ge=0,
        description=(
            "a pending message still unsent this long after its intended day ended (midnight in the "
            "recipient's zone) is expired, not sent late; one recorded after that day (a backfill) never goes"
        ),
    )

    @model_validator(mode="after")
    def _hours(self) -> Delivery:
        try:
            start, end = time.fromisoformat(self.business_start), time.fromisoformat(self.business_end)
        except ValueError:
            raise ValueError("business_start and business_end must be HH:MM") from None
        if start >= end:
            raise ValueError("business_start must be before business_end")
        if not self.business_days or not set(self.business_days) <= set(range(7)):
            raise ValueError("business_days must be weekdays 0-6 (Monday = 0)")
        return self
