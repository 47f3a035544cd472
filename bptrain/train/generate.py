"""Text generation with a character model (``bptrain predict CKPT --prompt TEXT``).

The model was trained on windows of ``seq_len`` token ids to predict the next one (the ``text``
dataset). Generation feeds the prompt's last ``seq_len`` characters, draws the next character
from the predicted distribution sharpened or flattened by ``temperature``, appends it, and
repeats.
"""

from __future__ import annotations

import numpy as np

from bptrain.errors import ConfigError, DataError
from bptrain.runs import checkpoint
from bptrain.train.evaluate import checkpoint_path, restore_model


def generate_text(
    path, prompt: str, length: int = 200, temperature: float = 1.0, seed: int = 0
) -> str:
    """The prompt followed by ``length`` generated characters.

    temperature: 0 picks the most likely character each time; 1 samples the model's
    distribution; above 1 flattens it, below sharpens it. ``seed`` makes sampling repeatable.
    """
    if temperature < 0:
        raise ConfigError(f"--temperature must be 0 or more, got {temperature}")
    ckpt = checkpoint.load(checkpoint_path(path))
    config, model = restore_model(ckpt)
    if config.data["dataset"] != "text":
        raise ConfigError(
            f"--prompt needs a character model (data.dataset: text); this checkpoint was "
            f"trained on {config.data['dataset']!r}: give an INPUT file instead"
        )
    info = ckpt.state["data"]
    vocab: list[str] = info["class_names"]
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(prompt) - set(index))
    if not prompt or unknown:
        shown = "".join(unknown)[:20]
        raise DataError(
            "--prompt must be non-empty and use only characters of the training text"
            + (f"; not in its vocabulary: {shown!r}" if unknown else "")
        )
    window = int(info["input_shape"][0])
    ids = [index[c] for c in prompt]
    rng = np.random.default_rng(seed)
    for _ in range(length):
        x = np.asarray([ids[-window:]], dtype=np.int64)
        p = model.predict(x).astype(np.float64)[0]
        ids.append(sample(p, temperature, rng))
    return prompt + "".join(vocab[i] for i in ids[len(prompt) :])


def sample(p: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """A class index drawn from probabilities ``p`` reweighted as ``p ** (1 / temperature)``."""
    if temperature == 0:
        return int(np.argmax(p))
    logits = np.log(np.clip(p, 1e-12, None)) / temperature
    weights = np.exp(logits - logits.max())
    return int(rng.choice(len(p), p=weights / weights.sum()))
