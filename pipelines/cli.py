"""`seqgan`: the command line. Heavy libraries are imported inside each command."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn


def cmd_params_check(args: argparse.Namespace) -> None:
    from .config import load_params

    load_params(args.file)
    print(f"{args.file}: ok")


def cmd_profile(args: argparse.Namespace) -> None:
    from .config import apply_profile

    source = apply_profile(args.name)
    print(f"params.yaml <- {source}; run `dvc repro` (stages whose params changed will re-run)")


def cmd_stages(args: argparse.Namespace) -> None:
    from .stage_graph import load_stage_graph

    for stage in load_stage_graph(pipeline=args.pipeline):
        print(f"{stage.name:40s} after: {', '.join(stage.upstream) or '-'}")


def cmd_generate(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    from .registry import generate, load_generator_model

    _require_store()
    model = _opened(args.model, load_generator_model)
    try:
        lines = generate(model, args.n, temperature=args.temperature, seed=args.seed, prefix=args.prefix)
    except MlflowException as exc:  # the model refused the request (a bad prefix, n, temperature)
        raise UsageError(exc.message) from None
    for line in lines:
        print(line)


def cmd_serve(args: argparse.Namespace) -> None:
    from .registry import model_info
    from .serving import serve

    _require_store()
    _opened(args.model, model_info)  # here, not in the server process, which would print MLflow's traceback
    raise SystemExit(serve(args.model, host=args.host, port=args.port, workers=args.workers))


def cmd_sweep(args: argparse.Namespace) -> None:
    from .executables import executable
    from .sweep import run, widen_from_args

    widen_from_args(args.methods, args.seeds)
    code = run(executable("dvc"))
    if code == 0:
        print("sweep done: comparison/results.md (the answer), summary.md, frontier_<experiment>.png")
    raise SystemExit(code)


def cmd_promote(args: argparse.Namespace) -> None:
    from .registry import promote_version

    _require_store()
    decision = promote_version(args.model, args.version, margin=args.margin)
    print(decision.summary())


def cmd_rollback(args: argparse.Namespace) -> None:
    from .registry import rollback

    _require_store()
    rollback(args.model, args.version, reason=args.reason)
    print(f"{args.model}@champion -> version {args.version}")


class UsageError(RuntimeError):
    """A command cannot do what was asked: the message names the cause and the fix."""


def _require_store() -> None:
    """For the commands that read an existing store: MLflow would create an empty SQLite file
    where there is none (the default mlflow.db is relative to the current directory) and
    then report the model missing instead."""
    from .tracking import sqlite_file, tracking_uri

    path = sqlite_file(tracking_uri())
    if path is not None and not path.exists():
        raise UsageError(f"no MLflow store at {path.resolve()}; run from the repository root or set "
                         "MLFLOW_TRACKING_URI")


def _opened(uri: str, open_model):
    """``open_model(uri)``, with MLflow's error for an unknown name, version or alias (its
    message names which) as a UsageError."""
    from mlflow.exceptions import MlflowException

    try:
        return open_model(uri)
    except MlflowException as exc:
        raise UsageError(f"cannot load {uri}: {exc.message.splitlines()[0]} (list the registered versions "
                         "with `mlflow ui`, or give models:/NAME/VERSION or models:/NAME@ALIAS)") from None


def _store_failure(exc: Exception) -> str | None:
    """The message for an error of the MLflow store (a registered model or version that is
    not there, a file that is no MLflow database), None for any other exception."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    from .tracking import tracking_uri

    if isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return (f"{exc.message.splitlines()[0]} in the MLflow store {tracking_uri()} (list its registered models "
                "and versions with `mlflow ui`, or set MLFLOW_TRACKING_URI to the store that has them)")
    if isinstance(exc, MlflowException):
        return f"MLflow refused: {exc.message.splitlines()[0]} (store {tracking_uri()})"
    if isinstance(exc, SQLAlchemyError):
        cause = getattr(exc, "orig", None) or str(exc).splitlines()[0]
        return (f"the MLflow store {tracking_uri()} cannot be read ({cause}): set MLFLOW_TRACKING_URI to an "
                "MLflow store, or move the file away and let the pipeline create a new one")
    return None


def _bounded(kind: type, low: float, what: str, high: float | None = None):
    """An argparse type: a finite number of `kind` in [low, high) (no upper bound when
    ``high`` is None), refused with a message otherwise."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        too_high = high is not None and not value < high
        if not value >= low or value != value or value == float("inf") or too_high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


def _temperature(text: str) -> float:
    """An argparse type: a sampling temperature as seqgan_core's samplers take it (imported
    here, only when --temperature is given: seqgan_core imports torch)."""
    from seqgan_core.sampling import check_temperature

    try:
        value = float(text)
        check_temperature(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    from .registry.model import SEED_LIMIT

    parser = argparse.ArgumentParser(prog="seqgan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="validate params.yaml")
    p.add_argument("action", choices=["check"])
    p.add_argument("--file", default="params.yaml")
    p.set_defaults(func=cmd_params_check)

    p = sub.add_parser("profile", help="switch params.yaml to a profile in profiles/ (small, paper, ...)")
    p.add_argument("name")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("stages", help="list the DVC stages in run order")
    p.add_argument("--pipeline", choices=["training", "comparison"], default="training",
                   help="dvc.yaml (training) or comparison/dvc.yaml (with the training stages it needs)")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser("generate", help="sample from a registered generator")
    p.add_argument("--model", required=True, help="e.g. models:/seqgan-generator@champion")
    p.add_argument("-n", type=_bounded(int, 1, "a whole number >= 1"), default=10)
    p.add_argument("--temperature", type=_temperature, default=1.0)
    p.add_argument("--seed", type=_bounded(int, 0, f"a whole number in [0, {SEED_LIMIT})", high=SEED_LIMIT), default=0)
    p.add_argument("--prefix", default=None, help="fixed start: token ids (synthetic) or text (corpora)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("serve", help="serve a registered generator over HTTP (`mlflow models serve`, "
                                     "stopped cleanly by Ctrl-C or SIGTERM)")
    p.add_argument("--model", required=True, help="e.g. models:/seqgan-generator@champion")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_bounded(int, 1, "a port number"), default=5001)
    p.add_argument("--workers", type=_bounded(int, 1, "a whole number >= 1"), default=1)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("sweep", help="run the comparison sweep (comparison/dvc.yaml) with progress")
    p.add_argument("--methods", help="'all' (every method that trains generator.kind), or a comma-separated list "
                                     "(mle is always included); "
                                     "sets comparison.methods in params.yaml first")
    p.add_argument("--seeds", help="a count (5 = seeds 0-4) or a comma-separated list; sets comparison.seeds first")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("promote", help="run the promotion gate on a registered version")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--margin", type=_bounded(float, 0, "a finite number >= 0"), default=None,
                   help="override params' promotion margin")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="point `champion` back at an earlier version")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--reason", default="")
    p.set_defaults(func=cmd_rollback)
    return parser


def main(argv: list[str] | None = None) -> None:
    from .config import ParamsError
    from .registry import NotGateable
    from .stage_graph import NotRepositoryRoot

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ParamsError, UsageError, NotGateable, NotRepositoryRoot) as exc:
        _fail(str(exc))
    except Exception as exc:
        message = _store_failure(exc)
        if message is None:
            raise
        _fail(message)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1) from None


if __name__ == "__main__":
    main()
