"""digest deliveries: who got a review's digest, claimed before each email leaves

With only `reviews.digest_sent_at`, two senders at once (the command and the scheduler) could both send,
and an SMTP server that failed partway left no record of who had been emailed: sending again emailed
the first recipients twice. Each recipient's delivery is now a row, unique per review and user.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "digest_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_id"], ["reviews.id"], name="fk_digest_deliveries_review_id_reviews", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_digest_deliveries_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_digest_deliveries"),
        sa.UniqueConstraint("review_id", "user_id", name="uq_digest_deliveries_review_id"),
    )
    op.create_index("ix_digest_deliveries_user_id", "digest_deliveries", ["user_id"])


def downgrade():
    op.drop_index("ix_digest_deliveries_user_id", table_name="digest_deliveries")
    op.drop_table("digest_deliveries")
