"""Losses of the generator: MLE, scheduled sampling, SeqGAN's policy gradient, MaliGAN."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import randomness
from .lstm import LSTMLanguageModel


def mle_loss(generator: LSTMLanguageModel, tokens: torch.Tensor) -> torch.Tensor:
    """Mean per-token negative log-likelihood of ``tokens`` (teacher forcing)."""
    return -generator.token_log_probs(tokens).mean()


def scheduled_sampling_loss(
    generator: LSTMLanguageModel,
    tokens: torch.Tensor,
    teacher_forcing: float,
    rng: torch.Generator | None = None,
) -> torch.Tensor:
    """Scheduled sampling (Bengio et al., 2015): mean per-token NLL of the real ``tokens``
    (B, T) when each step reads the real previous token with probability
    ``teacher_forcing`` and otherwise a token sampled from the model's own prediction at
    the previous step (a coin per token; no gradient flows through the sample).
    ``teacher_forcing=1`` is MLE."""
    if not 0.0 <= teacher_forcing <= 1.0:
        raise ValueError(f"teacher_forcing is a probability, got {teacher_forcing}")
    B, T = tokens.shape
    device = generator.device
    tokens = tokens.to(device)
    state = generator.initial_state(B)
    prev = torch.full((B,), generator.start_token, dtype=torch.long, device=device)
    if teacher_forcing < 1.0 and T > 1:
        # Per step: B uniforms for the model's own sample, then B for the coins; all steps'
        # drawn at once from rng (on its device, see seqgan_core.randomness), in that order.
        uniforms = randomness.uniform((T - 1, 2, B, 1), rng, device=device, dtype=state[0].dtype)
    nll = []
    for t in range(T):
        state = generator.advance(prev, state)
        nll.append(F.cross_entropy(generator.output_logits(state[0]), tokens[:, t], reduction="none"))
        prev = tokens[:, t]
        if teacher_forcing < 1.0 and t + 1 < T:
            own = generator.sample_next(state[0].detach(), uniforms=uniforms[t, 0]).squeeze(1)
            use_real = uniforms[t, 1, :, 0] < teacher_forcing
            prev = torch.where(use_real, prev, own)
    return torch.stack(nll, dim=1).mean()


def policy_gradient_loss(
    log_probs: torch.Tensor,
    rewards: torch.Tensor,
    *,
    reduction: str = "sum",
    baseline: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """REINFORCE surrogate: -sum_{b,t} log G(y_t | y_<t) * (Q(t) - baseline).

    ``reduction="sum"`` is the authors' code (no normalisation: the effective step grows
    with batch size and length); ``"mean"`` divides by B * T. The paper uses no baseline.
    """
    advantages = rewards if baseline is None else rewards - baseline
    surrogate = -(log_probs * advantages.detach())
    if reduction == "sum":
        return surrogate.sum()
    if reduction == "mean":
        return surrogate.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def maligan_weights(d_probs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MaliGAN's normalised importance weights w_i = r(x_i) / sum_j r(x_j), r = D / (1 - D),
    normalised along the last axis (a (G, m) input gives G groups of m weights each).

    D/(1-D) estimates p_data/p_G when D is optimal; using D itself (a bug in some ports)
    is a different estimator. D is clipped to [eps, 1 - eps] so r stays finite.
    """
    d = d_probs.clamp(eps, 1.0 - eps)
    ratio = d / (1.0 - d)
    return ratio / ratio.sum(dim=-1, keepdim=True)


def maligan_loss(
    log_probs: torch.Tensor,
    d_probs: torch.Tensor,
    *,
    group_size: int,
    prefix_len: int = 0,
    baseline: bool = True,
) -> torch.Tensor:
    """MaliGAN's generator surrogate (Che et al., 2017), basic and mixed-MLE ("full").

    ``log_probs`` (G*m, T) are the generator's token log-probabilities of G groups of
    m = ``group_size`` consecutive samples, the m completions of one prefix of length
    N = ``prefix_len`` (MaliGAN-basic: one group of the whole batch, N = 0); ``d_probs``
    (G*m,) are D's P(real) of them. Within each group the weights are
    w_j = r_D(x_j) / sum_j' r_D(x_j') and the loss is

        -(1/G) sum_g [ sum_j (w_gj - b) log p(x_gj[N:] | x_gj[:N])  +  log p(x_g[:N]) ]

    i.e. the weighted update on the sampled part and MLE on the kept real prefix (the
    second term; zero when N = 0). ``b`` is the mean weight 1/m with ``baseline`` (the
    paper's variance-reducing b; it leaves b's value open), else 0.
    """
    m = group_size
    if log_probs.shape[0] % m:
        raise ValueError(f"{log_probs.shape[0]} samples do not form groups of {m}")
    T = log_probs.shape[1]
    advantages = maligan_weights(d_probs.view(-1, m)) - (1.0 / m if baseline else 0.0)
    sampled = log_probs[:, prefix_len:].sum(dim=1).view(-1, m)
    weighted = -(advantages.detach() * sampled).sum(dim=1)
    kept_prefix = -log_probs.view(-1, m, T)[:, 0, :prefix_len].sum(dim=1)  # shared by the group
    return (weighted + kept_prefix).mean()
