"""The adversarial-training methods, one table: `METHODS[name]` is the class that trains a
pretrained generator by that method (the value of params `adversarial.method`; its
settings are params `methods.<name>`).

Every method gets the same budget (adversarial batches x generator steps of
``batch_size`` sequences) and the same interface (`base.AdversarialMethod`), so the
pipeline's loop, resume, tracking and comparison run any of them unchanged. A new method
is a module here with its class (and its `settings.Settings` dataclass) added to the table.
"""
from __future__ import annotations

from .base import AdversarialMethod, Common
from .baselines import ContinuedMLE, Pretrained, ScheduledSampling, Untrained
from .gsgan import GSGAN
from .leakgan import LeakGAN
from .maligan import MaliGANBasic, MaliGANFull
from .policy_gradient import PGBleu, PGConstant, SeqGAN
from .rankgan import RankGAN
from .relgan import RelGAN
from .settings import Settings, bounded, check_bounds, nested
from .textgan import TextGAN

# In the order of the papers' tables: SeqGAN's Table 1 (the pretrained start beside its
# untrained row), then MaliGAN's; then the constant-reward control, RankGAN, LeakGAN, and the
# continuous relaxations (GSGAN, TextGAN, RelGAN).
METHODS: dict[str, type[AdversarialMethod]] = {
    cls.name: cls for cls in (Untrained, Pretrained, ContinuedMLE, ScheduledSampling, PGBleu, SeqGAN, MaliGANBasic,
                              MaliGANFull, PGConstant, RankGAN, LeakGAN, GSGAN, TextGAN, RelGAN)
}

__all__ = ["METHODS", "AdversarialMethod", "Common", "Settings", "bounded", "check_bounds", "nested"]
