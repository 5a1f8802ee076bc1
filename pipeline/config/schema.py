"""Recipe schema: nested dataclasses whose fields carry help text (`w2s keys` prints them).

Plain data only: loading, overrides and validation live in `pipeline.config.loading`; each transfer
method subclasses `MethodConfig` in its own module, each loss `LossConfig` in `pipeline.losses`.
"""

from dataclasses import dataclass, field
from typing import Literal, Optional

from pipeline.config.fields import help_field
from pipeline.config.losses import LossConfig, XentConfig
from pipeline.theory.config import TheoryConfig


@dataclass
class ShiftConfig:
    name: Optional[str] = help_field("registry dataset to score as the shifted test set (same label space)",
                                     default=None)
    path: Optional[str] = help_field("or a file / folder of your own, read with the same `data.*` fields",
                                     default=None)
    where: Optional[str] = help_field(
        "keep only rows whose raw column matches: `column=value` or `column!=value`; with neither name nor path, "
        "the matching rows of the main data become the shifted test set and are removed from A, B and test "
        "(a held-out domain)", default=None)
    n: Optional[int] = help_field("size of the shifted test set (a cap; default: data.n_test)", default=None)


@dataclass
class DataConfig:
    name: Optional[str] = help_field(
        "dataset from the registry (`w2s data list`): shipped, or a hub benchmark prepared with `w2s data prepare`",
        default=None)
    path: Optional[str] = help_field(
        "your own data: a .jsonl/.jsonl.gz/.json, .csv or .parquet file, a `datasets.save_to_disk` folder (one "
        "with train / test splits uses them), or, with a registry `name`, your local copy of that hub dataset",
        default=None,
    )
    text_field: str = help_field("column holding the input text (classification)", default="text")
    template: Optional[str] = help_field(
        "build the input text from several columns instead: `{column}` placeholders, e.g. "
        "\"{passage}\\nQuestion: {question}?\" (classification; replaces text_field)", default=None)
    label_field: str = help_field("column holding the label; exactly two distinct values (booleans, numbers or "
                                  "strings)", default="label")
    positive_label: Optional[str] = help_field(
        "which of the two label values is class 1 (a number, true/false or text); default: the larger one in "
        "sorted order", default=None,
    )
    prompt_field: str = help_field("preference task: column holding the prompt (may be empty); generation task: the "
                                   "question", default="prompt")
    answer_field: str = help_field("generation task: column holding the reference answer", default="answer")
    chosen_field: str = help_field("preference task: column holding the preferred response", default="chosen")
    rejected_field: str = help_field("preference task: column holding the other response", default="rejected")
    where: Optional[str] = help_field("keep only rows whose raw column matches: `column=value` or `column!=value`",
                                      default=None)
    n_train_weak: int = help_field("split A: examples that train the weak model on ground truth", default=500)
    n_transfer: int = help_field("split B: the transfer set the weak model labels (and the ceiling trains on)",
                            default=500)
    n_test: int = help_field("test split every model is scored on (from the data's own test split when it has one: "
                             "then every n_* is a cap)", default=500)
    balance: bool = help_field("draw class-balanced splits (Burns et al.); false keeps the data's natural class "
                               "ratio", default=True)
    seed: int = help_field("seed of the A/B/test split (fixed across training seeds)", default=0)
    vary_split: bool = help_field("draw a new A/B/test split for every training seed (split seed = data.seed + "
                             "training seed); default: one split shared by all seeds", default=False)
    max_length: int = help_field("truncate inputs to this many tokens (a preference pair's prompts are cut from the "
                                 "left, keeping the responses)", default=64)
    test_ood: Optional[ShiftConfig] = help_field(
        "a shifted (out-of-distribution) test set, scored and reported beside the test split with its own "
        "accuracy, AUROC and PGR", default=None)


@dataclass
class EarlyStoppingConfig:
    enabled: bool = help_field("hold out a slice of the training split, evaluate during training, keep the best "
                          "checkpoint and stop when it stops improving (also head mode with solver adamw)",
                          default=False)
    val_fraction: float = help_field("share of the training split held out for selection (not trained on)", default=0.1)
    metric: Literal["loss", "accuracy"] = help_field("selection metric on the held-out slice: cross-entropy against "
                                                "its labels (lower is better) or accuracy", default="loss")
    evals_per_epoch: int = help_field("evaluations per pass over the training data", default=2)
    patience: int = help_field("stop after this many evaluations without improvement (0: never stop early, "
                          "just keep the best)", default=3)
    select_on: Literal["labels", "gold"] = help_field(
        "labels: the held-out slice's own training labels (weak labels in transfer stages: a legitimate W2S "
        "result); gold: its ground truth, an ORACLE that no real weak-to-strong setting has (flagged in the "
        "report)", default="labels")


