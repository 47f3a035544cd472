"""Hyperparameter sweeps: grid and random search with k-fold cross-validation and seed
repeats, on local processes or a Dask cluster (``bptrain sweep``).

    from bptrain.sweep import SweepOptions, load_sweep, run_sweep
    from bptrain.sweep.progress import Console
    exit_code = run_sweep("configs/sweep_spirals.yaml", SweepOptions(workers=2, out=Console()))

Output goes through the ``out`` reporter (``bptrain.sweep.progress``): the command line passes
``Console()``; the default says nothing.
"""

from bptrain.sweep.runner import SweepOptions, run_sweep
from bptrain.sweep.spec import SweepSpec, load_sweep

__all__ = ["SweepOptions", "SweepSpec", "load_sweep", "run_sweep"]
