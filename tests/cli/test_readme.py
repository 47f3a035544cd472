"""The README's examples run and do what it says: every command of its shell and console blocks
runs here in the form shown (the README's run directories, hosts and addresses replaced by
those the tests make, smaller data or fewer epochs where the real thing takes minutes), and
each console block's output has the lines the README shows (numbers aside, see ``shape``)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bptrain.runs import metrics_log
from tests.conftest import small_config

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec" if (BIN / "mpiexec").exists() else shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="pip install bptrain[mpi]",
)
needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason="pip install bptrain[dask]"
)
if importlib.util.find_spec("distributed") is not None:
    from tests.sweep.test_dask import dask_address  # noqa: F401  (a fixture)
MNIST = pytest.mark.skipif(
    not (
        Path(os.environ.get("BPTRAIN_DATA_DIR", "")) / "mnist" / "t10k-labels-idx1-ubyte.gz"
    ).exists(),
    reason="no MNIST files",
)

PIPELINE_FIT = (
    'bptrain fit configs/mnist_cnn.yaml "training.pipeline={stages: 2, micro_batches: 4}" '
    "--processes 2"
)
PIPELINE_SHOW = (
    'bptrain config show configs/mnist_cnn.yaml "training.pipeline={stages: 2, '
    'stage_boundaries: [3]}"'
)

# Every command in the README's code blocks, and where it runs. Add a README command here
# with the test that runs it.
WHERE = {
    "make demo": "tests/test_makefile.py (what it installs and runs) and test_demo_run_scores",
    "make test": "CI (.ci/run), and tests/test_makefile.py (what it installs)",
    "source .venv/bin/activate": "not run: the tests run in that environment",
    "export BPTRAIN_DATA_DIR=$PWD/../shared/data": "not run: tests/conftest.py sets it so",
    "bptrain fit configs/mnist_mlp.yaml": "test_demo_run_scores",
    "bptrain eval runs/mnist_mlp/<timestamp>": "test_demo_run_scores",
    "bptrain config check --build configs/spirals.yaml data.classes=3000000": (
        "test_memory_refusal"
    ),
    "bptrain fit configs/spirals.yaml": "test_spirals_commands",
    "bptrain eval runs/spirals/20261126-163825": "test_spirals_commands",
    "bptrain predict runs/spirals/20261126-163825 points.csv": "test_spirals_commands",
    "bptrain gradcheck configs/spirals.yaml": "test_spirals_commands",
    "bptrain fit pets.yaml": "test_your_own_images",
    "bptrain predict runs/pets/20261204-101500 new_photos cat.jpg": "test_your_own_images",
    "bptrain config check bad.yaml": "test_spirals_commands",
    'bptrain predict runs/char_lstm/20261126-172218 --prompt "The " --length 160 '
    "--temperature 0.5": "test_char_lstm_generates",
    "bptrain sweep configs/sweep_spirals.yaml --workers 2": "test_local_sweep",
    "dask scheduler --host 10.0.0.5 --port 8786": "the dask_address fixture, on 127.0.0.1",
    "dask worker tcp://10.0.0.5:8786 --nthreads 4": "the dask_address fixture, on 127.0.0.1",
    "bptrain sweep configs/sweep_mnist_mlp.yaml --executor dask --address tcp://10.0.0.5:8786": (
        "test_dask_sweep"
    ),
    "bptrain fit configs/mnist_cnn.yaml --processes 2": "test_mpi_commands",
    "mpiexec -n 2 python -m mpi4py -m bptrain fit configs/mnist_cnn.yaml": "test_mpi_commands",
    "mpiexec -hosts a,b -n 4 python -m mpi4py -m bptrain fit cfg.yaml": (
        "test_mpi_commands, with -hosts localhost,localhost"
    ),
    "bptrain fit configs/deep_sigmoid.yaml": "test_deep_nets_inspected",
    "bptrain inspect runs/deep_sigmoid/20261204-215233": "test_deep_nets_inspected",
    "bptrain fit configs/deep_relu.yaml": "test_deep_nets_inspected",
    "bptrain inspect runs/deep_relu/20261204-215240": "test_deep_nets_inspected",
    "bptrain fit configs/deep_sigmoid.yaml --tensorboard": "test_tensorboard_run",
    "tensorboard --logdir runs/deep_sigmoid": (
        "not run (a server): tests/runs/test_tensorboard.py reads the files with its reader"
    ),
    "bptrain export runs/mnist_cnn/20261204-101500 --format onnx --output mnist_cnn.onnx": (
        "test_onnx_export"
    ),
    PIPELINE_FIT: "test_pipeline_commands",
    PIPELINE_SHOW: "test_pipeline_commands",
}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def readme_commands() -> list[str]:
    """The commands of the README's ``sh`` blocks (comments dropped) and ``text`` blocks
    (the lines after ``$ ``)."""
    found = []
    for block in blocks("sh"):
        found += [re.sub(r"\s+#.*", "", line) for line in block.splitlines()]
    for block in blocks("text"):
        found += [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    return [c.strip() for c in found if c.strip() and not c.startswith("#")]


def command(text: str, replace: dict[str, str] | None = None) -> list[str]:
    """The README command ``text`` as arguments, after the README's placeholders are replaced
    (``replace``: README text -> what stands for it here)."""
    assert text in readme_commands(), f"the README no longer shows {text!r}"
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    return shlex.split(text)


def shown_output(text: str) -> list[str]:
    """The lines the README shows after ``$ text`` in its console block."""
    for block in blocks("text"):
        lines = block.splitlines()
        if f"$ {text}" in lines:
            rest = lines[lines.index(f"$ {text}") + 1 :]
            return [line for line in rest[: next_prompt(rest)]]
    raise AssertionError(f"no README output for {text!r}")


def next_prompt(lines: list[str]) -> int:
    return next((i for i, line in enumerate(lines) if line.startswith("$ ")), len(lines))


def shape(line: str) -> str:
    """A line with every number as N and runs of spaces as one: what must not change when a
    machine's round-off or speed gives other numbers (``epoch  36/150 ... (6ms)``)."""
    return " ".join(re.sub(r"-?\d[\d.,e+-]*", "N", line).split())