# Keys of `train` that only the fine-tuning loop reads: setting one for a `head`-mode model is an error
# (the head trains with `head.*`); eval_batch_size and early_stopping apply in every mode.
FINETUNE_ONLY = ("epochs", "lr", "batch_size", "grad_accum", "warmup_ratio", "schedule", "weight_decay",
                 "max_grad_norm", "group_by_length")


@dataclass
class TrainConfig:
    epochs: float = help_field("passes over the training split (full and lora modes)", default=2.0)
    lr: float = help_field("peak learning rate of AdamW (full and lora modes; head mode: head.lr)", default=5e-5)
    batch_size: int = help_field(
        "examples per optimiser step over all processes (the global batch, split between them; a multiple of the "
        "process count), before accumulation (full and lora modes; head mode: head.batch_size)", default=16)
    grad_accum: int = help_field("gradient accumulation steps (full and lora modes)", default=1)
    warmup_ratio: float = help_field(
        "fraction of optimiser steps spent warming the learning rate up (full and lora modes)", default=0.1)
    schedule: Literal["cosine", "linear", "constant"] = help_field(
        "learning-rate schedule after warm-up (full and lora modes)", default="cosine")
    weight_decay: float = help_field("AdamW weight decay on weight matrices (full and lora modes)", default=0.01)
    max_grad_norm: float = help_field("gradient clipping norm, 0 disables (full and lora modes)", default=1.0)
    eval_batch_size: int = help_field("batch size for labelling and feature extraction (every mode)", default=64)
    group_by_length: bool = help_field(
        "batch examples of similar length together, less padding (full and lora modes)", default=True)
    early_stopping: EarlyStoppingConfig = field(
        default_factory=EarlyStoppingConfig,
        metadata={"help": "best-checkpoint selection on a held-out slice of the training labels"})
    checkpoint_every: int = help_field(
        "save the training state (weights or adapter, optimiser, schedule, RNG, data position) every this many "
        "optimiser steps into the stage folder; a rerun of an interrupted stage resumes from the last one "
        "(full and lora modes; not with early stopping); 0: off", default=0)
    checkpoint_minutes: float = help_field("also save it when this many minutes passed since the last save "
                                           "(0: off)", default=0.0)
    keep_checkpoints: bool = help_field("keep the last checkpoint when the stage finishes (default: deleted)",
                                        default=False)


@dataclass
class HeadConfig:
    pooling: Literal["mean", "last"] = help_field(
        "how token states become one feature vector: mean over tokens, or the last real token", default="mean"
    )
    l2_grid: list[float] = help_field(
        "L2 strengths tried for the linear head; the best is chosen by k-fold CV on the head's own training labels",
        default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    )
    cv_folds: int = help_field("folds of that cross-validation", default=5)
    max_iter: int = help_field("Newton iterations per head fit (it converges in ~10)", default=30)
    solver: Literal["auto", "newton", "adamw"] = help_field(
        "newton: exact L2-regularised cross-entropy fit; adamw: mini-batch training with the method's loss "
        "(needed for logconf & co. and early stopping), same L2; auto: newton for plain xent without early "
        "stopping, else adamw", default="auto")
    epochs: int = help_field("passes over the training split (solver adamw)", default=30)
    lr: float = help_field("AdamW learning rate on standardised features (solver adamw); 1e-3 keeps the path smooth "
                      "enough for early stopping to pick good iterates (measured in README)", default=0.001)
    batch_size: int = help_field("mini-batch size (solver adamw)", default=32)


@dataclass
class LoraConfig:
    r: int = help_field("LoRA rank", default=8)
    alpha: int = help_field("LoRA alpha (scale = alpha / r)", default=16)
    dropout: float = help_field("dropout on the LoRA branch", default=0.05)
    target_modules: Optional[list[str]] = help_field(
        "module names to adapt; null picks peft's default for the architecture", default=None
    )


