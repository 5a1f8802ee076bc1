"""Setting 1: feature elicitation from latent knowledge (Awano & Suzuki, arXiv 2605.12908; docs/THEORY.md §1).

A pretrained two-layer ReLU reward model f_k(x) = a_k·ReLU(Wx + c) + b_k has one head per task k. Its neurons
lie in task subspaces V_k; the target group (task 0) knows the target direction u_0 only weakly (alpha_target).
The target head is fine-tuned with weak-teacher labels (W2S) or ground truth (SFT, which is also the ceiling):
the same SGD, only the labels differ. We measure target error, forgetting of the frozen off-target heads and
where the neurons went. A reconstruction: the abstract gives no architecture or numbers, all sizes are the
[DEFAULT]s of docs/THEORY.md.

Speed: every seed trains at once, and within a seed the models of every rho and both label kinds see the same
minibatch, so one batched matmul per step serves all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from pipeline.theory.config import TwoLayerConfig
from pipeline.theory.jsonable import num, nums

KINDS = ("w2s", "sft")  # label kinds: weak teacher's predictions, ground truth


def link(z: torch.Tensor) -> torch.Tensor:
    """Task reward g(z) = (z² − 1)/√2 (Hermite-2: unit variance, information exponent 2; docs/THEORY.md §1.1)."""
    return (z * z - 1.0) / math.sqrt(2.0)


@dataclass
class Geometry:
    """Task directions and subspaces for one rho, on coordinate axes.

    x ~ N(0, I) and every estimator here is rotation-equivariant, so putting u_k on e_0..e_{K-1} and the
    fresh directions of V_k on the next blocks of r-1 axes changes no distribution and keeps the maths readable.
    """

    u: torch.Tensor  # (K, d) task directions; u_0 = e_0, u_k = rho e_0 + sqrt(1 - rho²) e_k
    bases: torch.Tensor  # (K, d, r) orthonormal B_k = [u_k, fresh directions of V_k]
    span_mask: torch.Tensor  # (d,) 1 on the axes spanned by V_0..V_{K-1}

    @staticmethod
    def build(cfg: TwoLayerConfig, rho: float, dtype: torch.dtype) -> Geometry:
        K, r, d = cfg.n_tasks, cfg.subspace_dim, cfg.d
        off = math.sqrt(max(0.0, 1.0 - rho * rho))
        u = torch.zeros(K, d, dtype=dtype)
        u[0, 0] = 1.0
        u[1:, 0] = rho
        u[torch.arange(1, K), torch.arange(1, K)] = off
        bases = torch.zeros(K, d, r, dtype=dtype)
        bases[:, :, 0] = u
        for k in range(K):
            fresh = fresh_axes(cfg, k)
            bases[k, fresh, torch.arange(1, r)] = 1.0
        span_mask = torch.zeros(d, dtype=dtype)
        span_mask[0] = 1.0
        span_mask[1:K] = 1.0 if off > 0 else 0.0  # at |rho| = 1 every u_k collapses onto e_0
        span_mask[K:K * r] = 1.0
        return Geometry(u, bases, span_mask)


def fresh_axes(cfg: TwoLayerConfig, k: int) -> torch.Tensor:
    """Axes of the r-1 directions of V_k orthogonal to everything else."""
    start = cfg.n_tasks + k * (cfg.subspace_dim - 1)
    return torch.arange(start, start + cfg.subspace_dim - 1)


@dataclass
class SeedDraws:
    """Everything random about one seed, shared by all rhos and the ablation (common random numbers)."""

    signs: torch.Tensor  # (m,) s_j = ±1
    zeta: torch.Tensor  # (m, r-1) unit directions inside V_k ⟂ u_k, in fresh-axis coordinates
    bias: torch.Tensor  # (m,) c_j ~ U[bias_low, bias_high]
    x_weak: torch.Tensor  # (n_weak, d) the weak teacher's labelled inputs
    x_pre: torch.Tensor  # (n_pretrain, d) pretraining inputs of the off-target heads
    x_ft: torch.Tensor  # (n_transfer, d) transfer set
    x_test: torch.Tensor  # (n_test, d)
    order: torch.Tensor  # (steps, batch) minibatch indices into x_ft, reshuffled every epoch

    @staticmethod
    def draw(cfg: TwoLayerConfig, seed: int, dtype: torch.dtype) -> SeedDraws:
        g = torch.Generator().manual_seed(seed)
        m = cfg.n_tasks * cfg.neurons_per_task
        signs = torch.randint(0, 2, (m,), generator=g).to(dtype) * 2 - 1
        zeta = torch.randn(m, cfg.subspace_dim - 1, generator=g, dtype=dtype)
        zeta = zeta / zeta.norm(dim=1, keepdim=True)
        bias = cfg.bias_low + (cfg.bias_high - cfg.bias_low) * torch.rand(m, generator=g, dtype=dtype)
        x = {n: torch.randn(size, cfg.d, generator=g, dtype=dtype)
             for n, size in (("weak", cfg.n_weak), ("pre", cfg.n_pretrain), ("ft", cfg.n_transfer),
                             ("test", cfg.n_test))}
        epochs = math.ceil(cfg.steps * cfg.batch_size / cfg.n_transfer)
        order = torch.cat([torch.randperm(cfg.n_transfer, generator=g) for _ in range(epochs)])
        order = order[:cfg.steps * cfg.batch_size].view(cfg.steps, cfg.batch_size)
        return SeedDraws(signs, zeta, bias, x["weak"], x["pre"], x["ft"], x["test"], order)


def first_layer(cfg: TwoLayerConfig, draws: SeedDraws, geo: Geometry, alpha_target: float) -> torch.Tensor:
    """Pretrained neurons w_j = s_j(α_k u_k + sqrt(1 − α_k²) ζ_j), ζ_j ∈ V_k ⟂ u_k (§1.2); returns (m, d)."""
    mk = cfg.neurons_per_task
    W = torch.zeros(cfg.n_tasks * mk, cfg.d, dtype=geo.u.dtype)
    for k in range(cfg.n_tasks):
        alpha = alpha_target if k == 0 else cfg.alpha_off
        rows = slice(k * mk, (k + 1) * mk)
        W[rows] = alpha * geo.u[k]
        W[rows, fresh_axes(cfg, k)] = math.sqrt(1.0 - alpha * alpha) * draws.zeta[rows]
        W[rows] *= draws.signs[rows, None]
    return W


def ridge_heads(h: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge fit y ≈ a·h + b per head, bias unpenalised (docs/THEORY.md §1.2). h (..., n, p), y (..., n) -> a, b."""
    h, y = h.double(), y.double()
    phi = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)
    n, p = h.shape[-2], h.shape[-1]
    gram = phi.transpose(-1, -2) @ phi / n
    penalty = torch.full((p + 1,), lam, dtype=gram.dtype)
    penalty[-1] = 0.0
    theta = torch.linalg.solve(gram + torch.diag(penalty), (phi.transpose(-1, -2) @ y[..., None]) / n)[..., 0]
    return theta[..., :p], theta[..., p]