def assert_shows(text: str, output: str, replace: dict[str, str]) -> None:
    """Every line the README shows for ``text`` (but ``...``) is in ``output``, in order, with
    the same shape."""
    have = [shape(line) for line in output.splitlines()]
    at = 0
    for line in shown_output(text):
        if line.strip() == "...":
            continue
        for old, new in replace.items():
            line = line.replace(old, new)
        want = shape(line)
        assert want in have[at:], f"README line {line!r} not in the output:\n{output}"
        at = have.index(want, at) + 1


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working directory holding a copy of configs/, as in a checkout."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def edit(path: Path, change) -> None:
    """Rewrite a YAML file with ``change(mapping)`` applied."""
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def programs(args: list[str]) -> list[str]:
    """``args`` with the programs a README command runs (bptrain or mpiexec, and the python
    that mpiexec starts) as this environment's paths, which a test run's PATH may not hold."""
    first = {"bptrain": str(BIN / "bptrain"), "mpiexec": str(MPIEXEC)}
    return [first.get(args[0], args[0])] + [
        sys.executable if a == "python" else a for a in args[1:]
    ]


def run_dir(out: str) -> str:
    return re.search(r"^run directory: (\S+)$", out, re.M).group(1)


def test_every_readme_command_runs_in_a_test():
    commands = readme_commands()
    assert len(commands) == len(set(commands))
    assert sorted(commands) == sorted(WHERE), "README commands and the tests that run them"