@dataclass
class ModelConfig:
    model: str = help_field("model alias (`w2s models list`), a local folder, or a hub id (needs a hub)",
                       default="minilm")
    mode: Literal["full", "lora", "head"] = help_field(
        "full: fine-tune every weight; lora: peft adapters + classifier; head: frozen backbone, features cached "
        "once per split, only a linear head trained (Burns et al.'s linear probe)",
        default="full",
    )
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "fine-tuning loop settings"})
    head: HeadConfig = field(default_factory=HeadConfig, metadata={"help": "settings of `head` mode"})
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "settings of `lora` mode"})
    save_model: bool = help_field("save fine-tuned weights (safetensors / adapter / head) in the run directory",
                             default=True)
    gradient_checkpointing: bool = help_field("recompute activations in the backward pass (less memory, ~30% slower; "
                                         "full and lora modes)", default=False)
    attn_implementation: Optional[str] = help_field(
        "attention kernel passed to transformers: sdpa, eager, flash_attention_2 (needs the flash-attn package); "
        "null lets transformers choose", default=None)
    compile: bool = help_field("torch.compile the model before training/inference (opt-in; pays off on long GPU runs)",
                          default=False)
    dtype: Literal["float32", "bfloat16", "float16"] = help_field(
        "storage dtype of the frozen weights: bfloat16 halves memory (the usual choice for LoRA on a large GPU "
        "model); trainable weights (LoRA adapters, the head; every weight in full mode) always train from float32 "
        "master copies, computed under bf16 autocast. float32 is the CPU default. Autocast precision is "
        "runtime.mixed_precision",
        default="float32")


@dataclass
class SourceConfig:
    name: Optional[str] = help_field("registry dataset this weak model trains on (same label space as `data:`)",
                                     default=None)
    path: Optional[str] = help_field("or a file / folder of your own, read with the same `data.*` fields",
                                     default=None)
    where: Optional[str] = help_field(
        "keep only rows whose raw column matches: `column=value` or `column!=value`; with neither name nor path, "
        "rows of the data's own file (this filter replaces data.where), e.g. domain=hotels", default=None)
    n: Optional[int] = help_field("examples the weak model trains on (a cap; default: data.n_train_weak)",
                                  default=None)


@dataclass
class WeakConfig(ModelConfig):
    data: Optional[SourceConfig] = help_field(
        "train this weak model on other source data than B and test are drawn from (a distribution shift): a "
        "registry dataset, a file or a `where` filter; its training split A is drawn there, leaving out any text "
        "that is also in B, test or test_ood. Default: A is drawn from `data:` like B and test", default=None)


@dataclass
class MethodConfig:
    """Base of every transfer method's config; each method module subclasses it."""

    name: str = help_field("transfer method from the registry (`w2s methods`)", default="naive")
    id: Optional[str] = help_field("name of this entry in results and the run directory (default: `name`)",
                              default=None)
    loss: LossConfig = field(default_factory=XentConfig, metadata={
        "help": "loss the strong student is trained with on this method's labels: `{name: <loss>, <its options>}` "
                "(`w2s keys loss`)"})
    seeds: Optional[list[int]] = help_field("run this method on these training seeds only (a subset of the recipe's "
                                            "`seeds`; e.g. an expensive method on one seed); default: all",
                                            default=None)
    hard: bool = help_field("train on the argmax (one-hot) of the method's labels instead of its probabilities",
                            default=False)
    calibrate: Literal["none", "temperature"] = help_field(
        "temperature: temperature-scale the weak labels before the method sees them, T fitted on the weak "
        "model's out-of-sample outputs on A (weak models retrained on `calibrate_folds` folds of A; no B or "
        "test gold); classification and preference tasks", default="none")
    calibrate_folds: int = help_field("folds of A for `calibrate: temperature`", default=3)

    @property
    def key(self) -> str:
        return self.id or self.name


@dataclass
class RuntimeConfig:
    mixed_precision: Optional[Literal["no", "bf16", "fp16"]] = help_field(
        "autocast precision for training and inference; null takes it from `accelerate launch` / its config "
        "file (bf16 needs a GPU or CPU with bf16 support; fp16 needs a GPU)", default=None)
    trackers: list[str] = help_field("experiment trackers to log training curves to (opt-in): tensorboard, wandb, "
                                "... (anything `accelerate` supports that is installed)", default_factory=list)
    tracker_dir: Optional[str] = help_field("where file-based trackers write (default: <run dir>/trackers)",
                                       default=None)


