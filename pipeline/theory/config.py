"""Config of the synthetic theory stage (docs/THEORY.md): plain nested dataclasses with help text.

Every default is the [DEFAULT] of docs/THEORY.md, i.e. a reconstruction choice, not a value from the papers.
Annotations stay real types (no `from __future__ import annotations`): the recipe loader reads them.
"""

import math
import re
from dataclasses import dataclass
from typing import Literal

from pipeline.config.fields import help_field

COVARIANCES = ("isotropic", "anisotropic")
LABEL_TYPES = ("soft", "hard")
DEVICE = re.compile(r"(cpu|cuda|mps|xpu)(:\d+)?")  # what torch.device accepts, checked without importing torch


@dataclass
class TwoLayerConfig:
    """Setting 1: feature elicitation in a two-layer ReLU reward model (docs/THEORY.md §1, arXiv 2605.12908)."""

    enabled: bool = help_field("run setting 1 (two-layer ReLU net, sweep over rho)", default=True)
    n_seeds: int = help_field("independent seeds per rho (docs/THEORY.md states its predictions for 10)", default=10)
    d: int = help_field("input dimension; x ~ N(0, I_d)", default=64)
    n_tasks: int = help_field("number of tasks K (task 0 is the target)", default=4)
    subspace_dim: int = help_field("dimension r of each task subspace V_k", default=8)
    neurons_per_task: int = help_field("first-layer neurons per task group (m_k)", default=16)
    alpha_off: float = help_field("alignment of off-target neurons with their task direction u_k", default=0.95)
    alpha_target: float = help_field("alignment of target-group neurons with u_0 (latent knowledge)", default=0.3)
    bias_low: float = help_field("first-layer biases c_j ~ U[bias_low, bias_high]", default=-2.0)
    bias_high: float = help_field("upper end of the first-layer bias range", default=0.5)
    rhos: list[float] = help_field(
        "correlations rho = <u_k, u_0> of the off-target task directions with the target, one run each",
        default_factory=lambda: [0.0, 0.5, 0.8],
    )
    n_pretrain: int = help_field("ground-truth samples per off-target task for the pretrained ridge heads",
                                 default=20000)
    ridge: float = help_field("ridge strength lambda of the pretrained off-target heads", default=1e-3)
    n_weak: int = help_field("labelled samples of the weak (single-index) teacher", default=640)
    n_transfer: int = help_field("transfer-set inputs the student is fine-tuned on (n_ft)", default=8000)
    batch_size: int = help_field("minibatch size of the fine-tuning SGD", default=64)
    steps: int = help_field("SGD steps of fine-tuning (same for W2S and the SFT ceiling)", default=4000)
    lr: float = help_field("SGD learning rate for all trainable parameters", default=0.05)
    project_grad: bool = help_field(
        "project the first-layer gradient onto span(V_1..V_K) (a two-layer net on the pretrained embedding)",
        default=True,
    )
    n_test: int = help_field("fresh test samples all errors are measured on", default=20000)
    ablation: bool = help_field("also run the latent-knowledge ablation (prediction P7)", default=True)
    ablation_seeds: int = help_field("seeds of the ablation run", default=3)
    ablation_alpha_target: float = help_field("target-group alignment in the ablation (0 = orthogonal to u_0)",
                                         default=0.0)
    ablation_rho: float = help_field("rho of the ablation run", default=0.0)


