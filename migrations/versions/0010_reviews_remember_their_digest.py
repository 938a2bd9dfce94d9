"""reviews remember when their digest went out: reviews.digest_sent_at

The digest of a review was sent again every time it was asked for — a second `review --send-digest`
for the same day, or a review cron that fires twice a day — so every manager and rep got the same
email twice. A review's digest now goes out once (see `planning/digest.py`). Existing reviews start
without a date: their digest may still be sent once.

Revision ID: 0010
Revises: 0009
"""

from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("reviews", sa.Column("digest_sent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column("reviews", "digest_sent_at")
