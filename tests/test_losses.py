"""Each loss against values worked out by hand on a tiny batch (plain `math`, not the code under test)."""

import math

import pytest
import torch

from pipeline.losses import LOSS_CONFIGS, LOSSES, harden, make_loss

# three examples; logits chosen so the softmax is easy to write down: P(class 1) = sigmoid(z1 - z0)
LOGITS = torch.tensor([[0.0, 2.0], [0.0, -1.0], [1.0, 1.0]])
TARGETS = torch.tensor([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]])
P1 = [1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1)), 0.5]


def _xent_by_hand(targets, p1s):
    return sum(-(t0 * math.log(1 - p) + t1 * math.log(p)) for (t0, t1), p in zip(targets, p1s)) / len(p1s)


def test_xent_soft_and_hard():
    want = _xent_by_hand(TARGETS.tolist(), P1)
    assert make_loss(LOSS_CONFIGS["xent"]())(LOGITS, TARGETS, 0.3).item() == pytest.approx(want, rel=1e-6)
    hard = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    want_hard = (-math.log(P1[0]) - math.log(1 - P1[1]) - math.log(0.5)) / 3
    assert make_loss(LOSS_CONFIGS["xent"]())(LOGITS, hard, 0.0).item() == pytest.approx(want_hard, rel=1e-6)


def test_logconf_by_hand_before_during_and_after_warmup():
    loss = make_loss(LOSS_CONFIGS["logconf"](aux_weight=0.5, warmup_frac=0.2))
    # prior of class 1 in the labels = (0.8 + 0.1 + 0.5) / 3 = 0.4667 -> 1 of 3 examples (the most confident
    # class-1 prediction, example 0) is hardened to class 1; examples 1 and 2 to class 0
    hard = [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]
    assert loss(LOGITS, TARGETS, 0.0).item() == pytest.approx(_xent_by_hand(TARGETS.tolist(), P1), rel=1e-6)
    for progress, coef in ((0.1, 0.25), (0.2, 0.5), (0.9, 0.5)):
        mixed = [[(1 - coef) * t + coef * h for t, h in zip(tr, hr)] for tr, hr in zip(TARGETS.tolist(), hard)]
        assert loss(LOGITS, TARGETS, progress).item() == pytest.approx(_xent_by_hand(mixed, P1), rel=1e-6)


def test_harden_gives_the_prior_share_to_the_most_confident_and_moves_with_the_prior():
    # by hand: P(1) = 0.9, 0.2, 0.6, 0.4; prior 0.5 -> the two largest (0.9, 0.6) become class 1
    p1 = torch.tensor([0.9, 0.2, 0.6, 0.4])
    assert harden(p1, 0.5).tolist() == [[0, 1], [1, 0], [0, 1], [1, 0]]
    assert harden(p1, 0.25)[:, 1].tolist() == [1, 0, 0, 0]
    assert harden(p1, 0.75)[:, 1].tolist() == [1, 0, 1, 1]
    torch.manual_seed(0)
    p1 = torch.rand(200)
    previous = None
    for prior in (0.1, 0.3, 0.5, 0.8):
        h = harden(p1, prior)
        assert h.sum(1).eq(1).all()
        assert h[:, 1].mean().item() == pytest.approx(prior, abs=1 / 200)
        # the hardened-to-1 examples are exactly the most confident class-1 predictions
        assert p1[h[:, 1].bool()].min() >= p1[~h[:, 1].bool()].max()
        # a larger prior lowers the threshold: a strict superset is hardened to class 1
        if previous is not None:
            assert (h[:, 1] >= previous).all() and h[:, 1].sum() > previous.sum()
        previous = h[:, 1]


@pytest.mark.parametrize("share", [0.3, 0.7])
def test_logconf_batch_mode_hardens_the_labels_prior_share(share):
    torch.manual_seed(1)
    n = 200
    logits = torch.stack([torch.zeros(n), torch.randn(n)], 1)
    labels = torch.zeros(n, 2)
    k = int(share * n)
    labels[:k, 1], labels[k:, 0] = 1, 1  # class-1 prior = share
    loss = LOSSES["logconf"](LOSS_CONFIGS["logconf"](aux_weight=1.0, warmup_frac=0.0))
    value = loss(logits, labels, 0.5)
    hard = loss.last_hard
    assert hard[:, 1].mean().item() == pytest.approx(share, abs=1 / n)
    p1 = torch.softmax(logits, -1)[:, 1]
    assert p1[hard[:, 1].bool()].min() >= p1[~hard[:, 1].bool()].max()
    # with aux_weight 1 after warm-up the target is the hardened prediction alone
    want = -sum(math.log(p if h else 1 - p) for p, h in zip(p1.tolist(), hard[:, 1].tolist())) / n
    assert value.item() == pytest.approx(want, rel=1e-5)


