"""Data loading and the balanced Burns split, including every bad-input path."""

import json

import numpy as np
import pytest

from pipeline.config.schema import DataConfig
from pipeline.data import DATASETS, balanced_split, data_dir, load_examples
from pipeline.errors import UserError


def _cfg(path, **kw):
    return DataConfig(path=str(path), **kw)


def _jsonl(tmp_path, rows, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_string_labels_map_to_sorted_order_and_positive_label(tmp_path):
    p = _jsonl(tmp_path, [{"t": "a", "y": "yes"}, {"t": "b", "y": "no"}, {"t": "c", "y": "yes"}])
    texts, y, src = load_examples(_cfg(p, text_field="t", label_field="y"))
    assert texts == ["a", "b", "c"] and y.tolist() == [1, 0, 1]
    _, y2, _ = load_examples(_cfg(p, text_field="t", label_field="y", positive_label="no"))
    assert y2.tolist() == [0, 1, 0]


@pytest.mark.parametrize("labels,count", [([1, 1, 1], 1), ([0, 1, 2], 3)])
def test_label_column_must_have_two_values(tmp_path, labels, count):
    p = _jsonl(tmp_path, [{"text": f"x{i}", "label": v} for i, v in enumerate(labels)])
    with pytest.raises(UserError, match=f"has {count} distinct value"):
        load_examples(_cfg(p))


def test_missing_column_lists_the_columns(tmp_path):
    p = _jsonl(tmp_path, [{"sentence": "x", "label": 0}])
    with pytest.raises(UserError, match="column 'text' not in .*columns: sentence, label"):
        load_examples(_cfg(p))


def test_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(UserError, match="data file not found"):
        load_examples(_cfg(tmp_path / "nope.jsonl"))
    bad = tmp_path / "d.xlsx"
    bad.write_text("x")
    with pytest.raises(UserError, match="unsupported data file type"):
        load_examples(_cfg(bad))


def test_csv_parquet_and_saved_dataset(tmp_path):
    import datasets

    rows = {"text": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]}
    ds = datasets.Dataset.from_dict(rows)
    ds.to_csv(tmp_path / "d.csv")
    ds.to_parquet(tmp_path / "d.parquet")
    ds.save_to_disk(tmp_path / "saved")
    for p in ("d.csv", "d.parquet", "saved"):
        texts, y, _ = load_examples(_cfg(tmp_path / p))
        assert texts == rows["text"] and y.tolist() == rows["label"]


def test_balanced_split_is_disjoint_balanced_and_seeded():
    labels = np.array([0] * 70 + [1] * 50)
    sizes = {"train_weak": 30, "transfer": 30, "test": 31}
    a = balanced_split(labels, sizes, seed=0)
    b = balanced_split(labels, sizes, seed=0)
    assert all(np.array_equal(a[k], b[k]) for k in sizes)
    assert not np.array_equal(a["test"], balanced_split(labels, sizes, seed=1)["test"])
    allidx = np.concatenate(list(a.values()))
    assert len(set(allidx.tolist())) == len(allidx) == 91
    for k, n in sizes.items():
        assert len(a[k]) == n and abs(labels[a[k]].sum() - n / 2) <= 0.5


def test_split_too_small_says_what_is_missing():
    labels = np.array([0] * 100 + [1] * 20)
    with pytest.raises(UserError, match="needs 30 of class 1, the data has 20"):
        balanced_split(labels, {"a": 20, "b": 20, "c": 20}, 0)


def test_shipped_datasets_exist_and_are_binary_or_answered():
    for name, spec in DATASETS.items():
        path = data_dir() / spec.file
        assert path.exists(), f"{name}: {path} missing; run scripts/prepare_data.py"
        texts, y, _ = load_examples(DataConfig(name=name), spec.task)
        assert len(texts) >= 200
        if spec.task == "generation":  # questions with non-empty reference answers
            assert all(isinstance(a, str) and a.strip() for a in y) and all(t.strip() for t in texts)
            continue
        assert set(y.tolist()) == {0, 1}
        if spec.task == "preference":
            assert all(len(t) == 2 and t[0] != t[1] for t in texts)


def test_multiemo_pairs_pair_a_positive_with_a_negative_review():
    texts, y, info = load_examples(DataConfig(name="multiemo_pairs"), "preference")
    reviews, labels, _ = load_examples(DataConfig(name="multiemo"))
    positive = {t for t, v in zip(reviews, labels) if v == 1}
    assert len(texts) == min(labels.sum(), len(labels) - labels.sum())
    for (a, b), v in list(zip(texts, y))[:500]:
        assert (a in positive) == bool(v) and (b in positive) == (not v)
