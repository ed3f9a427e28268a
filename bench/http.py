"""HTTP benchmark: GET /health and a one-read endpoint against a bare Starlette baseline.

Run: `uv run python -m bench.http` (needs wrk). Results go to bench/results/http.json.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import bare_server, machine, pull_api, stack, table, write, wrk
from pull import devstack

SECONDS = 10


def main() -> None:
    script = Path(__file__).with_name("random_ip.lua")
    with stack() as s:
        base_port, api_port, limited_port = (devstack.free_port() for _ in range(3))
        with bare_server(base_port):
            wrk("warm-up", f"http://127.0.0.1:{base_port}/", seconds=2)
            baseline = wrk(
                "bare Starlette endpoint (baseline)",
                f"http://127.0.0.1:{base_port}/",
                seconds=SECONDS,
            )
        with pull_api(s, api_port, RATE_LIMIT_ENABLED="false"):
            url = f"http://127.0.0.1:{api_port}"
            wrk("warm-up", f"{url}/api/v1/status", seconds=2)
            health = wrk("GET /health", f"{url}/health", seconds=SECONDS)
            db_read = wrk(
                "GET /api/v1/status (one DB read, limits off)",
                f"{url}/api/v1/status",
                seconds=SECONDS,
            )
        with pull_api(s, limited_port, TRUST_PROXY="true"):
            url = f"http://127.0.0.1:{limited_port}"
            wrk("warm-up", f"{url}/api/v1/status", seconds=2, script=script)
            limited = wrk(
                "GET /api/v1/status (one DB read + Redis rate limit)",
                f"{url}/api/v1/status",
                seconds=SECONDS,
                script=script,
            )
    results = [baseline, health, db_read, limited]
    path = write(
        "http", {"machine": machine(), "seconds": SECONDS, "connections": 32, "results": results}
    )
    print(table(results, baseline))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
