"""Data sources beyond one text column: templates, label types, native splits with caps, balance, where
filters, the shifted test set, dropped-row counts, preference pairs, and every registry entry's local copy."""

import json

import numpy as np
import pytest
from suite_fixtures import fixture_rows, write_local_copy

from pipeline.config.schema import DataConfig, ShiftConfig
from pipeline.data import draw_splits, load_source, prepare, split_sizes
from pipeline.errors import UserError
from pipeline.suite import SUITE


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _qa_rows(n):
    return [{"passage": f"p{i}", "question": f"q{i}", "answer": bool(i % 2), "domain": ["a", "b"][i % 5 == 0]}
            for i in range(n)]


def test_template_fills_columns_and_bool_labels_map_to_false_true(tmp_path):
    p = _jsonl(tmp_path / "d.jsonl", _qa_rows(6))
    src = load_source(DataConfig(path=str(p), template="{passage}\nQuestion: {question}?", label_field="answer"))
    assert src.texts[:2] == ["p0\nQuestion: q0?", "p1\nQuestion: q1?"]
    assert src.labels.tolist() == [0, 1, 0, 1, 0, 1] and src.info["class_1"] == "answer = True"
    flipped = load_source(DataConfig(path=str(p), template="{question}", label_field="answer", positive_label="false"))
    assert flipped.labels.tolist() == [1, 0, 1, 0, 1, 0]


def test_template_with_an_unknown_placeholder_names_it_and_lists_columns(tmp_path):
    p = _jsonl(tmp_path / "d.jsonl", _qa_rows(4))
    with pytest.raises(UserError, match=r"placeholder \{body\} names no column \(columns: passage, question, answer"):
        load_source(DataConfig(path=str(p), template="{body}", label_field="answer"))
    with pytest.raises(UserError, match="has no {column} placeholder"):
        load_source(DataConfig(path=str(p), template="plain", label_field="answer"))


def test_numeric_positive_label_from_a_recipe(tmp_path):
    from pipeline.config.loading import load_recipe

    p = _jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "label": [1, 5][i % 2]} for i in range(6)])
    r = load_recipe(None, [f"data.path={p}", "data.positive_label=1"])
    assert r.data.positive_label == "1"
    assert load_source(r.data).labels.tolist() == [1, 0, 1, 0, 1, 0]


def test_dropped_rows_are_counted_per_pool(tmp_path):
    rows = [{"text": "a", "label": 0}, {"text": " ", "label": 1}, {"text": "b", "label": None},
            {"text": "c", "label": 1}]
    src = load_source(DataConfig(path=str(_jsonl(tmp_path / "d.jsonl", rows))))
    assert len(src) == 2 and src.info["dropped"] == 2 and src.info["pools"]["all"]["dropped"] == 2


def _dict_on_disk(tmp_path, n_train, n_test):
    import datasets

    mk = lambda n, off: datasets.Dataset.from_dict({"text": [f"t{off + i}" for i in range(n)],  # noqa: E731
                                                     "label": [i % 2 for i in range(n)]})
    datasets.DatasetDict({"train": mk(n_train, 0), "test": mk(n_test, 1000)}).save_to_disk(tmp_path / "dd")
    return tmp_path / "dd"


def test_native_splits_draw_test_from_the_test_split_and_caps_sizes(tmp_path):
    cfg = DataConfig(path=str(_dict_on_disk(tmp_path, 80, 30)), n_train_weak=30, n_transfer=30, n_test=100)
    src = load_source(cfg)
    parts = draw_splits(src, cfg, 0)
    assert src.info["native_splits"] and set(src.pools[parts["test"]]) == {"test"}
    assert len(parts["test"]) == 30  # capped at what the test split has
    assert all(int(src.texts[i][1:]) >= 1000 for i in parts["test"])
    for k in ("train_weak", "transfer"):
        assert len(parts[k]) == 30 and set(src.pools[parts[k]]) == {"train"}
        assert src.labels[parts[k]].sum() == 15
    assert not set(parts["train_weak"]) & set(parts["transfer"])
    small = DataConfig(path=cfg.path, n_train_weak=60, n_transfer=60, n_test=10)  # train holds 80: scaled down
    parts = draw_splits(load_source(small), small, 0)
    assert len(parts["train_weak"]) + len(parts["transfer"]) <= 80
    assert len(parts["train_weak"]) == len(parts["transfer"])


