"""LeakGAN (Guo et al., AAAI 2018): long text generation with leaked discriminator features.

- `generator`: `LeakGANGenerator` (manager + worker + the leaked feature extractor) and
  `leakgan_discriminator` (SeqGAN's CNN with a pad row)
- `objectives`: the bootstrapped rescaled activation, the manager's and worker's losses
- `rollout`: Monte-Carlo values of prefixes for the manager's reward
- `pretraining`: the generator's two optimisers, one pretraining epoch, one D pass (the
  interleaved pretraining's parts) and the official code's sharpening

The adversarial method is `seqgan_core.methods.leakgan.LeakGAN` (params
``adversarial.method: leakgan``, with ``generator.kind: leakgan``).

Defaults follow the paper where it says something (eq. 5's sliding goal, eq. 9's
per-step manager reward, eq. 11's intrinsic reward, the rank-based rescale, softmax
scale 1) and the official synthetic code (CR-Gjx/LeakGAN ``Synthetic Data/``) for sizes,
learning rates and schedule. The paper's equations are quoted from the project's
reference notes, not from a copy of the paper. Where the code departs from the paper:

Each item: what the code does -> what is here.

- goal held for c steps (sum of the previous segment's sub-goals) -> ``goal_window="segment"``
- one manager reward per segment (rollouts from c, 2c, ..., T-c, plus D(x)) -> follows
  ``goal_window``
- intrinsic reward cos(f_{t+1} - f_{segment start}, G) -> follows ``goal_window``
- rescale ranks in dictionary order, not by D's value (LeakGAN#17) ->
  ``rank_order="first_appearance"``
- cosines reduced to one batch mean before Q or the worker's log-probs multiply them ->
  ``cosine_reduction="batch_mean"``
- logits x 1.5 on D's negatives, evaluation samples and the first 2 training steps ->
  ``temperature_trick="code"``; in evaluation a labelled second figure only
- the teacher-forced graph sums the sub-goals one step later than the sampling graph ->
  not offered: one goal for sampling and scoring
- rollouts re-read the last given prefix's feature, lagging the manager a step -> not
  offered: rollouts continue `sample`'s recurrence
- ``goal_init`` is one learned vector per row of the fixed batch of 64 -> one vector
- rescaled rewards divided by the rollout count -> left out: a constant factor Adam does
  not see; likewise the pretraining manager loss's division by B*T/c after its mean
- D's leaked feature after dropout (keep-prob fed 1.0 for G) -> the highway output: the
  same tensor
- D's real sequences drawn afresh from the oracle for every pass -> a fresh subset of
  the training data (as every method's D round)
"""
from .generator import LeakGANGenerator, leakgan_discriminator
from .objectives import rescaled_activation
from .pretraining import (CODE_SHARPENING, GeneratorOptimizers, code_temperatures, discriminator_pass,
                          generator_optimizers, pretrain_generator_epoch, sharpened_samples)

__all__ = [
    "CODE_SHARPENING", "GeneratorOptimizers", "LeakGANGenerator", "code_temperatures", "discriminator_pass",
    "generator_optimizers", "leakgan_discriminator", "pretrain_generator_epoch", "rescaled_activation",
    "sharpened_samples",
]
