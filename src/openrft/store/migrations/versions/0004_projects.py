"""Per-project quotas and retention.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("max_storage_bytes", sa.BigInteger),
        sa.Column("max_concurrent_jobs", sa.Integer),
        sa.Column("rollout_retention_days", sa.Integer),
        sa.Column("keep_checkpoints", sa.Integer),
    )


def downgrade() -> None:
    op.drop_table("projects")
