"""Training: the loop, callbacks, metrics, and ``fit``, the in-process entry point.

fit          the story: resolve -> data and model -> engine -> run -> result
resume       where a run starts: a fresh run directory or a run to resume, and its checks
prepare      data and model of a config, checked against each other and against memory
engine       which strategy trains a run (MPI ranks, thread replicas, one model)
strategy     the strategy protocol and SingleProcess
replicas     ThreadReplicas: a batch split over model copies in threads
data_parallel  MPIRanks: a batch split over MPI ranks, one Allreduce per step
loop         the one Trainer: epochs, steps, validation, callbacks, checkpoints
summary      the text a run starts with; config.yaml's text
threads      how many BLAS threads a run uses
memory       size estimates and refusals; the process's memory policy
"""

from bptrain.train.fit import FitResult, fit
from bptrain.train.signals import Interrupted

__all__ = ["FitResult", "Interrupted", "fit"]
