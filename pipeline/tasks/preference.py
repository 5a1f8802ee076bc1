"""Reward modelling on preference pairs: the second task kind (Burns et al.'s third setting).

An example is (prompt, response A, response B) with label 1 when A is the preferred response; which
response is A is drawn per pair, so labels are balanced. A model is a backbone with a scalar head, the
reward r(prompt, response); it scores a pair by P(A preferred) = sigmoid(r_A - r_B). Supervision is a
soft preference (the weak model's sigmoid(r_A - r_B) on B), and training minimises the Bradley-Terry
loss -[p log sigmoid(r_A - r_B) + (1 - p) log sigmoid(r_B - r_A)].

Everything else is classification's: a pair's logits are (r_B, r_A) (`pipeline.predict.pair_logits`),
so cross-entropy on them *is* the Bradley-Terry loss and aux_conf & co. apply unchanged; head mode fits
the linear head on phi(prompt, A) - phi(prompt, B) (frozen features of a pair are that difference, which
graph_smooth and selective use too); the metrics are preference accuracy, AUROC and PGR.
"""

from pipeline.tasks.classification import Classification


class Preference(Classification):
    name = "preference"
    num_labels = 1  # the reward


TASK = Preference()
