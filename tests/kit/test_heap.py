"""What `freeze_startup_heap` leaves: the start-up heap frozen and the young threshold raised,
in a fresh interpreter that has imported the worker (as `pull worker` has when it calls it)."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_start_up_heap_is_frozen() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc; import pull.worker; from pull.kit.heap import freeze_startup_heap; "
            "print(gc.get_freeze_count()); freeze_startup_heap(); "
            "print(gc.get_freeze_count(), gc.get_threshold()[0])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    before, after = out.stdout.split("\n", 1)
    frozen, young = (int(x) for x in after.split())
    assert int(before) == 0
    assert frozen > 100_000  # every module the worker imports: a full collection skips them
    assert young == 50_000
