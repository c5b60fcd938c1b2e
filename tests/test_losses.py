"""Each loss equals a plain-Python loop implementation; degenerate sets give no NaN; Figure 3's case."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from cactus.losses import (
    LOSS_NAMES,
    LOSSES,
    AugmentedTripletLoss,
    PairwiseBCELoss,
    StructuralLoss,
    TripletLoss,
    build_loss,
    pair_targets,
)

GAMMA = 0.3


def random_batch(seed: int, sizes=(6, 4, 7)):
    """Similarities of L2-normalised random vectors and random labels, padded with -1."""
    rng = np.random.default_rng(seed)
    n = max(sizes)
    labels = np.full((len(sizes), n), -1)
    sim = np.zeros((len(sizes), n, n))
    for b, size in enumerate(sizes):
        x = rng.normal(size=(size, 5))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        sim[b, :size, :size] = x @ x.T
        labels[b, :size] = rng.integers(0, 3, size)
    return torch.tensor(sim, dtype=torch.float64, requires_grad=True), torch.tensor(labels)


def loop_triplets(sim, labels):
    terms = []
    for b in range(labels.shape[0]):
        idx = [i for i in range(labels.shape[1]) if labels[b, i] >= 0]
        for a, p, n in itertools.product(idx, idx, idx):
            if a != p and labels[b, a] == labels[b, p] != labels[b, n]:
                terms.append(max(0.0, GAMMA - sim[b, a, p] + sim[b, a, n]))
    return terms


def loop_pairs(sim, labels, neutral):
    terms = []
    for b in range(labels.shape[0]):
        idx = [i for i in range(labels.shape[1]) if labels[b, i] >= 0]
        for i, j in itertools.permutations(idx, 2):
            if labels[b, i] == labels[b, j]:
                terms.append(max(0.0, GAMMA / 2 - sim[b, i, j] + neutral))
            else:
                terms.append(max(0.0, GAMMA / 2 - neutral + sim[b, i, j]))
    return terms


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_equals_loop(seed):
    sim, labels = random_batch(seed)
    mask, same = pair_targets(labels)
    terms = loop_triplets(sim.detach().numpy(), labels.numpy())
    assert TripletLoss()(sim, mask, same).item() == pytest.approx(sum(terms) / len(terms))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_augmented_triplet_equals_loop(seed):
    sim, labels = random_batch(seed)
    mask, same = pair_targets(labels)
    loss = AugmentedTripletLoss()
    with torch.no_grad():
        loss.neutral.fill_(0.17)
    triplets = loop_triplets(sim.detach().numpy(), labels.numpy())
    pairs = loop_pairs(sim.detach().numpy(), labels.numpy(), 0.17)
    expected = (sum(triplets) + sum(pairs)) / (len(triplets) + len(pairs))
    assert loss(sim, mask, same).item() == pytest.approx(expected)


def test_neutral_similarity_is_learnable_and_starts_at_zero():
    loss = AugmentedTripletLoss()
    assert loss.neutral.item() == 0.0 and loss.neutral.requires_grad
    sim, labels = random_batch(3)
    loss(sim, *pair_targets(labels)).backward()
    assert loss.neutral.grad is not None and sim.grad is not None


@pytest.mark.parametrize("seed", [0, 1])
def test_bce_equals_loop(seed):
    sim, labels = random_batch(seed)
    mask, same = pair_targets(labels)
    s, lab = sim.detach().numpy(), labels.numpy()
    terms = []
    for b in range(lab.shape[0]):
        idx = [i for i in range(lab.shape[1]) if lab[b, i] >= 0]
        for i, j in itertools.permutations(idx, 2):
            p = (s[b, i, j] + 1) / 2
            terms.append(-math.log(p) if lab[b, i] == lab[b, j] else -math.log(1 - p))
    assert PairwiseBCELoss()(sim, mask, same).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def kruskal(n, edges):
    """Maximum-weight forest by plain Kruskal over (weight, i, j) edges with weight > -inf allowed."""
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    chosen = []
    for _w, i, j in sorted(edges, reverse=True):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
            chosen.append((i, j))
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_structural_equals_loop(seed):
    sim, labels = random_batch(seed)
    mask, same = pair_targets(labels)
    s, lab = sim.detach().numpy(), labels.numpy()
    c, r = 0.15, 0.5
    losses = []
    for b in range(lab.shape[0]):
        idx = [i for i in range(lab.shape[1]) if lab[b, i] >= 0]
        n, k = len(idx), len({lab[b, i] for i in idx})
        gold = kruskal(n, [(s[b, idx[i], idx[j]], i, j) for i, j in itertools.combinations(range(n), 2)
                           if lab[b, idx[i]] == lab[b, idx[j]]])
        aug = {}
        for i, j in itertools.combinations(range(n), 2):
            together = lab[b, idx[i]] == lab[b, idx[j]]
            aug[(i, j)] = s[b, idx[i], idx[j]] - c + (-(1 - r) if together else r)
        pred = kruskal(n, [(w, i, j) for (i, j), w in aug.items() if w > 0])
        intra = sum(lab[b, idx[i]] == lab[b, idx[j]] for i, j in pred)
        delta = r * (len(pred) - intra) + (1 - r) * (n - k - intra)
        predicted = sum(s[b, idx[i], idx[j]] - c for i, j in pred) + delta
        gold_score = sum(s[b, idx[i], idx[j]] - c for i, j in gold)
        losses.append(max(0.0, predicted - gold_score) / n)
    assert StructuralLoss()(sim, mask, same).item() == pytest.approx(np.mean(losses))


def figure3_batch():
    """Three clusters of two; the pair (0, 1) is less similar than some inter-cluster pairs elsewhere.

    Every anchor still prefers its positive over its negatives by more than γ, so the triplet loss is 0.
    """
    labels = torch.tensor([[0, 0, 1, 1, 2, 2]])
    sim = torch.full((1, 6, 6), -0.6, dtype=torch.float64)
    sim[0, 0, 1] = sim[0, 1, 0] = 0.0  # intra-cluster edge below ...
    sim[0, 2, 4] = sim[0, 4, 2] = 0.2  # ... these inter-cluster edges
    sim[0, 3, 5] = sim[0, 5, 3] = 0.2
    sim[0, 2, 3] = sim[0, 3, 2] = 0.9
    sim[0, 4, 5] = sim[0, 5, 4] = 0.9
    for i in range(6):
        sim[0, i, i] = 1.0
    return sim, labels


def test_figure3_triplet_zero_augmented_positive():
    sim, labels = figure3_batch()
    mask, same = pair_targets(labels)
    assert TripletLoss()(sim, mask, same).item() == pytest.approx(0.0)
    assert AugmentedTripletLoss()(sim, mask, same).item() > 0.0
    assert sim[0, 2, 4] > sim[0, 0, 1]  # the case's premise: an inter-cluster pair above an intra-cluster one


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("labels", [[[0, 0, 0, -1]], [[0, 1, 2, 3]], [[0, 0, -1, -1], [0, 1, 2, -1]]])
def test_one_cluster_and_all_singletons_give_finite_losses_and_gradients(name, labels):
    labels = torch.tensor(labels)
    sim = torch.rand(labels.shape[0], labels.shape[1], labels.shape[1], dtype=torch.float64) * 2 - 1
    sim = ((sim + sim.transpose(1, 2)) / 2).requires_grad_()
    loss = build_loss(name)(sim, *pair_targets(labels))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(sim.grad).all()


def test_unknown_loss_lists_choices():
    with pytest.raises(ValueError, match="unknown loss 'hinge'; choose one of aug_triplet, triplet, structural, bce"):
        build_loss("hinge")


def test_the_loss_table_builds_each_loss_under_its_unique_name_and_label():
    assert LOSS_NAMES == tuple(LOSSES) == ("aug_triplet", "triplet", "structural", "bce")
    classes = {"aug_triplet": AugmentedTripletLoss, "triplet": TripletLoss, "structural": StructuralLoss,
               "bce": PairwiseBCELoss}
    for name, kind in LOSSES.items():
        assert kind.name == name
        loss, again = build_loss(name), kind.build()
        assert type(loss) is classes[name] and loss is not again  # a fresh module each time
    labels = [kind.label for kind in LOSSES.values()]
    assert all(label.strip() for label in labels) and len(set(labels)) == len(labels)


def test_loss_names_need_no_torch():
    """The CLI's help and the job queue list and check loss names without importing torch."""
    code = ("import sys; from cactus.losses import LOSS_NAMES, loss_kind; loss_kind('bce'); "
            "from cactus.training.config import TrainConfig; TrainConfig(loss='bce'); "
            "print(LOSS_NAMES, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('aug_triplet', 'triplet', 'structural', 'bce') False"
