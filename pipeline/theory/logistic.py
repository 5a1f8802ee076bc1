"""Setting 2: weak-to-strong in linear logistic regression (Geng, Hansen, Li, arXiv 2605.05742; docs/THEORY.md §2).

Teacher and student are the same linear class; the student starts from its own (better) initialisation and runs
full-batch GD on the teacher's labels. W2S here is strict: the student beats the teacher *and* its own init.
The population minimiser is the teacher, so W2S can only happen along the trajectory: we report the best point
of the path (oracle stopping), a fixed early time and the end point. Mechanism (docs/THEORY.md §2.1): early GD adds
∝ w_T to w_S0, and a mix of two predictors with weakly correlated errors has a higher cosine with w* than either.

Speed: all pairs train at once (one batched matmul per step), every configuration of one covariance as columns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
from tqdm.auto import tqdm

from pipeline.theory.config import LogisticConfig


@dataclass(frozen=True)
class Setup:
    """One configuration of the sweeps: geometry of the pair, covariance and teacher labels."""

    gamma: float
    c_teacher: float
    c_student: float
    init_norm: float
    teacher_norm: float
    covariance: str
    label_type: str
    sweeps: tuple[str, ...] = field(default=(), compare=False)

    @property
    def st_cos(self) -> float:
        """cos(w_S0, w_T) = c_S c_T + sqrt(1 − c_S²) sqrt(1 − c_T²) γ, exact by construction."""
        s = math.sqrt(max(0.0, 1 - self.c_student ** 2)) * math.sqrt(max(0.0, 1 - self.c_teacher ** 2))
        return self.c_student * self.c_teacher + s * self.gamma

    @property
    def condition_margin(self) -> float:
        """cos(w_T,w*) − cos(w_S0,w*)·cos(w_S0,w_T); > 0 ⇔ adding w_T first raises the cosine (isotropic, §2.1)."""
        return self.c_teacher - self.c_student * self.st_cos


def setups(cfg: LogisticConfig) -> list[Setup]:
    """The base configuration and the sweeps of docs/THEORY.md §2.2, each configuration once (tagged with its
    sweeps)."""
    base = Setup(cfg.gamma, cfg.c_teacher, cfg.c_student, cfg.init_norm, cfg.teacher_norm, "isotropic", "soft")
    variants = [("gamma", replace(base, gamma=g)) for g in cfg.gammas]
    variants += [("c_teacher", replace(base, c_teacher=c)) for c in cfg.c_teachers]
    variants += [("init_norm", replace(base, init_norm=n)) for n in cfg.init_norms]
    variants += [("covariance", replace(base, covariance=cov, label_type=lab))
                 for cov in cfg.covariances for lab in cfg.label_types]
    unique: dict[Setup, list[str]] = {}
    for sweep, s in variants:
        tags = unique.setdefault(s, [])
        if sweep not in tags:
            tags.append(sweep)
    return [replace(s, sweeps=tuple(tags)) for s, tags in unique.items()]


def spectrum(cfg: LogisticConfig, covariance: str, dtype: torch.dtype) -> torch.Tensor:
    """Eigenvalues of the axis-aligned Σ: all ones, or anisotropic (docs/THEORY.md §2.1, read as below).

    Anisotropic: w* = e_1 keeps unit variance (λ = 1 on w*, as in the isotropic case) and the d−1 directions
    orthogonal to it get λ_i ∝ i^−power, normalised to mean 1 (tr Σ = d). The two covariances then differ only
    in the spectrum the error directions see, which is the comparison P12 is about.
    """
    if covariance == "isotropic":
        return torch.ones(cfg.d, dtype=dtype)
    rest = torch.arange(1, cfg.d, dtype=torch.float64) ** -cfg.aniso_power
    rest = rest * (cfg.d - 1) / rest.sum()
    return torch.cat([torch.ones(1, dtype=torch.float64), rest]).to(dtype)


def test_error(W: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Exact 0-1 error against y* = sign(x_1) for Gaussian x: arccos(cos_Σ(w, w*))/π (§2.1). W (..., d)."""
    cross = lam[0] * W[..., 0]  # w*ᵀ Σ w with w* = e_1
    norm = (lam * W * W).sum(-1).clamp_min(1e-30).sqrt() * lam[0].sqrt()
    return torch.arccos((cross / norm).clamp(-1.0, 1.0)) / math.pi


