"""A Hypothesis-generated corpus of broken experiment files: wrong types, unknown keys, negative
sizes, empty layers, layers whose shapes do not fit, non-UTF-8 bytes, huge numbers, deep
nesting, duplicate keys and alias bombs. Each must end ``bptrain fit`` with one line naming
the key (or, below the level of keys, the line), exit status 2, no traceback and nothing
written. The corpus runs in-process through ``main()``; a sample through the real executable.
"""

from __future__ import annotations

import collections
import copy
import json
import math
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptrain.cli import main
from tests.reliability.conftest import bptrain

FILE = "fuzz.yaml"
BASE = {
    "name": "fuzz",
    "seed": 0,
    "data": {"dataset": "spirals", "size": 30, "noise": 0.05, "validation_split": 0.2},
    "model": {
        "layers": [
            {"type": "Dense", "units": 8, "activation": "relu"},
            {"type": "Dense", "units": 3, "activation": "softmax"},
        ]
    },
    "loss": "sparse_categorical_crossentropy",
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "metrics": ["accuracy"],
    "training": {"epochs": 1, "batch_size": 16, "plots": False},
}


class Raw(str):
    """YAML text written as is (``.inf``, nested brackets, anchors)."""


class Twice(list):
    """A mapping written with a key twice: a list of (key, value) pairs."""


def flow(value) -> str:
    """YAML flow text of a value: mappings and lists in braces and brackets, strings quoted."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        value = Twice(value.items())
    if isinstance(value, Twice):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return json.dumps(value)


def render(doc) -> str:
    """One top-level section per line."""
    pairs = doc if isinstance(doc, Twice) else doc.items()
    return "".join(f"{k}: {flow(v)}\n" for k, v in pairs)


def path_text(path: tuple) -> str:
    """("model", "layers", 1, "units") -> "model.layers[1].units", as errors write it."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def set_in(doc, path: tuple, value):
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


def names_key(path: tuple) -> str:
    """The error names the file, maybe its line, then the key path."""
    return rf"{re.escape(FILE)}(:\d+)?: {re.escape(path_text(path))}(?![\w\[.])"


def at_line(reason: str) -> str:
    return rf"{re.escape(FILE)}:\d+: {reason}"


WORD = st.text(string.ascii_lowercase, min_size=1, max_size=8)
TEXT = st.text(string.ascii_letters + string.digits + " _-./", max_size=12)
UNKNOWN_NAME = WORD.map(lambda w: "zz" + w)
SMALL_LIST = st.lists(st.integers(-3, 3), max_size=3)
SMALL_MAP = st.dictionaries(WORD.map(lambda w: "k" + w), st.integers(0, 3), max_size=2)
WRONG = {
    "int": st.one_of(
        TEXT, st.booleans(), SMALL_LIST, SMALL_MAP, st.floats(0.5, 1e6).filter(lambda f: f % 1)
    ),
    "float": st.one_of(TEXT, st.booleans(), SMALL_LIST, SMALL_MAP),
    "bool": st.one_of(TEXT, st.integers(), st.floats(allow_nan=False), SMALL_LIST),
    "name": st.one_of(UNKNOWN_NAME, st.integers(), st.booleans(), SMALL_LIST, SMALL_MAP),
    "run name": st.one_of(st.integers(), SMALL_LIST, st.sampled_from(["../x", "a/b", "", "-x"])),
}
LEAVES = {
    ("seed",): "int",
    ("name",): "run name",
    ("data", "size"): "int",
    ("data", "noise"): "float",
    ("data", "validation_split"): "float",
    ("data", "dataset"): "name",
    ("model", "layers", 0, "units"): "int",
    ("model", "layers", 1, "units"): "int",
    ("model", "layers", 0, "activation"): "name",
    ("model", "layers", 1, "type"): "name",
    ("loss",): "name",
    ("optimizer", "type"): "name",
    ("optimizer", "learning_rate"): "float",
    ("metrics", 0): "name",
    ("training", "epochs"): "int",
    ("training", "batch_size"): "int",
    ("training", "plots"): "bool",
    ("training", "shuffle"): "bool",
}
MAPPINGS = [
    (),
    ("data",),
    ("model",),
    ("model", "layers", 0),
    ("model", "layers", 1),
    ("optimizer",),
    ("training",),
]
SIZES = [  # (path, smallest valid value)
    ("data", "size"),
    ("model", "layers", 0, "units"),
    ("model", "layers", 1, "units"),
    ("training", "epochs"),
    ("training", "batch_size"),
    ("training", "eval_batch_size"),
]
INT_PATHS = [p for p, kind in LEAVES.items() if kind == "int" and p != ("seed",)]
FLOAT_PATHS = [p for p, kind in LEAVES.items() if kind == "float"]
FLAT_INPUT_LAYERS = [
    {"type": "Conv2D", "filters": 2, "kernel_size": 3},
    {"type": "MaxPool2D"},
    {"type": "LSTM", "units": 4},
    {"type": "GRU", "units": 4},
]


