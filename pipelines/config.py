"""`params.yaml`, parsed and validated: the one source of truth for hyperparameters.

Every key is required and unknown keys are rejected, so a typo cannot silently fall
back to a default. Defaults live in the YAML files (`params.yaml` is the small CPU
profile; `profiles/` holds the others), never here.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from seqgan_core.generators import GENERATORS
from seqgan_core.methods import METHODS as METHOD_TABLE
from seqgan_core.methods import Settings as MethodSettings
from seqgan_core.sampling import check_temperature
from seqgan_core.train import held_out_size

from .contract import EXPERIMENTS, Experiment

PARAMS_FILE = Path("params.yaml")
PROFILES_DIR = Path("profiles")
# The values of `adversarial.method`: the method table of seqgan_core (its classes import torch).
METHODS: tuple[str, ...] = tuple(METHOD_TABLE)
Method = Literal[METHODS]  # type: ignore[valid-type]
GeneratorKind = Literal[tuple(GENERATORS)]  # type: ignore[valid-type]

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0, le=1)]


class ParamsError(ValueError):
    """params.yaml is missing, not YAML, or does not satisfy the schema."""


class Section(BaseModel):
    # allow_inf_nan=False: YAML's .inf and .nan are floats, and `lr: .inf` would pass `gt=0`.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


ORACLE_WEIGHTS_DIR = "data/oracle"  # a dependency of the `oracle` stage in dvc.yaml


class OracleParams(Section):
    weights_file: str | None = Field(
        description=f"npz in the paper's oracle format under {ORACLE_WEIGHTS_DIR}/; null synthesises one from `seed`")
    seed: NonNegativeInt
    vocab_size: Annotated[int, Field(ge=2)]
    emb_dim: PositiveInt
    hidden_dim: PositiveInt
    seq_len: PositiveInt
    num_train: PositiveInt
    num_test: PositiveInt

    @field_validator("weights_file")
    @classmethod
    def _weights_tracked_by_dvc(cls, weights_file: str | None) -> str | None:
        # dvc.yaml cannot template a nullable path, so the stage depends on the folder:
        # a weights file anywhere else could change without DVC re-running the stage.
        if weights_file is not None:
            path = Path(weights_file)
            inside = len(path.parts) > 2 and path.parts[:2] == tuple(ORACLE_WEIGHTS_DIR.split("/"))
            if path.is_absolute() or ".." in path.parts or not inside:
                raise ValueError(
                    f"it is outside {ORACLE_WEIGHTS_DIR}/, the folder the oracle stage depends on, so DVC would "
                    f"not see the weights change; copy the file there (for the paper's oracle: "
                    f"cp ../shared/oracle/seqgan_target_lstm.npz {ORACLE_WEIGHTS_DIR}/) and set "
                    f"weights_file: {ORACLE_WEIGHTS_DIR}/<name>.npz"
                )
        return weights_file


class CorpusParams(Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    path: str
    tokenizer: Literal["char", "whitespace"]
    lowercase: bool
    vocab_size: Annotated[int, Field(ge=3, description="cap including <eos> and <unk>")]
    min_count: PositiveInt
    max_len: PositiveInt
    overlong: Literal["drop", "truncate"]
    test_fraction: Annotated[float, Field(gt=0, lt=1)]
    split_seed: NonNegativeInt  # the split is part of the data version: the training `seed` leaves it alone
    min_coverage: Probability


class RMCParams(Section):
    """RelGAN's relational memory (`seqgan_core.rmc`), built when ``generator.kind`` is rmc."""

    mem_slots: PositiveInt
    num_heads: PositiveInt
    head_size: PositiveInt
    layer_norm: Literal["joint", "row"] = Field(description="joint: the official code's TF layer_norm; row: Sonnet's")


class LeakGANParams(Section):
    """LeakGAN's manager and worker (`seqgan_core.leakgan`), built when ``generator.kind`` is
    leakgan; the discriminator whose features it reads has the `discriminator` section's sizes."""

    goal_size: PositiveInt = Field(description="k: width of the worker's goal embedding")
    step_size: PositiveInt = Field(description="c: the steps a goal spans")
    goal_window: Literal["sliding", "segment"] = Field(
        description="sliding: the paper's goal (the last c sub-goals, every step); segment: the code's (held c steps)")


