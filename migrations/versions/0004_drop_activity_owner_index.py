"""drop the unused index on activities (owner_id, occurred_at)

No query reads activities by owner: account lists, timelines and the review go by account and time.
The index cost every synced activity one more random b-tree insert.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_owner_time")


def downgrade():
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index("ix_activities_owner_time", ["owner_id", "occurred_at"], unique=False)