@st.composite
def wrong_type(draw):
    path = draw(st.sampled_from(sorted(LEAVES, key=str)))
    value = draw(WRONG[LEAVES[path]])
    doc = copy.deepcopy(BASE)
    set_in(doc, path, value)
    return render(doc), names_key(path)  # metrics[0] too: the item is named


@st.composite
def unknown_key(draw):
    where = draw(st.sampled_from(MAPPINGS))
    key = "zz_" + draw(WORD)
    doc = copy.deepcopy(BASE)
    target = doc
    for part in where:
        target = target[part]
    target[key] = draw(st.one_of(st.integers(), TEXT, SMALL_LIST))
    return render(doc), names_key((*where, key))


@st.composite
def negative_size(draw):
    doc = copy.deepcopy(BASE)
    if draw(st.booleans()):
        path = draw(st.sampled_from(SIZES))
        set_in(doc, path, draw(st.integers(-(10**6), 0)))
    else:
        path = ("training", "checkpoint", "every_steps")
        doc["training"]["checkpoint"] = {"every_steps": draw(st.integers(-(10**6), 0))}
    return render(doc), names_key(path)


@st.composite
def empty_layers(draw):
    model = draw(
        st.sampled_from(
            [
                ({"layers": []}, ("model", "layers")),
                ({"layers": None}, ("model", "layers")),
                ({"layers": {}}, ("model", "layers")),
                ({}, ("model", "layers")),
                (None, ("model",)),
                ([], ("model",)),
                ({"layers": [{}]}, ("model", "layers", 0)),
                ({"layers": [{"type": "Dense"}]}, ("model", "layers", 0)),
                ({"layers": [None]}, ("model", "layers", 0)),
            ]
        )
    )
    doc = copy.deepcopy(BASE)
    doc["model"] = model[0]
    return render(doc), names_key(model[1])


@st.composite
def shapes_that_do_not_fit(draw):
    doc = copy.deepcopy(BASE)
    layers = doc["model"]["layers"]
    choice = draw(st.sampled_from(["outputs", "reshape", "flat input"]))
    if choice == "outputs":  # 3 classes, another number of outputs
        layers[1]["units"] = draw(st.integers(1, 40).filter(lambda n: n != 3))
        return render(doc), names_key(("model", "layers", 1))
    if choice == "reshape":  # 8 values per sample into another number
        shape = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3))
        if math.prod(shape) == 8:
            shape.append(2)
        layers.insert(1, {"type": "Reshape", "target_shape": shape})
        return render(doc), names_key(("model", "layers", 1))
    index = draw(st.integers(0, 1))  # image and sequence layers on flat vectors
    layers.insert(index, draw(st.sampled_from(FLAT_INPUT_LAYERS)))
    return render(doc), names_key(("model", "layers", index))


