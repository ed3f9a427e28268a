"""deploy/backup/backup.sh and restore.sh against a real PostgreSQL (the test services).

Round trip: a scratch database with a few tables and a double-entry ledger is dumped, restored
into a fresh database, and both are compared (row counts, ledger trial balance per currency).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import DEPLOY

BACKUP = DEPLOY / "backup" / "backup.sh"
RESTORE = DEPLOY / "backup" / "restore.sh"

SCHEMA = """
CREATE TABLE users (id bigserial PRIMARY KEY, email text UNIQUE NOT NULL);
CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    user_id bigint REFERENCES users(id),
    currency text NOT NULL,
    balance bigint NOT NULL DEFAULT 0
);
CREATE TABLE transfers (id bigserial PRIMARY KEY, idempotency_key text UNIQUE NOT NULL);
CREATE TABLE ledger_entries (
    id bigserial PRIMARY KEY,
    transfer_id bigint NOT NULL REFERENCES transfers(id),
    account_id bigint NOT NULL REFERENCES accounts(id),
    currency text NOT NULL,
    amount bigint NOT NULL
);
INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 25) g;
INSERT INTO accounts (user_id, currency)
    SELECT u.id, c FROM users u CROSS JOIN (VALUES ('USD'), ('POINTS')) v(c);
INSERT INTO accounts (user_id, currency) VALUES (NULL, 'USD'), (NULL, 'POINTS');
INSERT INTO transfers (idempotency_key) SELECT 'k' || g FROM generate_series(1, 200) g;
-- every transfer: one debit of the house account, one credit of a user account, same currency
INSERT INTO ledger_entries (transfer_id, account_id, currency, amount)
    SELECT t.id, h.id, h.currency, -(t.id * 7)
    FROM transfers t
    JOIN accounts h ON h.user_id IS NULL
        AND h.currency = CASE WHEN t.id % 2 = 0 THEN 'USD' ELSE 'POINTS' END;
INSERT INTO ledger_entries (transfer_id, account_id, currency, amount)
    SELECT t.id, a.id, a.currency, t.id * 7
    FROM transfers t
    JOIN accounts a ON a.user_id = (t.id % 25) + 1
        AND a.currency = CASE WHEN t.id % 2 = 0 THEN 'USD' ELSE 'POINTS' END;
UPDATE accounts a SET balance = COALESCE(
    (SELECT sum(amount) FROM ledger_entries e WHERE e.account_id = a.id), 0);
