"""the index on activities by account and time also holds `deleted`

The stale-strategy rule probes each active strategy's recent activities through this index and skips the
deleted ones. With `deleted` in the index, SQLite answers the probe from the index alone instead of
reading one activity row per step, which took a third of the rule's time.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_account_time")
        batch_op.create_index(
            "ix_activities_account_time", ["account_id", "occurred_at", "deleted"], unique=False
        )


def downgrade():
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_account_time")
        batch_op.create_index("ix_activities_account_time", ["account_id", "occurred_at"], unique=False)
