"""Stage `pretrain@<experiment>-<seed>` (comparison/dvc.yaml): one training seed's MLE
generator and pretrained discriminator, which every method of that seed starts from.

The same code as the training pipeline's `pretrain_generator` and `pretrain_discriminator`,
with the seed replaced: pretraining variance is part of a method's variance, and methods
pair by seed. Writes comparison/runs/<experiment>/seed<seed>/pretraining/.

    python -m pipelines.stages.sweep_pretrain <experiment> <seed>
"""
from __future__ import annotations

from ..contract import SweepCell
from ..datasets import load_dataset
from ..runtime import run_main, stage, sweep_cell_args
from . import pretrain_discriminator, pretrain_generator


def main() -> None:
    args = sweep_cell_args("sweep_pretrain")
    cell = SweepCell(args.experiment, args.seed)
    dvc_stage = f"comparison/dvc.yaml:pretrain@{args.experiment}-{args.seed}"
    with stage("pretrain", args.experiment, pipeline="comparison", seed=args.seed, dvc_stage=dvc_stage) as ctx:
        dataset = load_dataset(ctx.artifacts, ctx.device)
        pretrain_generator.pretrain(ctx, dataset, pretrain_generator.Outputs(
            cell.generator_mle, cell.pretrain_curve, None, None, cell.checkpoint("pretrain_generator")))
        pretrain_discriminator.pretrain(ctx, dataset, cell.generator_mle, cell.discriminator_pre, None)


if __name__ == "__main__":
    run_main(main)
