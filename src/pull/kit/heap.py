"""The garbage collector's settings for a long-running process, applied once start-up is done.

A full cyclic collection walks every tracked object while the event loop waits. After start-up
a PULL process holds hundreds of thousands of them (modules, routes, schemas, templates) that
live as long as the process, so they are moved to the permanent generation with `gc.freeze()`.
The young generation's threshold goes from CPython's 700 to 50,000 container objects: what a
request or an outbox batch allocates is freed by reference counting when it ends, and at 700 a
batch of a few thousand rows ran several young and middle collections (docs/performance.md:
Portfolio, Web app, Rewards' consumer). Not done at import: tests build many apps in one process.
"""

from __future__ import annotations

import gc

YOUNG_GC_THRESHOLD = 50_000


def freeze_startup_heap() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, 20, 100)