def test_logconf_buffer_mode_hardens_the_buffers_prior_share():
    torch.manual_seed(2)
    cfg = LOSS_CONFIGS["logconf"](aux_weight=1.0, warmup_frac=0.0, prior="buffer", buffer_size=100)
    loss = make_loss(cfg)
    logits = torch.stack([torch.zeros(50), torch.randn(50)], 1)
    few = torch.tensor([[0.0, 1.0]] * 10 + [[1.0, 0.0]] * 40)  # prior 0.2
    many = torch.tensor([[0.0, 1.0]] * 40 + [[1.0, 0.0]] * 10)  # prior 0.8
    loss(logits, few, 0.5)
    assert loss.last_hard[:, 1].mean().item() == pytest.approx(0.2, abs=1 / 50)
    loss(logits, many, 0.5)  # buffer: the same 50 predictions twice, prior (10 + 40) / 100 = 0.5
    assert loss.buf_p1.numel() == 100 and loss.buf_prior.mean().item() == pytest.approx(0.5)
    assert loss.last_hard[:, 1].mean().item() == pytest.approx(0.5, abs=1 / 50)
    batch = make_loss(LOSS_CONFIGS["logconf"](aux_weight=1.0, warmup_frac=0.0))
    batch(logits, many, 0.5)  # batch mode ignores the history: prior 0.8
    assert batch.last_hard[:, 1].mean().item() == pytest.approx(0.8, abs=1 / 50)


def test_logconf_buffer_carries_state_and_starts_empty():
    cfg = LOSS_CONFIGS["logconf"](aux_weight=1.0, warmup_frac=0.0, prior="buffer", buffer_size=6)
    loss = make_loss(cfg)
    ones = torch.tensor([[0.0, 1.0]] * 4)
    zeros = torch.tensor([[1.0, 0.0]] * 4)
    logits = torch.tensor([[0.0, 3.0], [0.0, 2.0], [0.0, 1.0], [0.0, 0.5]])
    loss(logits, ones, 0.5)  # buffer: 4 labels of class 1
    second = loss(logits, zeros, 0.5).item()  # buffer keeps the last 6: 2 ones + 4 zeros -> prior 1/3
    assert loss.buf_prior.numel() == 6 and loss.buf_prior.mean().item() == pytest.approx(1 / 3)
    assert make_loss(cfg).buf_prior.numel() == 0  # a fresh loss per training run starts empty
    # the batch prior of `zeros` is 0 (all hardened to class 0); the buffer's 1/3 hardens the top third of the
    # buffered predictions to class 1: here examples 0 and 1 (P(1) above the buffer's 1 - 1/3 quantile)
    p1 = torch.softmax(logits, -1)[:, 1].tolist()
    assert make_loss(LOSS_CONFIGS["logconf"](aux_weight=1.0, warmup_frac=0.0))(logits, zeros, 0.5).item() == \
        pytest.approx(-sum(math.log(1 - p) for p in p1) / 4, rel=1e-6)
    assert second == pytest.approx((-math.log(p1[0]) - math.log(p1[1]) - math.log(1 - p1[2]) - math.log(1 - p1[3])) / 4,
                                   rel=1e-6)


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.5, 2.0)])
def test_product_by_hand(alpha, beta):
    loss = make_loss(LOSS_CONFIGS["product"](alpha=alpha, beta=beta))
    want_targets = []
    for (t0, t1), p in zip(TARGETS.tolist(), P1):
        a, b = (1 - p) ** beta * t0 ** alpha, p ** beta * t1 ** alpha
        want_targets.append([a / (a + b), b / (a + b)])
    assert loss(LOGITS, TARGETS, 0.0).item() == pytest.approx(_xent_by_hand(want_targets, P1), rel=1e-6)
    # example 0 by hand for alpha = beta = 1: p = sigmoid(2) = 0.8808, labels (0.2, 0.8)
    if alpha == beta == 1.0:
        a, b = 0.2 * (1 - P1[0]), 0.8 * P1[0]
        assert want_targets[0][1] == pytest.approx(b / (a + b)) and b / (a + b) == pytest.approx(0.96727, abs=1e-5)


def test_entropy_by_hand():
    loss = make_loss(LOSS_CONFIGS["entropy"](aux_weight=0.5, warmup_frac=0.5))
    ent = sum(-(p * math.log(p) + (1 - p) * math.log(1 - p)) for p in P1) / 3
    x = _xent_by_hand(TARGETS.tolist(), P1)
    assert loss(LOGITS, TARGETS, 0.25).item() == pytest.approx(0.75 * x + 0.25 * ent, rel=1e-6)
    assert loss(LOGITS, TARGETS, 1.0).item() == pytest.approx(0.5 * x + 0.5 * ent, rel=1e-6)


