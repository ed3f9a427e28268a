"""Identity benchmark: login and authenticated GET /api/auth/me against a real `pull api`.

Run: `uv run python -m bench.auth` (needs wrk). The baseline is GET /health/live of the same
process in the same run. Argon2id runs at the production defaults (ARGON2_TIME_COST=2,
ARGON2_MEMORY_COST=19456 KiB, ARGON2_PARALLELISM=1, OWASP's first recommendation) so a login
costs what it costs in production. Rate limits are off (RATE_LIMIT_ENABLED=false): with them
on, a login client gets 10 tries per 15 minutes, which is the point of them, not a throughput.
Results go to bench/results/auth.json and to the "Identity" section of docs/performance.md
(only that section is rewritten).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import httpx

from bench.common import ROOT, Result, machine, pull_api, stack, table, write, wrk
from pull import devstack
from pull.config import Settings

SECONDS = 10
CONNECTIONS = 32
# Logins are CPU-bound (argon2id): more connections only queue (and hit wrk's 2 s timeout).
LOGIN_CONNECTIONS = 8
USERS = 64
PASSWORD = "Bench-Pass-2024x"  # noqa: S105 - throwaway bench accounts


def _login_script(emails: list[str]) -> Path:
    """POST /api/auth/login for a random one of the users (logins of one user serialize)."""
    body = [json.dumps({"email": e, "password": PASSWORD}) for e in emails]
    lua = (
        "math.randomseed(os.time())\n"
        f"local bodies = {{{', '.join(json.dumps(b) for b in body)}}}\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        "  return wrk.format(nil, nil, nil, bodies[math.random(1, #bodies)])\n"
        "end\n"
    )
    path = Path(tempfile.mkstemp(suffix=".lua", prefix="bench-login-")[1])
    path.write_text(lua)
    return path


def _bearer_script(token: str, method: str = "GET") -> Path:
    lua = f'wrk.method = "{method}"\nwrk.headers["Authorization"] = "Bearer {token}"\n'
    path = Path(tempfile.mkstemp(suffix=".lua", prefix="bench-me-")[1])
    path.write_text(lua)
    return path


def main() -> None:
    load_before = os.getloadavg()[0]
    defaults = Settings()
    argon2 = {
        "time_cost": defaults.argon2_time_cost,
        "memory_cost_kib": defaults.argon2_memory_cost,
        "parallelism": defaults.argon2_parallelism,
    }
    with stack() as s:
        port = devstack.free_port()
        with pull_api(s, port, RATE_LIMIT_ENABLED="false"):
            url = f"http://127.0.0.1:{port}"
            emails = [f"bench{i}@example.com" for i in range(USERS)]
            token = ""
            with httpx.Client(base_url=url, timeout=30) as c:
                for email in emails:
                    r = c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
                    r.raise_for_status()
                    token = r.json()["access_token"]
                me_check = c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
                me_check.raise_for_status()
            login_lua, me_lua = _login_script(emails), _bearer_script(token)
            check_lua = _bearer_script(token, "POST")
            wrk("warm-up", f"{url}/health/live", seconds=2)
            baseline = wrk(
                "GET /health/live (baseline, same process)",
                f"{url}/health/live",
                seconds=SECONDS,
                connections=CONNECTIONS,
            )
            check = wrk(
                "POST /api/auth/check (JWT + live-session check: what CurrentUser costs)",
                f"{url}/api/auth/check",
                seconds=SECONDS,
                connections=CONNECTIONS,
                script=check_lua,
            )
            me = wrk(
                "GET /api/auth/me (the check + reading the full user)",
                f"{url}/api/auth/me",
                seconds=SECONDS,
                connections=CONNECTIONS,
                script=me_lua,
            )
            login = wrk(
                "POST /api/auth/login (argon2id verify + new session)",
                f"{url}/api/auth/login",
                seconds=SECONDS,
                connections=LOGIN_CONNECTIONS,
                script=login_lua,
            )
            for script in (login_lua, me_lua, check_lua):
                script.unlink()
    results = [baseline, check, me, login]
    path = write(
        "auth",
        {
            "machine": machine(),
            "seconds": SECONDS,
            "connections": CONNECTIONS,
            "login_connections": LOGIN_CONNECTIONS,
            "users": USERS,
            "argon2id": argon2,
            "api_workers": 1,
            "rate_limits": "off",
            "load_average_before": round(load_before, 2),
            "results": results,
        },
    )
    print(f"argon2id: {argon2}")
    print(table(results, baseline))
    doc = update_docs(results, baseline, argon2, {**machine(), "load": load_before})
    print(f"\nwritten to {path} and {doc}")


def update_docs(
    results: list[Result], baseline: Result, argon2: dict[str, int], host: dict[str, object]
) -> Path:
    """Replace the "## Identity" section of docs/performance.md, leaving the others alone."""
    doc = ROOT / "docs" / "performance.md"
    section = (
        "## Identity\n\n"
        "`uv run python -m bench.auth`: one `pull api` process (1 uvicorn worker) on embedded "
        f"PostgreSQL and Redis, wrk for {SECONDS} s per scenario with {CONNECTIONS} connections "
        f"({LOGIN_CONNECTIONS} for login, which is CPU-bound and would only queue), "
        f"{host['cpus']} CPUs, Python {host['python']}, {host['date']}. Argon2id at the "
        f"production defaults: time cost {argon2['time_cost']}, memory "
        f"{argon2['memory_cost_kib']} KiB, parallelism {argon2['parallelism']}. Rate limits off "
        f"(with them on, login allows 10 tries per 15 minutes per IP and account). Logins pick "
        f"one of {USERS} accounts at random (logins of one account serialize on its row lock). "
        "The baseline is `/health/live` of the same process in the same run. Load average "
        f"when the run started: {host['load']:.1f} (other work shared the 2 cores, so read "
        "the absolute figures as a lower bound and the ratios to the baseline as the result)."
        "\n\n"
        f"{table(results, baseline)}\n\n"
        "A login is dominated by the argon2id verification (tens of milliseconds of CPU by "
        "design, run in a thread so other requests proceed); it also opens a session, stores a "
        "refresh token and an audit entry. `CurrentUser` (the check) verifies the JWT, then reads "
        "the session's and user's few columns it needs in one query: PostgreSQL decides whether "
        "a session is live, so a logout takes effect at once and a Redis outage logs nobody "
        "out; `/me` then loads the whole user row. "
        "Raw results: `bench/results/auth.json`.\n"
    )
    text = doc.read_text() if doc.exists() else "# Performance\n"
    start = text.find("## Identity\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if end == -1 else text[end:])
    doc.write_text(text)
    return doc


if __name__ == "__main__":
    main()
