"""Training configuration: one frozen dataclass tree loaded from TOML.

The TOML file, ``--set section.key=value`` overrides and the copy written next to a run
all go through :func:`load_config`; an unknown key is an error naming the nearest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mclx.errors import ConfigError

ARCHITECTURES = ("melcnn", "samplecnn")
INPUTS = ("segment", "track")
POSITIVES = ("same", "adjacent", "random", "track")
AUGMENTATIONS = ("gain", "polarity", "noise", "filter", "delay", "pitch", "reverb")
# The default chain; pitch and reverb are opt-in, so a config that names none trains as before.
DEFAULT_AUGMENTATIONS = ("gain", "polarity", "noise", "filter", "delay")
LOSSES = ("ntxent", "supcon", "semisupcon", "cpc")
AGGREGATORS = ("mean", "gru", "transformer")
NEGATIVES = ("inter-track", "intra-track")
TARGETS = ("multiclass", "multilabel", "regression", "similarity")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class DataConfig:
    audio: list[str] = field(default_factory=lambda: ["music/"])  # dirs, files or a CSV with `path`
    labels: str = ""  # CSV path,label[,split]: enables the supervised terms
    labelled_fraction: float = 1.0  # keep the labels of this fraction of the labelled tracks
    labelled_batch_share: float = 0.0  # > 0: this share of every batch drawn from the labelled tracks
    cache: str = ""  # decoded-audio cache directory; "" = $MCLX_CACHE or ~/.cache/mclx/train
    min_track_s: float = 1.0  # shorter tracks are skipped (listed in the log)
    split: str = "train"  # CSV manifests with a `split` column: only these rows ("" = all)


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "melcnn"
    embedding_dim: int = 512
    projection_dim: int = 128
    channels: list[int] = field(default_factory=list)  # [] = the architecture's default
    n_mels: int = 0  # melcnn: mel bands (0 = the architecture's default, 96)
    hop_length: int = 0  # melcnn: STFT hop in samples (0 = the architecture's default, 256)
    aggregator: str = "mean"  # track inputs: how a view's segments become one: "mean" | "gru" | "transformer"


@dataclass(frozen=True)
class ViewsConfig:
    segment_s: float = 3.0
    input: str = "segment"  # "segment" (regional) | "track" (segments pooled: global)
    positive: str = "adjacent"  # "same" | "adjacent" | "random" | "track"
    n_views: int = 2  # views per track, all mutually positive (SemiSupCon: N adjacent chunks)
    track_segments: int = 4  # segments pooled for a "track" input or positive
    augment: list[str] = field(default_factory=lambda: list(DEFAULT_AUGMENTATIONS))
    augment_p: float = 0.8  # probability that each augmentation is applied to a view
    adjacent_gap_s: float = 0.0  # "adjacent" (and cpc): seconds from a segment's end to the next's start


@dataclass(frozen=True)
class LossConfig:
    kind: str = "ntxent"
    temperature: float = 0.1
    target: str = "multiclass"  # semisupcon: how labels shape the target matrix
    multilabel: str = "soft"  # "hard": sharing multilabel_min_shared tags is a positive; "soft": Jaccard
    multilabel_min_shared: int = 1  # "hard": positives share at least this many tags
    negatives: str = "inter-track"  # | "intra-track": the other segments of the anchor's own track
    intra_track_segments: int = 4  # intra-track: segment pairs drawn from each track of a batch
    cpc_context: int = 4  # cpc: segments the GRU reads
    cpc_predictions: int = 4  # cpc: segments after them it predicts
    regression_scale: float = 1.0  # regression target similarity exp(-|y_i - y_j| / scale)
    supervised_weight: float = 1.0  # scale of the label-derived targets against the SSL ones


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10000
    batch_size: int = 96  # tracks per step (global, over all ranks)
    lr: float = 1e-4
    weight_decay: float = 1e-5
    warmup_steps: int = 0
    grad_clip: float = 1.0  # 0 disables
    seed: int = 0
    precision: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool = False
    device: str = "auto"
    checkpoint_every: int = 1000
    snapshot_every: int = 0  # > 0: also keep DIR/snapshots/step-NNNNNN.safetensors (step 0 included)
    log_every: int = 10
    out: str = ""  # "" = runs/<config file stem>


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("model", "architecture"): ARCHITECTURES,
    ("views", "input"): INPUTS,
    ("views", "positive"): POSITIVES,
    ("loss", "kind"): LOSSES,
    ("loss", "target"): TARGETS,
    ("loss", "multilabel"): ("hard", "soft"),
    ("loss", "negatives"): NEGATIVES,
    ("model", "aggregator"): AGGREGATORS,
    ("train", "precision"): PRECISIONS,
}


def _nearest(name: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid: {', '.join(options)})"


def _check_type(where: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to the field's type, or a ConfigError naming ``where``."""
    origin = typing.get_origin(annotation)
    if origin in (list, typing.List):  # noqa: UP006 - typing.List is what get_origin may return
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_type(f"{where}[{i}]", v, item) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported type")  # pragma: no cover - no such field
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # TOML has nan and inf
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {annotation}")  # pragma: no cover