@dataclass
class GenerationConfig:
    template: str = help_field(
        "how a question becomes the model's prompt ({prompt} is the question); training appends "
        "answer_prefix + the answer, and refinement shows demonstrations as template + answer_prefix + answer "
        "+ a blank line (Somerstep et al.'s `Question: {q}\\nAnswer: {a}` blocks)",
        default="Question: {prompt}\nAnswer:")
    answer_prefix: str = help_field("text between the prompt and the answer in training targets and demonstrations",
                                    default=" ")
    checker: Optional[str] = help_field(
        "answer checker (`w2s tasks`): exact (normalised exact match), number / gsm8k (final number, GSM8K's "
        "`#### n`), boxed (MATH's \\boxed{}); default: the dataset's, else exact", default=None)
    max_new_tokens: int = help_field("longest answer generated, in tokens", default=32)
    stop: list[str] = help_field("generation stops at the first of these strings (it is cut off)",
                                 default_factory=lambda: ["\n\n", "\nQuestion:"])
    batch_size: int = help_field("prompts per batched greedy-decoding call (left-padded, KV cache)", default=16)
    chat: bool = help_field("render prompts with the tokenizer's chat template (user turn = the question, assistant "
                            "turn = the answer) in training and generation alike; for instruction-tuned models",
                            default=False)


@dataclass
class EvalConfig:
    bootstrap: int = help_field("paired bootstrap resamples of the test split for confidence intervals",
                           default=1000)
    ci: float = help_field("confidence level of the intervals", default=0.95)
    seed: int = help_field("seed of the bootstrap resampling", default=0)
    baseline: Optional[str] = help_field(
        "method key every other method is compared with, paired (same seeds and test examples): Δ accuracy, "
        "Δ AUROC, Δ PGR with intervals; default: naive when the recipe runs it", default=None)


@dataclass
class SweepConfig:
    weak: list[WeakConfig] = help_field(
        "weak models: aliases/paths or mappings like the `weak:` block; each entry inherits the `weak:` block's "
        "settings and overrides what it sets", default_factory=list)
    strong: list[ModelConfig] = help_field("strong models, likewise inheriting the `strong:` block",
                                           default_factory=list)
    pairs: Literal["weak_le_strong", "all"] = help_field(
        "which (weak, strong) pairs run: weak_le_strong = every pair whose weak model has at most as many "
        "parameters as the strong one (Burns et al.); all = every pair", default="weak_le_strong")
    datasets: list[str] = help_field(
        "a suite: run every pair on each of these registry datasets (`w2s data list`; the `data:` block's sizes "
        "and settings apply to each), with a summary across datasets", default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.weak or self.strong or self.datasets)


@dataclass
class Recipe:
    name: str = help_field("run name: outputs go to <output_dir>/<name>/", default="run")
    task: str = help_field("task kind (`w2s tasks`): what an example is, how a model scores it, its loss and "
                           "metric; classification = binary labels, accuracy / AUROC / PGR; preference = reward "
                           "modelling on (prompt, response A, response B) pairs; generation = answers generated "
                           "by causal LMs, exact-match accuracy / PGR", default="classification")
    output_dir: str = help_field("parent folder of run directories", default="runs")
    seed: int = help_field("training seed (model init, data order) when `seeds` is not set", default=0)
    seeds: Optional[list[int]] = help_field(
        "several training seeds: weak, ceiling and every method run once per seed and results are pooled "
        "(mean, std, CI over seeds and test resampling); overrides `seed`", default=None)
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "dataset and split sizes"})
    weak: WeakConfig = field(default_factory=WeakConfig, metadata={"help": "the weak supervisor"})
    strong: ModelConfig = field(
        default_factory=lambda: ModelConfig(model="mpnet", mode="head"), metadata={"help": "the strong student"}
    )
    methods: list[MethodConfig] = field(
        default_factory=lambda: [MethodConfig(name="naive")],
        metadata={"help": "transfer methods, each `{name: ..., <options>}` (`w2s methods`)"}
    )
    generation: GenerationConfig = field(default_factory=GenerationConfig, metadata={
        "help": "generation task: prompt format, answer checker, decoding"})
    evaluate: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "evaluation statistics"})
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig,
                                   metadata={"help": "precision and experiment trackers (hardware: accelerate)"})
    theory: TheoryConfig = field(default_factory=TheoryConfig,
                                 metadata={"help": "synthetic theory sanity stage"})
    sweep: SweepConfig = field(default_factory=SweepConfig, metadata={
        "help": "weak x strong model sweep: every pair runs, sharing cached weak labels and ceilings"})

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed]
