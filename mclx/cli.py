"""The mclx command line: parse flags, make one library call per command, print its result.

Exit codes: 0 success, 1 finished with failed inputs, 2 usage/config/input error,
130 interrupted. Heavy modules are imported inside the commands so that
``mclx --help`` and ``mclx --version`` answer at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mclx import __version__
from mclx.errors import UsageError
from mclx.exits import exit_status, leave
from mclx.formats import formats_help

if TYPE_CHECKING:
    from mclx.embed.ledger import EmbedSummary

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Contrastive music-audio representations: embed, train, probe.",
)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or log lines.")]
Json = Annotated[bool, typer.Option("--json", help="Print a JSON object on stdout.")]


def _version(value: bool) -> None:
    if value:
        print(f"mclx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """mclx: embed audio folders, train contrastive encoders, probe embeddings."""


def _log(message: str, quiet: bool = False) -> None:
    if not quiet:
        print(message, file=sys.stderr)


@app.command()
def embed(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Audio files, directories (walked for: "
            + formats_help()
            + "), or '-' for a path list on stdin."
        ),
    ],
    output: Annotated[str, typer.Argument(help="The HDF5 store to write or resume.")],
    model: Annotated[str | None, typer.Option(help="Bundled model name or checkpoint path.")] = None,
    level: Annotated[str, typer.Option(help="global | segment | both")] = "global",
    window: Annotated[
        float | None, typer.Option(help="Window length in seconds (default: the model's).")
    ] = None,
    hop: Annotated[float | None, typer.Option(help="Hop in seconds (default: = window).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Windows per forward pass.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16")] = "auto",
    workers: Annotated[int | None, typer.Option(help="Decoding processes.")] = None,
    resample_in: Annotated[
        str, typer.Option(help="auto | decoders | encoder: where audio is resampled (auto: decoders on CPU).")
    ] = "auto",
    shard: Annotated[str | None, typer.Option(help="I/N: only files in shard I (0-based) of N.")] = None,
    null: Annotated[bool, typer.Option("--null", help="Paths on stdin are NUL-separated.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start a new store instead of resuming.")] = False,
    fail_fast: Annotated[bool, typer.Option(help="Stop at the first unreadable file.")] = False,
    engine: Annotated[
        str, typer.Option(help="local | ray: here, or on a Ray cluster (the extra mclx\\[ray]).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="auto | ADDRESS: the Ray cluster (default: a running one, else a local one)."),
    ] = None,
    ray_actors: Annotated[
        int | None, typer.Option(help="Encoder actors on Ray (default: one per GPU, else per two CPUs).")
    ] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Embed audio into an HDF5 store (resumable, fault-tolerant, shardable)."""
    from mclx.embed.command import embed_inputs
    from mclx.embed.plan import EmbedSettings

    settings = EmbedSettings(
        model=model, level=level, window_s=window, hop_s=hop, batch_size=batch_size, device=device,
        precision=precision, workers=workers, resample_in=resample_in, overwrite=overwrite,
        fail_fast=fail_fast, quiet=quiet,
    )  # fmt: skip
    summary = embed_inputs(
        inputs, output, settings, null=null, shard=shard, engine=engine, ray_address=ray_address,
        ray_actors=ray_actors, argv=sys.argv[1:], log=lambda line: _log(line, quiet),
    )  # fmt: skip
    _report_embed(summary, output, as_json, quiet)
    if summary.failed:
        raise typer.Exit(1)


def _report_embed(summary: EmbedSummary, output: str, as_json: bool, quiet: bool) -> None:
    """The run's summary: JSON on stdout with --json, lines on stderr (warnings even with --quiet)."""
    for warning in summary.warnings:  # not silenced by --quiet: work was lost and redone
        print(f"mclx: warning: {warning}", file=sys.stderr)
    if summary.merged_rows is not None:
        rows, stores, shards = summary.merged_rows, summary.merged_from, Path(summary.output).parent
        _log(f"{output}: merged {rows} files from {stores} rank stores in {shards}", quiet)
    if as_json:
        print(json.dumps(summary.as_json()))
    _log(
        f"{summary.output}: {summary.ok} ok, {summary.failed} failed, {summary.skipped} already done; "
        f"{summary.audio_s / 3600:.2f} h audio in {summary.wall_s:.1f} s ({summary.xrt:.0f}x realtime)",
        quiet,
    )
    for path, error in summary.failures[:20]:
        _log(f"  failed: {path}: {error}", quiet)
    if len(summary.failures) > 20:
        _log(f"  ... and {len(summary.failures) - 20} more (mclx info {output})", quiet)


