"""digest deliveries record when the SMTP server took each email: digest_deliveries.accepted_at

A recipient is claimed just before their email is handed to the SMTP server, so that no one is emailed
twice. A sender killed in between left a claim for an email that may never have gone out, and nothing
told it from one that did. The claim now gets `accepted_at` once the server has taken the email; a claim
without it is one whose fate is unknown. Existing deliveries are taken as accepted: a refused email's
claim was always dropped.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("digest_deliveries", sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE digest_deliveries SET accepted_at = sent_at")


def downgrade():
    op.drop_column("digest_deliveries", "accepted_at")
