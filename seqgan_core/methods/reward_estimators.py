"""Per-token rewards for the policy-gradient loop (`methods.policy_gradient`), one small
class per estimator, each with the discriminator round that trains what it scores.

| estimator | reward of token t | discriminator | cost per g-step |
| --- | --- | --- | --- |
| ``rollout`` (SeqGAN) | mean D of N rollout completions of y_1..y_t | SeqGAN CNN on whole sequences | B*N*(T-1) completions |
| ``partial_d`` (Li et al. 2017) | D(y_1..y_t) | the same CNN, trained on random prefixes | one D pass over B*T prefixes |
| ``critic`` (MaskGAN) | discounted sum of log sigma(d_s), s >= t, minus a learned V_t, clipped | per-token LSTM D with a value head | one LSTM pass over B sequences |
| RankGAN (`methods.rankgan`) | mean rank score of N completions among the batch's | the CNN's trunk as a ranker | B*N*(T-1) completions |
| PG-BLEU | mean BLEU of N completions | none | B*N*(T-1) completions |
| constant | c | none | none |

An estimator is built from its method (`PolicyGradientMethod`: generator, discriminator,
d_optimizer, real data, common settings, rng, settings) once the method's optimisers exist,
and reads its own section of the method's settings. ``weights(samples)`` gives the (B, T)
weights of log p(y_t | y_<t) and metrics; ``discriminator_round(negatives)`` trains D;
``stateful()`` names what it adds to a checkpoint. `discriminator` (a classmethod, called
before the method's optimisers exist) says which discriminator the method trains.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from .. import randomness
from ..bleu import BLEUReward
from ..critic import (CausalDiscriminator, causal_discriminator_round, clipped_advantages, discounted_returns,
                      token_rewards)
from ..prefix_rewards import prefix_discriminator_round, prefix_rewards
from ..rollout import DelayedPolicy, SequenceReward, rollout
from ..train import _apply, adam, discriminator_round
from .settings import Settings, bounded

if TYPE_CHECKING:
    from .policy_gradient import PolicyGradientMethod


class RewardEstimator:
    def __init__(self, method: PolicyGradientMethod) -> None:
        self.method = method

    @classmethod
    def discriminator(cls, method: PolicyGradientMethod, pretrained: torch.nn.Module) -> torch.nn.Module:
        """The discriminator the method trains: the pipeline's pretrained CNN by default."""
        return pretrained

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def after_generator_update(self) -> None:
        """Called after every generator update (the delayed rollout policy moves here)."""

    def discriminator_round(self, negatives: torch.Tensor) -> dict[str, float]:
        m = self.method
        return discriminator_round(m.discriminator, m.d_optimizer, m.real, negatives, epochs=m.common.d_epochs,
                                   batch_size=m.common.d_batch_size, rng=m.rng, execution=m.common.execution)

    def stateful(self) -> dict[str, Any]:
        return {}


def reward_metrics(rewards: torch.Tensor) -> dict[str, float]:
    return {"mean_reward": rewards.mean().item(), "final_reward": rewards[:, -1].mean().item()}


# ------------------------------------------------------------------------------ rollout
@dataclasses.dataclass(frozen=True)
class RolloutSettings(Settings):
    """How a token's reward is estimated: the mean reward of ``n_rollouts`` completions of its
    prefix, sampled by the rollout policy: the generator itself (``current``, what the
    authors' code effectively does: its delayed update never reaches the rollout graph; the
    RankGAN code has the same defect) or the paper's delayed copy beta (``delayed``, moved
    towards the generator by 1 - ``rate`` after every generator step). ``baseline``: none
    (the paper) or the batch's mean reward subtracted."""

    n_rollouts: int = bounded(16, ge=1)
    policy: Literal["current", "delayed"] = "current"
    rate: float = bounded(0.8, ge=0, le=1, description="the delayed policy's beta <- rate beta + (1 - rate) theta")
    baseline: Literal["none", "batch_mean"] = "none"


class RolloutRewards(RewardEstimator):
    """SeqGAN: Q(t) from Monte-Carlo rollouts (`seqgan_core.rollout`) scored by `scorer`
    (D); D's round is `seqgan_core.train.discriminator_round` on the pipeline's CNN."""

    def __init__(self, method: PolicyGradientMethod) -> None:
        super().__init__(method)
        self.settings: RolloutSettings = method.settings.rollout
        self.policy = DelayedPolicy(method.generator, self.settings.rate) if self.settings.policy == "delayed" else None

    def scorer(self, group_size: int) -> torch.nn.Module | SequenceReward:
        """What scores the completions (of ``group_size`` samples): D here."""
        return self.method.discriminator

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        m, s = self.method, self.settings
        policy = self.policy.model if self.policy is not None else m.generator
        rewards = rollout(policy, self.scorer(len(samples)), samples, s.n_rollouts, rng=m.rng)
        weights = rewards - rewards.mean() if s.baseline == "batch_mean" else rewards
        return weights, reward_metrics(rewards)

    def after_generator_update(self) -> None:
        if self.policy is not None:
            self.policy.update(self.method.generator)

    def stateful(self) -> dict[str, Any]:
        return {"policy": self.policy.model} if self.policy is not None else {}


class BleuRewards(RolloutRewards):
    """PG-BLEU: rollouts scored by BLEU against a share of the training data, drawn once at
    construction from the method's stream (`seqgan_core.bleu.BLEUReward`); no D."""

    def __init__(self, method: PolicyGradientMethod) -> None:
        super().__init__(method)
        s, n = method.settings, len(method.real)
        share = randomness.randperm(n, method.rng, device="cpu")[: max(1, round(s.reference_fraction * n))]
        self.bleu = BLEUReward(method.real[share], s.order, eos_id=method.eos_id, smoothing=s.smoothing)

    def scorer(self, group_size: int) -> SequenceReward:
        return self.bleu