def test_balance_false_keeps_the_natural_ratio(tmp_path):
    rows = [{"text": f"t{i}", "label": int(i % 5 == 0)} for i in range(400)]  # 20% positive
    cfg = DataConfig(path=str(_jsonl(tmp_path / "d.jsonl", rows)), n_train_weak=100, n_transfer=100, n_test=100,
                     balance=False)
    parts = draw_splits(load_source(cfg), cfg, 0)
    labels = np.array([r["label"] for r in rows])
    assert all(0.08 < labels[parts[k]].mean() < 0.32 for k in split_sizes(cfg))
    balanced = DataConfig(**{**cfg.__dict__, "balance": True, "n_train_weak": 50, "n_transfer": 50, "n_test": 50})
    parts = draw_splits(load_source(balanced), balanced, 0)
    assert all(abs(labels[parts[k]].mean() - 0.5) < 0.02 for k in split_sizes(balanced))


def test_shifted_test_set_from_a_where_filter_leaves_the_main_splits(tmp_path):
    p = _jsonl(tmp_path / "d.jsonl", _qa_rows(200))
    cfg = DataConfig(path=str(p), template="{question}", label_field="answer", n_train_weak=40, n_transfer=40,
                     n_test=40, test_ood=ShiftConfig(where="domain=b", n=30))
    src = load_source(cfg)
    parts = draw_splits(src, cfg, 0)
    rows = _qa_rows(200)
    by_q = {r["question"]: r for r in rows}
    assert len(parts["test_ood"]) == 30
    assert {by_q[src.texts[i]]["domain"] for i in parts["test_ood"]} == {"b"}
    for k in split_sizes(cfg):
        assert {by_q[src.texts[i]]["domain"] for i in parts[k]} == {"a"}
    with pytest.raises(UserError, match="column 'topic' not in the data"):
        load_source(DataConfig(path=str(p), template="{question}", label_field="answer",
                               test_ood=ShiftConfig(where="topic=b")))


def test_shifted_test_set_from_another_file_must_share_the_label_space(tmp_path):
    main = _jsonl(tmp_path / "a.jsonl", [{"text": f"a{i}", "label": ["no", "yes"][i % 2]} for i in range(20)])
    other = _jsonl(tmp_path / "b.jsonl", [{"text": f"b{i}", "label": ["no", "yes"][i % 2]} for i in range(20)])
    src = load_source(DataConfig(path=str(main), test_ood=ShiftConfig(path=str(other))))
    assert (src.pools == "test_ood").sum() == 20 and src.info["test_ood_source"].endswith("b.jsonl")
    bad = _jsonl(tmp_path / "c.jsonl", [{"text": f"c{i}", "label": ["no", "maybe"][i % 2]} for i in range(20)])
    with pytest.raises(UserError, match="label values 'maybe'"):
        load_source(DataConfig(path=str(main), test_ood=ShiftConfig(path=str(bad))))


def test_preference_pairs_are_ordered_per_row_and_balanced(tmp_path):
    rows = [{"prompt": f"Q{i}:", "chosen": f" good{i}", "rejected": f" bad{i}"} for i in range(200)]
    rows.append({"prompt": "Q:", "chosen": " same", "rejected": " same"})  # not a preference: dropped
    src = load_source(DataConfig(path=str(_jsonl(tmp_path / "p.jsonl", rows))), "preference")
    assert len(src) == 200 and src.info["dropped"] == 1
    for (a, b), y in zip(src.texts, src.labels):
        assert ("good" in a) == bool(y) and ("good" in b) == (not y) and a.startswith("Q")
    assert 80 < src.labels.sum() < 120
    again = load_source(DataConfig(path=str(tmp_path / "p.jsonl")), "preference")
    assert again.labels.tolist() == src.labels.tolist()