@dataclass
class LogisticConfig:
    """Setting 2: W2S in linear logistic regression (docs/THEORY.md §2, arXiv 2605.05742)."""

    enabled: bool = help_field("run setting 2 (linear logistic regression, student-teacher pairs)", default=True)
    d: int = help_field("input dimension; x ~ N(0, Sigma), target w* = e_1", default=50)
    n_train: int = help_field("unlabelled inputs the student is trained on (full batch)", default=2000)
    n_pairs: int = help_field("random student-teacher pairs per configuration", default=40)
    c_student: float = help_field("cos(w_S0, w*) of the student's initialisation", default=0.8)
    c_teacher: float = help_field("cos(w_T, w*) of the teacher (base value of the sweeps)", default=0.6)
    teacher_norm: float = help_field("norm of the teacher weight vector", default=2.0)
    init_norm: float = help_field("norm of the student's initialisation (base value of the sweeps)", default=1.0)
    gamma: float = help_field("<xi_S, xi_T>: overlap of the two error directions (base value of the sweeps)",
                         default=0.0)
    lr: float = help_field("learning rate of full-batch gradient descent", default=1.0)
    steps: int = help_field("gradient-descent steps", default=300)
    early_step: int = help_field("fixed early time t at which 'still beats both' is also reported", default=20)
    aniso_power: float = help_field("anisotropic covariance: eigenvalues lambda_i = i^-power (lambda_1 = 1 on w*)",
                               default=1.0)
    gammas: list[float] = help_field("sweep over the error-direction overlap gamma",
                                default_factory=lambda: [-0.5, 0.0, 0.5, 0.8, 0.95])
    c_teachers: list[float] = help_field("sweep over the teacher's cosine c_T (at gamma = base)",
                                    default_factory=lambda: [0.4, 0.6, 0.8])
    init_norms: list[float] = help_field("sweep over the student's initial norm (at gamma = base)",
                                    default_factory=lambda: [0.1, 0.5, 1.0, 3.0, 10.0])
    covariances: list[str] = help_field("covariances crossed with label_types at the base configuration",
                                   default_factory=lambda: list(COVARIANCES))
    label_types: list[str] = help_field("teacher labels: soft = sigmoid(w_T.x), hard = 1[w_T.x > 0]",
                                   default_factory=lambda: list(LABEL_TYPES))
    curve_points: int = help_field("error-vs-step points kept per configuration in metrics.json", default=61)


@dataclass
class CnnConfig:
    """Setting 3a: linear CNN teacher -> two-layer ReLU CNN student (docs/THEORY.md §3a, arXiv 2510.24812)."""

    enabled: bool = help_field("run setting 3a (signal-noise patch data, two-layer ReLU CNN student)", default=True)
    n_seeds: int = help_field("seeds of the data-abundant run (docs/THEORY.md states its predictions for 10)",
                              default=10)
    scarce_seeds: int = help_field("seeds of the data-scarce sweep (small n: cheap, but noisier per seed)",
                                   default=30)
    d: int = help_field("patch dimension; the two signal vectors take two axes, the noise patch the other d - 2",
                        default=400)
    noise_std: float = help_field("sigma_p: noise patch xi ~ N(0, sigma_p^2 (I - P_mu))", default=1.0)
    easy_norm: float = help_field("||mu_e||: norm of the easy signal patch y*mu_e", default=8.0)
    hard_norm: float = help_field("||mu_h||: norm of the hard signal patch y*mu_h", default=3.0)
    hard_frac: float = help_field("probability that a point carries the hard signal instead of the easy one",
                                  default=0.5)
    teacher_hard_err: float = help_field(
        "error rate of the linear-CNN teacher on hard points (easy points: Phi(-Phi^-1(1-e) ||mu_e||^2/||mu_h||^2))",
        default=0.3)
    neurons: int = help_field("ReLU filters per output sign (m); the student has 2m filters", default=5)
    init_std: float = help_field("student filters w ~ N(0, init_std^2 I_d) at initialisation", default=0.01)
    lr: float = help_field("learning rate of full-batch gradient descent on the logistic loss", default=0.6)
    steps: int = help_field("gradient-descent steps (the same for W2S and the ground-truth ceiling)", default=500)
    n_abundant: int = help_field("training points of the data-abundant run (n ||mu_h||^2 > sigma_p^2 d)",
                                 default=400)
    n_scarce: list[int] = help_field(
        "training-set sizes of the data-scarce sweep (n ||mu_h||^2 < sigma_p^2 d), one run each",
        default_factory=lambda: [3, 6, 12, 24, 40])
    n_test: int = help_field("Monte-Carlo test draws per (label y, signal kind); the test distribution is exact",
                             default=10000)
    curve_points: int = help_field("log-spaced steps at which test accuracy is measured", default=25)


