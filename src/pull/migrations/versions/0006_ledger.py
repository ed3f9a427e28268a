"""ledger: accounts, transfers, entries and the ledger_apply / ledger_account_ids functions

Revision ID: 0006_ledger
Revises: 0005_kyc
Create Date: 2026-11-26 21:15:51.515105
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_ledger"
down_revision: str | None = "0005_kyc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of pull.ledger.repository's function definitions at this revision.
# Ids of (owner, currency, kind) accounts in the order given, creating the missing ones. A
# system account resolves to its row for this connection's shard (backend pid mod 16).
_ACCOUNT_IDS_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_account_ids(p_owners uuid[], p_currencies text[], p_kinds text[])
RETURNS bigint[] LANGUAGE plpgsql AS $fn$
DECLARE
    v_ids bigint[];
    v_missing bigint;
    v_shard smallint := pg_backend_pid() % 16;
BEGIN
    FOR attempt IN 1..2 LOOP
        SELECT array_agg(x.id ORDER BY x.ord), count(*) FILTER (WHERE x.id IS NULL)
          INTO v_ids, v_missing
          FROM (
            SELECT u.ord, COALESCE(
                (SELECT a.id FROM ledger_accounts a
                  WHERE a.owner_id = u.o AND a.currency = u.c AND a.kind = u.k),
                (SELECT a.id FROM ledger_accounts a
                  WHERE u.o IS NULL AND a.owner_id IS NULL AND a.currency = u.c AND a.kind = u.k
                    AND a.shard = v_shard)
            ) AS id
              FROM unnest(p_owners, p_currencies, p_kinds) WITH ORDINALITY AS u(o, c, k, ord)
          ) x;
        IF v_missing = 0 THEN
            RETURN v_ids;
        END IF;
        INSERT INTO ledger_accounts (owner_id, currency, kind, shard)
        SELECT DISTINCT u.o, u.c, u.k, CASE WHEN u.o IS NULL THEN v_shard ELSE 0 END
          FROM unnest(p_owners, p_currencies, p_kinds) AS u(o, c, k)
        ON CONFLICT DO NOTHING;
    END LOOP;
    RAISE EXCEPTION 'ledger: could not create accounts';
END
$fn$;
"""

# Apply one transfer atomically. Per leg i: account, the entry amount (0 = no entry), and the
# changes of balance, pending_debits and pending_credits. Returns one row:
#   ('created', id, created_at, NULL)   written
#   ('replay',  id, created_at, NULL)   the key exists with the same content hash
#   ('conflict', id, created_at, NULL)  the key exists with other content
#   ('insufficient', NULL, NULL, account_id)  a user account would go below zero; nothing written
# Accounts are locked in id order, so concurrent transfers never deadlock each other.
_APPLY_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_apply(
    p_key text, p_kind text, p_reference text, p_metadata jsonb, p_hash text,
    p_pending boolean, p_status text, p_pending_id bigint,
    p_owners uuid[], p_currencies text[], p_kinds text[], p_account_ids bigint[],
    p_amounts bigint[], p_d_balance bigint[], p_d_pdebit bigint[], p_d_pcredit bigint[]
) RETURNS TABLE (status text, transfer_id bigint, created_at timestamptz, account_id bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_id bigint;
    v_hash text;
    v_created timestamptz;
    v_ids bigint[];
    v_bad bigint;
BEGIN
    SELECT t.id, t.content_hash, t.created_at INTO v_id, v_hash, v_created
      FROM ledger_transfers t WHERE t.idempotency_key = p_key;
    IF FOUND THEN
        RETURN QUERY SELECT CASE WHEN v_hash = p_hash THEN 'replay' ELSE 'conflict' END,
                            v_id, v_created, NULL::bigint;
        RETURN;
    END IF;

    IF p_account_ids IS NULL THEN
        v_ids := ledger_account_ids(p_owners, p_currencies, p_kinds);
    ELSE
        v_ids := p_account_ids;
    END IF;

    PERFORM 1 FROM ledger_accounts a WHERE a.id = ANY (v_ids) ORDER BY a.id FOR UPDATE;

    SELECT a.id INTO v_bad
      FROM unnest(v_ids, p_d_balance, p_d_pdebit) AS l(id, dbal, dpd)
      JOIN ledger_accounts a ON a.id = l.id
     WHERE a.owner_id IS NOT NULL
       AND l.dbal - l.dpd < 0
       AND a.balance + l.dbal - a.pending_debits - l.dpd < 0
     LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RETURN QUERY SELECT 'insufficient'::text, NULL::bigint, NULL::timestamptz, v_bad;
        RETURN;
    END IF;

    INSERT INTO ledger_transfers AS t
           (idempotency_key, kind, reference, metadata, content_hash, pending, status, pending_id)
    VALUES (p_key, p_kind, p_reference, p_metadata, p_hash, p_pending, p_status, p_pending_id)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING t.id, t.created_at INTO v_id, v_created;
    IF v_id IS NULL THEN
        -- The same key was committed by a concurrent transaction while we waited.
        SELECT t.id, t.content_hash, t.created_at INTO v_id, v_hash, v_created
          FROM ledger_transfers t WHERE t.idempotency_key = p_key;
        RETURN QUERY SELECT CASE WHEN v_hash = p_hash THEN 'replay' ELSE 'conflict' END,
                            v_id, v_created, NULL::bigint;
        RETURN;
    END IF;

    IF p_pending_id IS NOT NULL THEN
        UPDATE ledger_transfers t SET status = p_status
         WHERE t.id = p_pending_id AND t.status = 'pending' AND t.pending;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'ledger: transfer % is not pending', p_pending_id;
        END IF;
    END IF;

    WITH upd AS (
        UPDATE ledger_accounts a
           SET balance = a.balance + l.dbal,
               pending_debits = a.pending_debits + l.dpd,
               pending_credits = a.pending_credits + l.dpc
          FROM unnest(v_ids, p_d_balance, p_d_pdebit, p_d_pcredit) AS l(id, dbal, dpd, dpc)
         WHERE a.id = l.id
        RETURNING a.id, a.balance
    )
    INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after, pending, created_at)
    SELECT v_id, l.id, l.amount, upd.balance, p_pending, v_created
      FROM unnest(v_ids, p_amounts) WITH ORDINALITY AS l(id, amount, ord)
      JOIN upd ON upd.id = l.id
     WHERE l.amount <> 0
     ORDER BY l.ord;

    RETURN QUERY SELECT 'created'::text, v_id, v_created, NULL::bigint;
