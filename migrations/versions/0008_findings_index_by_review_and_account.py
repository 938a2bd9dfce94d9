"""findings are looked up by account within one review: index (review_id, account_id)

The only query that looks findings up by account, the Salesforce write-back, always asks within one
review. The index on account_id alone spanned every review ever run, so each lookup read the account's
findings of every week, and each review's inserts landed all over that growing index. Leading with the
review keeps both to the review's own entries.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_findings_review_account", "findings", ["review_id", "account_id"])
    op.drop_index("ix_findings_account_id", table_name="findings")


def downgrade():
    op.create_index("ix_findings_account_id", "findings", ["account_id"])
    op.drop_index("ix_findings_review_account", table_name="findings")
