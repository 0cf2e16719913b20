"""`python -m pipelines.cluster up|down|sweep|demo` (the Makefile's cluster-* targets).

- up [--workers K]: start a local cluster (pipelines/cluster/local.py) and print its settings;
- down: stop exactly what `up` started;
- sweep [--methods ...] [--seeds ...]: the comparison sweep of this clone's params.yaml on the
  cluster's workers (`sweep_flow`), then the summary; exit 1 if a cell failed or is stale;
- demo: up, a 4-cell sweep on the tiny profile (synthetic; MLE and SeqGAN; seeds 0 and 1) in a
  scratch clone, a tiny retrain through the gate, the summary and the champion, down; exit 1
  if any of it (the teardown included) failed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ..config import ParamsError
from .local import State, client_env, down, up
from .processes import ClusterError

DEFAULT_DIR = Path(".cluster")
DEMO_COMPARISON = {"experiments": ["synthetic"], "methods": ["mle", "seqgan"], "seeds": [0, 1]}


def _state(run_dir: Path) -> State:
    state = State.load(run_dir.resolve())
    if state is None:
        raise SystemExit(f"error: no cluster recorded in {run_dir}: `make cluster-up` first")
    return state


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    state = up(Path("."), args.dir, workers=args.workers)
    print(f"cluster up in {time.monotonic() - started:.0f} s ({args.workers} workers: {', '.join(state.workers)}); "
          f"to use it:  source {Path(state.run_dir) / 'cluster.env'}")
    print("\n".join(f"  {k}={v}" for k, v in state.env.items()))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    lines = down(args.dir)
    print("\n".join(lines) if lines else f"no cluster recorded in {args.dir}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    os.environ.update(client_env(_state(args.dir)))  # before prefect reads its settings
    from ..sweep import widen_from_args
    from ..sweep_flows import sweep_flow

    widen_from_args(args.methods, args.seeds)  # before the flow: the workers' clones read params.yaml
    started = time.monotonic()
    outcome = sweep_flow(resubmits=args.resubmits, timeout_s=args.timeout, lost_after_s=args.lost_after)
    print(f"sweep on the cluster: {time.monotonic() - started:.0f} s")
    for key, cell in outcome["cells"].items():
        where = ", ".join(f"{a['worker']} {a['state']}" for a in cell["attempts"])
        print(f"  {cell['status']:6} {key}  [{where}]{'  ' + cell['reason'] if cell['reason'] else ''}")
    print(Path("comparison/summary.md").read_text(encoding="utf-8"))
    if outcome["stale"]:
        print(f"error: stale here (workers ran other code or params): {sorted(outcome['stale'])}", file=sys.stderr)
    if outcome["failed"]:
        print(f"error: failed cells: {', '.join(outcome['failed'])}", file=sys.stderr)
    return 1 if outcome["failed"] or outcome["stale"] else 0


def _champion(state: State, model: str = "seqgan-generator") -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=state.env["MLFLOW_TRACKING_URI"])
    version = client.get_model_version_by_alias(model, "champion")
    metrics = {k.split(".", 1)[1]: v for k, v in version.tags.items() if k.startswith("metric.")}
    return (f"champion: {model} v{version.version} (run {version.run_id}): NLL-oracle {metrics.get('nll_oracle')}, "
            f"NLL-test {metrics.get('nll_test')}; gate: {version.tags.get('gate.reason', '')}")


def _retrain(state: State, timeout_s: float = 1200) -> None:
    os.environ.update(client_env(state))
    from prefect.deployments import run_deployment

    run = run_deployment("seqgan-retrain/retrain", parameters={"experiment": "synthetic", "profile": "tiny", "seed": 0},
                         timeout=timeout_s, as_subflow=False)
    if not run.state.is_completed():
        raise ClusterError(f"retrain flow run {run.id} ended {run.state.type.value}: {run.state.message}")


def cmd_demo(args: argparse.Namespace) -> int:
    failures = []
    started = time.monotonic()
    state = up(Path("."), args.dir, workers=args.workers)
    print(f"cluster up in {time.monotonic() - started:.0f} s; settings in {Path(state.run_dir) / 'cluster.env'}")
    try:
        scratch = Path(state.run_dir) / "aggregator"
        subprocess.run(["git", "clone", "--quiet", state.repo, str(scratch)], check=True)
        params = yaml.safe_load((scratch / "profiles/tiny.yaml").read_text(encoding="utf-8"))
        params["comparison"] = DEMO_COMPARISON
        (scratch / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        sweep = subprocess.run([sys.executable, "-m", "pipelines.cluster", "sweep", "--dir", state.run_dir],
                               cwd=scratch)
        if sweep.returncode != 0:
            failures.append(f"the sweep exited {sweep.returncode}")
        _retrain(state)
        print(_champion(state))
    except Exception as exc:  # report it, and still tear down
        failures.append(f"{type(exc).__name__}: {exc}")
    try:
        print("\n".join(down(args.dir)))
    except Exception as exc:
        failures.append(f"teardown: {exc}")
    print(f"demo: {time.monotonic() - started:.0f} s in all")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="run dir: state, logs, clones (default .cluster)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("up", cmd_up), ("demo", cmd_demo)):
        p = sub.add_parser(name, parents=[common])
        p.add_argument("--workers", type=int, default=2)
        p.set_defaults(func=func)
    sub.add_parser("down", parents=[common]).set_defaults(func=cmd_down)
    p = sub.add_parser("sweep", parents=[common])
    p.add_argument("--methods", help='comma-separated, or "all" (as `seqgan sweep`)')
    p.add_argument("--seeds", help='a count (5) or a list (0,3,7)')
    p.add_argument("--resubmits", type=int, default=1, help="times a stage whose worker was lost is submitted again")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds for the whole sweep")
    p.add_argument("--lost-after", type=float, default=None, help="seconds without a heartbeat before a worker is lost")
    p.set_defaults(func=cmd_sweep)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ClusterError, ParamsError) as exc:  # ParamsError: a --methods / --seeds the params refuse
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
