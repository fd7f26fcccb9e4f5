"""Test-wide settings that must be in place before numpy is imported."""

import os

# Many tiny Cholesky factorisations (Bayesian optimisation) thrash when OpenBLAS starts one thread
# per core on a 2-core machine already busy with the test itself: 16 s single-threaded, ~100 s not.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
