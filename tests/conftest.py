"""Shared test set-up: one torch thread and one BLAS/OpenMP thread per test process, and no
hypothesis deadline.

The suite runs under ``pytest -n 2`` on 2 cores; torch's default of one thread per core (and
OpenBLAS's, used by numpy) would oversubscribe them: measured on a loaded 2-core machine, a
batch-1 numpy critic forward ran 41x slower with OpenBLAS's 2 threads than with 1, and a critic
gradient step 37x slower with torch's 2 threads (``benchmarks/overhead.py``, ``threads`` section).
"""

import torch
from hypothesis import settings
from threadpoolctl import threadpool_limits

torch.set_num_threads(1)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:  # already set in this process (pytest-xdist may import twice)
    pass
threadpool_limits(1)  # numpy's OpenBLAS and any OpenMP runtime loaded so far

# Hypothesis fails an example that takes over 200 ms, a timed assert in disguise: on a fresh clone
# (cold imports, bytecode being compiled) or a loaded 2-core machine the first examples can take
# longer. Speed is measured by the benchmarks, as ratios; the property tests check behaviour only.
settings.register_profile("safeshield", deadline=None)
settings.load_profile("safeshield")
