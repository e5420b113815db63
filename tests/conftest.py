"""Shared test set-up: one torch thread per test process.

The suite runs under ``pytest -n 2`` on 2 cores; torch's default of one thread per core
would oversubscribe them and make small-network tests an order of magnitude slower.
"""

import torch

torch.set_num_threads(1)
