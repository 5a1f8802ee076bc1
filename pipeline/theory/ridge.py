"""Setting 3b: weak-to-strong mechanisms in ridge regression (Moniri & Hassani, arXiv 2505.18346; docs/THEORY.md §3b).

A ridge teacher (strength λ_T) is fitted on n labelled samples of a linear target with noise; a ridge student
(strength λ_S) is fitted on the teacher's (noiseless) predictions at n_S fresh inputs. Everything is closed form,
so the student is a linear shrinkage of the teacher: β_S = (Σ̂_S + λ_S Γ)⁻¹ Σ̂_S β_T. Two mechanisms are measured:
(1) an isotropic student (Γ = I) compensates a teacher's under-regularisation (λ_T = 0 near the interpolation
peak n ≈ d) but gains nothing over a well-tuned teacher (λ_T = λ_opt); (2) a weighted-ridge student whose penalty
Γ is small on the target's support beats even the tuned teacher, while the same penalty on the wrong axes does not.
A reconstruction: the abstract gives no sizes, all of them are the [DEFAULT]s of docs/THEORY.md.

Speed: per seed one eigendecomposition per teacher sample size and one per student penalty; the whole λ_S grid is
then a diagonal rescaling. float64 throughout (the interpolation peak is ill-conditioned).
"""

from __future__ import annotations

import math

import torch

from pipeline.theory.config import RidgeConfig
from pipeline.theory.jsonable import num, nums

STUDENTS = ("isotropic", "aligned", "misaligned")  # penalty Γ = I, small on β*'s support, small on other axes


def sizes(cfg: RidgeConfig) -> tuple[list[int], int, int]:
    """Teacher sample sizes n (per n/d), the student's n_S and the support size k."""
    return ([round(r * cfg.d) for r in cfg.n_over_d], round(cfg.student_over_d * cfg.d),
            round(cfg.support_frac * cfg.d))


def lambda_opt(cfg: RidgeConfig, n: int) -> float:
    """Optimal isotropic ridge strength σ² d / (n ‖β*‖²) for β = (XᵀX/n + λI)⁻¹Xᵀy/n (‖β*‖ = 1).

    It is the Bayes posterior mean for β* ~ N(0, I/d); for x ~ N(0, I) the error distribution of isotropic ridge
    depends on β* only through ‖β*‖ (rotation invariance), so it is the right λ for the fixed sparse β* too.
    """
    return cfg.noise_std ** 2 * cfg.d / n


def penalties(cfg: RidgeConfig) -> torch.Tensor:
    """Diagonals of Γ per STUDENTS: ones; weight_low on β*'s support (axes 0..k-1); weight_low on the last k axes."""
    _, _, k = sizes(cfg)
    gam = torch.ones(len(STUDENTS), cfg.d, dtype=torch.float64)
    gam[1, :k] = cfg.weight_low
    gam[2, cfg.d - k:] = cfg.weight_low  # disjoint from the support because support_frac <= 0.5
    return gam


def draw(cfg: RidgeConfig, seed: int) -> dict[str, torch.Tensor]:
    """One seed: β* (unit norm on the first k axes), a pool of labelled teacher samples, the student's inputs."""
    ns, n_s, k = sizes(cfg)
    g = torch.Generator().manual_seed(seed)
    beta = torch.zeros(cfg.d, dtype=torch.float64)
    beta[:k] = torch.randn(k, generator=g, dtype=torch.float64)
    beta /= beta.norm()
    x = torch.randn(max(ns), cfg.d, generator=g, dtype=torch.float64)  # nested: size n uses the first n rows
    y = x @ beta + cfg.noise_std * torch.randn(max(ns), generator=g, dtype=torch.float64)
    x_s = torch.randn(n_s, cfg.d, generator=g, dtype=torch.float64)
    return {"beta": beta, "x": x, "y": y, "x_student": x_s}


def teacher(x: torch.Tensor, y: torch.Tensor, lams: list[float]) -> torch.Tensor:
    """Ridge (XᵀX/n + λI)⁻¹Xᵀy/n for each λ from one eigendecomposition of the smaller Gram matrix; λ = 0 gives the
    min-norm (n < d) or OLS (n ≥ d) solution. Returns (L, d)."""
    n, d = x.shape
    lam = n * torch.tensor(lams, dtype=x.dtype)[:, None]
    if n <= d:  # β = Xᵀ(XXᵀ + nλI)⁻¹y
        ev, u = torch.linalg.eigh(x @ x.T)
        rhs, back = u.T @ y, x.T @ u
    else:  # β = (XᵀX + nλI)⁻¹Xᵀy
        ev, u = torch.linalg.eigh(x.T @ x)
        rhs, back = u.T @ (x.T @ y), u
    keep = ev > ev.max() * 1e-12  # numerically zero directions carry no fit (min-norm solution)
    coef = torch.where(keep, 1.0 / (ev.clamp_min(0.0) + lam), torch.zeros_like(ev))
    return (coef * rhs) @ back.T