@pytest.mark.parametrize("name", sorted(SUITE))
def test_every_registry_entry_reads_a_local_copy_in_its_schema(tmp_path, name):
    entry = SUITE[name]
    kind = {0: "disk", 1: "parquet", 2: "jsonl"}[sorted(SUITE).index(name) % 3]
    folder = write_local_copy(name, tmp_path / "copy", kind, n=40)
    cfg = DataConfig(name=name, path=str(folder), n_train_weak=6, n_transfer=6, n_test=6)
    src = load_source(cfg, entry.task)
    assert src.info["native_splits"] and set(src.pools.tolist()) == {"train", "test"}
    parts = draw_splits(src, cfg, 0)
    assert all(len(parts[k]) >= 2 for k in split_sizes(cfg))
    texts = [src.texts[i] for i in parts["test"]]
    if entry.task == "generation":  # a question and its reference answer
        assert all(isinstance(t, str) for t in texts) and all(isinstance(a, str) and a for a in src.labels)
    else:
        assert set(src.labels.tolist()) == {0, 1}
        assert all(isinstance(t, str) if entry.task == "classification" else len(t) == 2 for t in texts)
    n_rows = len(fixture_rows(name, n=40)[entry.splits["test"]])
    assert src.info["pools"]["test"]["rows"] == n_rows


def test_a_local_copy_in_the_wrong_schema_says_which_column_is_missing(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"], "label": [1]}),
                          "validation": datasets.Dataset.from_dict({"text": ["b"], "label": [0]})}
                         ).save_to_disk(tmp_path / "bq")
    with pytest.raises(UserError, match="local copy of 'boolq' has no column 'question'"):
        load_source(DataConfig(name="boolq", path=str(tmp_path / "bq")))


def test_prepare_saves_the_pinned_splits_and_a_run_then_reads_them(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    calls = []
    rows = fixture_rows("boolq", n=20)

    def fake_load(path, revision, split, **kw):
        calls.append((path, revision, split))
        return datasets.Dataset.from_list(rows[split])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, *a, **k: None)
    monkeypatch.setenv("W2S_DATASETS_DIR", str(tmp_path / "cache"))
    out = prepare("boolq")
    assert out == tmp_path / "cache" / "boolq"
    assert {c[2] for c in calls} == {"train", "validation"} and all(c[1] == SUITE["boolq"].revision for c in calls)
    src = load_source(DataConfig(name="boolq"))
    assert len(src) == sum(len(v) for v in rows.values())


def test_prepare_without_a_hub_is_a_user_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="could not download boolq"):
        prepare("boolq", tmp_path / "bq")
    assert not (tmp_path / "bq").exists()
    with pytest.raises(UserError, match="it is shipped"):
        prepare("multiemo")
    with pytest.raises(UserError, match="is not prepared"):
        monkeypatch.setenv("W2S_DATASETS_DIR", str(tmp_path / "empty"))
        load_source(DataConfig(name="sciq"))


def test_values_match_as_users_write_them(tmp_path):
    from pipeline.data import same_value

    assert same_value(True, "yes") and same_value(False, "False") and not same_value(True, "no")
    assert same_value(1.0, "1") and same_value(5, "5.0") and not same_value(5, "five")
    assert same_value("yes", "True") and same_value("no", "False")  # YAML read an unquoted yes as true
    rows = [{"text": f"t{i}", "label": ["no", "yes"][i % 2], "ok": bool(i % 3)} for i in range(12)]
    p = _jsonl(tmp_path / "d.jsonl", rows)
    assert load_source(DataConfig(path=str(p), positive_label="True")).info["class_1"] == "label = 'yes'"
    assert len(load_source(DataConfig(path=str(p), where="ok=true"))) == 8
    with pytest.raises(UserError, match="'ok=maybe' matches none of the 12 rows"):
        load_source(DataConfig(path=str(p), where="ok=maybe"))


