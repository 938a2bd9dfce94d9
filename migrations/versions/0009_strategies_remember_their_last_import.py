"""strategies remember the record their last import brought: strategies.last_import (JSON)

A re-import compared the incoming record with the stored strategy, so it reverted every edit a person
had made to an imported strategy and re-linked the activities they had unlinked. With the record as
last imported kept beside the strategy, a re-import changes a field only when the import's own value for
it changed, and a link only when the import's activity_ids did. Existing rows start without one: their
next re-import takes its record as the starting point (see `integrations/sync.py`).

Revision ID: 0009
Revises: 0008
"""

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("strategies", sa.Column("last_import", sa.JSON(), nullable=True))


def downgrade():
    # SQLite (3.35 and later) drops a column in place, like PostgreSQL: no table rebuild.
    op.drop_column("strategies", "last_import")
