"""findings keep their account, owner and strategy ids without foreign keys

A finding is a snapshot the review writes from those very rows, in the transaction that reads them, and
nothing deletes accounts, users or strategies (a record removed in the CRM is only marked deleted). On
PostgreSQL every key check ran a query that locked the referenced row, which dirtied the accounts, users
and strategies a review touched and took about as long as computing the rule. SQLite never enforced
them (foreign_keys is off). The key to the review stays: findings are deleted with their review.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (constraint, column, referenced table), as created in 0001
KEYS = (
    ("fk_findings_account_id_accounts", "account_id", "accounts"),
    ("fk_findings_owner_id_users", "owner_id", "users"),
    ("fk_findings_strategy_id_strategies", "strategy_id", "strategies"),
)


def upgrade():
    with op.batch_alter_table("findings", schema=None) as batch_op:
        for name, _column, _table in KEYS:
            batch_op.drop_constraint(name, type_="foreignkey")


def downgrade():
    with op.batch_alter_table("findings", schema=None) as batch_op:
        for name, column, table in KEYS:
            batch_op.create_foreign_key(name, table, [column], ["id"])