class GeneratorParams(Section):
    """The generator pretrain_generator builds (`seqgan_core.generators` kinds); every
    adversarial method trains it, so `adversarial.method` must train this kind."""

    kind: GeneratorKind
    emb_dim: PositiveInt
    hidden_dim: PositiveInt = Field(description="the LSTM's; LeakGAN's manager and worker")
    init_std: PositiveFloat = Field(description="the LSTM's and LeakGAN's weights ~ N(0, init_std^2)")
    rmc: RMCParams
    leakgan: LeakGANParams


class LeakGANPretrainParams(Section):
    """LeakGAN's interleaved pretraining (``generator.kind`` leakgan), which replaces the MLE
    epochs and the D rounds: ``rounds`` x (``d_passes`` D passes, then ``g_epochs`` epochs of
    the manager's goal loss and the worker's MLE). D passes are pretrain_discriminator's
    rounds (negatives, epochs, batch_size); the rates are ``methods.leakgan``'s."""

    rounds: PositiveInt
    d_passes: PositiveInt = Field(description="D passes at the start of each round")
    g_epochs: PositiveInt = Field(description="generator epochs after them")


class PretrainGeneratorParams(Section):
    epochs: PositiveInt = Field(description="MLE epochs (lstm, rmc; leakgan: `leakgan`)")
    keep: Literal["last", "best_valid"] = Field(
        description="last: the generator after `epochs` (the papers); best_valid: the epoch with the lowest NLL on "
                    "`valid_fraction` of the training split held out (model selection as for a tuned MLE baseline)")
    valid_fraction: Annotated[float, Field(gt=0, le=0.5, description="best_valid: the training split's held-out share")]
    batch_size: PositiveInt
    lr: PositiveFloat = Field(description="lstm, rmc (leakgan: methods.leakgan.lr)")
    grad_clip: Annotated[float, Field(ge=0)]
    eval_every: PositiveInt
    eval_samples: PositiveInt
    leakgan: LeakGANPretrainParams


class DiscriminatorParams(Section):
    emb_dim: PositiveInt
    filter_sizes: Annotated[list[PositiveInt], Field(min_length=1)]
    num_filters: Annotated[list[PositiveInt], Field(min_length=1)]
    dropout: Annotated[float, Field(ge=0, lt=1, description="drop probability (the paper keeps 0.75: 0.25)")]
    l2_reg: Annotated[float, Field(ge=0)]
    init: Literal["tf", "torch"] = Field(description="tf: the authors' initialisers; torch: PyTorch's defaults")

    @model_validator(mode="after")
    def _same_length(self) -> "DiscriminatorParams":
        if len(self.filter_sizes) != len(self.num_filters):
            raise ValueError(
                f"filter_sizes has {len(self.filter_sizes)} widths but num_filters has "
                f"{len(self.num_filters)} counts; give one count per width"
            )
        return self


class PretrainDiscriminatorParams(Section):
    rounds: PositiveInt
    epochs: PositiveInt
    negatives: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat


def section_from_settings(settings: type) -> type[Section]:
    """The params section of a method's settings dataclass (`seqgan_core.methods.settings`):
    the same fields and types, each required, with the ranges the dataclass declares in its
    field metadata as constraints, nested settings as nested sections. The dataclass is the
    one definition; this is its schema."""
    hints = get_type_hints(settings)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        hint = hints[f.name]
        if isinstance(hint, type) and issubclass(hint, MethodSettings):
            fields[f.name] = (section_from_settings(hint), ...)
            continue
        constraints = {k: v for k, v in f.metadata.items() if k in ("ge", "gt", "le", "lt")}
        fields[f.name] = (Annotated[hint, Field(description=f.metadata.get("description") or None, **constraints)], ...)
    return create_model(settings.__name__.removesuffix("Settings") + "Params", __base__=Section,
                        __doc__=settings.__doc__, __validators__={"_settings_accept": _accepted_by(settings)},
                        **fields)


def _accepted_by(settings: type) -> Any:
    """A validator running the dataclass's own checks across its fields (e.g. RelGAN's D width a
    multiple of its representations), so `params check` refuses what the method would."""
    def accept(section: Section) -> Section:
        settings.from_dict(section.model_dump())  # its ValueError becomes this key's schema error
        return section

    return model_validator(mode="after")(accept)