@dataclass
class RidgeConfig:
    """Setting 3b: ridge teacher -> ridge student on the teacher's labels (docs/THEORY.md §3b, arXiv 2505.18346)."""

    enabled: bool = help_field("run setting 3b (closed-form ridge teacher and students)", default=True)
    n_seeds: int = help_field("independent seeds (docs/THEORY.md states its predictions for 20)", default=20)
    d: int = help_field("input dimension; x ~ N(0, I_d)", default=200)
    n_over_d: list[float] = help_field("teacher's labelled sample sizes n / d, one run each (1 = interpolation peak)",
                                       default_factory=lambda: [0.5, 0.8, 1.0, 1.25, 2.0])
    student_over_d: float = help_field("student's fresh (teacher-labelled) inputs n_S / d", default=2.0)
    noise_std: float = help_field("label noise sigma: y = <beta*, x> + N(0, sigma^2), ||beta*|| = 1", default=0.5)
    support_frac: float = help_field("fraction of the coordinates carrying beta* (its first k axes)", default=0.125)
    teacher_lambdas: list[float] = help_field(
        "teacher ridge strengths as multiples of lambda_opt = sigma^2 d / (n ||beta*||^2); 0 = min-norm / OLS",
        default_factory=lambda: [0.0, 1.0])
    weight_low: float = help_field(
        "weighted-ridge student: penalty weight on the k favoured axes (1 on the rest); aligned = beta*'s support",
        default=0.1)
    lambda_min: float = help_field("smallest student ridge strength of the log-spaced grid", default=1e-4)
    lambda_max: float = help_field("largest student ridge strength of the grid", default=100.0)
    lambda_points: int = help_field("points of the student's ridge grid (min over it = oracle-tuned student)",
                                    default=31)


