"""report rollups: everyone's `/reports` numbers per cohort day and per week, kept by the runs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 04:00:00

Over 100,000 accounts, grouping every touch of 90 days takes seconds; these tables hold the same
numbers already grouped per day of entry (funnels, cohort statuses, survey answers) and per week
(CTA workload), so the page sums a few thousand rows. They hold counts only. The upgrade creates
them empty: the first refresh (the next run, `techtouch reports refresh`, or the first visit to
`/reports`) fills them from the whole history. The downgrade drops them (they are derived data).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import techtouch.adapters.db.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COUNTS = ("entered", "sent", "delivered", "opened", "clicked", "done", "escalated", "messages")


def upgrade() -> None:
    op.create_table(
        "report_funnel_days",
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("entered_on", sa.Date(), nullable=False),
        sa.Column("milestone", sa.String(length=64), nullable=False),
        sa.Column("rung", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.PrimaryKeyConstraint(
            "journey", "entered_on", "milestone", "rung", name=op.f("pk_report_funnel_days")
        ),
    )
    op.create_table(
        "report_cohort_days",
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("entered_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("enrollments", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("journey", "entered_on", "status", name=op.f("pk_report_cohort_days")),
    )
    op.create_table(
        "report_survey_days",
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("entered_on", sa.Date(), nullable=False),
        sa.Column("survey", sa.String(length=64), nullable=False),
        sa.Column("asked", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("journey", "entered_on", "survey", name=op.f("pk_report_survey_days")),
    )
    op.create_table(
        "report_workload_weeks",
        sa.Column("assignee", sa.String(length=254), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("opened", "open_now", "overdue_now", "closed", "acted", "joined")
        ),
        sa.Column("median_first_action_hours", sa.Float(), nullable=True),
        sa.Column("outcomes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("assignee", "week_start", name=op.f("pk_report_workload_weeks")),
    )
    with op.batch_alter_table("report_workload_weeks", schema=None) as batch_op:
        batch_op.create_index("ix_report_workload_weeks_week_start", ["week_start"], unique=False)
    op.create_table(
        "report_refreshes",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("refreshed_at", techtouch.adapters.db.models.UTCDateTime(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("cohorts_from", sa.Date(), nullable=True),
        sa.Column("weeks_from", sa.Date(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_report_refreshes")),
    )


def downgrade() -> None:
    op.drop_table("report_refreshes")
    with op.batch_alter_table("report_workload_weeks", schema=None) as batch_op:
        batch_op.drop_index("ix_report_workload_weeks_week_start")
    op.drop_table("report_workload_weeks")
    op.drop_table("report_survey_days")
    op.drop_table("report_cohort_days")
    op.drop_table("report_funnel_days")