@app.command()
def info(
    store: Annotated[str, typer.Argument(help="An HDF5 embedding store.")], as_json: Json = False
) -> None:
    """Model, settings, counts and failed files of a store."""
    from mclx.store import summarize

    counts = summarize(store)
    attrs = counts.pop("attrs")
    failed = [(f["path"], f["error"]) for f in counts["failures"]]
    summary: dict[str, Any] = {
        "store": store,
        "attrs": {k: v for k, v in attrs.items() if not isinstance(v, bytes)},
        **counts,
    }
    if as_json:
        print(json.dumps(summary, default=str))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Every user-given string (paths, model names, errors) is Text, never markup: "[feat. X]" stays.
    console = Console()
    console.print(Text(store), soft_wrap=True)
    table = Table(show_header=False)
    for key in ("model", "model_sha256", "sample_rate", "window_s", "hop_s", "dim", "level", "precision"):
        table.add_row(key, Text(str(attrs.get(key))))
    table.add_row("created", str(attrs.get("created_utc")))
    table.add_row("files", f"{summary['files']} ({summary['ok']} ok, {summary['failed']} failed)")
    table.add_row("segments", str(summary["segments"]))
    table.add_row("audio", f"{summary['audio_s'] / 3600:.2f} h")
    console.print(table)
    for path, error in failed:
        console.print(Text.assemble(("failed", "red"), f" {path}: {error}"), highlight=False, soft_wrap=True)


def _level(level: str) -> str:
    """Search and export say "segments"; embed's "segment" is accepted too."""
    return "segments" if level == "segment" else level