@dataclass
class TheoryConfig:
    """The synthetic theory stage: four reconstructed settings with checkable predictions P1-P14."""

    enabled: bool = help_field("run the synthetic theory stage", default=True)
    seed: int = help_field("base seed; every (setting, seed index) gets its own generator", default=0)
    device: str = help_field("torch device for the simulations (cpu is fast enough; results are drawn on cpu)",
                        default="cpu")
    num_threads: int = help_field(
        "CPU threads for the simulations (0 = leave torch's setting); 1 is fastest for these small tensors and "
        "does not collapse when other processes share the cores", default=1)
    dtype: Literal["float32", "float64"] = help_field("floating-point precision of the simulations", default="float32")
    two_layer: TwoLayerConfig = help_field("setting 1: feature elicitation (two-layer ReLU net)",
                                      default_factory=TwoLayerConfig)
    logistic: LogisticConfig = help_field("setting 2: linear logistic regression", default_factory=LogisticConfig)
    cnn: CnnConfig = help_field("setting 3a: linear CNN -> two-layer ReLU CNN (benign overfitting)",
                                default_factory=CnnConfig)
    ridge: RidgeConfig = help_field("setting 3b: ridge teacher -> (weighted) ridge student",
                                    default_factory=RidgeConfig)

    def validate(self, prefix: str = "theory") -> list[str]:
        """Every invalid value, as 'dotted.path: problem, got value'; empty when the config is usable."""
        errors: list[str] = []
        check = _Checker(errors)
        if not DEVICE.fullmatch(self.device):
            errors.append(f"{prefix}.device: not a torch device (e.g. 'cpu', 'cuda', 'cuda:1'), got {self.device!r}")
        check.at_least(f"{prefix}.num_threads", self.num_threads, 0)
        check.choice(f"{prefix}.dtype", self.dtype, ("float32", "float64"))

        t, p = self.two_layer, f"{prefix}.two_layer"
        for name in ("n_seeds", "d", "neurons_per_task", "n_pretrain", "n_transfer", "batch_size", "steps",
                     "ablation_seeds"):
            check.at_least(f"{p}.{name}", getattr(t, name), 1)
        check.at_least(f"{p}.n_tasks", t.n_tasks, 2)
        check.at_least(f"{p}.subspace_dim", t.subspace_dim, 2)  # u_k plus at least one fresh direction
        check.at_least(f"{p}.n_weak", t.n_weak, 2)
        check.at_least(f"{p}.n_test", t.n_test, 2)
        if t.n_tasks * t.subspace_dim > t.d:
            errors.append(f"{p}.d: n_tasks * subspace_dim = {t.n_tasks * t.subspace_dim} orthogonal task "
                          f"dimensions must fit in d, got d = {t.d}")
        if t.batch_size > t.n_transfer:
            errors.append(f"{p}.batch_size: must be <= n_transfer = {t.n_transfer}, got {t.batch_size}")
        for name in ("alpha_off", "alpha_target", "ablation_alpha_target"):
            check.within(f"{p}.{name}", getattr(t, name), 0.0, 1.0)
        check.finite(f"{p}.bias_low", t.bias_low)
        check.finite(f"{p}.bias_high", t.bias_high)
        if t.bias_low > t.bias_high:
            errors.append(f"{p}.bias_high: must be >= bias_low = {t.bias_low}, got {t.bias_high}")
        check.nonempty_list(f"{p}.rhos", t.rhos, -1.0, 1.0)
        check.within(f"{p}.ablation_rho", t.ablation_rho, -1.0, 1.0)
        check.positive(f"{p}.lr", t.lr)
        check.positive(f"{p}.ridge", t.ridge)  # keeps the ridge system of the heads well-posed

        g, p = self.logistic, f"{prefix}.logistic"
        check.at_least(f"{p}.d", g.d, 3)  # w* plus two orthonormal error directions
        for name in ("n_train", "n_pairs", "steps"):
            check.at_least(f"{p}.{name}", getattr(g, name), 1)
        check.at_least(f"{p}.curve_points", g.curve_points, 2)
        for name in ("c_student", "c_teacher", "gamma"):
            check.within(f"{p}.{name}", getattr(g, name), -1.0, 1.0)
        for name in ("teacher_norm", "init_norm", "lr"):
            check.positive(f"{p}.{name}", getattr(g, name))
        if not 1 <= g.early_step <= g.steps:
            errors.append(f"{p}.early_step: must be in [1, steps = {g.steps}], got {g.early_step}")
        check.at_least(f"{p}.aniso_power", g.aniso_power, 0.0)
        check.nonempty_list(f"{p}.gammas", g.gammas, -1.0, 1.0)
        check.nonempty_list(f"{p}.c_teachers", g.c_teachers, -1.0, 1.0)
        check.nonempty_list(f"{p}.init_norms", g.init_norms, 0.0, math.inf, open_low=True)
        for name, allowed in (("covariances", COVARIANCES), ("label_types", LABEL_TYPES)):
            values = getattr(g, name)
            if not values:
                errors.append(f"{p}.{name}: must list at least one of {list(allowed)}")
            for i, v in enumerate(values):
                check.choice(f"{p}.{name}[{i}]", v, allowed)

        c, p = self.cnn, f"{prefix}.cnn"
        for name in ("n_seeds", "scarce_seeds", "neurons", "steps", "n_abundant"):
            check.at_least(f"{p}.{name}", getattr(c, name), 1)
        check.at_least(f"{p}.d", c.d, 3)  # mu_e, mu_h and at least one noise direction
        check.at_least(f"{p}.n_test", c.n_test, 2)
        check.at_least(f"{p}.curve_points", c.curve_points, 2)
        for name in ("noise_std", "easy_norm", "hard_norm", "init_std", "lr"):
            check.positive(f"{p}.{name}", getattr(c, name))
        check.within(f"{p}.hard_frac", c.hard_frac, 0.0, 1.0, open_low=True, open_high=True)
        # 0.5 = at chance on hard points: the weak labels would carry no signal along mu_h
        check.within(f"{p}.teacher_hard_err", c.teacher_hard_err, 0.0, 0.5, open_low=True, open_high=True)
        if not c.n_scarce:
            errors.append(f"{p}.n_scarce: must list at least one value")
        for i, n in enumerate(c.n_scarce):
            check.at_least(f"{p}.n_scarce[{i}]", n, 1)
        if len(set(c.n_scarce)) != len(c.n_scarce):
            errors.append(f"{p}.n_scarce: each size once, got {c.n_scarce}")

        r, p = self.ridge, f"{prefix}.ridge"
        check.at_least(f"{p}.n_seeds", r.n_seeds, 1)
        check.at_least(f"{p}.d", r.d, 2)
        check.at_least(f"{p}.lambda_points", r.lambda_points, 2)
        check.nonempty_list(f"{p}.n_over_d", r.n_over_d, 0.0, math.inf, open_low=True)
        check.nonempty_list(f"{p}.teacher_lambdas", r.teacher_lambdas, 0.0, math.inf)
        for name in ("student_over_d", "noise_std", "lambda_min", "lambda_max"):
            check.positive(f"{p}.{name}", getattr(r, name))
        check.within(f"{p}.support_frac", r.support_frac, 0.0, 0.5, open_low=True)  # aligned and control disjoint
        check.within(f"{p}.weight_low", r.weight_low, 0.0, 1.0, open_low=True)
        if r.lambda_min >= r.lambda_max:
            errors.append(f"{p}.lambda_max: must be > lambda_min = {r.lambda_min}, got {r.lambda_max}")
        for name, ratio in [("student_over_d", r.student_over_d), *[(f"n_over_d[{i}]", x)
                                                                   for i, x in enumerate(r.n_over_d)]]:
            if math.isfinite(ratio) and ratio > 0 and round(ratio * r.d) < 1:
                errors.append(f"{p}.{name}: {ratio} * d = {ratio * r.d:g} rounds to no samples (d = {r.d})")
        if math.isfinite(r.support_frac) and 0 < r.support_frac <= 0.5 and round(r.support_frac * r.d) < 1:
            errors.append(f"{p}.support_frac: {r.support_frac} * d rounds to an empty support (d = {r.d})")
        return errors


