"""``bptrain predict CKPT --prompt``: text from a character model."""

import numpy as np
import pytest

from bptrain.train.generate import sample

TEXT = "the cat sat on the mat. the dog sat on the log. " * 40


@pytest.fixture
def char_run(bptrain, tmp_path):
    (tmp_path / "text.txt").write_text(TEXT)
    (tmp_path / "char.yaml").write_text(
        "name: char\nseed: 0\n"
        "data: {dataset: text, path: text.txt, seq_len: 8, step: 1, test_split: 0.1}\n"
        "model:\n  layers:\n"
        "    - {type: Embedding, input_dim: 14, output_dim: 8}\n"
        "    - {type: LSTM, units: 32}\n"
        "    - {type: Dense, units: 14, activation: softmax}\n"
        "loss: sparse_categorical_crossentropy\n"
        "optimizer: {type: adam, learning_rate: 0.01}\n"
        "training: {epochs: 6, batch_size: 32}\nmetrics: [accuracy]\n"
    )
    assert len(set(TEXT)) == 14
    code, out, err = bptrain("fit", "char.yaml")
    assert code == 0, err
    (run,) = (tmp_path / "runs" / "char").iterdir()
    return run


def test_generates_text_that_continues_the_prompt(bptrain, char_run):
    code, out, err = bptrain(
        "predict", char_run, "--prompt", "the ca", "--length", "30", "--temperature", "0"
    )
    assert code == 0, err
    text = out.rstrip("\n")
    assert text.startswith("the ca") and len(text) == 36
    assert set(text) <= set(TEXT)
    assert "the cat sat on the mat" in text  # greedy decoding has learned the repeated text


def test_sampling_is_seeded(bptrain, char_run, tmp_path):
    args = ("predict", char_run, "--prompt", "the ", "--length", "40", "--seed", "5")
    first, second = bptrain(*args), bptrain(*args)
    assert first[0] == 0 and first[1] == second[1]
    code, _, err = bptrain(*args, "-o", tmp_path / "gen.txt")
    assert code == 0 and (tmp_path / "gen.txt").read_text() == first[1].rstrip("\n")


def test_bad_prompts_are_one_line_errors(bptrain, char_run):
    code, _, err = bptrain("predict", char_run, "--prompt", "XYZ")
    assert code == 1 and "not in its vocabulary: 'XYZ'" in err and err.count("\n") == 1
    code, _, err = bptrain("predict", char_run)
    assert code == 2 and "give either INPUT" in err


def test_prompt_needs_a_character_model(bptrain, write_config, small_config, tmp_path):
    code, _, err = bptrain("fit", write_config(small_config()), "training.epochs=1")
    assert code == 0, err
    (run,) = (tmp_path / "runs").glob("*/*")
    code, _, err = bptrain("predict", run, "--prompt", "hi")
    assert code == 2 and "needs a character model" in err


def test_sample_temperature():
    rng = np.random.default_rng(0)
    p = np.array([0.1, 0.6, 0.3])
    assert sample(p, 0, rng) == 1
    draws = np.bincount([sample(p, 1.0, rng) for _ in range(4000)], minlength=3) / 4000
    np.testing.assert_allclose(draws, p, atol=0.03)
    cold = np.bincount([sample(p, 0.2, rng) for _ in range(2000)], minlength=3) / 2000
    assert cold[1] > 0.9
