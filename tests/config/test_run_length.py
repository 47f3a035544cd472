"""A run's length in steps, and schedule lengths in steps, in epochs or of the whole run."""

import pytest

from bptrain.config import load_config, resolve_with_overrides
from bptrain.config.build import build_schedule
from bptrain.config.run_length import RunLength, describe, schedule_steps
from bptrain.errors import ConfigError
from tests.conftest import REPO, small_config

# configs/linear_regression.yaml: 1000 samples, 20% test, 10% validation -> 720 to train on
LINEAR = RunLength(train_samples=720, batch_size=32, epochs=30)


def schedule(spec: str, *overrides) -> dict:
    config = resolve_with_overrides(
        small_config(), [f"training.schedule={spec}", *overrides], source="test"
    )
    return config.training.schedule


def test_steps_are_batches_and_the_last_partial_batch_counts():
    assert (LINEAR.steps_per_epoch, LINEAR.steps) == (23, 690)  # the comment said 29 and 870
    assert RunLength(54000, 64, 5).steps == 4220  # mnist_lstm.yaml
    assert RunLength(720, 32, 200).steps == 4600  # sine_regression.yaml said 5800
    assert LINEAR.describe() == (
        "720 training samples in batches of 32: 23 steps per epoch x 30 epochs = 690 steps"
    )


@pytest.mark.parametrize(
    ("spec", "steps", "text"),
    [
        (
            "{type: cosine}",
            {"decay_steps": 690, "warmup_steps": 0},
            "cosine, decay_steps 690 (the whole run), warmup_steps 0",
        ),
        (
            "{type: cosine, warmup_epochs: 2}",
            {"decay_steps": 644, "warmup_steps": 46},
            "cosine, decay_steps 644 (the whole run after the warmup), "
            "warmup_steps 46 (warmup_epochs: 2)",
        ),
        (
            "{type: cosine, decay_epochs: 2.5, warmup_steps: 5}",
            {"decay_steps": 58, "warmup_steps": 5},
            "cosine, decay_steps 58 (decay_epochs: 2.5), warmup_steps 5",
        ),
        (
            "{type: exponential, decay_rate: 0.1}",
            {"decay_steps": 690},
            "exponential, decay_steps 690 (the whole run)",
        ),
        (
            "{type: step, step_epochs: 10}",
            {"step_size": 230},
            "step, step_size 230 (step_epochs: 10)",
        ),
        ("{type: step, step_size: 100}", {"step_size": 100}, "step, step_size 100"),
        ("{type: cosine, decay_steps: 870}", {"decay_steps": 870, "warmup_steps": 0}, None),
    ],
)
def test_schedule_lengths_in_steps(spec, steps, text):
    resolved = schedule(spec)
    assert schedule_steps(resolved, LINEAR) == steps
    if text is not None:
        assert describe(resolved, LINEAR) == text


def test_the_resolved_schedule_keeps_the_units_it_was_given_in():
    assert schedule("{type: cosine}") == {
        "type": "cosine",
        "decay_steps": None,  # the whole run, counted when the data is loaded
        "decay_epochs": None,
        "alpha": 0.0,
        "warmup_steps": 0,
        "warmup_epochs": None,
    }
    # either unit replaces the other, as written or resolved: one length, the last given
    assert (
        schedule("{type: cosine, decay_steps: 870}", "training.schedule.decay_epochs=3")[
            "decay_steps"
        ]
        is None
    )
    again = schedule("{type: cosine, decay_epochs: 3}", "training.schedule.decay_steps=50")
    assert (again["decay_steps"], again["decay_epochs"]) == (50, None)


def test_the_built_schedule_follows_the_run():
    spec = schedule("{type: cosine, alpha: 0.1}")
    for run in (LINEAR, RunLength(720, 32, 10), RunLength(300, 32, 30)):
        cosine = build_schedule(spec, run)
        assert cosine.decay_steps == run.steps
        assert cosine(run.steps, 1.0) == pytest.approx(0.1)  # alpha x lr at the last step
        assert cosine(run.steps // 2, 1.0) == pytest.approx(0.55)  # halfway


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "{type: cosine, decay_steps: 10, decay_epochs: 1}",
            "training.schedule.decay_epochs: give either decay_steps or decay_epochs, not both",
        ),
        ("{type: step}", "training.schedule: step needs 'step_size' or 'step_epochs'"),
        ("{type: step, step_epochs: 0}", "training.schedule.step_epochs: must be positive, got 0"),
        (
            "{type: cosine, warmup_epochs: -1}",
            "training.schedule.warmup_epochs: must not be negative, got -1",
        ),
        (
            "{type: cosine, warmup_epochs: 3}",
            "training.schedule.warmup_epochs: the warmup (3 epochs) takes the whole run "
            "(training.epochs: 3), leaving none to decay over",
        ),
        (
            "{type: cosine, decay_epochs: many}",
            "training.schedule.decay_epochs: expected an integer or a number or null, got the "
            "string 'many'",
        ),
    ],
)
def test_bad_lengths(spec, message):
    with pytest.raises(ConfigError) as info:
        schedule(spec)
    assert str(info.value) == f"override training.schedule={spec}: {message}"


def test_a_warmup_in_steps_that_fills_the_run_is_an_error_once_the_run_is_known():
    spec = schedule("{type: cosine, warmup_steps: 690}")
    with pytest.raises(ConfigError) as info:
        build_schedule(spec, LINEAR)
    assert str(info.value) == (
        "training.schedule.warmup_steps: the warmup (690 steps) takes the whole run (720 training "
        "samples in batches of 32: 23 steps per epoch x 30 epochs = 690 steps), leaving no steps "
        "to decay over; shorten it, or give decay_steps or decay_epochs"
    )


@pytest.mark.parametrize("name", ["linear_regression", "sine_regression", "mnist_lstm"])
def test_the_shipped_schedules_span_their_runs(name):
    """No hand-counted steps: the shipped configs' schedules decay over the whole run."""
    spec = load_config(REPO / "configs" / f"{name}.yaml").training.schedule
    assert spec["type"] == "cosine" and spec["decay_steps"] is None
    assert spec["decay_epochs"] is None