def student_operators(x_s: torch.Tensor, gam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each penalty Γ = D²: eigendecomposition D⁻¹Σ̂_S D⁻¹ = Q diag(ev) Qᵀ, so that
    β_S(λ) = D⁻¹ Q diag(ev / (ev + λ)) Qᵀ D β_T. Returns ev (P, d) and Q (P, d, d)."""
    sigma = x_s.T @ x_s / x_s.shape[0]
    dinv = gam.rsqrt()
    ev, q = torch.linalg.eigh(sigma[None] * dinv[:, :, None] * dinv[:, None, :])
    return ev.clamp_min(0.0), q


def student_errors(beta_t: torch.Tensor, beta: torch.Tensor, gam: torch.Tensor, ev: torch.Tensor, q: torch.Tensor,
                   grid: torch.Tensor) -> torch.Tensor:
    """Excess test error ‖β_S − β*‖² (Σ = I, ‖β*‖ = 1) of every student penalty and grid λ: (L, P, G) for teachers
    beta_t (L, d)."""
    d_half = gam.sqrt()  # (P, d)
    coords = torch.einsum("pdk,lpd->lpk", q, d_half[None] * beta_t[:, None])  # Qᵀ D β_T: (L, P, d)
    shrink = ev[:, None, :] / (ev[:, None, :] + grid[:, None])  # (P, G, d)
    beta_s = torch.einsum("pdk,lpgk->lpgd", q, shrink[None] * coords[:, :, None]) / d_half[None, :, None]
    return (beta_s - beta).pow(2).sum(-1)


def simulate(cfg: RidgeConfig, seeds: list[int]) -> dict[str, torch.Tensor]:
    """Per seed, teacher size and teacher λ: teacher error, tuned-teacher error and every student's error curve."""
    ns, _, _ = sizes(cfg)
    gam = penalties(cfg)
    grid = torch.logspace(math.log10(cfg.lambda_min), math.log10(cfg.lambda_max), cfg.lambda_points,
                          dtype=torch.float64)
    t_err, t_opt, s_err = [], [], []
    for seed in seeds:
        data = draw(cfg, seed)
        ev, q = student_operators(data["x_student"], gam)
        per_n_t, per_n_opt, per_n_s = [], [], []
        for n in ns:
            lams = [m * lambda_opt(cfg, n) for m in cfg.teacher_lambdas] + [lambda_opt(cfg, n)]
            betas = teacher(data["x"][:n], data["y"][:n], lams)
            errs = (betas - data["beta"]).pow(2).sum(-1)
            per_n_t.append(errs[:-1])
            per_n_opt.append(errs[-1])
            per_n_s.append(student_errors(betas[:-1], data["beta"], gam, ev, q, grid))
        t_err.append(torch.stack(per_n_t))
        t_opt.append(torch.stack(per_n_opt))
        s_err.append(torch.stack(per_n_s))
    # (S, N, L), (S, N), (S, N, L, P, G)
    return {"teacher_err": torch.stack(t_err), "teacher_err_opt": torch.stack(t_opt),
            "student_err": torch.stack(s_err), "grid": grid}


def summarise(cfg: RidgeConfig, sim: dict[str, torch.Tensor], i: int, j: int) -> dict:
    """One JSON entry for teacher size i and teacher λ j: medians (errors are heavy-tailed at the peak), per-student
    oracle-tuned error, relative gain over the teacher and how often the student beats it."""
    ns, n_s, k = sizes(cfg)
    err_t = sim["teacher_err"][:, i, j]
    err_opt = sim["teacher_err_opt"][:, i]
    entry = {"n_over_d": cfg.n_over_d[i], "n": ns[i], "n_student": n_s, "support": k,
             "teacher_lambda_mult": cfg.teacher_lambdas[j], "teacher_lambda": num(cfg.teacher_lambdas[j]
                                                                                   * lambda_opt(cfg, ns[i])),
             "lambda_opt": num(lambda_opt(cfg, ns[i])), "n_seeds": len(err_t),
             "teacher_err": num(err_t.median()), "teacher_err_opt": num(err_opt.median()), "students": {},
             "per_seed": {"teacher_err": nums(err_t)}}
    for p, name in enumerate(STUDENTS):
        curve = sim["student_err"][:, i, j, p]  # (S, G)
        best, arg = curve.min(-1)
        gain = (err_t - best) / err_t
        # share of the gap to the tuned teacher the student closes (only meaningful when the teacher is worse)
        gap = err_t - err_opt
        closed = torch.where(gap > 1e-12, (err_t - best) / gap, torch.full_like(gap, math.nan))
        entry["students"][name] = {
            "err_best": num(best.median()), "gain_median": num(gain.median()), "gain_min": num(gain.min()),
            "beats_teacher_frac": num((best < err_t).double().mean()),
            "beats_null_frac": num((best < 1.0).double().mean()),  # the zero predictor has error ‖β*‖² = 1
            "lambda_best_median": num(sim["grid"][arg].median()),
            "gap_closed_median": num(closed.nanmedian()),
            "curve": {"lambda": nums(sim["grid"]), "err_median": nums(curve.median(0).values)},
            "per_seed": {"err_best": nums(best), "gain": nums(gain)},
        }
    return entry



def run(cfg: RidgeConfig, seed: int, dtype: torch.dtype, device: torch.device, progress: bool) -> dict:
    """Setting 3b: every teacher size × teacher λ, each with the three students; JSON-ready.

    Closed form on CPU in float64 whatever theory.dtype / theory.device say (milliseconds per seed)."""
    seeds = [seed * 100_003 + 80_000 + i for i in range(cfg.n_seeds)]  # seed i is the same run whatever n_seeds is
    sim = simulate(cfg, seeds)
    return {"ridge": [summarise(cfg, sim, i, j) for i in range(len(cfg.n_over_d))
                      for j in range(len(cfg.teacher_lambdas))]}
