"""strategy comments

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "strategy_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("strategy_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_strategy_comments_author_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name=op.f("fk_strategy_comments_strategy_id_strategies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategy_comments")),
    )
    with op.batch_alter_table("strategy_comments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_strategy_comments_strategy_time", ["strategy_id", "created_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("strategy_comments", schema=None) as batch_op:
        batch_op.drop_index("ix_strategy_comments_strategy_time")
    op.drop_table("strategy_comments")
