"""Great Expectations suites that gate stage outputs before they are written.

A stage validates what it is about to write (oracle samples, the encoded corpus, generated
samples); a failed suite raises `DataValidationError`, whose message lists each failed
expectation with its row counts and example values, and the stage exits before touching
its outputs.

`import great_expectations` takes seconds, so it happens only inside the functions that
validate; this module's top level imports only the standard library and numpy (pandas is
imported lazily too), because `pipelines.runtime` imports `DataValidationError` from here in
every stage. One ephemeral GX context per process is built on first use and reused.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas

__all__ = ["DataValidationError", "validate_corpus", "validate_token_sequences"]

MAX_EXAMPLES = 5
_TEXT_WIDTH = 40
_CLOSING = "Fix the input or the params named above; earlier outputs are untouched."
_SHOWN_KWARGS = ("value", "min_value", "max_value", "strict_min", "strict_max", "value_set",
                 "column_A", "column_B", "or_equal", "row_condition", "mostly")


class DataValidationError(RuntimeError):
    """A suite failed. `str(error)` is a readable multi-line summary: the suite, then one entry
    per failed expectation (type, column, key kwargs, failed rows out of all, up to 5 examples),
    then hints and what to do.

    `failures` is structured, one dict per failed expectation, with the keys
    `expectation`, `column`, `kwargs`, `description`, `unexpected_count`, `element_count`,
    `observed_value`, `examples` (GX's partial_unexpected_list, at most 5), `example_rows`
    (the same rows with their context columns, e.g. `text` or `row`) and `exception`;
    values are plain Python (JSON-serialisable).
    """

    suite: str
    failures: list[dict]

    def __init__(self, suite: str, failures: list[dict], hints: Sequence[str] = (),
                 evaluated: int | None = None, rows: int | None = None) -> None:
        self.suite = suite
        self.failures = list(failures)
        self.hints = list(dict.fromkeys(hints))  # unique, in order
        self.evaluated = evaluated
        self.rows = rows
        super().__init__(self._summary())

    def __reduce__(self):  # picklable despite the custom signature (Prefect/multiprocessing)
        return (type(self), (self.suite, self.failures, self.hints, self.evaluated, self.rows))

    def _summary(self) -> str:
        n = len(self.failures)
        of = f" of {self.evaluated}" if self.evaluated is not None else ""
        on = f" on {self.rows} rows" if self.rows is not None else ""
        lines = [f"data validation failed: suite '{self.suite}': {n}{of} expectation(s) failed{on}"]
        for failure in self.failures:
            lines.extend(_describe_failure(failure))
        lines.extend(f"  hint: {hint}" for hint in self.hints)
        lines.append(_CLOSING)
        return "\n".join(lines)


# --------------------------------------------------------------------------- gates
def validate_token_sequences(tokens: np.ndarray, *, suite: str, vocab_size: int, seq_len: int,
                             expected_rows: int | None = None, min_rows: int = 1) -> dict:
    """Gate for (n, seq_len) integer token arrays: oracle samples, encoded corpus splits,
    generated samples.

    The shape is checked in numpy first (a wrong rank or width raises at once). Then one row
    per sequence (its min and max token id) is validated by GX: the row count (== expected_rows
    if given, else >= min_rows), every id in [0, vocab_size), no missing (NaN/None) tokens.
    Returns {suite, rows, success, evaluated_expectations, min_token_id, max_token_id}.
    """
    array = _as_token_array(tokens, suite)
    if array.ndim != 2 or array.shape[1] != seq_len:
        got = "x".join(map(str, array.shape)) or "a scalar"
        raise DataValidationError(suite, [_plain({
            "expectation": "array_shape", "column": None, "kwargs": {"ndim": 2, "width": seq_len},
            "description": f"a 2-D array (sequences x seq_len={seq_len})",
            "unexpected_count": None, "element_count": None, "observed_value": list(array.shape),
            "examples": [], "example_rows": [], "exception": None,
        })], [f"got shape {got}; expected (n, {seq_len}): check seq_len / max_len in params.yaml "
              "against the data"])

    import pandas as pd

    n = array.shape[0]
    if np.issubdtype(array.dtype, np.floating):
        row_min = array.min(axis=1) if n and seq_len else np.zeros(n)  # NaN propagates: a null row
        row_max = array.max(axis=1) if n and seq_len else np.zeros(n)
    else:
        row_min = array.min(axis=1) if n and seq_len else np.zeros(n, dtype=np.int64)
        row_max = array.max(axis=1) if n and seq_len else np.zeros(n, dtype=np.int64)
    frame = pd.DataFrame({"row": np.arange(n), "min_token_id": row_min, "max_token_id": row_max})

    gx = _gx()
    E = gx.expectations
    if expected_rows is not None:
        count = E.ExpectTableRowCountToEqual(value=int(expected_rows), description=f"exactly {expected_rows} sequences")
    else:
        count = E.ExpectTableRowCountToBeBetween(min_value=int(min_rows), description=f"at least {min_rows} sequence(s)")
    expectations = [
        count,
        E.ExpectColumnValuesToNotBeNull(column="min_token_id", description="no missing (NaN/None) tokens"),
        E.ExpectColumnValuesToBeBetween(column="min_token_id", min_value=0, description="every token id >= 0",
                                        meta={"hint": "negative token ids: the array is not token ids (or overflowed)"}),
        E.ExpectColumnValuesToBeBetween(column="max_token_id", max_value=int(vocab_size) - 1,
                                        description=f"every token id < vocab_size={vocab_size}",
                                        meta={"hint": f"ids >= {vocab_size}: the data and vocab_size disagree "
                                                      "(stale outputs from other params?)"}),
    ]
    result = _run(suite, expectations, frame, context_columns=["row"])
    summary = _check(suite, expectations, result, rows=n)
    finite_min = row_min[~np.isnan(row_min)] if row_min.dtype.kind == "f" else row_min
    finite_max = row_max[~np.isnan(row_max)] if row_max.dtype.kind == "f" else row_max
    summary["min_token_id"] = _plain(finite_min.min()) if finite_min.size else None
    summary["max_token_id"] = _plain(finite_max.max()) if finite_max.size else None
    return summary


def validate_corpus(lines: pandas.DataFrame, *, max_len: int, min_coverage: float,
                    min_train: int, min_test: int) -> dict:
    """Gate for the preprocessed real corpus.

    `lines` has one row per kept sequence: `split` ('train'|'test'), `n_tokens` (tokens before
    padding), `n_unknown` (tokens mapped to <unk>), `text` (the cleaned line, shown in examples).
    Two GX batches: the lines themselves (1 <= n_tokens <= max_len, 0 <= n_unknown <= n_tokens,
    split in {train, test}, train/test row counts via row conditions) and a one-row summary
    whose `coverage` = 1 - sum(n_unknown)/sum(n_tokens) must be >= min_coverage (exact, not a mean
    of per-line fractions). Returns {suite, rows, success, evaluated_expectations, train_rows,
    test_rows, tokens, unknown, coverage}.
    """
    import pandas as pd

    suite = "corpus"
    required = ["split", "n_tokens", "n_unknown", "text"]
    missing = [c for c in required if c not in getattr(lines, "columns", ())]
    if missing:
        raise DataValidationError(suite, [_plain({
            "expectation": "frame_columns", "column": None, "kwargs": {"required": required},
            "description": f"columns {', '.join(required)}",
            "unexpected_count": len(missing), "element_count": len(required),
            "observed_value": [str(c) for c in getattr(lines, "columns", [])], "examples": missing,
            "example_rows": [], "exception": None,
        })], ["the corpus frame lacks columns " + ", ".join(missing) + " (a bug in the stage that builds it)"])

    frame = lines[required].reset_index(drop=True)
    n_tokens = pd.to_numeric(frame["n_tokens"], errors="coerce")
    n_unknown = pd.to_numeric(frame["n_unknown"], errors="coerce")
    tokens, unknown = int(n_tokens.sum()), int(n_unknown.sum())
    # No tokens at all: nothing is covered (the row-count expectations say why).
    coverage = 1.0 - unknown / tokens if tokens > 0 else 0.0
    train_rows = int((frame["split"] == "train").sum())
    test_rows = int((frame["split"] == "test").sum())

    gx = _gx()
    E = gx.expectations
    line_checks = [
        E.ExpectColumnValuesToNotBeNull(column="n_tokens", description="every line has a token count"),
        E.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=1, description="no empty lines",
                                        meta={"hint": "empty lines should be dropped by preprocessing; check the corpus file"}),
        E.ExpectColumnValuesToBeBetween(column="n_tokens", max_value=int(max_len),
                                        description=f"no line longer than corpus.max_len={max_len}",
                                        meta={"hint": "over-long lines must be dropped or truncated "
                                                      "(corpus.overlong) or corpus.max_len raised"}),
        E.ExpectColumnValuesToBeBetween(column="n_unknown", min_value=0, description="n_unknown >= 0"),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="n_tokens", column_B="n_unknown", or_equal=True,
                                                  description="n_unknown <= n_tokens"),
        E.ExpectColumnValuesToNotBeNull(column="split", description="every line has a split"),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test"],
                                      description="split is 'train' or 'test'"),
        E.ExpectTableRowCountToBeBetween(min_value=int(min_train), row_condition="split == 'train'",
                                         condition_parser="pandas", description=f"at least {min_train} train lines",
                                         meta={"hint": "too few train lines: use a larger corpus, or raise "
                                                       "corpus.max_len (over-long lines are dropped)"}),
        E.ExpectTableRowCountToBeBetween(min_value=int(min_test), row_condition="split == 'test'",
                                         condition_parser="pandas", description=f"at least {min_test} test lines",
                                         meta={"hint": "too few test lines: raise corpus.test_fraction or use a "
                                                       "larger corpus"}),
    ]
    summary_frame = pd.DataFrame({"tokens": [tokens], "unknown": [unknown], "coverage": [coverage]})
    summary_checks = [
        E.ExpectColumnMinToBeBetween(
            column="coverage", min_value=float(min_coverage),
            description=f"vocabulary coverage 1 - unknown/tokens >= corpus.min_coverage={min_coverage}",
            meta={"hint": f"measured coverage {coverage:.4f} ({unknown} of {tokens} tokens are <unk>) is below "
                          f"corpus.min_coverage={min_coverage}: raise corpus.vocab_size (or lower "
                          "corpus.min_count) or lower corpus.min_coverage"}),
    ]
    line_result = _run("corpus.lines", line_checks, frame, context_columns=["text"])
    summary_result = _run("corpus.summary", summary_checks, summary_frame, context_columns=None)
    failures = _failures(line_checks, line_result) + _failures(summary_checks, summary_result)
    evaluated = len(line_checks) + len(summary_checks)
    if failures:
        raise DataValidationError(suite, failures, _hints(failures), evaluated=evaluated, rows=len(frame))
    return {"suite": suite, "rows": len(frame), "success": True, "evaluated_expectations": evaluated,
            "train_rows": train_rows, "test_rows": test_rows, "tokens": tokens, "unknown": unknown,
            "coverage": coverage}


# ------------------------------------------------------------------------ GX plumbing
@functools.lru_cache(maxsize=1)
def _context() -> SimpleNamespace:
    """The process's GX objects: one ephemeral context, a pandas datasource, a dataframe asset
    and its whole-dataframe batch definition (the frame itself comes with each run)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # tqdm bars on stderr would clutter every stage log.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("pipeline").add_dataframe_asset("frame")
    batch = asset.add_batch_definition_whole_dataframe("whole_frame")
    return SimpleNamespace(gx=gx, expectations=gxe, context=context, batch=batch)


def _gx() -> SimpleNamespace:
    from great_expectations.data_context.data_context.context_factory import project_manager, set_context

    handle = _context()
    try:
        current = project_manager.get_current_project()
    except Exception:  # noqa: BLE001 - none set
        current = None
    if current is not handle.context:  # another get_context() in this process took over
        set_context(handle.context)
    return handle


def _run(name: str, expectations: list, frame: pandas.DataFrame, context_columns: list[str] | None):
    handle = _gx()
    gx, context = handle.gx, handle.context
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=handle.batch, suite=suite))
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    if context_columns:
        result_format["unexpected_index_column_names"] = context_columns
    return definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)


