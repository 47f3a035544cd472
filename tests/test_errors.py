from bptrain.errors import closest, did_you_mean


def test_closest_names_the_most_similar_choice_or_none():
    assert closest("batch_sise", ["epochs", "batch_size", "threads"]) == "batch_size"
    assert closest(16, [8, 161, 32]) == "161"  # non-strings are compared as text
    assert closest("zzz", ["epochs", "batch_size"]) is None


def test_did_you_mean_is_a_suffix_for_a_message():
    assert did_you_mean("relu6", ["relu", "tanh"]) == "; did you mean 'relu'?"
    assert did_you_mean("qqq", ["relu", "tanh"]) == ""
