"""findings keep the review date their stale strategy had: findings.strategy_review_date

"Strategy review overdue (due 2026-09-01)" read the date from the strategy as it is now, so once a rep
moved it on, past reviews named the new date. Each stale-strategy finding now stores the date it was
judged by. Existing ones get their strategy's present date where it still fits their reason (before the
review's day for an overdue one, on or after it for one without recent activity), the best that can be
known; the others none.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("findings", sa.Column("strategy_review_date", sa.Date(), nullable=True))
    op.execute(
        """
        UPDATE findings SET strategy_review_date = (
            SELECT strategies.review_date FROM strategies, reviews
            WHERE strategies.id = findings.strategy_id
              AND reviews.id = findings.review_id
              AND CASE findings.reason
                  WHEN 'review_overdue' THEN strategies.review_date < reviews.as_of
                  ELSE strategies.review_date >= reviews.as_of
              END
        )
        WHERE rule = 'stale_strategy'
        """
    )


def downgrade():
    op.drop_column("findings", "strategy_review_date")
