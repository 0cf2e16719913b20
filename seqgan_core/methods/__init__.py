"""Adversarial training methods, one class each, with the interface the pipeline's loop
calls (``name``, ``generator_kind``, ``trains_discriminator``, ``Settings``,
``generator_step``, ``discriminator_step``, ``stateful``).

- `policy_gradient`: `SeqGANMethod` ("seqgan", with a pluggable ``reward_estimator``:
  rollout, partial_d, critic) and the constant-reward control `PGConstantMethod`
  ("pg_constant")
- `rankgan`: `RankGANMethod` ("rankgan")
- `reward_estimators`: one small class per estimator
"""
from .policy_gradient import PGConstantMethod, PGConstantSettings, PolicyGradientMethod, SeqGANMethod, SeqGANSettings
from .rankgan import RankGANMethod, RankGANSettings
from .reward_estimators import CriticSettings, PartialDSettings, RolloutSettings

__all__ = [
    "CriticSettings",
    "PGConstantMethod",
    "PGConstantSettings",
    "PartialDSettings",
    "PolicyGradientMethod",
    "RankGANMethod",
    "RankGANSettings",
    "RolloutSettings",
    "SeqGANMethod",
    "SeqGANSettings",
]
