"""Generation: the third task kind (GAIR's weak-to-strong reasoning, Somerstep et al.'s refinement).

An example is a question (the split's `text`) and a reference answer (its `label`, a string). A model is
a causal LM fine-tuned on (prompt, answer) with the loss on answer tokens only (`pipeline.train.sft`);
it answers by batched greedy decoding (`pipeline.generate`). Supervision is an answer per question (the
weak model's generated answer on B, or a method's refined one), so "targets" are arrays of strings and
hardening is the identity. An answer is scored by the recipe's checker (`pipeline.answers`): the metric
is exact-match accuracy with paired-bootstrap intervals and PGR, computed by the same two-level
bootstrap as classification on per-example correctness (there is no AUROC).

The prompt a model sees is `generation.template` with the question in `{prompt}`, the answer follows
after `generation.answer_prefix`; with `generation.chat` the tokenizer's chat template renders the
question as the user turn and the answer as the assistant turn, in training and generation alike.
Splits are drawn at random (there are no classes to balance).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from pipeline import answers, data, models, rundir
from pipeline.config.schema import GenerationConfig
from pipeline.tasks.base import Fit


@dataclass
class Generation:
    cfg: GenerationConfig = field(default_factory=GenerationConfig)
    checker: str = "exact"
    name: str = "generation"

    def configure(self, recipe) -> "Generation":
        """This task with the recipe's prompt format, decoding settings and checker (the dataset's by default)."""
        g = recipe.generation
        return Generation(g, g.checker or data.checker_of(recipe.data.name) or "exact")

    # ---------------------------------------------------------------- data
    def load(self, data_cfg) -> data.Source:
        return data.load_source(data_cfg, self.name)

    def split(self, source: data.Source, data_cfg, seed: int) -> dict[str, np.ndarray]:
        return data.draw_splits(source, data_cfg, seed, balance=False)

    # ---------------------------------------------------------------- prompts
    def prompt_text(self, question: str) -> str:
        """What the model is shown before it answers (chat: the user turn's content)."""
        return question if self.cfg.chat else self.cfg.template.format(prompt=question)

    def answer_text(self, answer: str) -> str:
        return answer if self.cfg.chat else self.cfg.answer_prefix + answer

    def demonstration(self, question: str, answer: str) -> str:
        """One in-context example: Somerstep et al.'s `Question: {q}\\nAnswer: {a}\\n\\n` block."""
        return self.cfg.template.format(prompt=question) + self.cfg.answer_prefix + answer.strip() + "\n\n"

    def with_demonstrations(self, question: str, demos: list[tuple[str, str]], preamble: str = "") -> str:
        """A query prompt after demonstration blocks (and an optional preamble such as an inferred style)."""
        return preamble + "".join(self.demonstration(q, a) for q, a in demos) + self.cfg.template.format(
            prompt=question)

    # ---------------------------------------------------------------- labels and metrics
    def gold_targets(self, labels) -> np.ndarray:
        return np.asarray(labels, dtype=object)

    def harden(self, targets: np.ndarray) -> np.ndarray:
        return targets

    def correct(self, generated, references) -> np.ndarray:
        return np.array(answers.check(self.checker, list(generated), list(references)), dtype=bool)

    def accuracy(self, generated, references) -> float:
        return float(self.correct(generated, references).mean())

    def label_stats(self, targets: np.ndarray) -> dict:
        lengths = [len(str(a)) for a in targets]
        return {"answer_chars_median": float(np.median(lengths)) if lengths else 0.0,
                "empty_answers": int(sum(not str(a).strip() for a in targets))}

    def save_labels(self, target: Path, split, targets: np.ndarray) -> None:
        """A split's training answers as a `datasets` folder: id, text (question), gt_answer, answer, correct."""
        import datasets

        columns = {"id": list(split.ids), "text": list(split.texts), "gt_answer": [str(a) for a in split.labels],
                   "answer": [str(a) for a in targets],
                   "correct": self.correct(targets, split.labels).tolist()}
        rundir.atomic_write(target, lambda p: datasets.Dataset.from_dict(columns).save_to_disk(str(p)))

    def read_labels(self, folder: Path) -> np.ndarray:
        import datasets

        return np.asarray(list(datasets.load_from_disk(str(folder))["answer"]), dtype=object)

    def write_predictions(self, target: Path, ids, references, generated) -> None:
        """One JSON row per example: id, reference, the generated answer, whether the checker accepts it."""
        ok = self.correct(generated, references)
        rows = [json.dumps({"id": int(i), "reference": str(r), "answer": str(a), "correct": bool(c)})
                for i, r, a, c in zip(ids, references, generated, ok)]
        rundir.write_text(target, "\n".join(rows) + "\n")

    def _rows(self, path: Path) -> list[dict]:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line]

    def read_predictions(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(references, correctness as 0/1) of a predictions file."""
        rows = self._rows(path)
        return (np.array([r["reference"] for r in rows], dtype=object),
                np.array([float(r["correct"]) for r in rows]))

    def read_outputs(self, path: Path) -> np.ndarray:
        """The generated answers of a predictions file (what methods see of a model's outputs)."""
        return np.asarray([r["answer"] for r in self._rows(path)], dtype=object)

    def evaluate(self, per_seed: dict, eval_cfg, shared_test: bool, baseline: str | None = None) -> dict:
        """Exact-match accuracy and its PGR with two-level bootstrap intervals: `per_seed` maps a training
        seed to (references, {model: correctness 0/1}); the bootstrap runs on correctness, every model's
        examples resampled together (paired)."""
        from pipeline.metrics import evaluate_seeds

        as_binary = {s: (np.ones(len(y), dtype=int), probs) for s, (y, probs) in per_seed.items()}
        return evaluate_seeds(as_binary, "weak", "ceiling", eval_cfg.bootstrap, eval_cfg.ci, eval_cfg.seed,
                              shared_test=shared_test, kinds=("accuracy",), baseline=baseline)

    # ---------------------------------------------------------------- models
    def generate(self, model, tokenizer, prompts: list[str], accelerator, desc: str = "generate") -> list[str]:
        """Greedy answers to already-formatted prompts (`prompt_text` / `with_demonstrations`), stripped."""
        from pipeline.generate import generate
        from pipeline.train.sft import end_of_turn_ids, render

        if self.cfg.chat:
            prompts = [render(tokenizer, p, None, True)[0] for p in prompts]
        out = generate(model, tokenizer, prompts, accelerator, max_new_tokens=self.cfg.max_new_tokens,
                       batch_size=self.cfg.batch_size, stop=self.cfg.stop, desc=desc,
                       add_special_tokens=not self.cfg.chat,
                       eos_ids=end_of_turn_ids(tokenizer, accelerator.unwrap_model(model)) if self.cfg.chat else None)
        return [a.strip() for a in out]

    def fit_and_predict(self, fit: Fit, inputs, predict: dict[str, Optional[np.ndarray]]
                        ) -> tuple[dict[str, np.ndarray], dict]:
        """Fine-tune `fit.role`'s causal LM on (question, answer) for the rows of `fit.split` (loss on answer
        tokens only); its greedy answers on the rows of each split in `predict` (None: every row)."""
        from pipeline.distributed import model_state_to_save
        from pipeline.train.sft import finetune_lm

        role = fit.role
        path = models.resolve(role.model)
        tokenizer = models.load_tokenizer(path)
        inputs.seed_everything()
        model = models.load_causal_lm_for_training(path, tokenizer, role.mode, role)
        questions = _pick(inputs.texts(fit.split), fit.rows)
        result = finetune_lm(model, tokenizer, [self.prompt_text(q) for q in questions],
                             [self.answer_text(str(a)) for a in fit.targets], role.train,
                             inputs.recipe.data.max_length, inputs.accelerator, inputs.seed, chat=self.cfg.chat,
                             desc=f"{fit.desc}: train",
                             checkpoint_dir=fit.out_dir / rundir.CHECKPOINTS if fit.out_dir else None)
        model = result.pop("model")
        if role.save_model and fit.out_dir is not None:
            state = model_state_to_save(inputs.accelerator, model, trainable_only=role.mode == "lora")

            def save_folder(tmp: Path):
                inputs.accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state, safe_serialization=True)
                tokenizer.save_pretrained(tmp)
            inputs.write_atomic(fit.out_dir / "model", save_folder)
        out = {s: np.asarray(self.generate(model, tokenizer, [self.prompt_text(q) for q in _pick(inputs.texts(s), idx)],
                                           inputs.accelerator, desc=f"{fit.desc}: answer {s}"), dtype=object)
               for s, idx in predict.items()}
        info = {"mode": role.mode, "train_steps": result["steps"], "final_loss": result["final_loss"],
                "train_tokens": result["tokens"], "loss": "xent",
                "objective": "next-token cross-entropy on the answer tokens only", "checker": self.checker,
                **({"resumed_from_step": result["resumed_from_step"]} if "resumed_from_step" in result else {})}
        return out, info


def _pick(rows: list, idx) -> list:
    return rows if idx is None else [rows[i] for i in idx]


TASK = Generation()