class _Checker:
    """Appends one readable message per bad value (validation reports every error at once)."""

    def __init__(self, errors: list[str]):
        self.errors = errors

    def at_least(self, key: str, value, low) -> None:
        if not value >= low:  # also catches NaN
            self.errors.append(f"{key}: must be >= {low}, got {value}")

    def positive(self, key: str, value) -> None:
        if not (value > 0 and math.isfinite(value)):
            self.errors.append(f"{key}: must be a positive finite number, got {value}")

    def finite(self, key: str, value) -> None:
        if not math.isfinite(value):
            self.errors.append(f"{key}: must be a finite number, got {value}")

    def within(self, key: str, value, low: float, high: float, open_low: bool = False,
               open_high: bool = False) -> None:
        ok = (low < value if open_low else low <= value) and (value < high if open_high else value <= high)
        if not ok:
            left, right = "(" if open_low else "[", ")" if open_high else "]"
            self.errors.append(f"{key}: must be in {left}{low:g}, {high:g}{right}, got {value}")

    def nonempty_list(self, key: str, values: list, low: float, high: float, open_low: bool = False) -> None:
        if not values:
            self.errors.append(f"{key}: must list at least one value")
        for i, v in enumerate(values):
            self.within(f"{key}[{i}]", v, low, high, open_low)

    def choice(self, key: str, value: str, allowed) -> None:
        if value not in allowed:
            self.errors.append(f"{key}: must be one of {list(allowed)}, got {value!r}")