def from_dict(raw: dict[str, Any]) -> Config:
    """Validate a nested dict (as read from TOML) into a Config."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    built: dict[str, Any] = {}
    for name, values in raw.items():
        if name not in sections:
            raise ConfigError(f"unknown section [{name}]{_nearest(name, sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"[{name}] must be a table")
        cls = typing.get_type_hints(Config)[name]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"unknown key {name}.{key}{_nearest(key, hints)}")
            kwargs[key] = _check_type(f"{name}.{key}", value, hints[key])
            options = CHOICES.get((name, key))
            if options is not None and kwargs[key] not in options:
                raise ConfigError(f"{name}.{key} = {value!r}: choose one of {', '.join(options)}")
        built[name] = cls(**kwargs)
    config = Config(**built)
    _check_values(config)
    return config


def _check_values(c: Config) -> None:
    positive = {
        "views.segment_s": c.views.segment_s,
        "loss.temperature": c.loss.temperature,
        "train.steps": c.train.steps,
        "train.batch_size": c.train.batch_size,
        "train.lr": c.train.lr,
        "model.embedding_dim": c.model.embedding_dim,
        "model.projection_dim": c.model.projection_dim,
        "views.track_segments": c.views.track_segments,
        "train.checkpoint_every": c.train.checkpoint_every,
        "train.log_every": c.train.log_every,
        "loss.multilabel_min_shared": c.loss.multilabel_min_shared,
        "loss.cpc_context": c.loss.cpc_context,
        "loss.cpc_predictions": c.loss.cpc_predictions,
    }
    for key, count in {"model.n_mels": c.model.n_mels, "model.hop_length": c.model.hop_length,
                       "train.snapshot_every": c.train.snapshot_every, "train.seed": c.train.seed,
                       "train.warmup_steps": c.train.warmup_steps, "train.grad_clip": c.train.grad_clip,
                       "train.weight_decay": c.train.weight_decay, "data.min_track_s": c.data.min_track_s,
                       "loss.supervised_weight": c.loss.supervised_weight,
                       "views.adjacent_gap_s": c.views.adjacent_gap_s}.items():  # fmt: skip
        if count < 0:
            raise ConfigError(f"{key} must be 0 or positive, got {count}")
    if c.loss.regression_scale <= 0:
        raise ConfigError(f"loss.regression_scale must be positive, got {c.loss.regression_scale}")
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    if c.views.n_views < 2:
        raise ConfigError(f"views.n_views must be at least 2, got {c.views.n_views}")
    if not 0.0 <= c.data.labelled_fraction <= 1.0:
        raise ConfigError(f"data.labelled_fraction must be in [0, 1], got {c.data.labelled_fraction}")
    if not 0.0 <= c.data.labelled_batch_share <= 1.0:
        raise ConfigError(f"data.labelled_batch_share must be in [0, 1], got {c.data.labelled_batch_share}")
    if c.data.labelled_batch_share > 0 and c.loss.kind not in ("supcon", "semisupcon"):
        raise ConfigError(
            "data.labelled_batch_share needs labels: set loss.kind = 'supcon' or 'semisupcon' and data.labels"
        )
    if c.data.labelled_batch_share > 0 and c.data.labelled_fraction == 0:
        raise ConfigError("data.labelled_batch_share > 0 needs labelled tracks: data.labelled_fraction is 0")
    if not 0.0 <= c.views.augment_p <= 1.0:
        raise ConfigError(f"views.augment_p must be in [0, 1], got {c.views.augment_p}")
    for name in c.views.augment:
        if name not in AUGMENTATIONS:
            raise ConfigError(f"views.augment: unknown augmentation {name!r}{_nearest(name, AUGMENTATIONS)}")
    if c.loss.kind in ("supcon", "semisupcon") and not c.data.labels:
        raise ConfigError(f"loss.kind = {c.loss.kind!r} needs data.labels (a CSV path,label[,split])")
    if c.loss.kind == "ntxent" and c.data.labels:
        raise ConfigError(
            "data.labels is set but loss.kind = 'ntxent' has no supervised term: "
            "use 'supcon' or 'semisupcon', or remove data.labels"
        )
    if c.loss.kind == "supcon" and c.loss.target != "multiclass":
        raise ConfigError(
            f"loss.target = {c.loss.target!r} needs loss.kind = 'semisupcon' (supcon takes class labels)"
        )
    if c.views.positive == "track" and c.views.input == "track":
        raise ConfigError(
            "views.positive = 'track' needs views.input = 'segment' (a segment against its track)"
        )
    if c.views.positive == "track" and c.views.n_views != 2:
        raise ConfigError(
            "views.positive = 'track' makes two views (a segment, its track): set views.n_views = 2"
        )
    _check_sequences(c)
    if c.views.positive == "same" and (not c.views.augment or c.views.augment_p == 0):
        raise ConfigError(
            "views.positive = 'same' needs augmentations (views.augment, views.augment_p > 0): "
            "identical views teach nothing"
        )


def _check_sequences(c: Config) -> None:
    """The keys that change what a batch is: intra-track negatives, CPC and sequence aggregators."""
    if c.loss.multilabel_min_shared > 1 and not (
        c.loss.target == "multilabel" and c.loss.multilabel == "hard"
    ):
        raise ConfigError(
            "loss.multilabel_min_shared > 1 needs loss.target = 'multilabel' and loss.multilabel = 'hard'"
        )
    if c.loss.negatives == "intra-track":
        if c.loss.kind != "ntxent":
            raise ConfigError(
                f"loss.negatives = 'intra-track' needs loss.kind = 'ntxent' (got {c.loss.kind!r}): the "
                "negatives are the anchor's own track, where labels name no other positive"
            )
        if c.views.input != "segment" or c.views.positive == "track":
            raise ConfigError(
                "loss.negatives = 'intra-track' needs views.input = 'segment' and a positive of "
                "'same', 'adjacent' or 'random' (segments of one track against each other)"
            )
        if c.loss.intra_track_segments < 2:
            raise ConfigError(
                f"loss.intra_track_segments must be at least 2 (an anchor needs a negative), "
                f"got {c.loss.intra_track_segments}"
            )
        if c.train.batch_size % c.loss.intra_track_segments:
            raise ConfigError(
                f"train.batch_size {c.train.batch_size} is not divisible by loss.intra_track_segments "
                f"{c.loss.intra_track_segments} (each track of a batch gives that many segment pairs)"
            )
    if c.loss.kind == "cpc" and (c.views.input != "segment" or c.views.positive != "adjacent"):
        raise ConfigError(
            "loss.kind = 'cpc' reads consecutive segments: set views.input = 'segment' and "
            "views.positive = 'adjacent' (views.adjacent_gap_s spaces them)"
        )
    if c.loss.kind == "cpc" and c.data.labels:
        raise ConfigError(
            "data.labels is set but loss.kind = 'cpc' has no supervised term: remove data.labels"
        )
    if c.model.aggregator != "mean" and (c.views.input != "track" or c.views.positive == "track"):
        raise ConfigError(
            f"model.aggregator = {c.model.aggregator!r} aggregates a track input's segments: set "
            "views.input = 'track' (with positive 'same', 'adjacent' or 'random')"
        )
    if c.model.aggregator != "mean" and c.views.track_segments < 2:
        raise ConfigError(
            f"model.aggregator = {c.model.aggregator!r} needs views.track_segments of 2 or more"
        )


def parse_override(item: str) -> tuple[str, str, Any]:
    """'section.key=value' -> (section, key, value); the value is TOML, else a bare string."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"--set {item}: expected section.key=value")
    dotted, text = item.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return section, key, value


def load_config(path: str | os.PathLike[str] | None, overrides: typing.Sequence[str] = ()) -> Config:
    """Read a TOML file (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for item in overrides:
        section, key, value = parse_override(item)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"--set {item}: [{section}] is not a table")
        raw[section][key] = value
    return from_dict(raw)


def expand_path(text: str, base: Path | None = None) -> Path:
    """``~`` and ``${VAR}`` expanded; relative paths are taken from ``base`` (the config's folder)."""
    expanded = os.path.expandvars(os.path.expanduser(text))
    if "$" in expanded:
        raise ConfigError(f"{text}: an environment variable in it is not set")
    p = Path(expanded)
    return p if p.is_absolute() or base is None else base / p


def to_toml(config: Config) -> str:
    """The resolved configuration as TOML (written next to a run)."""
    lines = []
    for section, values in config.to_dict().items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
