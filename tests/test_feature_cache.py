"""The feature cache computes a text once per model identity, survives a new process, and loses nothing
but time when a shard is damaged."""

import numpy as np

from driftfit.state.feature_cache import FeatureCache, cached


class Counting:
    """A deterministic 'model': a text's row is its length and its first character's code."""

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, texts):
        self.seen += texts
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32).reshape(len(texts), 2)


def test_only_missing_texts_are_computed_and_rows_keep_input_order(tmp_path):
    model = Counting()
    embed = cached(tmp_path, "model A", model)
    first = embed(["bb", "a", "bb", "ccc"])
    assert model.seen == ["bb", "a", "ccc"]                      # a repeated text is computed once
    np.testing.assert_array_equal(first, model(["bb", "a", "bb", "ccc"]))
    model.seen.clear()
    again = cached(tmp_path, "model A", model)(["ccc", "dddd", "a"])   # a new process: reads the shards
    assert model.seen == ["dddd"]
    np.testing.assert_array_equal(again, [[3, 99], [4, 100], [1, 97]])


def test_namespaces_are_separate_and_a_damaged_shard_only_costs_time(tmp_path):
    model = Counting()
    cached(tmp_path, "model A", model)(["x", "yy"])
    cached(tmp_path, "model B", model)(["x"])
    assert model.seen == ["x", "yy", "x"]                        # another model reads the text again
    folder = FeatureCache(tmp_path, "model A").folder
    assert (folder / "namespace.txt").read_text() == "model A\n"
    for shard in folder.glob("*.npz"):
        shard.write_bytes(b"not a zip")
    model.seen.clear()
    assert len(FeatureCache(tmp_path, "model A")) == 0
    np.testing.assert_array_equal(cached(tmp_path, "model A", model)(["yy"]), [[2, 121]])
    assert model.seen == ["yy"]
    assert not list(folder.glob("*.part"))                       # no temp file left behind


def test_a_long_lived_cache_keeps_few_shards_and_reads_rows_only_where_asked(tmp_path, monkeypatch):
    from driftfit.state import feature_cache

    monkeypatch.setattr(feature_cache, "MAX_SHARDS", 4)
    model = Counting()
    weeks = [[f"week {w} text {i}" for i in range(3)] for w in range(11)]
    for texts in weeks:  # one process per week, each adding a shard
        cached(tmp_path, "model A", model)(texts)
    folder = FeatureCache(tmp_path, "model A").folder
    assert 1 <= len(list(folder.glob("*.npz"))) <= 4                 # merged past MAX_SHARDS
    model.seen.clear()
    cache = FeatureCache(tmp_path, "model A")
    assert len(cache) == 33 and cache._loaded == {}                 # opening read the keys only
    every = [t for texts in weeks for t in texts]
    np.testing.assert_array_equal(cache.rows(every, model), Counting()(every))
    assert model.seen == []                                         # nothing lost in the merges
    shard = next(s for s in folder.glob("*.npz") if s in cache._loaded)
    other = FeatureCache(tmp_path, "model A")
    shard.unlink()                                                  # merged away by another run meanwhile
    again = other.rows(every, model)
    np.testing.assert_array_equal(again, Counting()(every))         # its texts are computed again, no error
    assert 0 < len(model.seen) <= 33


def test_no_root_means_no_cache(tmp_path):
    model = Counting()
    embed = cached(None, "model A", model)
    embed(["a"]), embed(["a"])
    assert model.seen == ["a", "a"]
    assert cached(tmp_path, "m", model)([]).shape == (0, 2)
