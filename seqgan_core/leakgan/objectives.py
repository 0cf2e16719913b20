"""LeakGAN's rewards and losses, as plain functions of tensors.

Notation as in `seqgan_core.leakgan.generator`: f_t = F(x_<t) (B, T+1, F), sub-goals g_t
and goals G_t (B, T, F), c the step size. Cosines are per element (a value for every
sequence and term) unless ``reduction="batch_mean"``, the official code's: its
``tf.losses.cosine_distance`` returns one mean over the batch, so the reward Q (manager)
and the intrinsic reward (worker) only rescale a batch-wide gradient. After the rank
rescale below, Q's batch mean is a constant, so in the code the discriminator's score
has no effect on the manager at all, and the worker's adversarial loss is MLE on its own
samples times the mean cosine.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

RankOrder = Literal["score", "first_appearance"]
RANK_ORDERS = ("score", "first_appearance")
Reduction = Literal["per_element", "batch_mean"]
REDUCTIONS = ("per_element", "batch_mean")


def rescaled_activation(scores: torch.Tensor, delta: float = 16.0, order: RankOrder = "score") -> torch.Tensor:
    """LeakGAN's bootstrapped rescaled activation of a reward matrix (B, J), column by column.

    ``order="score"`` (the paper): R_i = sigmoid(delta * (0.5 - rank(i) / B)), rank(i)
    the high-to-low rank of score i among the B of its column (1 = best; tied scores
    share the best rank of the tie). ``"first_appearance"`` (the official code's
    ``rescale``): the distinct values numbered 1, 2, ... in dictionary order, which in
    Python 3 is the order of first appearance in the column (in the code's Python 2 a
    hash order), and R_i = sigmoid(delta * (idx(i) / B - 0.5)); ties share a value
    there too. That order does not follow the scores, so its rewards are noise. Either
    way a column of distinct scores becomes a permutation of fixed values: the batch
    mean is a constant (LeakGAN#17 logs 0.12695 = that mean / 4 rollouts at every step).
    """
    if order not in RANK_ORDERS:
        raise ValueError(f"order must be one of {RANK_ORDERS}, got {order!r}")
    B = scores.shape[0]
    if order == "score":
        rank = 1 + (scores.unsqueeze(0) > scores.unsqueeze(1)).sum(dim=1)  # [i, j]: rows beating row i
        return torch.sigmoid(delta * (0.5 - rank.to(scores.dtype) / B))
    idx = torch.stack([_first_appearance_index(column) for column in scores.T], dim=1)
    return torch.sigmoid(delta * (idx.to(scores.dtype) / B - 0.5))


def _first_appearance_index(column: torch.Tensor) -> torch.Tensor:
    """1-based number of each entry's value among the distinct values, in order of first appearance."""
    values, inverse = torch.unique(column, return_inverse=True)
    positions = torch.arange(column.shape[0], device=column.device)
    first = torch.full((values.shape[0],), column.shape[0], dtype=torch.long, device=column.device)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    order_of_value = torch.argsort(torch.argsort(first)) + 1
    return order_of_value[inverse]


def manager_starts(seq_len: int, step_size: int, goal_window: str) -> list[int]:
    """The steps t whose goal the manager is trained on, each against the move f_{t+c} - f_t:
    every t = 0..T-c for the paper's sliding goal (eq. 9, one term per step), the segment
    starts 0, c, 2c, ... (with t + c <= T) for the code's held goal."""
    stride = 1 if goal_window == "sliding" else step_size
    return list(range(0, seq_len - step_size + 1, stride))


def manager_goals(subgoals: torch.Tensor, goals: torch.Tensor, starts: list[int], goal_window: str) -> torch.Tensor:
    """The goal each manager term is judged by (B, J, F): the sub-goal g_t itself (paper,
    eq. 9), or the segment's goal G_t (code: its ``real_goal_array``, goal_init first)."""
    return (subgoals if goal_window == "sliding" else goals)[:, starts]


def manager_loss(features: torch.Tensor, goals: torch.Tensor, starts: list[int], step_size: int,
                 rewards: torch.Tensor | None = None, reduction: Reduction = "per_element") -> torch.Tensor:
    """-mean_{b,j} Q_bj cos(f_{t_j+c} - f_{t_j}, goal_bj): the manager's adversarial loss
    (paper eq. 9; Q the rescaled rollout value) and, with ``rewards=None`` (Q = 1), its
    pretraining loss (eq. 12). ``goals`` (B, J, F) from `manager_goals`; Q is detached."""
    index = torch.tensor(starts, device=features.device)
    moves = features[:, index + step_size] - features[:, index]
    cos = F.cosine_similarity(moves, goals, dim=-1)  # (B, J)
    q = torch.ones_like(cos) if rewards is None else rewards.detach()
    if reduction == "per_element":
        return -(q * cos).mean()
    if reduction == "batch_mean":
        return -(q.mean() * cos.mean())
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


@torch.no_grad()
def intrinsic_rewards(features: torch.Tensor, subgoals: torch.Tensor, goals: torch.Tensor, step_size: int,
                      goal_window: str, reduction: Reduction = "per_element") -> torch.Tensor:
    """The worker's reward (B, T) for each token x_u (which makes the prefix of length u+1).

    Paper (eq. 11, sliding goal): r_u = (1/c) sum_{i=1..c, i<=u+1} cos(f_{u+1} - f_{u+1-i}, g_{u+1-i})
    (terms before the sequence start are left out, still divided by c). Code (segment
    goal): r_u = cos(f_{u+1} - f_s, G_u), s = c * floor(u / c) the start of u's segment.
    ``reduction="batch_mean"`` replaces every entry by the mean (the code's scalar).
    """
    B, T = goals.shape[:2]
    c = step_size
    if goal_window == "sliding":
        rewards = torch.zeros(B, T, device=features.device)
        for i in range(1, min(c, T) + 1):  # token u = i-1 .. T-1 reaches back i steps
            moves = features[:, i:] - features[:, : T + 1 - i]
            rewards[:, i - 1 :] += F.cosine_similarity(moves, subgoals[:, : T + 1 - i], dim=-1)
        rewards /= c
    else:
        starts = torch.arange(T, device=features.device) // c * c
        rewards = F.cosine_similarity(features[:, 1:] - features[:, starts], goals, dim=-1)
    if reduction == "batch_mean":
        return rewards.mean().expand(B, T)
    if reduction != "per_element":
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return rewards


def worker_loss(log_probs: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """-mean_{b,u} r_bu log pi(x_u | x_<u): REINFORCE on the intrinsic reward (detached),
    the sign of the TF code (TextGAN-PyTorch's port has it reversed)."""
    return -(rewards.detach() * log_probs).mean()
