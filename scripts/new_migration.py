"""Autogenerate an Alembic migration against a throwaway embedded PostgreSQL.

    uv run python scripts/new_migration.py "message" REV_ID   # writes versions/REV_ID_*.py
    uv run python scripts/new_migration.py --check            # fails if models and heads differ

The database is upgraded to heads first, so the new revision holds only what the models add.
Run `uv run ruff format src/pull/migrations` afterwards and read the result before committing.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from alembic import command

from pull import devstack
from pull.migrate import alembic_config, upgrade


def main(argv: list[str]) -> int:
    if not argv or (argv[0] != "--check" and len(argv) != 2):
        print(__doc__, file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    data_dir = Path(tempfile.mkdtemp(prefix="pull-migration-"))
    data_dir.chmod(0o755)
    pg, url = devstack.start_postgres(data_dir, devstack.free_port())
    try:
        upgrade(url)
        cfg = alembic_config(url)
        if argv[0] == "--check":
            command.check(cfg)
            print("models and migrations agree")
        else:
            command.revision(cfg, message=argv[0], autogenerate=True, rev_id=argv[1])
    finally:
        pg.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
