"""Per-token rewards for SeqGAN's policy-gradient loop (`methods.policy_gradient`), one
small class per estimator, each with the discriminator round that trains what it scores.

| ``reward_estimator`` | reward of token t | discriminator | cost per g-step |
| --- | --- | --- | --- |
| ``rollout`` (SeqGAN) | mean D of N rollout completions of y_1..y_t | SeqGAN CNN on whole sequences | B*N*(T-1) completions |
| ``partial_d`` (Li et al. 2017) | D(y_1..y_t) | the same CNN, trained on random prefixes | one D pass over B*T prefixes |
| ``critic`` (MaskGAN) | discounted sum of log sigma(d_s), s >= t, minus a learned V_t, clipped | per-token LSTM D with a value head | one LSTM pass over B sequences |

An estimator is built from (generator, discriminator, real, its settings, common, rng)
and offers ``weights(samples)`` -> ((B, T) weights of log p(y_t | y_<t), metrics),
``after_generator_update()``, ``discriminator_round(real, negatives)`` and ``stateful()``.
``common`` is the shared adversarial settings (batch_size, lr, grad_clip, n_rollouts,
d_lr, d_batch_size, d_epochs, d_negatives).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ..critic import (CausalDiscriminator, causal_discriminator_round, clipped_advantages, discounted_returns,
                      token_rewards)
from ..discriminator import Discriminator
from ..lstm import LSTMLanguageModel
from ..prefix_rewards import prefix_discriminator_round, prefix_rewards
from ..rollout import DelayedPolicy, rollout
from ..train import _apply, adam, discriminator_round
from .settings import check_choice, check_range


class RewardEstimator(Protocol):
    trains_discriminator: bool

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]: ...
    def after_generator_update(self) -> None: ...
    def discriminator_round(self, real: torch.Tensor, negatives: torch.Tensor) -> dict[str, float]: ...
    def stateful(self) -> dict[str, Any]: ...


# ------------------------------------------------------------------------------ rollout
@dataclass(frozen=True)
class RolloutSettings:
    """``rollout_policy``: "delayed" (the paper's beta, trailing the generator by
    ``rollout_rate`` after every generator update) or "current" (what the authors' code
    effectively does: its delayed update never reaches the rollout graph; the RankGAN
    code has the same defect). ``baseline``: "none" (the paper) or "batch_mean"."""
    rollout_policy: str = "delayed"
    rollout_rate: float = 0.8
    baseline: str = "none"

    def __post_init__(self) -> None:
        check_choice("rollout.rollout_policy", self.rollout_policy, ("delayed", "current"))
        check_range("rollout.rollout_rate", self.rollout_rate, low=0.0, high=1.0)
        check_choice("rollout.baseline", self.baseline, ("none", "batch_mean"))


class RolloutRewards:
    """SeqGAN: Q(t) from Monte-Carlo rollouts scored by D (`seqgan_core.rollout`); D's
    round is `seqgan_core.train.discriminator_round`. Uses the pipeline's CNN D as is."""
    trains_discriminator = True

    def __init__(self, generator: LSTMLanguageModel, discriminator: Discriminator, real: torch.Tensor,
                 settings: RolloutSettings, common: Any, rng: torch.Generator) -> None:
        self.generator, self.discriminator, self.real = generator, discriminator, real
        self.settings, self.common, self.rng = settings, common, rng
        self.d_optimizer = adam(discriminator.parameters(), common.d_lr)
        self.policy = DelayedPolicy(generator, settings.rollout_rate) if settings.rollout_policy == "delayed" else None

    def scorer(self, group_size: int):
        """What scores the completions: D (RankGAN: the ranker against fresh references)."""
        return self.discriminator

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        policy = self.policy.model if self.policy is not None else self.generator
        rewards = rollout(policy, self.scorer(len(samples)), samples, self.common.n_rollouts, rng=self.rng)
        weights = rewards - rewards.mean() if self.settings.baseline == "batch_mean" else rewards
        return weights, {"mean_reward": rewards.mean().item(), "final_reward": rewards[:, -1].mean().item()}

    def after_generator_update(self) -> None:
        if self.policy is not None:
            self.policy.update(self.generator)

    def discriminator_round(self, real: torch.Tensor, negatives: torch.Tensor) -> dict[str, float]:
        return discriminator_round(self.discriminator, self.d_optimizer, real, negatives, epochs=self.common.d_epochs,
                                   batch_size=self.common.d_batch_size, rng=self.rng)

    def stateful(self) -> dict[str, Any]:
        return {"d_optimizer": self.d_optimizer, **({"rollout_policy": self.policy.model} if self.policy else {})}


# ---------------------------------------------------------------------------- partial_d
@dataclass(frozen=True)
class PartialDSettings:
    """``baseline``: "step_mean" subtracts b_t, the batch's mean reward at step t (the
    paper subtracts a baseline b(y_1..t) without fixing it here; its released code offers
    a learned critic or an average), or "none"."""
    baseline: str = "step_mean"

    def __post_init__(self) -> None:
        check_choice("partial_d.baseline", self.baseline, ("step_mean", "none"))