def test_a_single_class_pool_under_balance_says_so(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2, "domain": "b" if i % 4 == 1 else "a"} for i in range(200)]
    p = _jsonl(tmp_path / "d.jsonl", rows)  # domain b holds only class 1
    cfg = DataConfig(path=str(p), n_train_weak=20, n_transfer=20, n_test=20, test_ood=ShiftConfig(where="domain=b"))
    with pytest.raises(UserError, match="(?s)test_ood examples hold 0 of class 0.*balance: false"):
        draw_splits(load_source(cfg), cfg, 0)


def test_a_registry_shifted_test_set_is_read_with_its_own_fields(tmp_path):
    rows = [{"review": f"r{i}", "label": i % 2} for i in range(40)]
    p = _jsonl(tmp_path / "d.jsonl", rows)
    src = load_source(DataConfig(path=str(p), text_field="review", test_ood=ShiftConfig(name="multiemo", n=20)))
    assert (src.pools == "test_ood").sum() > 1000
    bad = _jsonl(tmp_path / "b.jsonl", [{"text": f"b{i}", "label": ["neg", "pos"][i % 2]} for i in range(20)])
    folder = write_local_copy("boolq", tmp_path / "bq", "parquet", n=20)
    with pytest.raises(UserError, match="label values 'neg', 'pos'"):
        load_source(DataConfig(name="boolq", path=str(folder), test_ood=ShiftConfig(path=str(bad))))


def test_a_weak_models_own_source_draws_from_its_filter_without_b_or_test_texts(tmp_path):
    from pipeline.config.schema import SourceConfig
    from pipeline.data import draw_weak_source

    rows = [{"text": f"t{i // 3 * 3}" if i % 3 == 2 else f"t{i}", "label": ["no", "yes"][i % 2],
             "domain": "hotels" if i % 3 else "medicine"} for i in range(600)]
    p = _jsonl(tmp_path / "d.jsonl", rows)
    cfg = DataConfig(path=str(p), where="domain=medicine", n_train_weak=40, n_transfer=40, n_test=40)
    src = load_source(cfg)
    parts = draw_splits(src, cfg, 0)
    exclude = {src.texts[i] for k in ("transfer", "test") for i in parts[k]}
    domain = {}
    for r in rows:
        domain.setdefault(r["text"], set()).add(r["domain"])
    texts, labels, ids, info = draw_weak_source(cfg, SourceConfig(where="domain=hotels", n=50), "classification", 0,
                                                exclude, src.info["label_map"])
    assert len(texts) == 50 and labels.sum() == 25  # balanced, as data.balance says
    assert all("hotels" in domain[t] for t in texts) and not set(texts) & exclude
    assert info["left_out_overlap"] > 0  # some hotel texts repeat medicine ones (rows i % 3 == 2) and were held out
    again = draw_weak_source(cfg, SourceConfig(where="domain=hotels", n=50), "classification", 0, exclude, None)
    assert again[0] == texts  # deterministic
    with pytest.raises(UserError, match="weak.data: .*'domain=spa' matches none"):
        draw_weak_source(cfg, SourceConfig(where="domain=spa"), "classification", 0, exclude, None)
    other = _jsonl(tmp_path / "o.jsonl", [{"text": f"o{i}", "label": ["bad", "good"][i % 2]} for i in range(40)])
    with pytest.raises(UserError, match="not the data's"):
        draw_weak_source(cfg, SourceConfig(path=str(other)), "classification", 0, exclude, src.info["label_map"])
    with pytest.raises(UserError, match="needs a name, a path or a `where`"):
        draw_weak_source(cfg, SourceConfig(), "classification", 0, exclude, None)