def pair_draws(cfg: LogisticConfig, seeds: list[int], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair: standard-normal inputs Z (n, d) and two orthonormal directions ⟂ w* (common to all setups)."""
    zs, dirs = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        zs.append(torch.randn(cfg.n_train, cfg.d, generator=g, dtype=dtype))
        raw = torch.randn(cfg.d, 2, generator=g, dtype=torch.float64)
        raw[0] = 0.0  # orthogonal to w* = e_1
        dirs.append(torch.linalg.qr(raw).Q.T.to(dtype))
    return torch.stack(zs), torch.stack(dirs)  # (P, n, d), (P, 2, d)


def initial_weights(group: list[Setup], dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w_S0 = ‖w_S0‖(c_S w* + sqrt(1−c_S²) ξ_S), w_T alike with ξ_T, ⟨ξ_S, ξ_T⟩ = γ (§2.1); each (P, C, d)."""
    P, _, d = dirs.shape
    W0 = torch.zeros(P, len(group), d, dtype=dirs.dtype)
    WT = torch.zeros_like(W0)
    for j, s in enumerate(group):
        xi_s = dirs[:, 0]
        xi_t = s.gamma * dirs[:, 0] + math.sqrt(max(0.0, 1 - s.gamma ** 2)) * dirs[:, 1]
        W0[:, j] = s.init_norm * math.sqrt(max(0.0, 1 - s.c_student ** 2)) * xi_s
        W0[:, j, 0] += s.init_norm * s.c_student
        WT[:, j] = s.teacher_norm * math.sqrt(max(0.0, 1 - s.c_teacher ** 2)) * xi_t
        WT[:, j, 0] += s.teacher_norm * s.c_teacher
    return W0, WT


def train(cfg: LogisticConfig, group: list[Setup], Z: torch.Tensor, dirs: torch.Tensor, lam: torch.Tensor,
          device: torch.device, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch GD on BCE(σ(w·x), teacher label) for all pairs and setups; returns errors (steps+1, P, C), err_T.

    Weights are rows (P, C, d) so both matmuls have the long n = n_train side as a matrix dimension (faster).
    """
    X = (Z * lam.sqrt()).to(device)  # x ~ N(0, Σ) with Σ = diag(lam)
    Xt = X.transpose(1, 2).contiguous()  # (P, d, n)
    W, WT = (w.to(device) for w in initial_weights(group, dirs))
    logits_T = torch.bmm(WT, Xt)  # (P, C, n)
    hard = torch.tensor([s.label_type == "hard" for s in group], device=device)[:, None]
    targets = torch.where(hard, (logits_T > 0).to(X.dtype), torch.sigmoid(logits_T))
    lam = lam.to(device)
    errors = torch.empty(cfg.steps + 1, *W.shape[:2], dtype=X.dtype, device=device)  # (steps+1, P, C)
    errors[0] = test_error(W, lam)
    for t in tqdm(range(1, cfg.steps + 1), desc="theory: logistic", disable=not progress, leave=False,
                  mininterval=0.5):
        residual = torch.sigmoid(torch.bmm(W, Xt)).sub_(targets)  # BCE gradient wrt the logits
        W.sub_(torch.bmm(residual, X), alpha=cfg.lr / cfg.n_train)
        errors[t] = test_error(W, lam)
    return errors.cpu(), test_error(WT, lam).cpu()


def summarise(cfg: LogisticConfig, s: Setup, errors: torch.Tensor, err_T: torch.Tensor) -> dict:
    """One JSON entry: the setup, the fractions of pairs where W2S happened, mean errors and the mean error curve."""
    err_0, path = errors[0], errors[1:]  # oracle stopping searches steps >= 1: the init itself is no W2S
    bar = torch.minimum(err_0, err_T)
    best, best_step = path.min(0)
    at_t = path[cfg.early_step - 1]
    final = path[-1]
    # log-spaced steps: the interesting part (best point, early time) is within the first few dozen steps
    logspaced = torch.logspace(0, math.log10(cfg.steps), max(1, cfg.curve_points - 1), dtype=torch.float64)
    keep = torch.cat([torch.zeros(1), logspaced.round()]).long().unique()
    entry = {k: v for k, v in asdict(s).items() if k != "sweeps"}
    entry.update(
        sweeps=list(s.sweeps), st_cos=round(s.st_cos, 6), condition_margin=round(s.condition_margin, 6),
        n_pairs=len(err_0),
        frac_beats_both=_mean(best < bar), frac_beats_both_at_t=_mean(at_t < bar), early_step=cfg.early_step,
        frac_final_beats_teacher=_mean(final < err_T - 1e-4),  # margin: float noise of a converged run
        err_init=_mean(err_0), err_teacher=_mean(err_T), err_best=_mean(best), err_at_t=_mean(at_t),
        err_final=_mean(final), final_teacher_gap_max=round(float((final - err_T).abs().max()), 6),
        best_step_median=int(best_step.median()) + 1,
        curve={"step": keep.tolist(), "err_mean": [round(float(e), 6) for e in errors[keep].mean(1)]},
    )
    return entry


def _mean(x: torch.Tensor) -> float:
    return round(float(x.double().mean()), 6)


def run(cfg: LogisticConfig, seed: int, dtype: torch.dtype, device: torch.device, progress: bool) -> dict:
    """Setting 2: every configuration over n_pairs random pairs; JSON-ready list in `setups` order."""
    all_setups = setups(cfg)
    Z, dirs = pair_draws(cfg, [seed * 100_003 + 50_000 + p for p in range(cfg.n_pairs)], dtype)
    entries: dict[Setup, dict] = {}
    for covariance in dict.fromkeys(s.covariance for s in all_setups):  # one GD run per covariance
        group = [s for s in all_setups if s.covariance == covariance]
        lam = spectrum(cfg, covariance, dtype)
        errors, err_T = train(cfg, group, Z, dirs, lam, device, progress)
        for j, s in enumerate(group):
            entries[s] = summarise(cfg, s, errors[:, :, j], err_T[:, j])
    return {"logistic": [entries[s] for s in all_setups]}