def test_spirals_commands(bptrain, here):
    text = "bptrain fit configs/spirals.yaml"
    code, out, err = bptrain(*command(text)[1:])
    assert (code, err) == (0, "")
    run = run_dir(out)
    placeholder = {"runs/spirals/20261126-163825": run}
    assert_shows(text, out, placeholder)
    assert len(metrics_log.read(Path(run) / "metrics.csv")) == int(
        re.search(r"^best epoch \d+ of (\d+)", out, re.M).group(1)
    )

    text = "bptrain eval runs/spirals/20261126-163825"
    code, out, err = bptrain(*command(text, placeholder)[1:])
    assert (code, err) == (0, "")
    assert_shows(text, out, placeholder)

    text = "bptrain predict runs/spirals/20261126-163825 points.csv"
    Path("points.csv").write_text("x0,x1\n0.1,0.9\n-0.5,-0.4\n")
    code, out, err = bptrain(*command(text, placeholder)[1:])
    assert (code, err) == (0, "")
    assert_shows(text, out, placeholder)
    assert len(out.splitlines()) == 3

    text = "bptrain gradcheck configs/spirals.yaml"
    code, out, err = bptrain(*command(text)[1:])
    assert (code, err) == (0, "")
    assert_shows(text, out, {})

    code, out, err = bptrain("config", "check", "configs/spirals.yaml")
    assert (code, out) == (0, "configs/spirals.yaml: valid (3 layers, data: spirals)\n")
    assert "`configs/spirals.yaml: valid (3 layers, data: spirals)`" in README.read_text()

    text = "bptrain config check bad.yaml"
    Path("bad.yaml").write_text(
        "name: bad\ndata: {dataset: spirals}\nmodel:\n  layers:\n"
        "    - {type: Dense, units: 64, activation: relu}\n"
        "    - type: Dense\n      unit: 3\n"  # line 7
        "loss: sparse_categorical_crossentropy\n"
    )
    code, out, err = bptrain(*command(text)[1:])
    assert (code, out) == (2, "")
    assert err.splitlines() == shown_output(text)


@MNIST
def test_demo_run_scores(bptrain, here):
    """`make demo` trains configs/mnist_mlp.yaml (here on 3,000 images for one epoch); the
    README's next command scores it."""
    text = "bptrain fit configs/mnist_mlp.yaml"
    code, out, err = bptrain(*command(text)[1:], "data.limit=3000", "training.epochs=1")
    assert (code, err) == (0, "")
    run = run_dir(out)
    assert out.splitlines()[-1] == f"evaluate on the test set: bptrain eval {run}"
    text = "bptrain eval runs/mnist_mlp/<timestamp>"
    code, out, err = bptrain(*command(text, {"runs/mnist_mlp/<timestamp>": run})[1:])
    assert (code, err) == (0, "")
    assert ", test split, 10000 samples\n" in out
    accuracy = float(re.search(r"^accuracy\s+(\S+)$", out, re.M).group(1))
    assert 0.8 < accuracy < 1


def test_memory_refusal(bptrain, here):
    text = "bptrain config check --build configs/spirals.yaml data.classes=3000000"
    code, out, err = bptrain(*command(text)[1:])
    assert (code, out) == (2, "")
    assert [shape(line) for line in err.splitlines()] == [
        shape(line) for line in shown_output(text)
    ]


def test_char_lstm_generates(bptrain, here):
    code, out, err = bptrain("fit", "configs/char_lstm.yaml", "data.step=8", "training.epochs=1")
    assert (code, err) == (0, "")
    text = (
        'bptrain predict runs/char_lstm/20261126-172218 --prompt "The " --length 160 '
        "--temperature 0.5"
    )
    code, out, err = bptrain(*command(text, {"runs/char_lstm/20261126-172218": run_dir(out)})[1:])
    assert (code, err) == (0, "")
    assert out.startswith("The ") and len(out) == len("The ") + 160 + 1
    assert shown_output(text)[0].startswith("The ") and len(shown_output(text)[0]) == 164


@MNIST
def test_deep_nets_inspected(bptrain, here):
    """The deep sigmoid net's early layers are flagged as vanishing; the ReLU one's are not."""
    for name, stamp in (("deep_sigmoid", "20261204-215233"), ("deep_relu", "20261204-215240")):
        text = f"bptrain fit configs/{name}.yaml"
        code, out, err = bptrain(*command(text)[1:], "--progress", "plain")
        assert (code, err) == (0, "")
        assert_shows(text, out, {})
        placeholder = {f"runs/{name}/{stamp}": run_dir(out)}
        text = f"bptrain inspect runs/{name}/{stamp}"
        code, out, err = bptrain(*command(text, placeholder)[1:])
        assert (code, err) == (0, "")
        assert_shows(text, out, placeholder)
        flagged = [line.split(":")[1].strip() for line in out.splitlines() if line[:5] == "flag:"]
        assert flagged == ([f"dense{s}/kernel" for s in ("", "_1", "_2", "_3", "_4")]
                           if name == "deep_sigmoid" else [])  # fmt: skip


