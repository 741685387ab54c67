"""penguin_pipeline: the Palmer Penguins data project of *DevOps for Data Science*, chapter 2,
as a Dagster asset graph."""

import gc

# A full garbage collection walks every object the process holds, and with CPython's defaults one
# runs every ~70,000 allocations once the heap has grown by a quarter: importing Dagster,
# scikit-learn and matplotlib paid ~0.7 s of `make run`'s ~5 s for full collections that found
# nothing (measured: docs/benchmarks/index.md). A hundred times fewer of them; the young
# generations are collected as before, so short-lived cycles are freed as promptly.
gc.set_threshold(*gc.get_threshold()[:2], 1000)
