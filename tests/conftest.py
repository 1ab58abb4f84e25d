"""Suite-wide settings: deterministic property tests, no network."""

from __future__ import annotations

import os

# One BLAS thread per test process, unless the caller chose otherwise. The suite's matrices
# are small, and OpenBLAS's worker threads spin while they wait for work: on 2 shared cores
# that made the learned-router tests 5x slower (66 s against 10 s for one test, same
# machine, same load). It must be set before numpy is first imported, which is here:
# pytest loads this file before any test module.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from hypothesis import settings  # noqa: E402 - after the environment above

# Property tests draw the same examples on every run and write no example database.
settings.register_profile("pickllm", derandomize=True, database=None, deadline=None)
settings.load_profile("pickllm")