@app.command()
def search(
    store: Annotated[str, typer.Argument(help="The embedding store to search.")],
    queries: Annotated[
        list[str], typer.Argument(help="Audio files, paths already in the store, or '-' (paths on stdin).")
    ],
    k: Annotated[int, typer.Option("-k", help="Hits per query.")] = 10,
    level: Annotated[str, typer.Option(help="global (files) | segments (moments).")] = "global",
    exact: Annotated[bool, typer.Option(help="Brute force even when an index is current.")] = False,
    include_self: Annotated[bool, typer.Option(help="Let a query's own file be a hit.")] = False,
    raw: Annotated[
        bool, typer.Option(help="Cosine of the raw embeddings, not of the embeddings minus the store's mean.")
    ] = False,
    device: Annotated[
        str, typer.Option(help="Where audio queries are embedded: auto | cpu | cuda.")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hit and line.")] = False,
) -> None:
    """Files or moments of the store that sound like the queries (cosine similarity of the
    embeddings minus the store's mean; --raw: of the embeddings as stored)."""
    from mclx.search.similarity import search as find

    names: list[str] = []
    for q in queries:
        names += [line.strip() for line in sys.stdin if line.strip()] if q == "-" else [q]
    hits = find(store, names, k=k, level=_level(level),
                exact=exact, include_self=include_self, device=device, centred=not raw)  # fmt: skip
    if as_json:
        sys.stdout.write("".join(hit.json_line() for hit in hits))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("query", "rank", "path", "score", *(["start_s", "end_s"] if level != "global" else []))
    for hit in hits:
        moment = [f"{hit.start_s:.2f}", f"{hit.end_s:.2f}"] if hit.start_s is not None else []
        table.add_row(Text(hit.query), str(hit.rank), Text(hit.path), f"{hit.score:.4f}", *moment)
    Console(width=200).print(table)


@app.command()
def index(
    store: Annotated[str, typer.Argument(help="The embedding store to index.")],
    level: Annotated[str, typer.Option(help="global | segments")] = "global",
    raw: Annotated[bool, typer.Option(help="Index the raw embeddings (for `mclx search --raw`).")] = False,
    quiet: Quiet = False,
) -> None:
    """Build the approximate-search (FAISS) index next to the store."""
    from mclx.search.similarity import build_index, index_path

    level = _level(level)
    meta = build_index(store, level, centred=not raw)
    _log(f"{index_path(store, level)}: {meta['rows']} rows, {meta['kind']}", quiet)


@app.command()
def export(
    store: Annotated[str, typer.Argument(help="The embedding store to export.")],
    output: Annotated[str, typer.Argument(help="The Parquet file to write.")],
    level: Annotated[
        str, typer.Option(help="global (a row per file) | segments (a row per segment).")
    ] = "global",
    quiet: Quiet = False,
) -> None:
    """Write the store as a Parquet table (pandas, Polars, DuckDB, Ray)."""
    from mclx.inputs import check_output_writable
    from mclx.search.export import export_parquet

    check_output_writable(output)
    level = _level(level)
    rows = export_parquet(store, output, level)
    _log(f"{output}: {rows} rows", quiet)


@app.command()
def merge(
    output: Annotated[str, typer.Argument(help="The merged store to write.")],
    stores: Annotated[list[str], typer.Argument(help="Shard stores made with identical settings.")],
    quiet: Quiet = False,
) -> None:
    """Join shard stores into one."""
    from mclx.inputs import check_output_writable
    from mclx.store import merge_stores

    check_output_writable(output)
    files = merge_stores(output, stores)
    _log(f"{output}: {files} files from {len(stores)} stores", quiet)


@app.command()
def models(
    verify: Annotated[bool, typer.Option(help="Check every bundled file's sha256.")] = False,
    as_json: Json = False,
) -> None:
    """List the built-in and bundled models."""
    from mclx.models.registry import model_table

    rows = model_table(verify)
    if as_json:
        print(json.dumps(rows))
    else:
        for row in rows:
            mark = "*" if row["default"] else " "
            extra = f"  sha256 {row['verify_message']}" if "verified" in row else ""
            print(f"{mark} {row['name']:<20} {row['kind']}{extra}")
    if any(not row.get("verified", True) for row in rows):
        raise typer.Exit(2)


@app.command()
def train(
    config: Annotated[str, typer.Argument(help="Training configuration (TOML).")],
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint in --out.")] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override: section.key=value (TOML).")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Output directory.")] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Contrastive pretraining from a TOML file.

    Sections [data], [model], [views], [loss], [train]; every key, its default and its paper:
    docs/training-config.md. The seed papers' knobs include data.labelled_batch_share,
    loss.negatives (intra-track), loss.kind = "cpc", model.aggregator, views.adjacent_gap_s,
    loss.multilabel_min_shared and the pitch and reverb views.
    """
    from mclx.train import run_training

    summary = run_training(config, out, resume, list(set_ or []), quiet=quiet)
    if as_json:
        print(json.dumps(summary, default=str))


@app.command()
def probe(
    task: Annotated[str, typer.Option(help="Task name (folder under $MCLX_DATA).")],
    data: Annotated[str | None, typer.Option(help="Task directory (default: $MCLX_DATA/TASK).")] = None,
    layout: Annotated[str | None, typer.Option(help="gtzan | nsynth | csv (default: detected).")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(help="Model to embed the task with (repeatable; default: the default model)."),
    ] = None,
    embeddings: Annotated[
        list[str] | None, typer.Option(help="An existing embedding store (repeat for several).")
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="Baseline features: mfcc.")] = None,
    head: Annotated[str, typer.Option(help="linear | mlp | both")] = "both",
    seeds: Annotated[int, typer.Option(help="Seeds per result.")] = 5,
    label: Annotated[str | None, typer.Option(help="nsynth label field.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="single | multi | regression (default: detected from the labels).")
    ] = None,
    compare: Annotated[
        list[str] | None, typer.Option(help="A,B: a paired comparison of two feature sets (repeatable).")
    ] = None,
    corrupt: Annotated[
        str | None,
        typer.Option(
            help="KIND:LEVEL,...: also score the heads, fitted on clean clips, on corrupted test clips "
            "(noise:10db, lowpass:2000, aac:24k, mp3:64k, reverb:0.5); one result row each."
        ),
    ] = None,
    per_clip: Annotated[
        bool,
        typer.Option(help="Rows of accuracy, MAP@10 and precision@10 also hold each test clip's score."),
    ] = False,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    out: Annotated[str | None, typer.Option(help="Results JSON path.")] = None,
    plot: Annotated[str | None, typer.Option(help="Results PNG path.")] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Linear and MLP probes of embeddings on a labelled task, with paired comparisons."""
    from mclx.probe import ProbeSettings, run_probe

    pairs = []
    for item in compare or []:
        a, sep, b = item.partition(",")
        if not sep or not a or not b:
            raise UsageError(f"--compare {item}: expected A,B (two feature names)")
        pairs.append((a, b))
    settings = ProbeSettings(
        task, data, layout, tuple(model or ()), tuple(embeddings or ()), baseline, head, seeds, out, plot,
        label_field=label, device=device, quiet=quiet, kind=kind, compare=tuple(pairs),
        corrupt=corrupt, per_clip=per_clip,
    )  # fmt: skip
    results = run_probe(settings)
    if as_json:
        print(json.dumps(results))
    if results["failed"]:
        raise typer.Exit(1)


def main() -> NoReturn:
    """Run the command line; raise SystemExit with its status (domain errors end in one line and
    their exit code). For callers inside another program, such as tests: the process lives on."""
    sys.exit(_run_app())


def console() -> NoReturn:
    """The `mclx` program (console script and ``python -m mclx``): :func:`main`, then the fast exit."""
    leave(_run_app())


def _run_app() -> int:
    """Run the command; return its exit status (:func:`mclx.exits.exit_status`)."""
    with exit_status() as status:
        app()
    return status.code