@MNIST
def test_tensorboard_run(bptrain, here):
    pytest.importorskip("tensorboardX", reason="pip install 'bptrain[tensorboard]'")
    text = "bptrain fit configs/deep_sigmoid.yaml --tensorboard"
    code, out, err = bptrain(*command(text)[1:], "training.epochs=1", "data.limit=640")
    assert (code, err) == (0, "")
    assert list((Path(run_dir(out)) / "tensorboard").glob("events.out.tfevents.*"))


@MNIST
def test_onnx_export(bptrain, here):
    pytest.importorskip("onnx", reason="pip install 'bptrain[onnx]'")
    code, out, err = bptrain("fit", "configs/mnist_cnn.yaml", "data.limit=256", "training.epochs=1")
    assert (code, err) == (0, "")
    text = "bptrain export runs/mnist_cnn/20261204-101500 --format onnx --output mnist_cnn.onnx"
    placeholder = {"runs/mnist_cnn/20261204-101500": run_dir(out)}
    code, out, err = bptrain(*command(text, placeholder)[1:])
    assert (code, err) == (0, "")
    assert_shows(text, out, placeholder)
    assert Path("mnist_cnn.onnx").stat().st_size > 100_000  # the weights are in it


def test_local_sweep(bptrain, here):
    # 2 folds of 2 epochs without plots: 24 short runs, not 36 of 30 epochs
    edit(here / "configs" / "sweep_spirals.yaml", lambda s: s.update(fixed={"training.epochs": 2}))
    edit(here / "configs" / "sweep_spirals.yaml", lambda s: s.update(cv={"folds": 2}))
    edit(here / "configs" / "spirals.yaml", lambda c: c["training"].update(plots=False))
    text = "bptrain sweep configs/sweep_spirals.yaml --workers 2"
    code, out, err = bptrain(*command(text)[1:])
    assert code == 0, err
    assert "6 trials x 2 seeds x 2 folds = 24 runs" in out
    assert "running 24 runs on 2 local processes (forkserver), 1 BLAS thread each" in out
    assert_shows(text, out, {})


@needs_dask
@MNIST
def test_dask_sweep(bptrain, here, dask_address):
    """On the two workers of a scheduler started as the README shows, on 127.0.0.1 (two trials
    on 500 images for one epoch)."""
    small = {"data.limit": 500, "training.epochs": 1}
    edit(here / "configs" / "sweep_mnist_mlp.yaml", lambda s: s["fixed"].update(small))
    edit(here / "configs" / "sweep_mnist_mlp.yaml", lambda s: s["random"].update(trials=2))
    text = (
        "bptrain sweep configs/sweep_mnist_mlp.yaml --executor dask --address tcp://10.0.0.5:8786"
    )
    code, out, err = bptrain(*command(text, {"tcp://10.0.0.5:8786": dask_address})[1:])
    assert code == 0, err
    assert f"running 2 runs on Dask cluster at {dask_address}" in out
    assert "best: trial " in out and "FAILED" not in out


