"""Binary classification of one text: the first task kind.

An example is a text with a 0/1 label; supervision is a distribution over the two classes ([n, 2]
targets: one-hot gold, soft weak labels); a model scores an example by P(class); training is the
fine-tuning loop (full / lora) or a linear head on frozen features (head); the metrics are accuracy
and AUROC with PGR and two-level bootstrap intervals.
"""

from pathlib import Path
from typing import Optional

import numpy as np

from pipeline import data, models, rundir
from pipeline.tasks.base import Fit


class Classification:
    name = "classification"
    num_labels = 2  # outputs of the model's head: class logits

    def configure(self, recipe) -> "Classification":
        """The task as a recipe runs it (nothing to configure: the settings are the models')."""
        return self

    # ---------------------------------------------------------------- data
    def load(self, data_cfg) -> data.Source:
        """Every usable example, with labels and a description (every user mistake a UserError)."""
        return data.load_source(data_cfg, self.name)

    def split(self, source: data.Source, data_cfg, seed: int) -> dict[str, np.ndarray]:
        """Disjoint (class-balanced) index sets: Burns et al.'s A / B / test, and test_ood."""
        return data.draw_splits(source, data_cfg, seed)

    # ---------------------------------------------------------------- labels
    def gold_targets(self, labels: np.ndarray) -> np.ndarray:
        return np.eye(2, dtype=np.float32)[np.asarray(labels)]

    def harden(self, targets: np.ndarray) -> np.ndarray:
        """One-hot argmax of target distributions."""
        return np.eye(2, dtype=np.float32)[targets.argmax(1)]

    def accuracy(self, probs: np.ndarray, labels) -> float:
        return float((probs.argmax(1) == np.asarray(labels)).mean())

    def label_stats(self, targets: np.ndarray) -> dict:
        """How confident a set of labels is: quantiles of P(class 1)."""
        p = targets[:, 1]
        return {"soft_label_quantiles": {q: float(np.quantile(p, q / 100)) for q in (5, 25, 50, 75, 95)}}

    def save_labels(self, target: Path, split, targets: np.ndarray) -> None:
        """A split's training labels as a `datasets` folder (id, text, gold, soft and hard label)."""
        rundir.save_labels(target, split.ids, split.texts, split.labels, targets)

    def read_labels(self, folder: Path) -> np.ndarray:
        """A labels folder (`save_labels`) as class probabilities [n, 2]."""
        return rundir.read_soft_labels(folder)

    def read_outputs(self, path: Path) -> np.ndarray:
        """A predictions file as class probabilities [n, 2] (what methods see of a model's outputs)."""
        return rundir.read_probs(path)

    # ---------------------------------------------------------------- models
    def fit_and_predict(self, fit: Fit, inputs, predict: dict[str, Optional[np.ndarray]]
                        ) -> tuple[dict[str, np.ndarray], dict]:
        """Train `fit.role`'s model on `fit.targets`; P(class) [n, 2] on the rows of each split in `predict`
        (None: every row). `inputs` gives the splits, features, seed and accelerator (a SeedInputs).

        With `train.early_stopping.enabled`, a slice of the training rows is held out for best-checkpoint
        selection, scored against its own training targets or, with `select_on: gold`, its ground truth
        (an oracle; flagged in the report).
        """
        from pipeline.distributed import model_state_to_save  # torch and transformers: only where models train
        from pipeline.predict import predict_proba
        from pipeline.train.loop import finetune

        role = fit.role
        path = models.resolve(role.model)
        max_length = inputs.recipe.data.max_length
        labels = inputs.labels(fit.split)
        rows = np.arange(len(labels)) if fit.rows is None else np.asarray(fit.rows)
        train_idx, targets = fit.rows, fit.targets
        es = role.train.early_stopping
        val_rows, val_targets, es_info = None, None, {}
        if es.enabled:
            order = np.random.default_rng([inputs.seed, 17]).permutation(len(rows))
            n_val = max(2, int(round(es.val_fraction * len(rows))))
            val_pos, fit_pos = np.sort(order[:n_val]), np.sort(order[n_val:])
            val_rows = rows[val_pos]
            val_targets = self.gold_targets(labels[val_rows]) if es.select_on == "gold" else targets[val_pos]
            rows, targets = rows[fit_pos], targets[fit_pos]
            train_idx = rows
            es_info = {"validation_examples": int(n_val), "oracle": es.select_on == "gold"}
        save = role.save_model and fit.out_dir is not None
        loss_name = fit.loss.name if fit.loss else "xent"
        if role.mode == "head":
            return self._fit_head(fit, inputs, predict, train_idx, targets, val_rows, val_targets, es_info, save)
        tokenizer = models.load_tokenizer(path)
        truncated = inputs.note_truncation(tokenizer, role.model, [fit.split, *predict])
        inputs.seed_everything()
        model = models.load_classifier(path, tokenizer, role.mode, role.lora, role, num_labels=self.num_labels)
        texts = _pick(inputs.texts(fit.split), train_idx)
        val = None if val_rows is None else ([inputs.texts(fit.split)[i] for i in val_rows], val_targets)
        result = finetune(model, tokenizer, texts, targets, role.train, max_length, inputs.accelerator, inputs.seed,
                           loss=fit.loss, desc=f"{fit.desc}: train", val=val,
                           checkpoint_dir=fit.out_dir / rundir.CHECKPOINTS if fit.out_dir else None)
        model = result.pop("model")
        if save:
            # every process takes part (FSDP / DeepSpeed gather the full state dict), the main one writes:
            # safetensors weights, or only the adapter (and head) under LoRA
            state = model_state_to_save(inputs.accelerator, model, trainable_only=role.mode == "lora")

            def save_folder(tmp: Path):
                inputs.accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state, safe_serialization=True)
                tokenizer.save_pretrained(tmp)
            inputs.write_atomic(fit.out_dir / "model", save_folder)
        probs = {s: predict_proba(model, tokenizer, _pick(inputs.texts(s), idx), max_length,
                                  role.train.eval_batch_size, inputs.accelerator, desc=f"{fit.desc}: label {s}")
                 for s, idx in predict.items()}
        info = {"mode": role.mode, "train_steps": result["steps"], "final_loss": result["final_loss"],
                "train_tokens": result["tokens"], "loss": loss_name,
                **({"truncated_inputs": truncated} if truncated else {}),
                **({"resumed_from_step": result["resumed_from_step"]} if "resumed_from_step" in result else {})}
        if result["early_stopping"]:
            info["early_stopping"] = {**result["early_stopping"], **es_info}
        return probs, info

    def _fit_head(self, fit, inputs, predict, train_idx, targets, val_rows, val_targets, es_info, save):
        from safetensors.torch import save_file

        from pipeline.train.head import fit_head, head_proba

        role = fit.role
        feats = inputs.features(role, [fit.split, *predict])
        train_feats = feats[fit.split] if train_idx is None else feats[fit.split][train_idx]
        val = None if val_rows is None else (feats[fit.split][val_rows], val_targets)
        head = fit_head(train_feats, targets, role.head, inputs.seed, fit.loss, val, role.train.early_stopping)
        if save:
            inputs.write_atomic(fit.out_dir / "model" / "head.safetensors",
                                lambda p: save_file({"weight": head["weight"], "bias": head["bias"]}, str(p)))
        probs = {s: head_proba(head, feats[s] if idx is None else feats[s][idx]) for s, idx in predict.items()}
        info = {"mode": "head", "head_l2": head["l2"], "head_cv_xent": head["cv_xent"], "head_solver": head["solver"],
                "loss": fit.loss.name if fit.loss else "xent"}
        info.update({k: head[k] for k in ("train_steps", "final_loss") if k in head})
        if "early_stopping" in head:
            info["early_stopping"] = {**head["early_stopping"], **es_info}
        return probs, info

    # ---------------------------------------------------------------- predictions and metrics
    def write_predictions(self, target: Path, ids, labels, probs: np.ndarray) -> None:
        rundir.write_predictions(target, ids, labels, probs)

    def read_predictions(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        return rundir.read_predictions(path)

    def evaluate(self, per_seed: dict, eval_cfg, shared_test: bool, baseline: str | None = None) -> dict:
        """Accuracy, AUROC and PGR of every model with two-level bootstrap intervals: `per_seed` maps a
        training seed to (gold labels, {model: P(class 1)}); every method against `baseline`, paired."""
        from pipeline.metrics import evaluate_seeds

        return evaluate_seeds(per_seed, "weak", "ceiling", eval_cfg.bootstrap, eval_cfg.ci, eval_cfg.seed,
                              shared_test=shared_test, baseline=baseline)


def _pick(rows: list, idx) -> list:
    return rows if idx is None else [rows[i] for i in idx]


TASK = Classification()
