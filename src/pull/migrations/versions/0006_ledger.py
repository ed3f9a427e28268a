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
# Row-at-a-time lookups: each is a cached index scan whatever the number of accounts.
_ACCOUNT_IDS_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_account_ids(p_owners uuid[], p_currencies text[], p_kinds text[])
RETURNS bigint[] LANGUAGE plpgsql AS $fn$
DECLARE
    v_ids bigint[] := '{}';
    v_id bigint;
    v_shard smallint := pg_backend_pid() % 16;
BEGIN
    FOR i IN 1 .. cardinality(p_kinds) LOOP
        FOR attempt IN 1 .. 2 LOOP
            IF p_owners[i] IS NULL THEN
                SELECT a.id INTO v_id FROM ledger_accounts a
                 WHERE a.owner_id IS NULL AND a.currency = p_currencies[i]
                   AND a.kind = p_kinds[i] AND a.shard = v_shard;
            ELSE
                SELECT a.id INTO v_id FROM ledger_accounts a
                 WHERE a.owner_id = p_owners[i] AND a.currency = p_currencies[i]
                   AND a.kind = p_kinds[i];
            END IF;
            EXIT WHEN v_id IS NOT NULL;
            INSERT INTO ledger_accounts AS a (owner_id, currency, kind, shard)
            VALUES (p_owners[i], p_currencies[i], p_kinds[i],
                    CASE WHEN p_owners[i] IS NULL THEN v_shard ELSE 0 END)
            ON CONFLICT DO NOTHING
            RETURNING a.id INTO v_id;
            EXIT WHEN v_id IS NOT NULL;
        END LOOP;
        IF v_id IS NULL THEN
            RAISE EXCEPTION 'ledger: could not create account %', p_kinds[i];
        END IF;
        v_ids := v_ids || v_id;
    END LOOP;
    RETURN v_ids;
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
    v_order int[];
    v_balances bigint[] := '{}';
    v_user boolean;
    v_available bigint;
    v_balance bigint;
    i int;
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

    -- Lock every account in id order; refuse (writing nothing) if a user account would go
    -- below zero counting what open holds reserve.
    SELECT array_agg(g.i ORDER BY v_ids[g.i]) INTO v_order
      FROM generate_subscripts(v_ids, 1) AS g(i);
    FOREACH i IN ARRAY v_order LOOP
        SELECT a.owner_id IS NOT NULL, a.balance - a.pending_debits INTO v_user, v_available
          FROM ledger_accounts a WHERE a.id = v_ids[i] FOR UPDATE;
        IF v_user AND p_d_balance[i] - p_d_pdebit[i] < 0
           AND v_available + p_d_balance[i] - p_d_pdebit[i] < 0 THEN
            RETURN QUERY SELECT 'insufficient'::text, NULL::bigint, NULL::timestamptz, v_ids[i];
            RETURN;
        END IF;
    END LOOP;

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

    FOR i IN 1 .. cardinality(v_ids) LOOP
        UPDATE ledger_accounts a
           SET balance = a.balance + p_d_balance[i],
               pending_debits = a.pending_debits + p_d_pdebit[i],
               pending_credits = a.pending_credits + p_d_pcredit[i]
         WHERE a.id = v_ids[i]
        RETURNING a.balance INTO v_balance;
        v_balances := v_balances || v_balance;
    END LOOP;

    INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after, pending, created_at)
    SELECT v_id, l.id, l.amount, l.balance, p_pending, v_created
      FROM unnest(v_ids, p_amounts, v_balances) AS l(id, amount, balance)
     WHERE l.amount <> 0;

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
