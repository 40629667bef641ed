"""Fine-tuning jobs, their events and checkpoints.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("project", sa.String(128), nullable=False, index=True),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("base_model", sa.String(512), nullable=False),
        sa.Column("training_file", sa.String(64), nullable=False),
        sa.Column("validation_file", sa.String(64)),
        sa.Column("suffix", sa.String(64)),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("metadata", sa.JSON),
        sa.Column("integrations", sa.JSON),
        sa.Column("method", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("error", sa.JSON),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("estimated_finish", sa.BigInteger),
        sa.Column("fine_tuned_model", sa.String(512)),
        sa.Column("trained_tokens", sa.BigInteger),
        sa.Column("result_files", sa.JSON, nullable=False),
        sa.Column("total_steps", sa.Integer),
        sa.Column("control", sa.String(16)),
        sa.Column("lease_token", sa.String(64)),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "job_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("job_id", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON),
        sa.Column("step", sa.Integer),
        sa.Column("dedupe_key", sa.String(128)),
        sa.UniqueConstraint("job_id", "dedupe_key"),
    )
    op.create_table(
        "job_checkpoints",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("job_id", sa.String(64), nullable=False, index=True),
        sa.Column("step_number", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("model_id", sa.String(512), nullable=False),
        sa.Column("blob_key", sa.String(256), nullable=False),
        sa.Column("pruned", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("job_checkpoints")
    op.drop_table("job_events")
    op.drop_table("jobs")