@st.composite
def not_utf8(draw):
    lines = render(BASE).encode().split(b"\n")
    line = draw(st.integers(0, len(lines) - 2))
    bad = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\x80abc", b"\xed\xa0\x80"]))
    where = draw(st.sampled_from(["comment", "value start"]))
    if where == "comment":
        lines[line] += b"  # " + bad
    else:
        key, rest = lines[line].split(b": ", 1)
        lines[line] = key + b": " + bad + rest
    return b"\n".join(lines), at_line("not UTF-8 text")


@st.composite
def huge_number(draw):
    doc = copy.deepcopy(BASE)
    choice = draw(st.sampled_from(["beyond 64 bits", "not finite", "no memory", "digits"]))
    if choice == "beyond 64 bits":
        path = draw(st.sampled_from(INT_PATHS))
        sign = draw(st.sampled_from([1, -1]))
        set_in(doc, path, sign * draw(st.integers(2**63, 10**80)))
        return render(doc), names_key(path)
    if choice == "not finite":
        path = draw(st.sampled_from(FLOAT_PATHS))
        set_in(doc, path, Raw(draw(st.sampled_from([".inf", "-.inf", ".nan", "1e400", "-9e999"]))))
        return render(doc), names_key(path)
    if choice == "no memory":  # weights beyond any address space (2**45 units: 256 TiB)
        index = draw(st.integers(0, 1))
        doc["model"]["layers"][index]["units"] = draw(st.integers(2**45, 2**62))
        return render(doc), names_key(("model", "layers", index))
    path = draw(st.sampled_from(INT_PATHS))  # more digits than Python converts (4300)
    set_in(doc, path, Raw("9" * draw(st.integers(4301, 20_000))))
    return render(doc), at_line("invalid YAML: an integer of")


@st.composite
def deep_nesting(draw):
    depth = draw(st.integers(33, 5000))
    deep = Raw(
        "[" * depth + "]" * depth if draw(st.booleans()) else "{a: " * depth + "1" + "}" * depth
    )
    doc = copy.deepcopy(BASE)
    section = draw(st.sampled_from(["data", "model", "zz_deep"]))
    if section == "model":
        doc["model"]["layers"][0]["units"] = deep
    else:
        doc[section] = deep
    return render(doc), names_key((section,)) + ": nested more than 32 levels deep"


@st.composite
def duplicate_key(draw):
    doc = copy.deepcopy(BASE)
    where = draw(st.sampled_from([(), ("data",), ("optimizer",), ("model", "layers", 0)]))
    target = doc
    for part in where[:-1]:
        target = target[part]
    mapping = target[where[-1]] if where else doc
    key = draw(st.sampled_from(sorted(mapping)))
    pairs = Twice(mapping.items())
    pairs.insert(draw(st.integers(0, len(pairs))), (key, mapping[key]))
    if where:
        target[where[-1]] = pairs
    else:
        doc = pairs
    return render(doc), names_key((*where, key)) + ": duplicate key"


@st.composite
def alias_bomb(draw):
    width = draw(st.integers(3, 12))
    levels = math.ceil(5 / math.log10(width)) + draw(st.integers(0, 3))  # > 100,000 values
    style = draw(st.sampled_from(["lists", "merges", "inside data"]))
    text = render(BASE)
    if style == "lists":
        text += f"a0: &a0 [{', '.join(['1'] * width)}]\n"
        for n in range(1, levels + 1):
            text += f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * width)}]\n"
        expected = rf"{re.escape(FILE)}:\d+: a\d+:"
    elif style == "merges":
        text += "m0: &m0 {" + ", ".join(f"k{i}: 1" for i in range(width)) + "}\n"
        for n in range(1, levels + 1):
            text += f"m{n}: &m{n} {{<<: [{', '.join([f'*m{n - 1}'] * width)}]}}\n"
        expected = rf"{re.escape(FILE)}:\d+: m\d+:"
    else:
        items = [f"x0: &x0 [{', '.join(['1'] * width)}]"]
        items += [
            f"x{n}: &x{n} [{', '.join([f'*x{n - 1}'] * width)}]" for n in range(1, levels + 1)
        ]
        text = text.replace("data: {", "data: {" + ", ".join(items) + ", ", 1)
        expected = rf"{re.escape(FILE)}:\d+: data:"
    return text, expected + " the document expands to more than 100,000 values"