class PartialDRewards:
    """Li et al. (2017): r_t = D(y_1..y_t) from a D trained on one random prefix per
    sequence (`seqgan_core.prefix_rewards`). Continues training the pipeline's CNN D (whose
    whole-sequence pretraining covers the prefixes of length T)."""
    trains_discriminator = True

    def __init__(self, generator: LSTMLanguageModel, discriminator: Discriminator, real: torch.Tensor,
                 settings: PartialDSettings, common: Any, rng: torch.Generator) -> None:
        self.discriminator, self.settings, self.common, self.rng = discriminator, settings, common, rng
        self.d_optimizer = adam(discriminator.parameters(), common.d_lr)

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        rewards = prefix_rewards(self.discriminator, samples)
        weights = rewards - rewards.mean(dim=0) if self.settings.baseline == "step_mean" else rewards
        return weights, {"mean_reward": rewards.mean().item(), "final_reward": rewards[:, -1].mean().item()}

    def after_generator_update(self) -> None:
        pass

    def discriminator_round(self, real: torch.Tensor, negatives: torch.Tensor) -> dict[str, float]:
        return prefix_discriminator_round(self.discriminator, self.d_optimizer, real, negatives,
                                          epochs=self.common.d_epochs, batch_size=self.common.d_batch_size, rng=self.rng)

    def stateful(self) -> dict[str, Any]:
        return {"d_optimizer": self.d_optimizer}


# ------------------------------------------------------------------------------- critic
@dataclass(frozen=True)
class CriticSettings:
    """MaskGAN's code defaults: ``discount`` 0.9 (its IMDB launch: 0.8835659),
    ``advantage_clip`` 5, gradient clip 10 for D and the critic, the critic trains only its
    head (``critic_trains_trunk`` False). ``critic_lr`` 5e-4 (TextBox's MaskGAN and Li et
    al.'s critic; the IMDB launch used 9.8e-4). The D sizes are ours (see `CausalDiscriminator`)."""
    discount: float = 0.9
    advantage_clip: float = 5.0
    critic_lr: float = 5e-4
    critic_trains_trunk: bool = False
    grad_clip: float = 10.0
    emb_dim: int = 64
    hidden_dim: int = 64
    num_layers: int = 2
    dropout: float = 0.5

    def __post_init__(self) -> None:
        check_range("critic.discount", self.discount, low=0.0, high=1.0)
        check_range("critic.advantage_clip", self.advantage_clip, low=0.0, low_open=True)
        check_range("critic.critic_lr", self.critic_lr, low=0.0, low_open=True)
        check_choice("critic.critic_trains_trunk", self.critic_trains_trunk, (False, True))
        check_range("critic.grad_clip", self.grad_clip, low=0.0)
        for name in ("emb_dim", "hidden_dim", "num_layers"):
            check_range(f"critic.{name}", getattr(self, name), low=1, integer=True)
        check_range("critic.dropout", self.dropout, low=0.0, high=1.0, high_open=True)


class CriticRewards:
    """MaskGAN's actor-critic with every position missing (`seqgan_core.critic`): the
    advantage clip(R_t - V_t) of discounted log sigma(d_t) returns over a learned value.
    Builds its own per-token D from ``rng``, unless ``discriminator`` already is a
    `CausalDiscriminator` (e.g. one pretrained with `causal_discriminator_round`); the
    pipeline's CNN D is not used. The critic is trained on each g-step's samples, before
    the generator update, whose baseline is the critic's value before that step."""
    trains_discriminator = True

    def __init__(self, generator: LSTMLanguageModel, discriminator: Discriminator | CausalDiscriminator,
                 real: torch.Tensor, settings: CriticSettings, common: Any, rng: torch.Generator) -> None:
        if not isinstance(discriminator, CausalDiscriminator):
            discriminator = CausalDiscriminator(generator.vocab_size, settings.emb_dim, settings.hidden_dim,
                                                settings.num_layers, settings.dropout, rng=rng).to(generator.device)
        self.discriminator, self.settings, self.common, self.rng = discriminator, settings, common, rng
        self.d_optimizer = adam(discriminator.classifier_parameters(), common.d_lr)
        self.critic_params = discriminator.critic_parameters(with_trunk=settings.critic_trains_trunk)
        self.critic_optimizer = adam(self.critic_params, settings.critic_lr)

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        s, d = self.settings, self.discriminator
        d.eval()  # rewards and values without dropout (our choice: deterministic rewards)
        with torch.set_grad_enabled(s.critic_trains_trunk):
            hidden = d.hidden(samples)
        with torch.no_grad():
            rewards = token_rewards(d.real_logits(hidden))
        returns = discounted_returns(rewards, s.discount)
        values = d.values(hidden)
        critic_loss = _apply(self.critic_optimizer, F.mse_loss(values, returns), self.critic_params, s.grad_clip, "critic loss")
        advantages = clipped_advantages(returns, values, s.advantage_clip)
        return advantages, {"mean_reward": rewards.mean().item(), "critic_loss": critic_loss,
                            "mean_advantage": advantages.mean().item()}

    def after_generator_update(self) -> None:
        pass

    def discriminator_round(self, real: torch.Tensor, negatives: torch.Tensor) -> dict[str, float]:
        return causal_discriminator_round(self.discriminator, self.d_optimizer, real, negatives,
                                          epochs=self.common.d_epochs, batch_size=self.common.d_batch_size,
                                          grad_clip=self.settings.grad_clip, rng=self.rng)

    def stateful(self) -> dict[str, Any]:
        return {"causal_discriminator": self.discriminator, "d_optimizer": self.d_optimizer,
                "critic_optimizer": self.critic_optimizer}


# ----------------------------------------------------------------------------- constant
class ConstantReward:
    """The same reward for every token: the control of LantaoYu/SeqGAN#21 (no D)."""
    trains_discriminator = False

    def __init__(self, value: float) -> None:
        self.value = value

    def weights(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return torch.full(samples.shape, self.value, device=samples.device), {"mean_reward": self.value}

    def after_generator_update(self) -> None:
        pass

    def discriminator_round(self, real: torch.Tensor, negatives: torch.Tensor) -> dict[str, float]:
        return {}

    def stateful(self) -> dict[str, Any]:
        return {}


ESTIMATORS = {"rollout": RolloutRewards, "partial_d": PartialDRewards, "critic": CriticRewards}
