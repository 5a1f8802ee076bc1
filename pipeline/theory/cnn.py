"""Setting 3a: linear CNN (weak) -> two-layer ReLU CNN (strong) (Oh, Song, Yun, arXiv 2510.24812; docs/THEORY.md §3a).

Signal-noise patch data, the standard model of Cao et al. / Kou et al. (a reconstruction: the abstract gives no
equations or sizes): x = [x_1, x_2] with x_1 = y·μ_e (easy, large norm) or y·μ_h (hard, small norm) and a noise
patch x_2 = ξ ~ N(0, σ_p²(I − P_μ)) orthogonal to both signals. The weak teacher is a linear CNN
f_T(x) = Σ_p ⟨w_T, x_p⟩ with w_T = κ(μ_e + μ_h) + u (u a random unit vector in the noise space): it gets the easy
points right and a set fraction of the hard ones wrong, those where ⟨u, ξ⟩ outweighs the hard signal. The student
f(x) = Σ_j j·(1/m)Σ_r Σ_p ReLU(⟨w_{j,r}, x_p⟩) runs full-batch GD on the logistic loss of the teacher's labels
(W2S) or of the ground truth (ceiling = same GD, same data). Two runs: a data-abundant one (n‖μ_h‖² > σ_p²d),
where test accuracy is followed along training, and a data-scarce sweep over n, where the final accuracy is read.

Exact and fast: every GD update of a filter is a combination of training patches, so w_{j,r} = w_{j,r}(0) +
(coordinates on μ_e, μ_h) + Σ_i Γ_{i,r} ξ_i (the signal-noise decomposition of those papers). Training needs only
the Gram matrix of the training noise, never a d-dimensional filter. At test time a fresh ξ gives the student's
noise pre-activations (and the teacher's ⟨u, ξ⟩) jointly Gaussian with a covariance that follows from the Gram
matrix and Γ, so the test distribution is exact and only its Gaussian draws are Monte Carlo. Every seed, both label
kinds and every sample size of a run train at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from pipeline.theory.config import CnnConfig
from pipeline.theory.jsonable import num, nums

KINDS = ("w2s", "ceiling")  # labels: the weak teacher's, the ground truth


def _phi(z: float) -> float:
    """Standard normal CDF."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _phi_inv(p: float) -> float:
    return float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(p, dtype=torch.float64)))


def teacher_scale(cfg: CnnConfig) -> float:
    """κ in w_T = κ(μ_e + μ_h) + u: the hard-point error Φ(−κ‖μ_h‖²/σ_p) equals teacher_hard_err exactly."""
    return cfg.noise_std * _phi_inv(1.0 - cfg.teacher_hard_err) / cfg.hard_norm ** 2


def teacher_accuracy(cfg: CnnConfig) -> dict[str, float]:
    """Exact test accuracy of the linear-CNN teacher: on signal s it errs when σ_p·N(0,1) < −κ‖μ_s‖²."""
    kappa = teacher_scale(cfg)
    easy = _phi(kappa * cfg.easy_norm ** 2 / cfg.noise_std)
    hard = 1.0 - cfg.teacher_hard_err
    return {"easy": easy, "hard": hard, "all": (1 - cfg.hard_frac) * easy + cfg.hard_frac * hard}


def abundance(cfg: CnnConfig, n: int) -> float:
    """n‖μ_h‖² / (σ_p² d): > 1 data-abundant, < 1 data-scarce (the regime boundary of the task)."""
    return n * cfg.hard_norm ** 2 / (cfg.noise_std ** 2 * cfg.d)


def benign_ratio(cfg: CnnConfig, n: int) -> float:
    """n‖μ_h‖⁴ / (σ_p⁴ d): the benign-overfitting condition of two-layer ReLU CNNs (Kou et al.) is this ≳ const."""
    return n * cfg.hard_norm ** 4 / (cfg.noise_std ** 4 * cfg.d)


