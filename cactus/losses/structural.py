"""The latent structural loss over maximum spanning forests (the SCL baseline).

Haponchyk & Moschitti (2021), "Supervised neural clustering via latent structured output learning";
Barnabo et al. (2023), "Supervised clustering loss for clustering-friendly sentence embeddings" (SCL),
with their C = 0.15 and r = 0.5.

A clustering is represented by a latent spanning forest whose trees are the clusters; an edge (i, j) scores
sim(i, j) - C, so that only edges above C are worth adding. For each set:

- the gold forest h* is the maximum spanning forest restricted to intra-cluster edges (one tree per gold
  cluster), scored S(h*) = Σ_{h*} (sim - C);
- loss-augmented inference finds, by Kruskal, the forest ĥ maximising S(h) + Δ(h), with the structural loss
  Δ(h) = r · (inter-cluster edges in h) + (1 - r) · (intra-cluster links missing from h), where the links a
  partition needs are N - k; Δ(h*) = 0;
- the set's loss is max(0, S(ĥ) + Δ(ĥ) - S(h*)) / N.

The forests are chosen without gradient (Kruskal on CPU); gradients flow through the similarities of their
edges. The batch loss is the mean over sets.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from torch import Tensor, nn

DEFAULT_C = 0.15
DEFAULT_R = 0.5


def maximum_spanning_forest(weights: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Edges (i < j) of a maximum-weight spanning forest over the ``allowed`` edges; shape (E, 2).

    Args:
        weights: (N, N) symmetric edge weights.
        allowed: (N, N) bool, the edges that may be used.
    """
    n = weights.shape[0]
    upper = np.triu(allowed, k=1)
    if not upper.any():
        return np.zeros((0, 2), dtype=np.int64)
    # csgraph reads zeros as "no edge": shift every allowed weight to a strictly negative cost. A spanning forest
    # of a fixed graph has a fixed number of edges, so the shift does not change which forest is optimal.
    cost = np.where(upper, -(weights - weights[upper].max()) - 1.0, 0.0)
    tree = minimum_spanning_tree(csr_matrix(cost, shape=(n, n))).tocoo()
    edges = np.stack([np.minimum(tree.row, tree.col), np.maximum(tree.row, tree.col)], axis=1)
    return edges.astype(np.int64)


class StructuralLoss(nn.Module):
    """Latent structural SVM loss with maximum spanning forests (module docstring).

    Args:
        c: edge bias C: an edge scores sim - C (default 0.15).
        r: weight of a wrong inter-cluster edge against (1 - r) for a missing intra-cluster link (default 0.5).

    Inputs: similarity (B, N, N), mask (B, N) bool, same (B, N, N) bool co-cluster matrix.
    """

    def __init__(self, c: float = DEFAULT_C, r: float = DEFAULT_R) -> None:
        super().__init__()
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"r weighs two kinds of errors and must lie in [0, 1], got {r}")
        self.c = c
        self.r = r

    def set_loss(self, similarity: Tensor, same: Tensor) -> Tensor:
        """The loss of one set: similarity (N, N), same (N, N) bool, both for real entities only."""
        n = similarity.shape[0]
        sim = similarity.detach().float().cpu().numpy()
        same_np = same.cpu().numpy()
        off_diagonal = ~np.eye(n, dtype=bool)
        gold = maximum_spanning_forest(sim, same_np & off_diagonal)
        augmented = sim - self.c + np.where(same_np, -(1.0 - self.r), self.r)  # (N, N)
        predicted = maximum_spanning_forest(augmented, off_diagonal & (augmented > 0))
        clusters = len({tuple(row) for row in same_np.tolist()})
        pred_i, pred_j = torch.as_tensor(predicted[:, 0]), torch.as_tensor(predicted[:, 1])
        gold_i, gold_j = torch.as_tensor(gold[:, 0]), torch.as_tensor(gold[:, 1])
        pred_same = same[pred_i, pred_j].to(similarity.dtype)
        delta = self.r * (1 - pred_same).sum() + (1 - self.r) * ((n - clusters) - pred_same.sum())
        predicted_score = (similarity[pred_i, pred_j] - self.c).sum() + delta
        gold_score = (similarity[gold_i, gold_j] - self.c).sum()
        return torch.relu(predicted_score - gold_score) / n

    def forward(self, similarity: Tensor, mask: Tensor, same: Tensor) -> Tensor:
        losses = []
        for b in range(similarity.shape[0]):
            real = mask[b].nonzero().squeeze(1)
            losses.append(self.set_loss(similarity[b][real][:, real], same[b][real][:, real]))
        return torch.stack(losses).mean()

    def get_config_dict(self) -> dict[str, float]:
        return {"c": self.c, "r": self.r}
