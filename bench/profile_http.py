"""py-spy profile of one `pull api` process serving one authenticated GET under wrk.

Run: `uv run python -m bench.profile_http /api/v1/rewards/balance [seconds]` (needs wrk and
py-spy). Prints the API's CPU per request and writes a py-spy "raw" (collapsed stacks) file
to $PROFILE_OUT (default /tmp/profile-http.txt); `PROFILE=0` skips py-spy for a CPU-only figure.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from bench.common import pull_api, stack, wrk
from bench.rewards import FAST_HASH, _auth_script, _register_one, cpu_seconds
from pull import devstack


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/api/v1/rewards/balance"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    out = Path(os.environ.get("PROFILE_OUT", "/tmp/profile-http.txt"))
    with stack() as s:
        port = devstack.free_port()
        env = {"RATE_LIMIT_ENABLED": "false", **FAST_HASH}
        with pull_api(s, port, **env) as api:
            base = f"http://127.0.0.1:{port}"
            (user,) = asyncio.run(_register_one(base))
            script = _auth_script(user["access_token"])
            wrk("warm-up", f"{base}{path}", seconds=2, script=script)
            spy = None
            if os.environ.get("PROFILE", "1") != "0":
                spy = subprocess.Popen(
                    [
                        os.environ.get("PY_SPY", "py-spy"),
                        "record",
                        "-p",
                        str(api.pid),
                        "-d",
                        str(seconds),
                        "-r",
                        "200",
                        "-f",
                        "raw",
                        "-o",
                        str(out),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            a0 = cpu_seconds(api.pid)
            r = wrk(path, f"{base}{path}", seconds=seconds, script=script)
            cpu = cpu_seconds(api.pid) - a0
            if spy is not None:
                spy.wait()
            os.unlink(script)
    n = r.requests_per_s * seconds
    print(
        f"{path}: {r.requests_per_s:,.0f} req/s, API CPU {cpu * 1000 / n:.3f} ms/req, "
        f"non-2xx {r.non_2xx}, load {os.getloadavg()}"
    )
    print(f"profile: {out}")


if __name__ == "__main__":
    main()