@st.composite
def not_a_config(draw):
    text = draw(
        st.sampled_from(
            ["", "# only a comment\n", "- a\n- b\n", "42\n", "just text\n", "---\n", "[]\n"]
        )
    )
    return text, rf"{re.escape(FILE)}(:1)?: (the file is empty|the config must be a mapping)"


@st.composite
def bad_syntax(draw):
    lines = render(BASE).split("\n")
    line = draw(st.integers(0, len(lines) - 2))
    junk = draw(st.sampled_from(["{", "]", "\t", ": :", "&", "*nowhere", "'"]))
    key, rest = lines[line].split(": ", 1)
    lines[line] = f"{key}: {junk}{rest}"
    return "\n".join(lines), at_line("")  # below the level of keys: the line


KINDS = {
    "wrong type": wrong_type(),
    "unknown key": unknown_key(),
    "negative size": negative_size(),
    "empty layers": empty_layers(),
    "shapes": shapes_that_do_not_fit(),
    "not UTF-8": not_utf8(),
    "huge number": huge_number(),
    "deep nesting": deep_nesting(),
    "duplicate key": duplicate_key(),
    "alias bomb": alias_bomb(),
    "not a config": not_a_config(),
    "bad syntax": bad_syntax(),
}
CORPUS = st.sampled_from(sorted(KINDS)).flatmap(lambda kind: st.tuples(st.just(kind), KINDS[kind]))


def fit_in_process(capsys, document) -> tuple[int, str, str]:
    with open(FILE, "wb") as f:
        f.write(document.encode() if isinstance(document, str) else document)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["fit", FILE, "--progress", "none"])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def assert_one_line_error(code, out, err, expected: str) -> None:
    assert code == 2, err
    assert out == ""
    assert err.startswith(f"error: {FILE}") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(expected, err), f"{expected!r} not in {err!r}"


@pytest.mark.timeout(170)
def test_two_hundred_broken_experiment_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    seen: dict[bytes, str] = {}

    @settings(
        max_examples=300,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(CORPUS)
    def check(case):
        kind, (document, expected) = case
        code, out, err = fit_in_process(capsys, document)
        assert_one_line_error(code, out, err, expected)
        assert sorted(p.name for p in tmp_path.iterdir()) == [FILE]  # no runs/, nothing else
        seen[document if isinstance(document, bytes) else document.encode()] = kind

    check()
    assert len(seen) >= 200
    kinds = collections.Counter(seen.values())
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 5, kinds


SAMPLES = {
    "deep nesting": ("data: " + "[" * 3000 + "]" * 3000 + "\n", "data: nested more than 32"),
    "alias bomb": (
        render(BASE)
        + "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 9)),
        "the document expands to more than 100,000 values",
    ),
    "not UTF-8": (render(BASE).encode().replace(b"relu", b"rel\xff"), f"{FILE}:4: not UTF-8"),
    "no memory": (
        render(BASE).replace("units: 8", f"units: {2**46}"),
        "model.layers[0]: Dense has inputs of shape (2,) and outputs of shape (70368744177664,)",
    ),
    "shapes": (
        render(BASE).replace("units: 3", "units: 5"),
        "model.layers[1]: the model outputs 5 values per sample but the data has 3 classes",
    ),
    "huge integer": (
        render(BASE).replace("epochs: 1", "epochs: " + "9" * 5000),
        "an integer of 5000 digits",
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("document, expected", list(SAMPLES.values()), ids=list(SAMPLES))
def test_broken_files_through_the_real_executable(tmp_path, document, expected):
    (tmp_path / FILE).write_bytes(document.encode() if isinstance(document, str) else document)
    refused = bptrain("fit", FILE, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.startswith(f"error: {FILE}") and refused.stderr.count("\n") == 1
    assert expected in refused.stderr, refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE]