class AdversarialParams(Section):
    """The loop every method runs (budget, optimisers, evaluation); `seqgan_core.methods.Common`."""

    method: Method
    batches: PositiveInt
    g_steps: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    grad_clip: Annotated[float, Field(ge=0)]
    max_abs_weight: PositiveFloat = Field(
        description="training stops (TrainingDiverged) when a generator weight's |w| exceeds this after an "
                    "adversarial batch or a pretraining epoch")
    d_steps: NonNegativeInt
    d_optimizer: Literal["continue", "fresh"] = Field(
        description="continue: D's Adam state carries on from pretraining, as in the authors' code")
    d_epochs: PositiveInt
    d_negatives: PositiveInt
    eval_every: PositiveInt
    eval_samples: PositiveInt
    checkpoint_every: PositiveInt


# Every method's own settings, one section each, named as the method table names it.
MethodsParams = create_model(
    "MethodsParams", __base__=Section, __doc__="Each method's settings (`seqgan_core.methods`).",
    **{name: (section_from_settings(cls.Settings), ...) for name, cls in METHOD_TABLE.items()},
)


class EvaluateParams(Section):
    nll_samples: PositiveInt
    bleu_orders: Annotated[list[Annotated[int, Field(ge=1, le=5)]], Field(min_length=1)]
    bleu_hypotheses: PositiveInt
    bleu_references: Literal["test", "train"] = Field(
        description="BLEU's reference set: the test split (Texygen, TextBox) or the training split")
    self_bleu_size: Annotated[int, Field(ge=2)]
    text_samples: PositiveInt
    temperatures: Annotated[list[float], Field(min_length=1, description="the frontier's sampling temperatures")]
    sweep_samples: Annotated[int, Field(ge=2, description="samples per temperature of the sweep")]

    @field_validator("temperatures")
    @classmethod
    def _increasing_with_one(cls, temperatures: list[float]) -> list[float]:
        for temperature in temperatures:
            check_temperature(temperature)  # the samplers' own floor, so a sweep cannot fail after training
        if 1.0 not in temperatures:
            raise ValueError("must include 1.0, the temperature the models are trained and served at")
        if any(b <= a for a, b in zip(temperatures, temperatures[1:])):
            raise ValueError("must be increasing, each value once")
        return temperatures


class PromotionParams(Section):
    """The registry gate: a challenger replaces the champion only if it is better by a margin."""

    synthetic_margin: Annotated[float, Field(ge=0, description="NLL-oracle must drop by more than this (nats)")]
    synthetic_nll_test_tolerance: Annotated[float, Field(ge=0, description="NLL-test may rise by at most this (nats)")]
    real_bleu_order: Annotated[int, Field(ge=1, le=5)]
    real_margin: Annotated[float, Field(ge=0, description="BLEU must rise by more than this")]
    real_nll_test_tolerance: Annotated[float, Field(ge=0, description="NLL-test may rise by at most this (nats)")]


class ComparisonParams(Section):
    """What the comparison sweep (`make sweep`, comparison/dvc.yaml) trains: every method on
    every experiment for every training seed, each seed's chain from MLE pretraining on."""

    experiments: Annotated[list[Experiment], Field(min_length=1)]
    methods: Annotated[list[Method], Field(min_length=1)]
    seeds: Annotated[list[NonNegativeInt], Field(min_length=1)]

    @model_validator(mode="after")
    def _no_repeats(self) -> "ComparisonParams":
        if "mle" not in self.methods:
            raise ValueError("comparison.methods must include mle: every method is read against it")
        for key in ("experiments", "methods", "seeds"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"comparison.{key} lists a value twice: {values}")
        return self


class TrackingParams(Section):
    # MLflow refuses a registered model's name with '/' or ':', after evaluate has scored.
    synthetic_model_name: Annotated[str, Field(pattern=r"^[^/:]+$", description="MLflow model name: no '/' or ':'")]
    real_model_prefix: Annotated[str, Field(pattern=r"^[^/:]+$", description="MLflow model name: no '/' or ':'")]


