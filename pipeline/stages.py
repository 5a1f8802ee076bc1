"""The model stages: weak, ceiling and transfer. Each trains one model in its recipe mode on one set of
labels and writes predictions; they share `fit_and_predict` and never call each other.
"""

import json
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from pipeline import models
from pipeline.distributed import model_state_to_save
from pipeline.predict import predict_proba
from pipeline.train import finetune, fit_head, head_proba


def fit_and_predict(role_cfg, train_split: str, targets: np.ndarray, predict_splits: list[str], ctx,
                    out_dir: Path | None, desc: str, train_idx: np.ndarray | None = None,
                    predict_idx: dict[str, np.ndarray] | None = None, loss=None,
                    early_stopping: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """Train the model of `role_cfg` (weak or strong) on `targets` for `train_split`; P(class) on other splits.

    `train_idx` / `predict_idx` restrict to rows of a split (cross-fitting); `out_dir=None` saves no model.
    `loss` is a LossConfig (default xent). With `train.early_stopping.enabled` (and `early_stopping`), a
    slice of the training rows is held out for best-checkpoint selection, scored against its own
    training targets or, with `select_on: gold`, its ground truth (an oracle; flagged in the report).
    """
    path = models.resolve(role_cfg.model)
    max_length = ctx.recipe.data.max_length
    pick = lambda rows, idx: rows if idx is None else [rows[i] for i in idx]  # noqa: E731
    predict_idx = predict_idx or {}
    save = role_cfg.save_model and ctx.is_main and out_dir is not None
    rows = np.arange(len(ctx.labels(train_split))) if train_idx is None else np.asarray(train_idx)
    es = role_cfg.train.early_stopping
    val_rows, val_targets, es_info = None, None, {}
    if es.enabled and early_stopping:
        order = np.random.default_rng([ctx.seed, 17]).permutation(len(rows))
        n_val = max(2, int(round(es.val_fraction * len(rows))))
        val_pos, fit_pos = np.sort(order[:n_val]), np.sort(order[n_val:])
        val_rows = rows[val_pos]
        val_targets = (np.eye(2, dtype=np.float32)[ctx.labels(train_split)[val_rows]] if es.select_on == "gold"
                       else targets[val_pos])
        rows, targets = rows[fit_pos], targets[fit_pos]
        train_idx = rows
        es_info = {"validation_examples": int(n_val), "oracle": es.select_on == "gold"}
    if role_cfg.mode == "head":
        feats = ctx.features(role_cfg, [train_split, *predict_splits])
        train_feats = feats[train_split] if train_idx is None else feats[train_split][train_idx]
        val = None if val_rows is None else (feats[train_split][val_rows], val_targets)
        head = fit_head(train_feats, targets, role_cfg.head, ctx.seed, loss, val, es)
        if save:
            ctx.write_atomic(out_dir / "model" / "head.safetensors",
                             lambda p: save_file({"weight": head["weight"], "bias": head["bias"]}, str(p)))
        probs = {s: head_proba(head, feats[s] if s not in predict_idx else feats[s][predict_idx[s]])
                 for s in predict_splits}
        info = {"mode": "head", "head_l2": head["l2"], "head_cv_xent": head["cv_xent"], "head_solver": head["solver"],
                "loss": (loss.name if loss else "xent")}
        info.update({k: head[k] for k in ("train_steps", "final_loss") if k in head})
        if "early_stopping" in head:
            info["early_stopping"] = {**head["early_stopping"], **es_info}
        return probs, info
    n_proc = ctx.accelerator.num_processes
    if role_cfg.train.batch_size % n_proc:
        from pipeline.errors import UserError

        raise UserError(f"train.batch_size {role_cfg.train.batch_size} is the global batch and must divide evenly "
                        f"over {n_proc} processes", f"use a multiple of {n_proc}, e.g. "
                        f"{role_cfg.train.batch_size + n_proc - role_cfg.train.batch_size % n_proc}")
    tokenizer = models.load_tokenizer(path)
    ctx.seed_everything()
    model = models.load_classifier(path, tokenizer, role_cfg.mode, role_cfg.lora, role_cfg)
    texts = pick(ctx.texts(train_split), train_idx)
    val = None if val_rows is None else ([ctx.texts(train_split)[i] for i in val_rows], val_targets)
    result = finetune(model, tokenizer, texts, targets, role_cfg.train, max_length, ctx.accelerator, ctx.seed,
                      loss=loss, desc=f"{desc}: train", val=val)
    model = result.pop("model")
    if role_cfg.save_model and out_dir is not None:
        # every process takes part (FSDP / DeepSpeed gather the full state dict), the main one writes:
        # safetensors weights, or only the adapter (and head) under LoRA
        state = model_state_to_save(ctx.accelerator, model, trainable_only=role_cfg.mode == "lora")

        def save_folder(tmp: Path):
            ctx.accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        ctx.write_atomic(out_dir / "model", save_folder)
    probs = {s: predict_proba(model, tokenizer, pick(ctx.texts(s), predict_idx.get(s)), max_length,
                              role_cfg.train.eval_batch_size, ctx.accelerator, desc=f"{desc}: label {s}")
             for s in predict_splits}
    info = {"mode": role_cfg.mode, "train_steps": result["steps"], "final_loss": result["final_loss"],
            "train_tokens": result["tokens"], "loss": (loss.name if loss else "xent")}
    if result["early_stopping"]:
        info["early_stopping"] = {**result["early_stopping"], **es_info}
    return probs, info


def _accuracy(probs: np.ndarray, labels) -> float:
    return float((probs.argmax(1) == np.asarray(labels)).mean())


def _write_predictions(ctx, out_dir: Path, split: str, probs: np.ndarray, name: str = "predictions.jsonl") -> None:
    # full float64 precision: rounding ties confident predictions at 0 and 1 and moves AUROC
    rows = [json.dumps({"id": i, "label": int(y), "prob": float(p)})
            for i, y, p in zip(ctx.ids(split), ctx.labels(split), probs[:, 1])]
    ctx.write_text(out_dir / name, "\n".join(rows) + "\n")


def _save_labels(ctx, out_dir: Path, split: str, targets: np.ndarray, extra: dict | None = None) -> None:
    import datasets

    columns = {"id": ctx.ids(split), "text": ctx.texts(split), "gt_label": ctx.labels(split).tolist(),
               "soft_label": targets[:, 1].astype(float).tolist(), "hard_label": targets.argmax(1).tolist()}
    columns.update(extra or {})
    ctx.save_dataset(datasets.Dataset.from_dict(columns), out_dir / "labels")


def weak(cfg, ctx) -> dict:
    """Train the weak model on A's ground truth; soft labels on B, predictions on test."""
    out = ctx.stage_dir("weak")
    gold = np.eye(2, dtype=np.float32)[ctx.labels("train_weak")]
    probs, info = fit_and_predict(cfg.weak, "train_weak", gold, ["transfer", "test", "train_weak"], ctx, out,
                                  "weak")
    _save_labels(ctx, out, "transfer", probs["transfer"])
    _write_predictions(ctx, out, "test", probs["test"])
    # in-sample predictions on A (the weak model trained there): methods that compare against the weak
    # supervisor on A (selective's tau) read them
    _write_predictions(ctx, out, "train_weak", probs["train_weak"], "predictions_train_weak.jsonl")
    p = probs["transfer"][:, 1]
    b_acc = _accuracy(probs["transfer"], ctx.labels("transfer"))
    test_acc = _accuracy(probs["test"], ctx.labels("test"))
    return {**info, "model": cfg.weak.model, "test_accuracy": test_acc, "transfer_label_accuracy": b_acc,
            "soft_label_quantiles": {q: float(np.quantile(p, q / 100)) for q in (5, 25, 50, 75, 95)},
            "summary": f"{cfg.weak.model} ({cfg.weak.mode}): test acc {test_acc:.3f}, "
                       f"labels on B acc {b_acc:.3f} (gold used for reporting only)"}


def ceiling(cfg, ctx) -> dict:
    """Train the strong model on B's ground truth: the upper reference."""
    out = ctx.stage_dir("ceiling")
    gold = np.eye(2, dtype=np.float32)[ctx.labels("transfer")]
    probs, info = fit_and_predict(cfg.strong, "transfer", gold, ["test"], ctx, out, "ceiling")
    _write_predictions(ctx, out, "test", probs["test"])
    acc = _accuracy(probs["test"], ctx.labels("test"))
    return {**info, "model": cfg.strong.model, "test_accuracy": acc,
            "summary": f"{cfg.strong.model} ({cfg.strong.mode}) on gold B: test acc {acc:.3f}"}


def transfer(method_cfg, cfg, ctx) -> dict:
    """Build the method's labels for B and train the strong model on them."""
    from pipeline.methods import METHODS

    out = ctx.stage_dir("transfer", method_cfg.key)
    labels = METHODS[method_cfg.name].build_labels(method_cfg, ctx)
    gold = np.asarray(ctx.labels("transfer"))
    label_acc = _accuracy(labels.targets, gold)  # diagnostics only: B's gold never trains the student
    _save_labels(ctx, out, "transfer", labels.targets)
    probs, info = fit_and_predict(cfg.strong, "transfer", labels.targets, ["test"], ctx, out,
                                  f"transfer/{method_cfg.key}", loss=method_cfg.loss)
    _write_predictions(ctx, out, "test", probs["test"])
    acc = _accuracy(probs["test"], ctx.labels("test"))
    return {**info, "method": method_cfg.name, "model": cfg.strong.model, "test_accuracy": acc,
            "label_accuracy": label_acc, "diagnostics": labels.diagnostics,
            "summary": f"{method_cfg.key}: labels on B acc {label_acc:.3f}, strong test acc {acc:.3f}"}


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return np.array([r["label"] for r in rows]), np.array([r["prob"] for r in rows])


def evaluate(cfg, contexts: dict) -> dict:
    """Accuracy, AUROC and PGR of every model on the test split with bootstrap CIs, pooled over the seeds
    (`contexts`: {training seed: Context}); one seed gives the plain paired bootstrap."""
    from pipeline.metrics import evaluate_seeds

    per_seed = {}
    for seed, ctx in contexts.items():
        sources = {"weak": ctx.stage_dir("weak", create=False), "ceiling": ctx.stage_dir("ceiling", create=False)}
        sources.update({m.key: ctx.stage_dir("transfer", m.key, create=False) for m in cfg.methods
                        if m.seeds is None or seed in m.seeds})
        probs, y = {}, None
        for name, d in sources.items():
            labels, p = read_predictions(d / "predictions.jsonl")
            if y is not None and not np.array_equal(labels, y):
                raise RuntimeError(f"seed {seed}: test labels of {name} differ from the weak model's: "
                                   "run directory is inconsistent")
            y, probs[name] = labels, p
        per_seed[seed] = (y, probs)
    e = cfg.evaluate
    result = evaluate_seeds(per_seed, "weak", "ceiling", e.bootstrap, e.ci, e.seed,
                            shared_test=not cfg.data.vary_split)
    parts = [f"{k} {v['accuracy']['value']:.3f}" for k, v in result["models"].items()]
    pgrs = [f"{k} {v['accuracy']['value']:.2f}" if v["accuracy"]["value"] is not None else f"{k} undefined"
            for k, v in result["pgr"].items()]
    over = f" (mean of {len(per_seed)} seeds)" if len(per_seed) > 1 else ""
    result["summary"] = f"test acc{over}: " + ", ".join(parts) + " | PGR(acc): " + ", ".join(pgrs)
    return result
