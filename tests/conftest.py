"""Shared test set-up: one torch thread and one BLAS/OpenMP thread per test process.

The suite runs under ``pytest -n 2`` on 2 cores; torch's default of one thread per core (and
OpenBLAS's, used by numpy) would oversubscribe them: measured on a loaded 2-core machine, a
batch-1 numpy critic forward ran 41x slower with OpenBLAS's 2 threads than with 1, and a critic
gradient step 37x slower with torch's 2 threads (``benchmarks/overhead.py``, ``threads`` section).
"""

import torch
from threadpoolctl import threadpool_limits

torch.set_num_threads(1)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:  # already set in this process (pytest-xdist may import twice)
    pass
threadpool_limits(1)  # numpy's OpenBLAS and any OpenMP runtime loaded so far
