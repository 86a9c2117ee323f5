"""``mclx embed``'s arguments to a run: which files, which engine, which part of the job.

The command line parses flags into :class:`~mclx.embed.plan.EmbedSettings` and calls
:func:`embed_inputs`; the rules that tie flags together (the engine and its flags, shards,
torchrun) live here, beside the library they drive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from mclx.embed.ledger import EmbedSummary
from mclx.embed.plan import EmbedSettings
from mclx.embed.run import embed_part
from mclx.errors import UsageError
from mclx.formats import formats_help
from mclx.inputs import check_output_writable, expand_inputs, parse_shard, select_shard, skipped_summary

ENGINES = ("local", "ray")


def check_engine(engine: str, ray_address: str | None, ray_actors: int | None, shard: str | None) -> None:
    """UsageError for an unknown engine, Ray flags without ``--engine ray``, or Ray without Ray
    installed or under torchrun (one driver serves the whole cluster)."""
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine}: expected local or ray")
    if engine == "local" and (ray_address is not None or ray_actors is not None):
        raise UsageError("--ray-address and --ray-actors need --engine ray")
    if engine == "ray":
        from mclx.distributed import torchrun_rank
        from mclx.ray import require_ray

        require_ray()
        if shard is None and torchrun_rank() is not None:
            raise UsageError("--engine ray runs one driver for the whole cluster, not under torchrun")


def embed_inputs(
    inputs: Sequence[str],
    output: str,
    settings: EmbedSettings,
    null: bool = False,
    shard: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    ray_actors: int | None = None,
    argv: Sequence[str] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> EmbedSummary:
    """Embed the audio that ``inputs`` name (files, directories, '-' for a list on stdin) into
    ``output``: this process's part (``shard`` "I/N", or its torchrun rank's) on ``engine``.
    ``log`` gets a line saying which files a directory walk left out."""
    check_output_writable(output)
    check_engine(engine, ray_address, ray_actors, shard)
    shard_spec = parse_shard(shard)
    skipped: Counter[str] = Counter()
    every = expand_inputs(inputs, null=null, skipped=skipped)
    note = skipped_summary(skipped)
    if not every:  # nothing to embed is not success, and leaves no store behind
        raise UsageError(
            f"no audio files in the inputs{f' ({note})' if note else ''}; reads: {formats_help()}"
        )
    if note:
        log(f"mclx: {note}")
    if engine == "ray":
        from mclx.ray import RaySettings, embed_on_ray

        ray_settings = RaySettings(address=ray_address, actors=ray_actors)
        return embed_on_ray(select_shard(every, shard_spec), output, settings, ray_settings, argv=argv)
    # Under torchrun (and without --shard) each rank embeds its shard; rank 0 merges them into OUTPUT.
    return embed_part(every, output, settings, shard_spec, argv=argv)