# ---------------------------------------------------------------------------- partial_d
@dataclasses.dataclass(frozen=True)
class PartialDSettings(Settings):
    """``baseline``: "step_mean" subtracts b_t, the batch's mean reward at step t (the paper
    subtracts a baseline b(y_1..t) without fixing it; its released code offers a learned
    critic or an average), or "none"."""

    baseline: Literal["step_mean", "none"] = "step_mean"


class PartialDRewards(RewardEstimator):
    """Li et al. (2017): r_t = D(y_1..y_t) from a D trained on one random prefix per
    sequence (`seqgan_core.prefix_rewards`). Continues training the pipeline's CNN D (whose
    whole-sequence pretraining covers the prefixes of length T)."""

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        rewards = prefix_rewards(self.method.discriminator, samples)
        weights = rewards - rewards.mean(dim=0) if self.method.settings.partial_d.baseline == "step_mean" else rewards
        return weights, reward_metrics(rewards)

    def discriminator_round(self, negatives: torch.Tensor) -> dict[str, float]:
        m = self.method
        return prefix_discriminator_round(m.discriminator, m.d_optimizer, m.real, negatives, epochs=m.common.d_epochs,
                                          batch_size=m.common.d_batch_size, rng=m.rng)


# ------------------------------------------------------------------------------- critic
@dataclasses.dataclass(frozen=True)
class CriticSettings(Settings):
    """MaskGAN's code defaults: ``discount`` 0.9 (its IMDB launch: 0.8835659),
    ``advantage_clip`` 5, gradient clip 10 for D and the critic, the critic trains only its
    head (``trains_trunk`` false). ``lr`` 5e-4 (TextBox's MaskGAN and Li et al.'s critic;
    the IMDB launch used 9.8e-4). The D sizes are ours (see `CausalDiscriminator`)."""

    discount: float = bounded(0.9, ge=0, le=1)
    advantage_clip: float = bounded(5.0, gt=0, description="advantages clipped to [-c, c]")
    lr: float = bounded(5e-4, gt=0, description="the critic's Adam learning rate")
    trains_trunk: bool = False
    grad_clip: float = bounded(10.0, ge=0, description="global-norm clip of D and the critic; 0 = none")
    emb_dim: int = bounded(64, ge=1)
    hidden_dim: int = bounded(64, ge=1)
    num_layers: int = bounded(2, ge=1)
    dropout: float = bounded(0.5, ge=0, lt=1, description="drop probability")


class CriticRewards(RewardEstimator):
    """MaskGAN's actor-critic with every position missing (`seqgan_core.critic`): the
    advantage clip(R_t - V_t) of discounted log sigma(d_t) returns over a learned value.
    The method trains its own per-token D, built from the method's stream unless it is
    given one (a `CausalDiscriminator`, e.g. pretrained with `causal_discriminator_round`);
    the pipeline's CNN D is not used. The critic is trained on each g-step's samples, before the generator
    update, whose baseline is the critic's value before that step.

    D's Adam (the method's ``d_optimizer``) holds the value head too: D's loss never reaches
    it, so that Adam leaves it alone; the critic's own Adam trains it (with the trunk if
    ``trains_trunk``)."""

    @classmethod
    def discriminator(cls, method: PolicyGradientMethod, pretrained: torch.nn.Module) -> CausalDiscriminator:
        if isinstance(pretrained, CausalDiscriminator):
            return pretrained
        s, g = method.settings.critic, method.generator
        return CausalDiscriminator(g.vocab_size, s.emb_dim, s.hidden_dim, s.num_layers, s.dropout,
                                   rng=method.rng).to(g.device)

    def __init__(self, method: PolicyGradientMethod) -> None:
        super().__init__(method)
        self.settings: CriticSettings = method.settings.critic
        self.critic_params = method.discriminator.critic_parameters(with_trunk=self.settings.trains_trunk)
        self.critic_optimizer = adam(self.critic_params, self.settings.lr)

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        s, d = self.settings, self.method.discriminator
        d.eval()  # rewards and values without dropout (our choice: deterministic rewards)
        with torch.set_grad_enabled(s.trains_trunk):
            hidden = d.hidden(samples)
        with torch.no_grad():
            rewards = token_rewards(d.real_logits(hidden))
        returns = discounted_returns(rewards, s.discount)
        values = d.values(hidden)
        critic_loss = _apply(self.critic_optimizer, F.mse_loss(values, returns), self.critic_params, s.grad_clip,
                             "critic loss")
        advantages = clipped_advantages(returns, values, s.advantage_clip)
        return advantages, {"mean_reward": rewards.mean().item(), "critic_loss": critic_loss,
                            "mean_advantage": advantages.mean().item()}

    def discriminator_round(self, negatives: torch.Tensor) -> dict[str, float]:
        m = self.method
        return causal_discriminator_round(m.discriminator, m.d_optimizer, m.real, negatives,
                                          epochs=m.common.d_epochs, batch_size=m.common.d_batch_size,
                                          grad_clip=self.settings.grad_clip, rng=m.rng)

    def stateful(self) -> dict[str, Any]:
        return {"critic_optimizer": self.critic_optimizer}


# ----------------------------------------------------------------------------- constant
class ConstantReward(RewardEstimator):
    """The same reward (``settings.reward``) for every token: the control of
    LantaoYu/SeqGAN#21 (no D)."""

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        value = self.method.settings.reward
        return torch.full(samples.shape, value, device=samples.device), {"mean_reward": value}


ESTIMATORS: dict[str, type[RewardEstimator]] = {
    "rollout": RolloutRewards, "partial_d": PartialDRewards, "critic": CriticRewards,
}
