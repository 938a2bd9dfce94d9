"""enum CHECK constraints written as comparisons instead of IN lists

SQLite builds a temporary b-tree for `c IN ('a', 'b', 'c', ...)` each time a statement runs. A sync
inserts activities with executemany, one statement run per row, so the two checks on activities doubled
the cost of writing one. `c = 'a' OR c = 'b' OR ...` accepts exactly the same values at no such cost.
SQLite rebuilds the three tables to change their checks; PostgreSQL swaps the constraints in place.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# table -> (constraint, column, allowed values), as in 0001
CHECKS = {
    "users": [("ck_users_user_role", "role", ("rep", "manager", "admin"))],
    "activities": [
        ("ck_activities_activity_kind", "kind", ("call", "email", "meeting", "task", "note", "contract")),
        ("ck_activities_activity_direction", "direction", ("inbound", "outbound", "unknown")),
    ],
    "strategies": [("ck_strategies_strategy_status", "status", ("draft", "active", "achieved", "abandoned"))],
}


def _comparisons(column, values):
    return " OR ".join(f"{column} = '{value}'" for value in values)


def _in_list(column, values):
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _rewrite(write):
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, column, values in checks:
                batch_op.drop_constraint(op.f(name), type_="check")
                batch_op.create_check_constraint(op.f(name), write(column, values))


def upgrade():
    _rewrite(_comparisons)


def downgrade():
    _rewrite(_in_list)
