"""The ``bptrain`` command line: parse arguments, call one function, print.

Every error a user can cause (a BptrainError, or a click usage error) is printed here as one
line ``error: ...`` and ends the program with its exit code: 2 for usage and config errors,
1 for data, checkpoint and divergence errors, 128 + N when stopped by signal N.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from bptrain import __version__
from bptrain.errors import BptrainError, ConfigError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@contextlib.contextmanager
def located(where):
    """Give ConfigErrors raised past config loading (a model that does not build, say) the file
    and line of the key they name."""
    try:
        yield
    except ConfigError as exc:
        from bptrain.config import locate_error

        raise locate_error(exc, where) from None


def read_config(path: str, overrides):
    """(resolved config, locations) of a config file with overrides (``bptrain.config``'s,
    imported on first use so that ``--help`` stays fast)."""
    from bptrain.config import read_config as read

    return read(path, overrides)


def split_args(args, config_required: bool) -> tuple[str | None, list[str]]:
    """CONFIG and the KEY.PATH=VALUE overrides after it."""
    args = list(args)
    if args and "=" not in args[0]:
        return args[0], args[1:]
    if config_required:
        raise click.UsageError("missing CONFIG (a YAML experiment file, e.g. configs/spirals.yaml)")
    return None, args


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="bptrain")
def cli():
    """Train neural networks from YAML experiment files on a NumPy backprop core.

    \b
    Examples:
      bptrain fit configs/spirals.yaml
      bptrain fit configs/mnist_mlp.yaml training.epochs=3 optimizer.learning_rate=0.01
      bptrain eval runs/spirals/20240101-120000
      bptrain config show configs/mnist_mlp.yaml
      bptrain sweep configs/sweep_spirals.yaml --workers 2
      bptrain inspect runs/deep_sigmoid/20240101-120000
      bptrain export runs/mnist_cnn/20240101-120000 --output mnist_cnn.onnx
    """


# -- fit ------------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.argument("args", nargs=-1, metavar="CONFIG [KEY.PATH=VALUE]...")
@click.option(
    "--resume",
    metavar="RUN_DIR|CHECKPOINT",
    help="Continue a run from its checkpoints/last.safetensors (or the checkpoint file given), "
    "exactly where it stopped, e.g. --resume runs/spirals/20240101-120000. CONFIG may then be "
    "left out; overrides may change training and optimizer settings, e.g. training.epochs=20 "
    "(a schedule that spans the whole run then spans the new one).",
)
@click.option(
    "--run-dir",
    metavar="DIR",
    help="Write the run into DIR instead of runs/<name>/<YYYYmmdd-HHMMSS>, e.g. --run-dir /tmp/r1.",
)
@click.option(
    "--runs-root",
    default="runs",
    show_default=True,
    metavar="DIR",
    help="Where new run directories are created, e.g. --runs-root ~/experiments.",
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "bar", "plain", "none"]),
    default="auto",
    show_default=True,
    help="A progress bar per epoch (bar), one line per epoch (plain), or nothing (none); auto "
    "shows a bar in a terminal and plain lines otherwise, e.g. --progress plain.",
)
@click.option(
    "--processes",
    type=click.IntRange(1),
    metavar="N",
    help="Train data-parallel on N processes of this machine through MPI (pip install "
    "bptrain[mpi]): each takes a slice of every batch, the same result as one process "
    "(training.replicas becomes 1: the ranks split the batch instead of threads); with "
    "training.pipeline, the ranks hold its stages (N = stages x replicas). Runs "
    "mpiexec -n N python -m mpi4py -m bptrain fit ..., e.g. --processes 2. For several "
    "machines run mpiexec yourself (see the README).",
)
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Write TensorBoard event files into the run's tensorboard/ folder (the same as "
    "training.tensorboard=true; pip install bptrain[tensorboard]), e.g. "
    "bptrain fit configs/deep_sigmoid.yaml --tensorboard, then tensorboard --logdir runs.",
)
def fit(args, resume, run_dir, runs_root, progress, processes, tensorboard):
    """Train a model as CONFIG says, writing a run directory.

    Overrides KEY.PATH=VALUE change the config; values are read as YAML, list items are
    numbered from 0. Prints where the run lives, one line (or progress bar) per epoch, and a
    summary with the best epoch. Ctrl-C saves a checkpoint of the current step and stops
    (exit status 130); --resume continues it bit for bit.

    \b
    Examples:
      bptrain fit configs/mnist_mlp.yaml
      bptrain fit configs/spirals.yaml training.epochs=20 model.layers.0.units=32
      bptrain fit --resume runs/spirals/20240101-120000
      bptrain fit --resume runs/spirals/20240101-120000 training.epochs=300
      bptrain fit configs/mnist_cnn.yaml --processes 2
      bptrain fit configs/deep_sigmoid.yaml --tensorboard
    """
    from bptrain.train import distributed
    from bptrain.train import fit as run_fit
    from bptrain.train.report import fit_summary

    path, overrides = split_args(args, config_required=resume is None)
    overrides += ["training.tensorboard=true"] if tensorboard else []
    config, where = (None, None)
    if path is not None:
        config, where = read_config(path, overrides)
        overrides = []
    if resume is not None and run_dir is not None:
        raise click.UsageError("--run-dir makes a new run; --resume continues one: give one")
    if processes is not None:
        from bptrain.train.progress import choose

        options = ["--runs-root", runs_root, "--progress", choose(progress)]
        options += ["--resume", resume] if resume is not None else []
        options += ["--run-dir", run_dir] if run_dir is not None else []
        options += ["--tensorboard"] if tensorboard else []
        return distributed.launch(processes, [*options, "--", *args])
    with located(where):
        result = run_fit(
            config,
            run_dir=run_dir,
            resume=resume,
            progress=progress,
            runs_root=runs_root,
            overrides=overrides,
        )
    if not distributed.world().leader:
        return 0
    click.echo(fit_summary(result, result.config))
    return 0


# -- eval -----------------------------------------------------------------------------------------
@cli.command("eval", context_settings=CONTEXT)
@click.argument("checkpoint", metavar="CHECKPOINT")
@click.argument("overrides", nargs=-1, metavar="[KEY.PATH=VALUE]...")
@click.option(
    "--split",
    type=click.Choice(["test", "val", "train"]),
    default="test",
    show_default=True,
    help="The data split to score, e.g. --split val.",
)
def eval_(checkpoint, overrides, split):
    """Score a checkpoint on a data split and print a metrics table.

    CHECKPOINT is a .safetensors file or a run directory (its best checkpoint, else its last).
    Classifiers get accuracy, per-class and macro precision, recall and F1, and the confusion
    matrix; regressors MSE, MAE and R² (in the targets' own units). Writes eval.json (one
    entry per split) and plots/confusion_matrix.png into the run. Overrides may change data
    settings only. The data are looked for in data.root, $BPTRAIN_DATA_DIR, then where the run
    found them; only what the split needs is read (MNIST's test split: its two test files).

    \b
    Examples:
      bptrain eval runs/mnist_mlp/20240101-120000
      bptrain eval runs/mnist_mlp/20240101-120000/checkpoints/last.safetensors --split val
      bptrain eval runs/mnist_mlp/20240101-120000 data.root=/data/mnist
    """
    from bptrain.train.evaluate import evaluate_checkpoint
    from bptrain.train.report import eval_table

    click.echo(eval_table(evaluate_checkpoint(checkpoint, split, overrides)))
    return 0


# -- predict --------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", metavar="CHECKPOINT")
@click.argument("inputs", metavar="INPUT...", nargs=-1)
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    help="Write predictions to FILE: .csv (predicted class and class probabilities, or values) "
    "or .npy (the outputs as an array), e.g. -o predictions.csv. Default: CSV on stdout. "
    "Regression values are in the targets' own units (data.scale_target undone).",
)
@click.option(
    "--scaled",
    is_flag=True,
    help="INPUT is already scaled like the training data; without it the run's data.scale "
    "statistics are applied (raw 0-255 pixels for MNIST, say).",
)
@click.option(
    "--prompt",
    metavar="TEXT",
    help="For a character model (data.dataset: text): generate text that continues TEXT "
    "instead of reading INPUT, e.g. --prompt 'The '.",
)
@click.option(
    "--length",
    default=200,
    show_default=True,
    type=click.IntRange(1),
    help="With --prompt: how many characters to generate, e.g. --length 500.",
)
@click.option(
    "--temperature",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0),
    help="With --prompt: 0 takes the likeliest character each time, 1 samples the model's "
    "distribution, higher is more random, e.g. --temperature 0.5.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="With --prompt: seed of the sampling, e.g. --seed 3.",
)
def predict(checkpoint, inputs, output, scaled, prompt, length, temperature, seed):
    """Predict with a checkpoint for the samples in INPUT (.npy, .npz or .csv), or in image
    files and folders of them, or generate text from a character model with --prompt.

    Each sample is a row (flat rows are reshaped to the model's input shape) or an array of
    the input shape; a .npz file holds them as 'x' (or as its only array). A CSV header row is
    skipped; an empty row inside the file is an error (every row gets its prediction). Images
    (.png, .jpg; a folder gives every image under it) are resized and converted to the model's
    input as in training, and each output row starts with the file's name.

    \b
    Examples:
      bptrain predict runs/spirals/20240101-120000 points.csv
      bptrain predict runs/mnist_mlp/20240101-120000 digits.npy -o predictions.csv
      bptrain predict runs/pets/20240101-120000 new_photos/ cat.jpg
      bptrain predict runs/char_lstm/20240101-120000 --prompt "The " --length 300
    """
    if bool(inputs) == (prompt is not None):
        raise click.UsageError(
            "give either INPUT (a .npy, .npz or .csv file, or images) or --prompt TEXT"
        )
    if prompt is not None:
        from bptrain.runs.atomic import write_text
        from bptrain.train.generate import generate_text

        text = generate_text(checkpoint, prompt, length, temperature, seed)
        if output is None:
            click.echo(text)
        else:
            write_text(output, text)
            click.echo(f"wrote {len(text)} characters to {output}", err=True)
        return 0

    from bptrain.train.predict import predict_file

    text, n = predict_file(checkpoint, inputs, output, scaled)
    if text is not None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {n} predictions to {output}", err=True)
    return 0


# -- export ---------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx"]),
    default="onnx",
    show_default=True,
    help="The file format: ONNX (pip install bptrain[onnx]), e.g. --format onnx.",
)
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    required=True,
    help="Where to write the model, e.g. --output model.onnx.",
)
def export(checkpoint, fmt, output):
    """Write a trained model for other runtimes (ONNX Runtime, ...).

    RUN_OR_CHECKPOINT is a run directory (its best checkpoint, else its last) or a
    .safetensors file. The ONNX model takes the raw inputs 'x' (N, *input shape), float32, as
    bptrain predict reads them, applies the run's data.scale statistics, and outputs 'y': what
    bptrain predict computes (class probabilities, or values in the targets' own units).
    Dropout is left out and BatchNorm uses its running statistics, as in prediction.

    \b
    Examples:
      bptrain export runs/mnist_cnn/20240101-120000 --format onnx --output mnist_cnn.onnx
      bptrain export runs/char_lstm/20240101-120000/checkpoints/last.safetensors -o lstm.onnx
    """
    from bptrain.export import export_onnx

    done = export_onnx(checkpoint, output)
    shape = "x".join(map(str, done.input_shape))
    scale = ", data.scale folded in" if done.scale else ""
    click.echo(
        f"wrote {done.path} (ONNX: {done.layers} layers from {done.checkpoint}; input x: "
        f"N x {shape}{scale}; output y: as bptrain predict)"
    )
    return 0


# -- inspect --------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.argument("run", metavar="RUN")
@click.option(
    "--max-dead",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Flag a ReLU layer when more than this fraction of its units output 0 for every "
    "probe sample, e.g. --max-dead 0.2.",
)
def inspect(run, max_dead):
    """Show the per-layer diagnostics of a run's last recorded step and flag problems.

    RUN is a run directory trained with training.diagnostics: true (its layers.csv). Prints
    each parameter's gradient norm, weight norm and update ratio ||dw||/||w||, each layer's
    output mean, standard deviation and dead ReLU units, then flags, with the layer's name:
    vanishing gradients (a weight's gradient 100x below the largest), exploding ones (not
    finite, or over 10x the weight's norm), update ratios over 100x away from 1e-3, and dead
    ReLUs above --max-dead. plots/gradients.png and plots/updates.png show the whole run.

    \b
    Examples:
      bptrain fit configs/deep_sigmoid.yaml
      bptrain inspect runs/deep_sigmoid/20240101-120000
    """
    from bptrain.train.inspect import inspect_run, inspect_table

    click.echo(inspect_table(inspect_run(run, max_dead)))
    return 0


# -- gradcheck ------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.argument("args", nargs=-1, metavar="CONFIG [KEY.PATH=VALUE]...")
@click.option(
    "--samples",
    default=4,
    show_default=True,
    type=click.IntRange(1),
    help="How many training samples the check uses, e.g. --samples 8.",
)
@click.option(
    "--tolerance",
    default=1e-6,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="The largest relative error that passes, e.g. --tolerance 1e-5.",
)
@click.option(
    "--training",
    is_flag=True,
    help="Check the training-mode function (dropout with a fixed mask, BatchNorm batch "
    "statistics) instead of inference mode, e.g. bptrain gradcheck cfg.yaml --training.",
)
def gradcheck(args, samples, tolerance, training):
    """Check the config's model gradients against finite differences.

    Builds the model, casts it to float64 and compares every parameter's backpropagated
    gradient with central differences on a few training samples (slightly jittered, so no
    ReLU sits exactly on its kink). Prints the relative error per parameter; exits with status
    1 when one exceeds the tolerance.

    \b
    Examples:
      bptrain gradcheck configs/spirals.yaml
      bptrain gradcheck configs/mnist_mlp.yaml data.limit=100 --samples 2
    """
    from bptrain.train.gradcheck import GradcheckFailed, gradcheck_config
    from bptrain.train.report import gradcheck_table

    path, overrides = split_args(args, config_required=True)
    config, where = read_config(path, overrides)
    with located(where):
        result = gradcheck_config(config, samples, tolerance, training)
    click.echo(gradcheck_table(result))
    if not result.passed:
        worst = max(result.report.errors, key=result.report.errors.get)
        raise GradcheckFailed(
            f"gradient check failed for {', '.join(result.failures())} (worst: {worst}, "
            f"relative error {result.report.errors[worst]:.2e} > {tolerance:g})"
        )
    click.echo("gradient check passed")
    return 0


# -- config ---------------------------------------------------------------------------------------
@cli.group("config", context_settings=CONTEXT)
def config_group():
    """Show or check an experiment file.

    \b
    Examples:
      bptrain config show configs/mnist_mlp.yaml optimizer.learning_rate=0.01
      bptrain config check configs/mnist_mlp.yaml
    """


@config_group.command("show", context_settings=CONTEXT)
@click.argument("args", nargs=-1, metavar="CONFIG [KEY.PATH=VALUE]...")
def config_show(args):
    """Print the resolved config: the file with the overrides applied and every default
    filled in, as a run directory's config.yaml stores it. For a learning-rate schedule that
    counts steps, comments at the end give the run's length (training samples, batch size,
    epochs) and the schedule's lengths in steps (the data is loaded to count them).

    \b
    Example:
      bptrain config show configs/spirals.yaml training.epochs=10
    """
    from bptrain.train.summary import config_text

    path, overrides = split_args(args, config_required=True)
    config, where = read_config(path, overrides)
    with located(where):
        text = config_text(config)
    click.echo(text, nl=False)
    return 0


@config_group.command("check", context_settings=CONTEXT)
@click.argument("args", nargs=-1, metavar="CONFIG [KEY.PATH=VALUE]...")
@click.option(
    "--build",
    is_flag=True,
    help="Also load the data and build the model, which finds layer shapes that do not fit "
    "the data and data or models too large for the memory (training.max_memory), e.g. "
    "bptrain config check --build configs/mnist_mlp.yaml.",
)
def config_check(args, build):
    """Validate CONFIG: unknown keys, wrong types, unknown names, bad values.

    Prints one line saying the file is valid, or the first error with its file, line and key
    (exit status 2).

    \b
    Example:
      bptrain config check configs/mnist_mlp.yaml
    """
    path, overrides = split_args(args, config_required=True)
    config, where = read_config(path, overrides)
    what = f"{len(config.model.layers)} layers, data: {config.data['dataset']}"
    if build:
        from bptrain.train.prepare import prepare

        with located(where):
            _, model = prepare(config)
        what += f", {model.network.count_params():,} parameters"
    click.echo(f"{path}: valid ({what})")
    return 0


# -- sweep ----------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.argument("args", nargs=-1, metavar="SWEEP [KEY.PATH=VALUE]...")
@click.option(
    "--workers",
    type=click.IntRange(1),
    metavar="N",
    help="Runs at once: local processes, or the workers of a local Dask cluster (default: one "
    "per core). BLAS threads per run are set so workers x threads <= cores, e.g. --workers 4.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Run on local processes, or on a Dask cluster (pip install bptrain[dask]): the one at "
    "--address, else a local one on 127.0.0.1, e.g. --executor dask.",
)
@click.option(
    "--address",
    metavar="tcp://HOST:8786",
    help="The Dask scheduler to use with --executor dask, e.g. --address tcp://10.0.0.5:8786. "
    "Its workers need bptrain and must see the sweep directory at the same path.",
)
@click.option(
    "--max-trials",
    type=click.IntRange(1),
    metavar="N",
    help="Run only the first N trials (grid first, then random samples), e.g. --max-trials 5.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate the sweep file and every trial's config, print the trials, run nothing.",
)
@click.option(
    "--resume",
    metavar="SWEEP_DIR",
    help="Continue a sweep: run only what did not finish (failed, interrupted or never "
    "started), e.g. --resume runs/sweeps/spirals/20240101-120000. Refused if the sweep file "
    "or its base config changed. SWEEP may then be left out; the overrides the sweep started "
    "with are used again.",
)
@click.option(
    "--runs-root",
    default="runs",
    show_default=True,
    metavar="DIR",
    help="Sweeps go to DIR/sweeps/<name>/<YYYYmmdd-HHMMSS>, e.g. --runs-root ~/experiments.",
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "bar", "plain", "none"]),
    default="auto",
    show_default=True,
    help="One bar over the runs with the best result so far (bar), one line per finished run "
    "(plain), or nothing; auto shows a bar in a terminal, e.g. --progress plain.",
)
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Every run writes TensorBoard event files into its tensorboard/ folder (the same as "
    "the override training.tensorboard=true): tensorboard --logdir SWEEP_DIR compares them, "
    "e.g. bptrain sweep configs/sweep_spirals.yaml --tensorboard.",
)
def sweep(
    args, workers, executor, address, max_trials, dry_run, resume, runs_root, progress,
    tensorboard,
):  # fmt: skip
    """Search hyperparameters: grid and random trials, k-fold cross-validation, seed repeats.

    Each run (a trial on one fold with one seed) is a run directory under
    runs/sweeps/<name>/<YYYYmmdd-HHMMSS>/, next to the journal sweep.jsonl, leaderboard.csv,
    leaderboard.md and plots/. Prints the leaderboard, the best trial and the command that
    retrains it on the full training set. A failed run does not stop the others; the exit
    status is 1 only when every run failed. Overrides KEY.PATH=VALUE change the base config of
    every trial, as with fit; they win over the sweep's fixed values, and what the sweep varies
    (its grid and random keys, seed under seeds, the validation split under cv) cannot be
    overridden.

    \b
    Examples:
      bptrain sweep configs/sweep_spirals.yaml --workers 2
      bptrain sweep configs/sweep_spirals.yaml --dry-run
      bptrain sweep configs/sweep_mnist_mlp.yaml training.epochs=1 data.limit=2000
      bptrain sweep configs/sweep_mnist_mlp.yaml --executor dask --address tcp://10.0.0.5:8786
      bptrain sweep --resume runs/sweeps/sweep_spirals/20240101-120000
    """
    from bptrain.sweep import SweepOptions, run_sweep
    from bptrain.sweep.progress import Console

    sweep_file, overrides = split_args(args, config_required=False)
    overrides += ["training.tensorboard=true"] if tensorboard else []
    if sweep_file is None and resume is None:
        raise click.UsageError("missing SWEEP (a sweep file, e.g. configs/sweep_spirals.yaml)")
    options = SweepOptions(
        workers=workers,
        executor=executor,
        address=address,
        max_trials=max_trials,
        dry_run=dry_run,
        runs_root=Path(runs_root),
        progress=progress,
        out=Console(),
    )
    return run_sweep(sweep_file, options, resume=resume, overrides=overrides)


# -- entry point ----------------------------------------------------------------------------------
def main(argv=None) -> None:
    """Run the CLI; user errors become one line on stderr and an exit status."""
    import numpy as np

    try:
        # Overflow in a diverged model's outputs is reported by bptrain itself, in one line.
        with np.errstate(all="ignore"):
            code = cli.main(args=argv, prog_name="bptrain", standalone_mode=False)
    except click.exceptions.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `bptrain` alone: show the help
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        ctx = exc.ctx
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(f"{exc.format_message().rstrip('.')}{hint}", 2)
    except BptrainError as exc:
        _fail(str(exc), exc.exit_code, prefix=exc.prefix)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (bptrain config show | head)
        sys.exit(1)
    except OSError as exc:  # a file the environment denies us (full disk, permissions, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int, prefix: str = "error: ") -> None:
    from bptrain.train.distributed import world

    # Under mpiexec, once for all ranks (see bptrain/train/distributed.py).
    world().fail(prefix + " ".join(message.split()), code)
    sys.exit(code)