def _check(suite: str, expectations: list, result, *, rows: int) -> dict:
    failures = _failures(expectations, result)
    if failures:
        raise DataValidationError(suite, failures, _hints(failures), evaluated=len(expectations), rows=rows)
    return {"suite": suite, "rows": rows, "success": True, "evaluated_expectations": len(expectations)}


def _failures(expectations: list, result) -> list[dict]:
    """Failed expectations as plain dicts, in the suite's order (GX reorders its results)."""
    order = {e.id: i for i, e in enumerate(expectations) if getattr(e, "id", None)}
    failed = [r for r in result.results if not r.success]
    failed.sort(key=lambda r: order.get(getattr(r.expectation_config, "id", None), len(order)))
    out = []
    for res in failed:
        config, details = res.expectation_config, dict(res.result or {})
        kwargs = dict(config.kwargs)
        column = kwargs.pop("column", None)
        kwargs.pop("batch_id", None)
        if isinstance(kwargs.get("row_condition"), dict):  # GX stores a pass-through filter dict
            rc = kwargs["row_condition"]
            kwargs["row_condition"] = rc.get("pass_through_filter", rc)
        info = res.exception_info or {}
        exception = info.get("exception_message") if info.get("raised_exception") else None
        out.append(_plain({
            "expectation": config.type,
            "column": column,
            "kwargs": {k: v for k, v in kwargs.items() if k in _SHOWN_KWARGS and v is not None},
            "description": config.description,
            "unexpected_count": details.get("unexpected_count"),
            "element_count": details.get("element_count"),
            "observed_value": details.get("observed_value"),
            "examples": list(details.get("partial_unexpected_list") or [])[:MAX_EXAMPLES],
            "example_rows": list(details.get("partial_unexpected_index_list") or [])[:MAX_EXAMPLES],
            "exception": exception.strip().splitlines()[-1] if exception else None,
            "hint": (config.meta or {}).get("hint"),
        }))
    return out