class Params(Section):
    seed: NonNegativeInt
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")]
    threads: NonNegativeInt = Field(description="torch CPU threads; 0 leaves torch's default")
    execution: Literal["auto", "eager", "cuda_graph", "compiled"] = Field(
        description="how D's training steps run (seqgan_core.execution): auto = cuda_graph on CUDA, eager on CPU")
    oracle: OracleParams
    corpus: CorpusParams
    generator: GeneratorParams
    pretrain_generator: PretrainGeneratorParams
    discriminator: DiscriminatorParams
    pretrain_discriminator: PretrainDiscriminatorParams
    adversarial: AdversarialParams
    methods: MethodsParams
    evaluate: EvaluateParams
    tracking: TrackingParams
    promotion: PromotionParams
    comparison: ComparisonParams

    @model_validator(mode="after")
    def _completions_fit(self) -> "Params":
        completions = self.methods.maligan_full.completions
        if completions > self.adversarial.batch_size:
            raise ValueError(
                f"methods.maligan_full.completions = {completions} exceeds adversarial.batch_size = "
                f"{self.adversarial.batch_size}; a batch must hold at least one prefix's completions"
            )
        return self

    @model_validator(mode="after")
    def _methods_train_the_generator(self) -> "Params":
        """Every method trains the one pretrained generator, of `generator.kind`."""
        for key, methods in (("adversarial.method", [self.adversarial.method]),
                             ("comparison.methods", self.comparison.methods)):
            for method in methods:
                kinds = METHOD_TABLE[method].generator_kinds
                if self.generator.kind not in kinds:
                    raise ValueError(
                        f"{key}: {method} trains {' or '.join(kinds)} generators but generator.kind is "
                        f"{self.generator.kind}; set generator.kind: {kinds[0]} or leave {method} out"
                    )
        return self

    @model_validator(mode="after")
    def _gate_reads_a_scored_order(self) -> "Params":
        order, orders = self.promotion.real_bleu_order, self.evaluate.bleu_orders
        if order not in orders:
            raise ValueError(f"promotion.real_bleu_order = {order} is not among evaluate.bleu_orders {orders}: the "
                             "gate would find no score to compare; add it there or pick one of them")
        return self

    @model_validator(mode="after")
    def _batches_fit(self) -> "Params":
        """Every batch size fits the data it draws from (the corpus's size is known only
        after preprocessing, where the stage checks it)."""
        g = self.pretrain_generator
        train = self.oracle.num_train - (held_out_size(self.oracle.num_train, g.valid_fraction)
                                         if g.keep == "best_valid" else 0)
        if g.batch_size > train:
            raise ValueError(f"pretrain_generator.batch_size = {g.batch_size} exceeds the {train} synthetic training "
                             "sequences it trains on (oracle.num_train"
                             f"{', less the held-out share' if g.keep == 'best_valid' else ''}); lower it")
        d, negatives = self.pretrain_discriminator, min(self.pretrain_discriminator.negatives, self.adversarial.d_negatives)
        if d.batch_size > 2 * negatives:
            raise ValueError(f"pretrain_discriminator.batch_size = {d.batch_size} exceeds a D round's "
                             f"{2 * negatives} sequences (pretrain_discriminator.negatives / adversarial.d_negatives "
                             "negatives and as many real ones); lower it or raise the negatives")
        return self

    @model_validator(mode="after")
    def _keep_fits(self) -> "Params":
        if self.pretrain_generator.keep == "best_valid" and self.generator.kind == "leakgan":
            raise ValueError("pretrain_generator.keep: best_valid chooses among MLE epochs, and generator.kind leakgan "
                             "pretrains in interleaved rounds whose last D the manager learnt to read; set keep: last")
        return self

    @model_validator(mode="after")
    def _goals_fit(self) -> "Params":
        if self.generator.kind != "leakgan":
            return self
        step = self.generator.leakgan.step_size
        for key, length in {"oracle.seq_len": self.oracle.seq_len, "corpus.max_len": self.corpus.max_len}.items():
            if step > length:
                raise ValueError(f"generator.leakgan.step_size = {step} exceeds {key} = {length}; a goal must span "
                                 "at most one sequence")
        return self

    @model_validator(mode="after")
    def _filters_fit(self) -> "Params":
        lengths = {"oracle.seq_len": self.oracle.seq_len, "corpus.max_len": self.corpus.max_len}
        widest = max(self.discriminator.filter_sizes)
        for key, length in lengths.items():
            if widest > length:
                raise ValueError(
                    f"discriminator.filter_sizes has a width of {widest}, longer than {key} = {length}; "
                    "every filter must fit in a sequence"
                )
        return self



