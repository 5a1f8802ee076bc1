"""Each loss against values worked out by hand on a tiny batch (plain `math`, not the code under test)."""

import math

import pytest
import torch

from pipeline.losses import LOSSES, LossConfig, harden, make_loss

# three examples; logits chosen so the softmax is easy to write down: P(class 1) = sigmoid(z1 - z0)
LOGITS = torch.tensor([[0.0, 2.0], [0.0, -1.0], [1.0, 1.0]])
TARGETS = torch.tensor([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]])
P1 = [1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1)), 0.5]


def _xent_by_hand(targets, p1s):
    return sum(-(t0 * math.log(1 - p) + t1 * math.log(p)) for (t0, t1), p in zip(targets, p1s)) / len(p1s)


def test_xent_soft_and_hard():
    want = _xent_by_hand(TARGETS.tolist(), P1)
    assert make_loss(LossConfig())(LOGITS, TARGETS, 0.3).item() == pytest.approx(want, rel=1e-6)
    hard = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    want_hard = (-math.log(P1[0]) - math.log(1 - P1[1]) - math.log(0.5)) / 3
    assert make_loss(LossConfig())(LOGITS, hard, 0.0).item() == pytest.approx(want_hard, rel=1e-6)


def test_logconf_by_hand_before_during_and_after_warmup():
    loss = make_loss(LossConfig(name="logconf", aux_weight=0.5, warmup_frac=0.2))
    # prior of class 1 in the labels = (0.8 + 0.1 + 0.5) / 3 = 0.4667 -> 1 of 3 examples (the most confident
    # class-1 prediction, example 0) is hardened to class 1; examples 1 and 2 to class 0
    hard = [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]
    assert loss(LOGITS, TARGETS, 0.0).item() == pytest.approx(_xent_by_hand(TARGETS.tolist(), P1), rel=1e-6)
    for progress, coef in ((0.1, 0.25), (0.2, 0.5), (0.9, 0.5)):
        mixed = [[(1 - coef) * t + coef * h for t, h in zip(tr, hr)] for tr, hr in zip(TARGETS.tolist(), hard)]
        assert loss(LOGITS, TARGETS, progress).item() == pytest.approx(_xent_by_hand(mixed, P1), rel=1e-6)


def test_logconf_hardening_threshold_is_the_labels_class_prior():
    torch.manual_seed(0)
    p1 = torch.rand(200)
    for prior in (0.1, 0.3, 0.5, 0.8):
        h = harden(p1, prior)
        assert h.sum(1).eq(1).all()
        assert h[:, 1].mean().item() == pytest.approx(prior, abs=1 / 200)
        # the hardened-to-1 examples are exactly the most confident class-1 predictions
        assert p1[h[:, 1].bool()].min() >= p1[~h[:, 1].bool()].max()
    # batch mode: the prior comes from the batch's labels
    logits = torch.stack([torch.zeros(200), torch.randn(200)], 1)
    labels = torch.zeros(200, 2)
    labels[:60, 1], labels[60:, 0] = 1, 1  # class-1 prior 0.3
    loss = LOSSES["logconf"](LossConfig(name="logconf", aux_weight=1.0, warmup_frac=0.0))
    # with aux_weight 1 the target is the hardened prediction; its class-1 share must be 0.3
    p = torch.softmax(logits, -1)[:, 1]
    target = harden(p, 0.3)
    want = -(target * torch.log_softmax(logits, -1)).sum(1).mean()
    assert loss(logits, labels, 0.5).item() == pytest.approx(want.item(), rel=1e-6)
    assert target[:, 1].mean().item() == pytest.approx(0.3)


def test_logconf_buffer_carries_state_and_starts_empty():
    cfg = LossConfig(name="logconf", aux_weight=1.0, warmup_frac=0.0, prior="buffer", buffer_size=6)
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
    assert make_loss(LossConfig(name="logconf", aux_weight=1.0, warmup_frac=0.0))(logits, zeros, 0.5).item() == \
        pytest.approx(-sum(math.log(1 - p) for p in p1) / 4, rel=1e-6)
    assert second == pytest.approx((-math.log(p1[0]) - math.log(p1[1]) - math.log(1 - p1[2]) - math.log(1 - p1[3])) / 4,
                                   rel=1e-6)


def test_product_by_hand():
    loss = make_loss(LossConfig(name="product", alpha=1.0, beta=1.0))
    want_targets = []
    for (t0, t1), p in zip(TARGETS.tolist(), P1):
        a, b = (1 - p) * t0, p * t1
        want_targets.append([a / (a + b), b / (a + b)])
    assert loss(LOGITS, TARGETS, 0.0).item() == pytest.approx(_xent_by_hand(want_targets, P1), rel=1e-6)


def test_entropy_by_hand():
    loss = make_loss(LossConfig(name="entropy", aux_weight=0.5, warmup_frac=0.5))
    ent = sum(-(p * math.log(p) + (1 - p) * math.log(1 - p)) for p in P1) / 3
    x = _xent_by_hand(TARGETS.tolist(), P1)
    assert loss(LOGITS, TARGETS, 0.25).item() == pytest.approx(0.75 * x + 0.25 * ent, rel=1e-6)
    assert loss(LOGITS, TARGETS, 1.0).item() == pytest.approx(0.5 * x + 0.5 * ent, rel=1e-6)


def test_window_by_hand_and_empty_window():
    loss = make_loss(LossConfig(name="window", radius=0.3))
    # top probabilities: 0.881, 0.731, 0.5 -> below 0.8: examples 1 and 2; sum over them / batch size 3
    t = TARGETS.tolist()
    want = (-(t[1][0] * math.log(1 - P1[1]) + t[1][1] * math.log(P1[1]))
            - (t[2][0] * math.log(0.5) + t[2][1] * math.log(0.5))) / 3
    assert loss(LOGITS, TARGETS, 0.0).item() == pytest.approx(want, rel=1e-6)
    confident = torch.tensor([[0.0, 9.0], [9.0, 0.0]], requires_grad=True)
    value = make_loss(LossConfig(name="window", radius=0.1))(confident, torch.tensor([[0.5, 0.5]] * 2), 0.0)
    value.backward()
    assert value.item() == 0 and torch.equal(confident.grad, torch.zeros(2, 2))


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_has_finite_gradients(name):
    logits = LOGITS.clone().requires_grad_(True)
    value = make_loss(LossConfig(name=name, radius=0.3))(logits, TARGETS, 0.5)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_loss_options_are_range_checked():
    assert LossConfig().validate() == []
    errors = LossConfig(aux_weight=1.5, warmup_frac=-0.1, radius=0.7, buffer_size=1).validate()
    assert len(errors) == 4 and errors[0].startswith("aux_weight")