def fit_weak(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """Weak teacher: v = top eigenvector of (1/n) Σ y x xᵀ, then least squares y ≈ c₁ g(⟨v, x⟩) + c₀ (§1.3)."""
    x, y = x.double(), y.double()
    moment = (x * y[:, None]).T @ x / len(y)
    v = torch.linalg.eigh(moment).eigenvectors[:, -1]
    phi = torch.stack([link(x @ v), torch.ones_like(y)], dim=1)
    c1, c0 = torch.linalg.solve(phi.T @ phi, phi.T @ y).tolist()
    return v, c1, c0


def rel_err(f: torch.Tensor, y: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """E(f − y)² / Var(y), the relative error of §1.5."""
    return ((f - y) ** 2).mean(dim) / y.var(dim)


def cal_err(f: torch.Tensor, y: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """1 − corr(f, y)²: error after the best affine rescaling (reward ranking is scale-free; §1.5)."""
    fc, yc = f - f.mean(dim, keepdim=True), y - y.mean(dim, keepdim=True)
    corr = (fc * yc).sum(dim) / ((fc * fc).sum(dim) * (yc * yc).sum(dim)).clamp_min(1e-30).sqrt()
    return 1.0 - corr * corr


@dataclass
class Prepared:
    """One seed, all variants: pretrained model, heads, data in working coordinates, weak-teacher stats."""

    W: torch.Tensor  # (V, m, D) pretrained first layer
    c: torch.Tensor  # (m,)
    head_a: torch.Tensor  # (V, K-1, m_k) frozen off-target heads
    head_b: torch.Tensor  # (V, K-1)
    x_ft: torch.Tensor  # (n_ft, D)
    y_ft: torch.Tensor  # (n_ft, 2) labels per KINDS
    order: torch.Tensor  # (steps, batch)
    x_test: torch.Tensor  # (n_test, D)
    weak_test: torch.Tensor  # (n_test,) weak teacher's predictions
    weak_cos: float


def prepare(cfg: TwoLayerConfig, draws: SeedDraws, geos: list[Geometry], alpha_target: float,
            axes: torch.Tensor) -> Prepared:
    """Pretrain (ridge heads), fit the weak teacher and label the transfer set for one seed."""
    K, mk = cfg.n_tasks, cfg.neurons_per_task
    u0 = geos[0].u[0]
    v, c1, c0 = fit_weak(draws.x_weak, link(draws.x_weak @ u0))
    weak = lambda x: (c1 * link(x.double() @ v) + c0).to(x.dtype)  # noqa: E731

    W = torch.stack([first_layer(cfg, draws, geo, alpha_target) for geo in geos])  # (V, m, d)
    h = torch.relu(torch.einsum("nd,vmd->vnm", draws.x_pre, W) + draws.bias)  # (V, n, m)
    h = h.view(len(geos), -1, K, mk)[:, :, 1:].permute(0, 2, 1, 3)  # (V, K-1, n, m_k)
    y = link(torch.einsum("nd,vkd->vkn", draws.x_pre, torch.stack([geo.u[1:] for geo in geos])))
    head_a, head_b = ridge_heads(h, y, cfg.ridge)

    y_ft = torch.stack([weak(draws.x_ft), link(draws.x_ft @ u0)], dim=1)
    return Prepared(W=W[:, :, axes], c=draws.bias, head_a=head_a.to(W.dtype), head_b=head_b.to(W.dtype),
                    x_ft=draws.x_ft[:, axes].contiguous(), y_ft=y_ft, order=draws.order,
                    x_test=draws.x_test[:, axes].contiguous(), weak_test=weak(draws.x_test),
                    weak_cos=abs(float(v @ u0.double())))


def finetune(cfg: TwoLayerConfig, preps: list[Prepared], masks: torch.Tensor | None, device: torch.device,
             progress: bool, desc: str) -> dict[str, torch.Tensor]:
    """Minibatch SGD on ½·mean(f_0 − label)² over W, c, a_0, b_0 for every model at once (docs/THEORY.md §1.4).

    Per seed the neurons of all V·2 models are stacked into one layer of M = V·2·m rows, so a step is two bmm's.
    Gradients are written out by hand (a two-layer net), which avoids autograd's bookkeeping on tiny tensors.
    Returns W (S, V, 2, m, D), c (S, V, 2, m), a0 (S, V, 2, m), b0 (S, V, 2).
    """
    S, (V, m, D) = len(preps), preps[0].W.shape
    Q, M, B = V * len(KINDS), V * len(KINDS) * m, cfg.batch_size
    W = torch.stack([p.W for p in preps])[:, :, None].expand(S, V, 2, m, D).reshape(S, M, D).to(device)
    c = torch.stack([p.c for p in preps])[:, None, None].expand(S, V, 2, m).reshape(S, 1, M).to(device)
    a0 = torch.zeros(S, 1, M, dtype=W.dtype, device=device)  # target head not yet elicited: a_0 = 0, b_0 = 0
    b0 = torch.zeros(S, 1, Q, dtype=W.dtype, device=device)
    x_all = torch.cat([p.x_ft for p in preps]).to(device)  # (S·n_ft, D)
    y_all = torch.cat([p.y_ft for p in preps]).to(device)
    offsets = torch.arange(S, device=device)[:, None] * cfg.n_transfer
    order = torch.stack([p.order for p in preps]).to(device) + offsets[:, None]  # (S, steps, B)
    if masks is not None:  # (V, D) -> per neuron row
        masks = masks[:, None, None].expand(V, 2, m, D).reshape(1, M, D).to(device)

    for t in tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False, mininterval=0.5):
        idx = order[:, t].reshape(-1)
        xb = x_all.index_select(0, idx).view(S, B, D)
        yb = y_all.index_select(0, idx).view(S, B, 1, 2)  # broadcasts over the V variants of each label kind
        z = torch.baddbmm(c, xb, W.transpose(1, 2))  # (S, B, M) pre-activations
        h = torch.relu(z).view(S, B, Q, m)
        f = (h * a0.view(S, 1, Q, m)).sum(-1) + b0  # (S, B, Q) target-head outputs
        resid = (f.view(S, B, V, 2) - yb).view(S, B, Q, 1)
        grad_a0 = (resid * h).mean(1).view(S, 1, M)
        grad_b0 = resid.mean(1).view(S, 1, Q)
        # dLoss/dz · B = resid · a_0 where z > 0 (ReLU's own backward, one fused op)
        g = torch.ops.aten.threshold_backward((resid * a0.view(S, 1, Q, m)).view(S, B, M), z, 0)
        grad_W = torch.bmm(g.transpose(1, 2), xb).div_(B)
        if masks is not None:
            grad_W.mul_(masks)
        c.sub_(g.mean(1, keepdim=True), alpha=cfg.lr)
        W.sub_(grad_W, alpha=cfg.lr)
        a0.sub_(grad_a0, alpha=cfg.lr)
        b0.sub_(grad_b0, alpha=cfg.lr)

    return {"W": W.view(S, V, 2, m, D).cpu(), "c": c.view(S, V, 2, m).cpu(), "a0": a0.view(S, V, 2, m).cpu(),
            "b0": b0.view(S, V, 2).cpu()}


def evaluate(cfg: TwoLayerConfig, prep: Prepared, geos: list[Geometry], axes: torch.Tensor, W: torch.Tensor,
             c: torch.Tensor, a0: torch.Tensor | None = None, b0: torch.Tensor | None = None) -> dict:
    """Target and off-target errors plus neuron geometry of models W (V, J, m, D) on the seed's test set (§1.5).

    Without a target head (before fine-tuning) only the off-target error and geometry are returned.
    """
    K, mk = cfg.n_tasks, cfg.neurons_per_task
    V, J, m, D = W.shape
    u = torch.stack([geo.u[:, axes] for geo in geos])  # (V, K, D)
    y = link(torch.einsum("nd,vkd->nvk", prep.x_test, u))  # (n, V, K)
    h = torch.relu(prep.x_test @ W.reshape(-1, D).T + c.reshape(-1)).view(-1, V, J, K, mk)
    f_off = torch.einsum("nvjkq,vkq->nvjk", h[:, :, :, 1:], prep.head_a) + prep.head_b[:, None]
    out = {"off_err": rel_err(f_off, y[:, :, None, 1:]).mean(-1)}  # (V, J)

    norms = W.norm(dim=-1).clamp_min(1e-30)  # (V, J, m)
    out["target_align"] = ((W[:, :, :mk] @ u[:, None, 0, :, None])[..., 0].abs() / norms[:, :, :mk]).mean(-1)
    bases = torch.stack([geo.bases[:, axes] for geo in geos])  # (V, K, D, r)
    Wk = W[:, :, mk:].reshape(V, J, K - 1, mk, D)
    inside = torch.einsum("vjkqd,vkdr->vjkqr", Wk, bases[:, 1:]).pow(2).sum(-1)
    out["subspace_frac"] = (inside / norms[:, :, mk:].reshape(V, J, K - 1, mk) ** 2).mean((-1, -2))

    if a0 is not None:
        f0 = (h.reshape(-1, V, J, m) * a0).sum(-1) + b0  # (n, V, J)
        y0 = y[:, :, None, 0].expand_as(f0)
        out["target_err"], out["target_err_cal"] = rel_err(f0, y0), cal_err(f0, y0)
    return out


def simulate(cfg: TwoLayerConfig, seeds: list[int], rhos: list[float], alpha_target: float, dtype: torch.dtype,
             device: torch.device, progress: bool, desc: str) -> dict[str, torch.Tensor]:
    """Train W2S and SFT students for every (seed, rho); per-seed metrics as tensors of shape (S, V)."""
    geos = [Geometry.build(cfg, rho, dtype) for rho in rhos]
    if cfg.project_grad:  # weights start in span(V_k) and their updates stay there: simulate those axes only
        axes = torch.arange(cfg.n_tasks * cfg.subspace_dim)
        masks = torch.stack([geo.span_mask[axes] for geo in geos])
        masks = None if bool((masks == 1).all()) else masks
    else:
        axes, masks = torch.arange(cfg.d), None

    preps = [prepare(cfg, SeedDraws.draw(cfg, s, dtype), geos, alpha_target, axes) for s in seeds]
    trained = finetune(cfg, preps, masks, device, progress, desc)

    rows = []
    for i, prep in enumerate(preps):
        y0 = link(prep.x_test[:, 0])  # u_0 = e_0 is working axis 0
        pre = evaluate(cfg, prep, geos, axes, prep.W[:, None], prep.c.expand(len(geos), 1, -1))
        post = evaluate(cfg, prep, geos, axes, trained["W"][i], trained["c"][i], trained["a0"][i],
                        trained["b0"][i])
        row = {"weak_err": rel_err(prep.weak_test, y0).expand(len(geos)),
               "weak_err_cal": cal_err(prep.weak_test, y0).expand(len(geos)),
               "weak_cos": torch.full((len(geos),), prep.weak_cos),
               "off_err_pre": pre["off_err"][:, 0], "target_align_pre": pre["target_align"][:, 0],
               "subspace_frac_pre": pre["subspace_frac"][:, 0]}
        for j, kind in enumerate(KINDS):
            row[f"{kind}_err"] = post["target_err"][:, j]
            row[f"{kind}_err_cal"] = post["target_err_cal"][:, j]
            row[f"retention_{kind}"] = (1 - post["off_err"][:, j]) / (1 - pre["off_err"][:, 0])
            row[f"subspace_frac_{kind}"] = post["subspace_frac"][:, j]
            row[f"target_align_{kind}"] = post["target_align"][:, j]
        rows.append(row)
    return {key: torch.stack([row[key] for row in rows]).double() for key in rows[0]}


def pgr(weak: torch.Tensor, student: torch.Tensor, ceiling: torch.Tensor) -> torch.Tensor:
    """PGR = (err_weak − err_w2s) / (err_weak − err_ceiling) (docs/THEORY.md §0); NaN where the gap vanishes."""
    gap = weak - ceiling
    return torch.where(gap.abs() > 1e-12, (weak - student) / gap, torch.full_like(gap, math.nan))


def summarise(per_seed: dict[str, torch.Tensor], v: int, rho: float) -> dict:
    """One JSON entry for variant v: means over seeds, PGR statistics and the per-seed lists."""
    col = {key: values[:, v] for key, values in per_seed.items()}
    pgr_raw = pgr(col["weak_err"], col["w2s_err"], col["sft_err"])
    pgr_cal = pgr(col["weak_err_cal"], col["w2s_err_cal"], col["sft_err_cal"])
    gap = col["retention_w2s"] - col["retention_sft"]
    entry = {"rho": rho, "n_seeds": len(pgr_raw)}
    for key, values in col.items():
        name = key.replace("sft_err", "ceiling_err")  # SFT on ground truth is the ceiling (§0)
        entry[name] = num(values.mean())
    entry.update(
        pgr_median=num(pgr_raw.nanmedian()), pgr_cal_median=num(pgr_cal.nanmedian()),
        pgr_cal_min=num(pgr_cal.min()),
        w2s_beats_weak_frac=num((col["w2s_err_cal"] < col["weak_err_cal"]).double().mean()),
        retention_w2s_gt_sft_frac=num((gap > 0).double().mean()),
        retention_gap_ge_0p1_frac=num((gap >= 0.10).double().mean()),
        per_seed={"pgr_cal": nums(pgr_cal), **{key.replace("sft_err", "ceiling_err"): nums(values)
                                              for key, values in col.items()}},
    )
    return entry



def run(cfg: TwoLayerConfig, seed: int, dtype: torch.dtype, device: torch.device, progress: bool) -> dict:
    """Setting 1: the rho sweep and (optionally) the latent-knowledge ablation; JSON-ready."""
    seeds = [seed * 100_003 + i for i in range(cfg.n_seeds)]  # seed i is the same run whatever n_seeds is
    per_seed = simulate(cfg, seeds, cfg.rhos, cfg.alpha_target, dtype, device, progress, "theory: two-layer")
    out = {"two_layer": [summarise(per_seed, v, rho) for v, rho in enumerate(cfg.rhos)], "two_layer_ablation": None}
    if cfg.ablation:
        abl_seeds = [seed * 100_003 + i for i in range(cfg.ablation_seeds)]  # the same draws as the sweep
        abl = simulate(cfg, abl_seeds, [cfg.ablation_rho], cfg.ablation_alpha_target, dtype, device, progress,
                       "theory: ablation")
        out["two_layer_ablation"] = {"alpha_target": cfg.ablation_alpha_target, **summarise(abl, 0, cfg.ablation_rho)}
    return out