def test_window_by_hand_and_empty_window():
    loss = make_loss(LOSS_CONFIGS["window"](radius=0.3))
    # top probabilities: 0.881, 0.731, 0.5 -> below 0.8: examples 1 and 2; sum over them / batch size 3
    t = TARGETS.tolist()
    want = (-(t[1][0] * math.log(1 - P1[1]) + t[1][1] * math.log(P1[1]))
            - (t[2][0] * math.log(0.5) + t[2][1] * math.log(0.5))) / 3
    assert loss(LOGITS, TARGETS, 0.0).item() == pytest.approx(want, rel=1e-6)
    confident = torch.tensor([[0.0, 9.0], [9.0, 0.0]], requires_grad=True)
    value = make_loss(LOSS_CONFIGS["window"](radius=0.1))(confident, torch.tensor([[0.5, 0.5]] * 2), 0.0)
    value.backward()
    assert value.item() == 0 and torch.equal(confident.grad, torch.zeros(2, 2))


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_has_finite_gradients(name):
    logits = LOGITS.clone().requires_grad_(True)
    value = make_loss(_cfg(name, radius=0.3))(logits, TARGETS, 0.5)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def _cfg(name, **options):
    """The loss's config with those of `options` it has (each loss has only its own fields)."""
    import dataclasses

    cls = LOSS_CONFIGS[name]
    return cls(**{k: v for k, v in options.items() if k in {f.name for f in dataclasses.fields(cls)}})


def test_loss_options_are_range_checked():
    assert set(LOSS_CONFIGS) == set(LOSSES)
    for name, cls in LOSS_CONFIGS.items():
        assert cls().validate() == [] and cls().name == name
    assert LOSS_CONFIGS["logconf"](aux_weight=1.5, warmup_frac=-0.1, buffer_size=0, prior="global").validate() == [
        "aux_weight: must be in [0, 1], got 1.5", "warmup_frac: must be in [0, 1], got -0.1",
        "prior: must be 'batch' or 'buffer', got 'global'", f"buffer_size: must be in [1, {2 ** 24}], got 0"]
    assert LOSS_CONFIGS["window"](radius=0.7).validate() == ["radius: must be in (0, 0.5], got 0.7"]
    assert LOSS_CONFIGS["product"](alpha=-1.0, beta=-2.0).validate() == [
        "alpha: must be >= 0, got -1.0", "beta: must be >= 0, got -2.0"]
    assert LOSS_CONFIGS["entropy"](aux_weight=-0.5).validate() == ["aux_weight: must be in [0, 1], got -0.5"]


def test_each_loss_accepts_only_its_own_options():
    from pipeline.config.loading import load_recipe
    from pipeline.errors import UserError

    r = load_recipe(None, ["data.name=multiemo", "methods=[{name: naive, loss: {name: logconf, prior: buffer}}]"])
    assert type(r.methods[0].loss).__name__ == "LogConfConfig" and r.methods[0].loss.prior == "buffer"
    with pytest.raises(UserError) as e:
        load_recipe(None, ["data.name=multiemo", "methods=[{name: naive, loss: {name: window, prior: buffer}}]"])
    assert "methods[0].loss.prior: unknown key" in str(e.value) and "allowed here: name, radius" in str(e.value)
    with pytest.raises(UserError, match="unknown loss 'logcnf' \\(did you mean 'logconf'"):
        load_recipe(None, ["data.name=multiemo", "methods=[{name: naive, loss: logcnf}]"])


def test_entropy_term_has_the_entropy_gradient():
    # aux_weight 1 after warm-up: loss = mean_i H(p_i). With d = z1 - z0 and p = sigmoid(d),
    # dH/dd = -p (1 - p) d, so dL/dz1 = -p (1 - p) d / B and dL/dz0 = +p (1 - p) d / B. (EleutherAI's detached
    # version would give zero here.)
    logits = LOGITS.clone().requires_grad_(True)
    value = make_loss(LOSS_CONFIGS["entropy"](aux_weight=1.0, warmup_frac=0.0))(logits, TARGETS, 0.7)
    value.backward()
    for (z0, z1), p, (g0, g1) in zip(LOGITS.tolist(), P1, logits.grad.tolist()):
        want = -p * (1 - p) * (z1 - z0) / 3
        assert g1 == pytest.approx(want, abs=1e-6) and g0 == pytest.approx(-want, abs=1e-6)


def test_logconf_after_warmup_matches_burns_formula_on_a_random_batch():
    # Burns et al.: threshold = quantile(preds[:, 0], mean_weak[1]); class 1 where preds[:, 0] < threshold;
    # target = labels * (1 - coef) + hardened * coef, coef = aux_coef once step_frac > warmup_frac
    torch.manual_seed(3)
    logits = torch.randn(32, 2)
    labels = torch.softmax(torch.randn(32, 2) * 2, -1)
    preds = torch.softmax(logits, -1)
    threshold = torch.quantile(preds[:, 0], labels.mean(0)[1])
    hardened = torch.stack([preds[:, 0] >= threshold, preds[:, 0] < threshold], 1).float()
    target = labels * 0.5 + hardened * 0.5
    want = torch.nn.functional.cross_entropy(logits, target).item()
    got = make_loss(LOSS_CONFIGS["logconf"](aux_weight=0.5, warmup_frac=0.2))(logits, labels, 0.5).item()
    assert got == pytest.approx(want, rel=1e-6)


def test_low_precision_logits_are_computed_in_float32():
    logits = LOGITS.to(torch.bfloat16)  # these values are exact in bfloat16
    for name in LOSSES:
        value = make_loss(_cfg(name, radius=0.3))(logits, TARGETS, 0.5)
        assert value.dtype == torch.float32
        assert value.item() == pytest.approx(make_loss(_cfg(name, radius=0.3))(LOGITS, TARGETS, 0.5).item())