"""

TABLES = ["users", "accounts", "transfers", "ledger_entries"]


def _major(pg_bin: Path) -> int:
    out = subprocess.run(
        [str(pg_bin / "pg_dump"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"(\d+)(?:\.\d+)?", out.split(")")[-1])
    assert m, out
    return int(m.group(1))


def _server_major(psql: Path, url: str) -> int:
    out = subprocess.run(
        [str(psql), url, "-tAc", "SHOW server_version_num"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return int(out) // 10000


@pytest.fixture(scope="module")
def pg(services: Any) -> Iterator[dict[str, Any]]:
    """Client tools of the server's major version (a newer pg_dump writes SET commands an
    older server rejects), and a scratch database created for this module."""
    url = services.sync_database_url
    candidates = [Path(p) for p in (os.environ.get("PG_BIN"),) if p] + [Path(services.pg_bin)]
    server = _server_major(Path(services.pg_bin) / "psql", url)
    candidates.append(Path(f"/usr/lib/postgresql/{server}/bin"))
    pg_bin = next(
        (c for c in candidates if (c / "pg_dump").exists() and _major(c) == server),
        Path(services.pg_bin),
    )
    base, _, _ = url.rpartition("/")
    names = [f"backup_src_{uuid.uuid4().hex[:8]}", f"backup_dst_{uuid.uuid4().hex[:8]}"]
    psql = pg_bin / "psql"
    admin = f"{base}/postgres"
    subprocess.run([str(psql), admin, "-c", f"CREATE DATABASE {names[0]}"], check=True)
    try:
        yield {
            "bin": pg_bin,
            "psql": psql,
            "src": f"{base}/{names[0]}",
            "dst": f"{base}/{names[1]}",
            "dst_name": names[1],
        }
    finally:
        for name in names:
            subprocess.run(
                [str(psql), admin, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                capture_output=True,
            )


def sql(pg: dict[str, Any], url: str, query: str) -> str:
    return subprocess.run(
        [str(pg["psql"]), url, "-v", "ON_ERROR_STOP=1", "-tAc", query],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def snapshot(pg: dict[str, Any], url: str) -> dict[str, Any]:
    counts = {t: int(sql(pg, url, f"SELECT count(*) FROM {t}")) for t in TABLES}
    trial = sql(
        pg,
        url,
        "SELECT currency || '=' || sum(amount) FROM ledger_entries GROUP BY currency "
        "ORDER BY currency",
    ).splitlines()
    balances = sql(pg, url, "SELECT sum(balance) FROM accounts")
    per_transfer = sql(
        pg,
        url,
        "SELECT count(*) FROM (SELECT transfer_id FROM ledger_entries "
        "GROUP BY transfer_id, currency HAVING sum(amount) <> 0) x",
    )
    return {"counts": counts, "trial": trial, "balances": balances, "unbalanced": per_transfer}


def run_script(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_backup_and_restore_round_trip(pg: dict[str, Any], tmp_path: Path) -> None:
    subprocess.run(
        [str(pg["psql"]), pg["src"], "-v", "ON_ERROR_STOP=1", "-q", "-c", SCHEMA], check=True
    )
    before = snapshot(pg, pg["src"])
    assert before["counts"] == {
        "users": 25,
        "accounts": 52,
        "transfers": 200,
        "ledger_entries": 400,
    }
    assert before["trial"] == ["POINTS=0", "USD=0"]
    assert before["unbalanced"] == "0"

    env = {
        **os.environ,
        # The application's URL form: the script must turn it into a libpq URL.
        "DATABASE_URL": pg["src"].replace("postgresql://", "postgresql+asyncpg://"),
        "BACKUP_DIR": str(tmp_path / "backups"),
        "PG_BIN": str(pg["bin"]),
    }
    env.pop("BACKUP_BUCKET", None)
    done = run_script(BACKUP, env=env)
    assert done.returncode == 0, done.stderr
    dump = Path(done.stdout.strip().splitlines()[-1])
    assert dump.parent == tmp_path / "backups" and dump.suffix == ".dump"
    assert dump.stat().st_size > 0
    assert (dump.parent / (dump.name + ".sha256")).exists()
    assert "keeping the backup locally" in done.stderr

    restored = run_script(RESTORE, "--create", str(dump), pg["dst"], env=env)
    assert restored.returncode == 0, restored.stderr
    after = snapshot(pg, pg["dst"])
    assert after == before

    # A second restore into the now non-empty database is refused without --clean ...
    again = run_script(RESTORE, str(dump), pg["dst"], env=env)
    assert again.returncode != 0
    assert "use --clean" in again.stderr
    # ... and replaces it with --clean.
    sql(pg, pg["dst"], "DELETE FROM ledger_entries WHERE id % 2 = 0")
    clean = run_script(RESTORE, "--clean", str(dump), pg["dst"], env=env)
    assert clean.returncode == 0, clean.stderr
    assert snapshot(pg, pg["dst"]) == before

    # A corrupted dump is caught by its checksum before anything is touched.
    with dump.open("r+b") as f:
        f.seek(dump.stat().st_size // 2)
        f.write(b"\x00garbage\x00")
    bad = run_script(RESTORE, "--clean", str(dump), pg["dst"], env=env)
    assert bad.returncode != 0
    assert "checksum mismatch" in bad.stderr


def test_backup_uploads_to_the_bucket_with_gcloud(pg: dict[str, Any], tmp_path: Path) -> None:
    """With BACKUP_BUCKET set the dump goes to gs:// via `gcloud storage cp` and the local copy
    is removed. gcloud itself is replaced by a recorder that copies into a local directory."""
    sql(pg, pg["src"], "CREATE TABLE IF NOT EXISTS marker (id int)")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    bucket_dir = tmp_path / "bucket"
    bucket_dir.mkdir()
    gcloud = fake_bin / "gcloud"
    gcloud.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$@" >> "{tmp_path}/gcloud.calls"\n'
        '[ "$1 $2" = "storage cp" ] || exit 3\n'
        'src="${@: -2:1}"; dst="${@: -1}"\n'
        f'cp "$src" "{bucket_dir}/${{dst#gs://pull-backups/nightly/}}"\n'
    )
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ,
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "DATABASE_URL": pg["src"],
        "BACKUP_DIR": str(tmp_path / "local"),
        "BACKUP_BUCKET": "gs://pull-backups/nightly",
        "PG_BIN": str(pg["bin"]),
    }
    done = run_script(BACKUP, env=env)
    assert done.returncode == 0, done.stderr
    uri = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"gs://pull-backups/nightly/pull-backup_src_\w+-\d{8}T\d{6}Z\.dump", uri)
    uploaded = sorted(p.name for p in bucket_dir.iterdir())
    name = uri.rsplit("/", 1)[1]
    assert uploaded == [name, name + ".sha256"]
    assert list((tmp_path / "local").iterdir()) == []
    calls = (tmp_path / "gcloud.calls").read_text().splitlines()
    assert calls[0].startswith("storage cp")


def test_scripts_honour_pg_bin(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://x@127.0.0.1:1/db", "PG_BIN": str(tmp_path)}
    done = run_script(BACKUP, env=env)
    assert done.returncode != 0
    assert f"PG_BIN={tmp_path} has no executable pg_dump" in done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_scripts_pass_shellcheck() -> None:
    proc = subprocess.run(
        ["shellcheck", str(BACKUP), str(RESTORE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout
