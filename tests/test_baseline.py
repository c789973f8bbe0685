"""Tests for the TF-IDF + logistic-regression baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from textclf.core.errors import ModelError
from textclf.models.tfidf import C_GRID, TfidfBaseline

NOISE = [f"noise{i}" for i in range(40)]
SIGNAL = ["good", "bad", "meh"]


def make_data(n: int, n_classes: int = 2, seed: int = 0):
    """Texts of five random noise words plus one word naming the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    texts = [" ".join([*rng.choice(NOISE, 5), SIGNAL[c]]) for c in y]
    return texts, y


@pytest.fixture(scope="module")
def binary_data():
    return make_data(200, 2, seed=1), make_data(60, 2, seed=2)


@pytest.fixture(scope="module")
def fitted(binary_data):
    (train_x, train_y), (val_x, val_y) = binary_data
    return TfidfBaseline().fit(train_x, train_y, val_x, val_y)


def test_constructor_only_stores_arguments():
    b = TfidfBaseline(ngram_max=3, C=2.0, min_df=2)
    assert (b.ngram_max, b.C, b.min_df) == (3, 2.0, 2)
    assert not [a for a in vars(b) if a.endswith("_")]


def test_learns_separable_data(fitted, binary_data):
    _, (val_x, val_y) = binary_data
    assert np.mean(fitted.predict(val_x) == val_y) >= 0.95
    proba = fitted.predict_proba(val_x)
    assert proba.shape == (len(val_x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert fitted.predict(["noise1 noise2 good"])[0] == 0
    assert fitted.predict(["noise1 noise2 bad"])[0] == 1


def test_multiclass_and_num_parameters():
    x, y = make_data(150, 3, seed=3)
    b = TfidfBaseline(ngram_max=1, C=1.0).fit(x, y)
    assert b.predict_proba(x).shape == (150, 3)
    assert np.mean(b.predict(x) == y) >= 0.95
    # unigrams only: 40 noise words + 3 signal words; one weight row + bias per class
    assert b.num_parameters() == 3 * 43 + 3


def test_binary_num_parameters():
    x, y = make_data(100, 2, seed=4)
    b = TfidfBaseline(ngram_max=1, C=1.0).fit(x, y)
    # binary logistic regression keeps a single weight row and one bias
    assert b.num_parameters() == 42 + 1


def test_c_defaults_without_validation():
    x, y = make_data(80, 2, seed=5)
    assert TfidfBaseline().fit(x, y).C_ == 1.0
    assert TfidfBaseline(C=4.0).fit(x, y).C_ == 4.0


def test_c_selection_uses_validation(binary_data):
    (train_x, train_y), (val_x, val_y) = binary_data
    agree = TfidfBaseline().fit(train_x, train_y, val_x, val_y)
    # Inverted validation labels: every C gets the same (zero) accuracy, so the
    # least confident model -- the strongest regularisation -- must win.
    flipped = TfidfBaseline().fit(train_x, train_y, val_x, 1 - val_y)

    assert set(agree.val_scores_) == set(C_GRID)
    assert flipped.C_ == min(C_GRID)
    assert agree.C_ > flipped.C_
    assert agree.val_scores_[agree.C_] == max(agree.val_scores_.values())
    # Each recorded score is the validation accuracy of a model fitted with that C.
    for c in (min(C_GRID), agree.C_):
        single = TfidfBaseline(C=c).fit(train_x, train_y)
        assert agree.val_scores_[c] == pytest.approx(np.mean(single.predict(val_x) == val_y))


def test_predict_before_fit_raises():
    b = TfidfBaseline()
    with pytest.raises(RuntimeError, match="not fitted"):
        b.predict(["good"])
    with pytest.raises(RuntimeError, match="not fitted"):
        b.predict_proba(["good"])
    with pytest.raises(RuntimeError, match="not fitted"):
        b.save("unused")


def test_save_load_round_trip(tmp_path, fitted, binary_data):
    _, (val_x, _) = binary_data
    fitted.save(tmp_path / "model")
    loaded = TfidfBaseline.load(tmp_path / "model")

    probe = [*val_x, "unseen words only", "", "GOOD Good good bad"]
    assert np.array_equal(loaded.predict_proba(probe), fitted.predict_proba(probe))
    assert np.array_equal(loaded.predict(probe), fitted.predict(probe))
    assert loaded.C_ == fitted.C_
    assert loaded.get_params() == fitted.get_params()
    assert loaded.num_parameters() == fitted.num_parameters()


def test_save_load_round_trip_multiclass(tmp_path):
    x, y = make_data(120, 3, seed=6)
    b = TfidfBaseline(class_weight="balanced").fit(x[:90], y[:90], x[90:], y[90:])
    b.save(tmp_path)
    loaded = TfidfBaseline.load(tmp_path)
    assert np.array_equal(loaded.predict_proba(x), b.predict_proba(x))
    assert loaded.class_weight == "balanced"


def test_saved_files_contain_no_pickle(tmp_path, fitted):
    fitted.save(tmp_path)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert files
    for path in files:
        assert path.suffix in {".json", ".npy", ".safetensors"}, path.name
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            assert arr.dtype != object


@pytest.mark.parametrize(
    "name", ["config.json", "vocabulary.json", "idf.npy", "coef.npy", "intercept.npy", "classes.npy"]
)
def test_load_missing_file_names_it(tmp_path, fitted, name):
    fitted.save(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(ModelError, match=name.replace(".", r"\.")):
        TfidfBaseline.load(tmp_path)


def test_load_malformed_files(tmp_path, fitted):
    fitted.save(tmp_path)
    (tmp_path / "vocabulary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match=r"vocabulary\.json"):
        TfidfBaseline.load(tmp_path)

    fitted.save(tmp_path)
    (tmp_path / "coef.npy").write_bytes(b"garbage")
    with pytest.raises(ModelError, match=r"coef\.npy"):
        TfidfBaseline.load(tmp_path)

    # A pickled object array must be refused, not unpickled.
    fitted.save(tmp_path)
    np.save(tmp_path / "idf.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ModelError, match=r"idf\.npy"):
        TfidfBaseline.load(tmp_path)

    # Consistent file, inconsistent shape.
    fitted.save(tmp_path)
    np.save(tmp_path / "idf.npy", np.ones(3))
    with pytest.raises(ModelError, match=r"idf\.npy"):
        TfidfBaseline.load(tmp_path)


def test_load_missing_directory(tmp_path):
    with pytest.raises(ModelError):
        TfidfBaseline.load(tmp_path / "nope")