@needs_mpi
@MNIST
@pytest.mark.timeout(180)
def test_mpi_commands(here):
    small = ["data.limit=512", "data.test_limit=100", "training.epochs=1", "training.plots=false"]
    for text in (
        "bptrain fit configs/mnist_cnn.yaml --processes 2",
        "mpiexec -n 2 python -m mpi4py -m bptrain fit configs/mnist_cnn.yaml",
    ):
        args = programs(command(text))
        done = subprocess.run([*args, *small], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("data-parallel on 2 MPI ranks") == 1
        assert done.stdout.count("training.replicas: 1 instead of 2: the 2 MPI ranks") == 1
        rows = metrics_log.read(Path(run_dir(done.stdout)) / "metrics.csv")
        assert [r["epoch"] for r in rows] == [1] and rows[0]["val_accuracy"] > 0.5

    Path("cfg.yaml").write_text(yaml.safe_dump(small_config()))
    text = "mpiexec -hosts a,b -n 4 python -m mpi4py -m bptrain fit cfg.yaml"
    args = programs(command(text, {"-hosts a,b": "-hosts localhost,localhost"}))
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("data-parallel on 4 MPI ranks") == 1


@needs_mpi
@MNIST
@pytest.mark.timeout(180)
def test_pipeline_commands(here):
    small = ["data.limit=512", "data.test_limit=100", "training.epochs=1", "training.plots=false"]
    args = programs(command(PIPELINE_FIT))
    done = subprocess.run([*args, *small], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("pipeline of 2 stages (1f1b, 4 micro-batches) on 2 MPI ranks") == 1
    assert out.count("pipeline stage 1 (rank 1): layers 5-6 (dense, dense_1), 206,218 params") == 1
    rows = metrics_log.read(Path(run_dir(out)) / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1] and rows[0]["val_accuracy"] > 0.5

    done = subprocess.run(programs(command(PIPELINE_SHOW)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shown = re.findall(r"^    (pipeline stage .*)$", README.read_text(), re.M)
    assert [f"# {line}" for line in shown] == done.stdout.splitlines()[-2:]


def test_library_example_trains(capsys):
    blocks_ = blocks("python")
    assert blocks_, "README has no python example"
    exec(compile(blocks_[0], "README.md", "exec"), {})
    out = capsys.readouterr().out
    loss, accuracy = map(float, re.fullmatch(r"loss (\S+), accuracy (\S+)\n", out).groups())
    assert accuracy > 0.95


def test_library_fit_example(here, capsys):
    (block,) = blocks("python")[1:]
    exec(compile(block, "README.md", "exec"), {})
    run, best_epoch, val_accuracy = capsys.readouterr().out.split()
    assert run.startswith("runs/spirals/") and 1 <= int(best_epoch) <= 30
    assert 0.9 < float(val_accuracy) <= 1


def test_sections():
    text = README.read_text()
    for heading in (
        "## On a fresh machine",
        "## Data",
        "## Commands",
        "## Config reference",
        "## The run directory",
        "## As a library",
        "## Performance",
    ):
        assert heading in text
    assert "make demo" in text and "make test" in text and "BPTRAIN_DATA_DIR" in text


def test_your_own_images(bptrain, here, monkeypatch):
    """The README's pets.yaml on a folder of dark cats and bright dogs of another size, then
    predict for a folder and a file."""
    from PIL import Image

    monkeypatch.setenv("XDG_CACHE_HOME", str(here / "cache"))
    config = next(b for b in blocks("yaml") if b.startswith("# pets.yaml"))
    (here / "pets.yaml").write_text(config)
    rng = np.random.default_rng(0)
    for name, low in (("cat", 0), ("dog", 150)):
        (here / "photos" / name).mkdir(parents=True)
        for i in range(40):
            pixels = rng.integers(low, low + 100, (40, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(here / "photos" / name / f"{i}.png")
    (here / "new_photos").mkdir()
    bright, dark = (rng.integers(low, low + 100, (50, 50, 3), np.uint8) for low in (150, 0))
    Image.fromarray(bright).save(here / "new_photos" / "1.png")
    Image.fromarray(dark).save(here / "cat.jpg")

    text = "bptrain fit pets.yaml"
    code, out, err = bptrain(*command(text)[1:])
    assert (code, err) == (0, "")
    assert "data: photos (classification), 64 train / 16 validation / 0 test" in out
    run = run_dir(out)

    text = "bptrain predict runs/pets/20261204-101500 new_photos cat.jpg"
    code, out, err = bptrain(*command(text, {"runs/pets/20261204-101500": run})[1:])
    assert (code, err) == (0, "")
    assert_shows(text, out, {})
    assert len(out.splitlines()) == 3
