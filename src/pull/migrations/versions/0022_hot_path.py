"""hot path: the KYC limit check and its use as one PL/pgSQL call (kyc_consume)

Revision ID: 0022_hot_path
Revises: 0021_email
Create Date: 2026-12-01 23:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022_hot_path"
down_revision: str | None = "0021_email"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One round trip instead of four or five: lock the profile (its own statement, so that the
# usage sums that follow see every usage committed by whoever held the lock before), the
# replay check, the single-trade maximum, each rolling window's net usage, and the insert.
# `p_limits` is the policy of every tier: {"tier": {"single": c, "windows": [c, ...]}};
# `p_since` the start of each window. Outcomes: ok, replay, conflict, kyc_required, single,
# window (with the window's index and its usage), for the caller to turn into its errors.
KYC_CONSUME = """
CREATE OR REPLACE FUNCTION kyc_consume(
    p_user uuid, p_action text, p_reference text, p_amount bigint, p_now timestamptz,
    p_limits jsonb, p_since timestamptz[]
) RETURNS TABLE (outcome text, tier text, window_index int, used bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_tier text;
    v_expires timestamptz;
    v_lim jsonb;
    v_dup_user uuid;
    v_dup_action text;
    v_used bigint;
    i int;
BEGIN
    SELECT p.tier, p.expires_at INTO v_tier, v_expires
    FROM kyc_profiles p WHERE p.user_id = p_user FOR UPDATE;
    IF v_tier IS NULL OR (v_expires IS NOT NULL AND v_expires <= p_now) THEN
        v_tier := 'none';
    END IF;
    v_lim := p_limits -> v_tier;
    IF coalesce((v_lim -> 'windows' ->> 0)::bigint, 0) <= 0 THEN
        RETURN QUERY SELECT 'kyc_required'::text, v_tier, NULL::int, NULL::bigint;
        RETURN;
    END IF;
    SELECT u.user_id, u.action INTO v_dup_user, v_dup_action
    FROM kyc_limit_usage u WHERE u.reference = p_reference;
    IF FOUND THEN
        IF v_dup_user <> p_user OR v_dup_action <> p_action THEN
            RETURN QUERY SELECT 'conflict'::text, v_tier, NULL::int, NULL::bigint;
        ELSE
            RETURN QUERY SELECT 'replay'::text, v_tier, NULL::int, NULL::bigint;
        END IF;
        RETURN;
    END IF;
    IF v_lim ? 'single' AND p_amount > (v_lim ->> 'single')::bigint THEN
        RETURN QUERY SELECT 'single'::text, v_tier, NULL::int, NULL::bigint;
        RETURN;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_since, 1), 0) LOOP
        SELECT coalesce(sum(u.amount_cents - u.released_cents), 0) INTO v_used
        FROM kyc_limit_usage u
        WHERE u.user_id = p_user AND u.action = p_action AND u.created_at > p_since[i];
        IF v_used + p_amount > (v_lim -> 'windows' ->> (i - 1))::bigint THEN
            RETURN QUERY SELECT 'window'::text, v_tier, i - 1, v_used;
            RETURN;
        END IF;
    END LOOP;
    INSERT INTO kyc_limit_usage
        (user_id, action, reference, amount_cents, released_cents, created_at, updated_at)
    VALUES (p_user, p_action, p_reference, p_amount, 0, p_now, p_now);
    RETURN QUERY SELECT 'ok'::text, v_tier, NULL::int, NULL::bigint;
END
$$;
"""


def upgrade() -> None:
    op.execute(KYC_CONSUME)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS kyc_consume(uuid, text, text, bigint, timestamptz, jsonb, "
        "timestamptz[])"
    )