def _hints(failures: Iterable[dict]) -> list[str]:
    return [f["hint"] for f in failures if f.get("hint")]


# ----------------------------------------------------------------------- formatting
def _describe_failure(f: dict) -> list[str]:
    target = f"column={f['column']}" if f.get("column") else None
    args = ", ".join(filter(None, [target] + [f"{k}={_short(v)}" for k, v in f["kwargs"].items()]))
    head = f"  x {f['expectation']}({args})"
    if f.get("description"):
        head += f": {f['description']}"
    if f.get("exception"):
        return [head, f"      raised: {f['exception']}"]
    if f.get("unexpected_count") is not None and f.get("element_count") is not None:
        detail = f"{f['unexpected_count']} of {f['element_count']} rows failed"
        examples = _format_examples(f)
        if examples:
            detail += f"; examples: {examples}"
    else:
        detail = f"observed {_short(f.get('observed_value'))}"
    return [head, f"      {detail}"]


def _format_examples(f: dict) -> str:
    """'2001 (row 3), 2500 (row 7)' or "0 ('an empty line?')": value, then its row context."""
    rows, values = f.get("example_rows") or [], f.get("examples") or []
    if not rows:
        return ", ".join(_short(v) for v in values)
    checked = [c for c in (f.get("column"), f["kwargs"].get("column_A"), f["kwargs"].get("column_B")) if c]
    parts = []
    for row in rows:
        value = "/".join(_short(row[c]) for c in checked if c in row)
        ctx = [f"row {row['row']}" if k == "row" else _short(v, text=True)
               for k, v in row.items() if k not in checked]
        parts.append(f"{value} ({', '.join(ctx)})" if ctx else value)
    return ", ".join(parts)


def _short(value: Any, text: bool = False) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    if isinstance(value, str):
        if len(value) > _TEXT_WIDTH:
            value = value[: _TEXT_WIDTH - 3] + "..."
        return repr(value) if text else value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def _plain(value: Any) -> Any:
    """numpy scalars / tuples -> plain JSON-friendly Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _as_token_array(tokens: Any, suite: str) -> np.ndarray:
    array = np.asarray(tokens)
    if array.dtype.kind in "iu":
        return array
    if array.dtype.kind == "b" or array.dtype.kind not in "fO":
        raise DataValidationError(suite, [{
            "expectation": "array_dtype", "column": None, "kwargs": {}, "description": "integer token ids",
            "unexpected_count": None, "element_count": None, "observed_value": str(array.dtype),
            "examples": [], "example_rows": [], "exception": None}])
    try:
        return array.astype(np.float64)  # None -> NaN, reported as missing tokens
    except (TypeError, ValueError):
        raise DataValidationError(suite, [{
            "expectation": "array_dtype", "column": None, "kwargs": {}, "description": "numeric token ids",
            "unexpected_count": None, "element_count": None, "observed_value": str(array.dtype),
            "examples": [], "example_rows": [], "exception": None}]) from None