def _short(value: object, limit: int = 80) -> str:
    """A value for a one-line message: an unknown section (`--file dvc.yaml`'s `stages:`)
    printed whole ran to thousands of characters and buried the other problems."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({type(value).__name__}, {len(text)} characters)"


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "missing":
        return f"  {key}: missing (every key is required; see profiles/ for a complete file)"
    if error["type"] == "extra_forbidden":
        return f"  {key}: unknown key (value {_short(error['input'])}); remove it or check its spelling"
    if isinstance(error["input"], (dict, list)):
        # A check across keys (a whole section, or the whole file): its message names the keys,
        # and repeating the section's value would bury it.
        return f"  {key}: {error['msg'].removeprefix('Value error, ')}"
    return f"  {key}: value {error['input']!r} is not allowed: {error['msg']}"


def parse_params(raw: object, source: str = str(PARAMS_FILE)) -> Params:
    """Validate a parsed YAML document; a ParamsError lists every bad key at once."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(_describe(e) for e in exc.errors())
        raise ParamsError(f"{source} is invalid ({exc.error_count()} problem(s)):\n{lines}") from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading numbers as YAML 1.2 does: ``1e-2`` is a float, as DVC
    (ruamel.yaml) reads the same file; YAML 1.1's rules would make it the text '1e-2'."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
                              list("-+.0123456789"))


def _read_yaml(text: str, source: str) -> object:
    """`yaml.safe_load` that also refuses a key given twice in one mapping: YAML keeps the
    last one silently, and DVC refuses to read such a params file."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:  # an empty file
            return None
        _refuse_duplicate_keys(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{source} is not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _refuse_duplicate_keys(node: yaml.Node, source: str, prefix: str = "", seen: set[int] | None = None) -> None:
    """ParamsError naming the first key that appears twice in one mapping (dotted, as the
    schema's errors name keys) and both of its lines."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias: already checked (and YAML allows recursive ones)
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, source, f"{prefix}{index}.", seen)
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            name, line = (key.tag, str(key.value)), key.start_mark.line + 1  # tags are resolved: 1 is not '1'
            if name in first_line:
                raise ParamsError(
                    f"{source}: key {prefix}{key.value} appears twice (lines {first_line[name]} and {line}); "
                    "YAML would silently keep the last one and DVC refuses the file: delete one of them"
                )
            first_line[name] = line
            _refuse_duplicate_keys(value, source, f"{prefix}{key.value}.", seen)


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    return parse_params(read_yaml(path), str(path))


def read_yaml(path: str | Path) -> object:
    """A params or profile file as DVC reads it (YAML 1.2 numbers, no key given twice),
    not yet validated; a ParamsError names a file that is missing or not readable text."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(
            f"{path} not found: run from the repository root, or restore it with `seqgan profile small`"
        ) from None
    except IsADirectoryError:
        raise ParamsError(f"{path} is a folder; give the params file (params.yaml)") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    return _read_yaml(text, str(path))


def apply_profile(name: str, seed: int | None = None, profiles: Path = PROFILES_DIR,
                  target: Path = PARAMS_FILE) -> Path:
    """Make ``target`` (params.yaml) the profile ``profiles/<name>.yaml``, optionally with
    another top-level (training) ``seed``. The text is copied, so its comments stay; it is
    validated before anything is written, so a bad profile changes nothing."""
    source = profiles / f"{name}.yaml"
    if not profiles.is_dir():  # the wrong folder, not a missing profile ("available: none" said otherwise)
        raise ParamsError(f"no {profiles}/ folder in {Path.cwd()}: run from the repository root")
    if not source.exists():
        available = ", ".join(sorted(p.stem for p in profiles.glob("*.yaml"))) or "none"
        raise ParamsError(f"no profile {name!r} in {profiles}/ (available: {available})")
    text = source.read_text(encoding="utf-8")
    if seed is not None:
        text, found = re.subn(r"^seed: *\S+", f"seed: {int(seed)}", text, count=1, flags=re.M)
        if not found:
            raise ParamsError(f"{source} has no top-level `seed:` line to set")
    described = f"{source}{'' if seed is None else f' with seed {seed}'}"
    parse_params(_read_yaml(text, described), described)
    target.write_text(text, encoding="utf-8")
    return source