def patches(cfg: CnnConfig, n: int, g: torch.Generator, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """n points of the patch model in explicit coordinates: μ_e = ‖μ_e‖e_0, μ_h = ‖μ_h‖e_1, the noise patch on the
    other d − 2 axes (so ξ ⟂ μ_e, μ_h exactly). Returns y (n,), hard (n,), signal and noise patches (n, d)."""
    y = torch.randint(0, 2, (n,), generator=g).to(dtype) * 2 - 1
    hard = torch.rand(n, generator=g, dtype=dtype) < cfg.hard_frac
    signal = torch.zeros(n, cfg.d, dtype=dtype)
    signal[:, 0] = torch.where(hard, 0.0, y * cfg.easy_norm)
    signal[:, 1] = torch.where(hard, y * cfg.hard_norm, 0.0)
    noise = torch.zeros(n, cfg.d, dtype=dtype)
    noise[:, 2:] = cfg.noise_std * torch.randn(n, cfg.d - 2, generator=g, dtype=dtype)
    return {"y": y, "hard": hard, "signal": signal, "noise": noise}


def teacher_weights(cfg: CnnConfig, g: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """w_T = κ(μ_e + μ_h) + u, u a uniformly random unit vector of the noise space: the linear CNN teacher."""
    w = torch.zeros(cfg.d, dtype=dtype)
    u = torch.randn(cfg.d - 2, generator=g, dtype=dtype)
    w[2:] = u / u.norm()
    kappa = teacher_scale(cfg)
    w[0], w[1] = kappa * cfg.easy_norm, kappa * cfg.hard_norm
    return w


def linear_cnn(w: torch.Tensor, x: dict[str, torch.Tensor]) -> torch.Tensor:
    """Linear CNN output Σ_p ⟨w, x_p⟩ over the two patches."""
    return x["signal"] @ w + x["noise"] @ w


@dataclass
class SeedDraws:
    """One seed's pool of training points (every run uses its first n), student init, teacher and test draws,
    reduced to the inner products training and evaluation need."""

    y: torch.Tensor  # (N,) ±1 ground truth
    hard: torch.Tensor  # (N,) bool: the point carries μ_h
    weak: torch.Tensor  # (N,) ±1 teacher labels
    gram: torch.Tensor  # (N, N) ⟨ξ_i, ξ_k⟩
    a0: torch.Tensor  # (N, M) ⟨w_r(0), ξ_i⟩
    k0: torch.Tensor  # (M, M) ⟨w_r(0), w_q(0)⟩ restricted to the noise space
    uw0: torch.Tensor  # (M,) ⟨u, w_r(0)⟩
    u_xi: torch.Tensor  # (N,) ⟨u, ξ_i⟩
    c0: torch.Tensor  # (M, 2) ⟨w_r(0), μ̂_e⟩, ⟨w_r(0), μ̂_h⟩
    z: torch.Tensor  # (n_test, M + 1) standard normal test draws (student filters, teacher)

    @staticmethod
    def draw(cfg: CnnConfig, n_pool: int, seed: int, dtype: torch.dtype) -> SeedDraws:
        g = torch.Generator().manual_seed(seed)
        x = patches(cfg, n_pool, g, dtype)
        w_t = teacher_weights(cfg, g, dtype)
        w0 = cfg.init_std * torch.randn(2 * cfg.neurons, cfg.d, generator=g, dtype=dtype)  # student filters
        z = torch.randn(cfg.n_test, 2 * cfg.neurons + 1, generator=g, dtype=dtype)
        weak = torch.sign(linear_cnn(w_t, x))
        weak[weak == 0] = 1.0
        xi, u, w0n = x["noise"][:, 2:], w_t[2:], w0[:, 2:]
        return SeedDraws(x["y"], x["hard"], weak, xi @ xi.T, xi @ w0n.T, w0n @ w0n.T, w0n @ u, xi @ u,
                         w0[:, :2].clone(), z)


def checkpoints(cfg: CnnConfig) -> list[int]:
    """Log-spaced steps (0 and the last step included) at which test accuracy is measured."""
    pts = torch.logspace(0, math.log10(cfg.steps), max(1, cfg.curve_points - 1), dtype=torch.float64)
    return sorted({0, cfg.steps, *pts.round().long().tolist()})


# The signal patch of a point is y·μ_s, so a filter's signal pre-activation takes one of four values: one per
# group (signal, label) = (easy, +1), (easy, −1), (hard, +1), (hard, −1). Training works on group sums.
GROUP_SIGN = (1.0, -1.0, 1.0, -1.0)
GROUP_HARD = (0, 0, 1, 1)


def group_scale(cfg: CnnConfig, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """y‖μ_s‖ per group (4,)."""
    norms = (cfg.easy_norm, cfg.easy_norm, cfg.hard_norm, cfg.hard_norm)
    return torch.tensor([sg * nm for sg, nm in zip(GROUP_SIGN, norms)], dtype=dtype, device=device)


def group_signal(cfg: CnnConfig, c: torch.Tensor, jm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal pre-activations y‖μ_s‖⟨w_r, μ̂_s⟩ per group (..., M, 4) and the signal part of the output (..., 4)."""
    pre = c[..., list(GROUP_HARD)] * group_scale(cfg, c.dtype, c.device)  # (..., M, 4)
    return pre, torch.einsum("...mg,m->...g", torch.relu(pre), jm)


def train(cfg: CnnConfig, draws: list[SeedDraws], ns: list[int], eval_steps: list[int], device: torch.device,
          progress: bool, desc: str) -> dict[str, torch.Tensor]:
    """Full-batch GD on the logistic loss for every seed × label kind × sample size at once (docs/THEORY.md §3a).

    Layout (S, N, KV, M): seed, training point (padded to the largest n; padding has loss weight 0), label kind ×
    sample size, filter. Per step: elementwise work on ⟨w_r, ξ_i⟩, one bmm with the Gram matrix and group sums for
    the signal coordinates. Returns the test accuracies (S, K, V, T) at eval_steps (overall, on hard points, on the
    hard points the teacher gets wrong) and the training fit at the end.
    """
    S, K, V, m, N = len(draws), len(KINDS), len(ns), cfg.neurons, max(ns)
    M, Q = 2 * m, K * V
    dtype = draws[0].gram.dtype
    rows = slice(0, N)
    y = torch.stack([d.y[rows] for d in draws]).to(device)
    hard = torch.stack([d.hard[rows] for d in draws]).to(device)
    weak = torch.stack([d.weak[rows] for d in draws]).to(device)
    gram = torch.stack([d.gram[rows, rows] for d in draws]).to(device)
    a0 = torch.stack([d.a0[rows] for d in draws]).to(device)  # (S, N, M)
    jm = torch.cat([torch.ones(m), -torch.ones(m)]).to(dtype=dtype, device=device) / m  # output sign j / m
    labels = torch.stack([weak, y], dim=2)[:, :, :, None].expand(S, N, K, V).reshape(S, N, Q)
    wts = torch.zeros(N, V, dtype=dtype, device=device)
    for v, n in enumerate(ns):
        wts[:n, v] = 1.0 / n
    wts = wts[None, :, None].expand(1, N, K, V).reshape(1, N, Q)  # per-point loss weight 1/n, 0 on padding
    group = (2 * hard.long() + (y < 0).long())  # (S, N) in 0..3
    onehot = torch.nn.functional.one_hot(group, 4).to(dtype)  # (S, N, 4)
    c = torch.stack([d.c0 for d in draws]).to(device)[:, None].expand(S, Q, M, 2).clone()  # signal coordinates
    A = a0[:, :, None].expand(S, N, Q, M).contiguous()  # ⟨w_r, ξ_i⟩
    gamma = torch.zeros_like(A)  # Γ_{i,r}: w_r = w_r(0) + (signal part) + Σ_i Γ_{i,r} ξ_i
    scale = group_scale(cfg, dtype, device)
    curves = {key: torch.empty(S, Q, len(eval_steps), dtype=torch.float64) for key in ("acc", "acc_hard",
                                                                                       "corrected")}
    t_i = 0
    for t in tqdm(range(cfg.steps + 1), desc=desc, disable=not progress, leave=False, mininterval=0.5):
        pre_sig, f_sig = group_signal(cfg, c, jm)  # (S, Q, M, 4), (S, Q, 4)
        f = torch.bmm(onehot, f_sig.transpose(1, 2)) + torch.relu(A) @ jm  # (S, N, Q)
        if t_i < len(eval_steps) and t == eval_steps[t_i]:
            for key, value in evaluate(cfg, draws, a0, gamma, A, c, jm).items():
                curves[key][..., t_i] = value
            t_i += 1
        if t == cfg.steps:
            break
        # logistic loss: d/df log(1 + exp(−ŷ f)) = −ŷ σ(−ŷ f); per-point weight 1/n (0 on padding)
        q = -torch.sigmoid(-labels * f) * labels * wts  # (S, N, Q)
        d_gamma = torch.ops.aten.threshold_backward(q[..., None] * jm, A, 0)  # q·j/m where ⟨w_r, ξ_i⟩ > 0
        q_group = torch.bmm(onehot.transpose(1, 2), q).transpose(1, 2)  # (S, Q, 4) loss-gradient sums per group
        g_pre = torch.ops.aten.threshold_backward(q_group[:, :, None, :] * jm[:, None] * scale, pre_sig, 0)
        c[..., 0] -= cfg.lr * g_pre[..., :2].sum(-1)
        c[..., 1] -= cfg.lr * g_pre[..., 2:].sum(-1)
        gamma.sub_(d_gamma, alpha=cfg.lr)
        A.sub_(torch.bmm(gram, d_gamma.view(S, N, -1)).view_as(A), alpha=cfg.lr)

    fit = (labels * f > 0).to(dtype)  # (S, N, Q)
    valid = (wts > 0).expand(S, N, Q)
    wrong = (weak != y)[:, :, None] & valid
    out = {**{key: value.view(S, K, V, -1) for key, value in curves.items()}, "steps": torch.tensor(eval_steps),
           "fit": ((fit * valid).sum(1) / valid.sum(1)).double().view(S, K, V).cpu(),
           "fit_wrong": ((fit * wrong).sum(1) / wrong.sum(1).clamp_min(1)).double().view(S, K, V).cpu(),
           "n_wrong": wrong.sum(1).view(S, K, V)[:, 0].double().cpu(),  # (S, V) teacher errors in the training set
           "output": f.view(S, N, K, V).cpu()}  # the final model's outputs on the (padded) training points
    out["weak_label_acc"] = 1.0 - out["n_wrong"] / torch.tensor(ns, dtype=torch.float64)
    return out


def evaluate(cfg: CnnConfig, draws: list[SeedDraws], a0: torch.Tensor, gamma: torch.Tensor, A: torch.Tensor,
             c: torch.Tensor, jm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Exact-in-distribution test accuracy of every model (S, Q): overall, on hard points, and on the hard points the
    teacher gets wrong ('corrected'). A fresh ξ ~ N(0, σ_p² I) gives [W⊥ξ, ⟨u, ξ⟩] ~ N(0, σ_p² C) with
    W⊥W⊥ᵀ = K0 + A0ᵀΓ + ΓᵀA0 + Γᵀ(GΓ), GΓ = A − A0, and ⟨u, W⊥⟩ = ⟨u, W0⟩ + Γᵀ⟨u, ξ⟩."""
    S, N, Q, M = A.shape
    g, a0d = gamma.double(), a0.double()
    cross = torch.einsum("snm,snqr->sqmr", a0d, g)
    ww = (torch.stack([d.k0 for d in draws]).double().to(g.device)[:, None] + cross + cross.transpose(-1, -2)
          + torch.einsum("snqm,snqr->sqmr", g, A.double() - a0d[:, :, None]))
    u_xi = torch.stack([d.u_xi[:N] for d in draws]).double().to(g.device)
    uw = torch.stack([d.uw0 for d in draws]).double().to(g.device)[:, None] + torch.einsum("sn,snqm->sqm", u_xi, g)
    cov = torch.zeros(S, Q, M + 1, M + 1, dtype=torch.float64, device=g.device)
    cov[..., :M, :M] = ww
    cov[..., :M, M] = uw
    cov[..., M, :M] = uw
    cov[..., M, M] = 1.0
    cov = cov * cfg.noise_std ** 2
    jitter = 1e-9 * cov.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
    chol = torch.linalg.cholesky(cov + jitter * torch.eye(M + 1, dtype=torch.float64, device=g.device))
    z = torch.stack([d.z for d in draws]).to(device=g.device, dtype=A.dtype)  # (S, n_test, M + 1)
    _, f_sig = group_signal(cfg, c, jm)  # (S, Q, 4)
    kappa = teacher_scale(cfg)
    sign = torch.tensor(GROUP_SIGN, dtype=A.dtype, device=A.device)
    norm2 = torch.tensor([cfg.easy_norm ** 2] * 2 + [cfg.hard_norm ** 2] * 2, dtype=A.dtype, device=A.device)
    weight = torch.tensor([0.5 * (1 - cfg.hard_frac)] * 2 + [0.5 * cfg.hard_frac] * 2, dtype=torch.float64)
    out = {key: torch.zeros(S, Q, dtype=torch.float64) for key in ("acc", "acc_hard", "corrected")}
    for q in range(Q):  # one model at a time keeps the (n_test, M + 1) draws small
        a = z @ chol[:, q].to(A.dtype).transpose(1, 2)  # (S, n_test, M + 1)
        noise_f = torch.relu(a[..., :M]) @ jm  # (S, n_test): the student's output from the noise patch
        right = sign[:, None] * (f_sig[:, q, :, None] + noise_f[:, None]) > 0  # (S, 4, n_test)
        acc_g = right.double().mean(-1).cpu()  # (S, 4)
        teacher_wrong = sign[2:, None] * (sign[2:, None] * kappa * norm2[2:, None] + a[:, None, :, M]) < 0
        corr = ((right[:, 2:] & teacher_wrong).double().sum(-1)
                / teacher_wrong.double().sum(-1).clamp_min(1)).cpu()  # (S, 2)
        out["acc"][:, q] = acc_g @ weight
        out["acc_hard"][:, q] = acc_g[:, 2:].mean(-1)
        out["corrected"][:, q] = corr.mean(-1)
    return out


def summarise(cfg: CnnConfig, res: dict[str, torch.Tensor], v: int, n: int, regime: str) -> dict:
    """One JSON entry (sample size n of one run): teacher accuracy, W2S and ceiling accuracy at the end and, where the
    run was followed along training, at the peak of the mean curve with the drop after it; training fit; curves."""
    teacher = teacher_accuracy(cfg)
    entry = {"regime": regime, "n": n, "n_seeds": res["acc"].shape[0], "abundance": num(abundance(cfg, n)),
             "benign_ratio": num(benign_ratio(cfg, n)), "teacher_acc": num(teacher["all"]),
             "teacher_easy_acc": num(teacher["easy"]), "teacher_hard_acc": num(teacher["hard"]),
             "weak_label_acc": num(res["weak_label_acc"][:, v].mean()),
             "n_wrong_labels": num(res["n_wrong"][:, v].mean())}
    steps = res["steps"]
    trained = steps >= 1  # the initialisation is no trained model: peaks are over steps >= 1
    along = int(trained.sum()) > 1  # followed along training (else measured at the end only)
    per_seed = {}
    peak_at = {}
    for k, kind in enumerate(KINDS):
        acc = res["acc"][:, k, v]  # (S, T)
        mean = acc.mean(0)
        entry.update({f"{kind}_acc_final": num(mean[-1]),
                      f"{kind}_final_above_teacher_frac": num((acc[:, -1] > teacher["all"]).double().mean()),
                      f"{kind}_hard_acc_final": num(res["acc_hard"][:, k, v, -1].mean()),
                      f"{kind}_fit": num(res["fit"][:, k, v].mean())})
        per_seed[f"{kind}_acc_final"] = nums(acc[:, -1])
        if along:
            first = int((~trained).sum())
            peak, at = mean[first:].max(0)
            peak_at[kind] = first + int(at)
            seed_peak = acc[:, first:].max(1).values
            entry.update({
                f"{kind}_acc_peak": num(peak), f"{kind}_peak_step": int(steps[peak_at[kind]]),
                f"{kind}_drop": num(peak - mean[-1]),
                f"{kind}_peak_above_teacher_frac": num((seed_peak > teacher["all"]).double().mean()),
                f"{kind}_drop_ge_0p01_frac": num((seed_peak - acc[:, -1] >= 0.01).double().mean()),
                f"{kind}_hard_acc_peak": num(res["acc_hard"][:, k, v].mean(0)[peak_at[kind]])})
            per_seed[f"{kind}_acc_peak"] = nums(seed_peak)
        else:
            entry.update({f"{kind}_{key}": None for key in ("acc_peak", "peak_step", "drop", "peak_above_teacher_frac",
                                                            "drop_ge_0p01_frac", "hard_acc_peak")})
    has_wrong = res["n_wrong"][:, v] > 0  # seeds whose training set holds teacher errors at all
    entry["w2s_fit_wrong"] = num(res["fit_wrong"][has_wrong, 0, v].mean()) if bool(has_wrong.any()) else None
    entry["w2s_corrected_peak"] = num(res["corrected"][:, 0, v].mean(0)[peak_at["w2s"]]) if along else None
    entry["w2s_corrected_final"] = num(res["corrected"][:, 0, v, -1].mean())
    entry["curve"] = {"step": steps.tolist(), **{f"{kind}_acc": nums(res["acc"][:, k, v].mean(0))
                                                 for k, kind in enumerate(KINDS)},
                      "w2s_hard_acc": nums(res["acc_hard"][:, 0, v].mean(0))}
    entry["per_seed"] = per_seed
    return entry



def run(cfg: CnnConfig, seed: int, dtype: torch.dtype, device: torch.device, progress: bool) -> dict:
    """Setting 3a: the data-abundant run (accuracy along training) and the data-scarce sweep; JSON-ready, the scarce
    sizes first in increasing n, then the abundant one."""
    # seed i is the same draws whatever n_seeds / scarce_seeds are, and the same in both runs
    seeds = [seed * 100_003 + 70_000 + i for i in range(max(cfg.n_seeds, cfg.scarce_seeds))]
    n_pool = max(cfg.n_abundant, *cfg.n_scarce)
    draws = [SeedDraws.draw(cfg, n_pool, s, dtype) for s in seeds]
    entries = []
    scarce = sorted(cfg.n_scarce)
    # the scarce sweep is read at the end of training (the regime of its prediction is the overfitted student)
    res = train(cfg, draws[:cfg.scarce_seeds], scarce, [cfg.steps], device, progress, "theory: cnn (scarce)")
    entries += [summarise(cfg, res, v, n, "scarce") for v, n in enumerate(scarce)]
    res = train(cfg, draws[:cfg.n_seeds], [cfg.n_abundant], checkpoints(cfg), device, progress,
                "theory: cnn (abundant)")
    entries.append(summarise(cfg, res, 0, cfg.n_abundant, "abundant"))
    return {"cnn": entries}