END
$fn$;
"""

_DROP_FUNCTIONS = (
    "DROP FUNCTION IF EXISTS ledger_apply(text, text, text, jsonb, text, boolean, text, bigint, "
    "uuid[], text[], text[], bigint[], bigint[], bigint[], bigint[], bigint[])",
    "DROP FUNCTION IF EXISTS ledger_account_ids(uuid[], text[], text[])",
)


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table(
        "ledger_transfers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("pending", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("pending_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('posted', 'pending', 'voided')", name=op.f("ck_ledger_transfers_status")
        ),
        sa.ForeignKeyConstraint(
            ["pending_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_transfers_pending_id_ledger_transfers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transfers")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_transfers_idempotency_key")),
    )
    op.create_index(
        op.f("ix_ledger_transfers_pending_id"), "ledger_transfers", ["pending_id"], unique=False
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("shard", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pending_debits", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pending_credits", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("currency IN ('USD', 'PTS')", name=op.f("ck_ledger_accounts_currency")),
        sa.CheckConstraint(
            "owner_id IS NULL OR balance - pending_debits >= 0",
            name=op.f("ck_ledger_accounts_user_not_negative"),
        ),
        sa.CheckConstraint(
            "pending_debits >= 0 AND pending_credits >= 0",
            name=op.f("ck_ledger_accounts_pending_positive"),
        ),
        sa.CheckConstraint(
            "shard = 0 OR owner_id IS NULL", name=op.f("ck_ledger_accounts_user_single_row")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_ledger_accounts_owner_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
    )
    op.create_index(
        "uq_ledger_accounts_system",
        "ledger_accounts",
        ["currency", "kind", "shard"],
        unique=True,
        postgresql_where=sa.text("owner_id IS NULL"),
    )
    op.create_index(
        "uq_ledger_accounts_user",
        "ledger_accounts",
        ["owner_id", "currency", "kind"],
        unique=True,
        postgresql_where=sa.text("owner_id IS NOT NULL"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("transfer_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_entries_account_id_ledger_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_entries_transfer_id_ledger_transfers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(
        "ix_ledger_entries_account_id_id", "ledger_entries", ["account_id", "id"], unique=False
    )
    op.create_index(
        "ix_ledger_entries_transfer_id", "ledger_entries", ["transfer_id"], unique=False
    )
    # ### end Alembic commands ###
    op.execute(_ACCOUNT_IDS_FUNCTION)
    op.execute(_APPLY_FUNCTION)


def downgrade() -> None:
    for statement in _DROP_FUNCTIONS:
        op.execute(statement)
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index("ix_ledger_entries_transfer_id", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_account_id_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index(
        "uq_ledger_accounts_user",
        table_name="ledger_accounts",
        postgresql_where=sa.text("owner_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_ledger_accounts_system",
        table_name="ledger_accounts",
        postgresql_where=sa.text("owner_id IS NULL"),
    )
    op.drop_table("ledger_accounts")
    op.drop_index(op.f("ix_ledger_transfers_pending_id"), table_name="ledger_transfers")
    op.drop_table("ledger_transfers")
    # ### end Alembic commands ###
