"""Training throughput with real data against synthetic tensors already on the device.

    python -m benchmarks.train --config examples/configs/choi_regional_adjacent.toml --device cuda --batch 256
    python -m benchmarks.train --config examples/configs/clmr_ssl.toml --device cuda --batch 96
    python -m benchmarks.train --config examples/configs/smoke.toml --device cpu        # runs anywhere
    python -m benchmarks.train --config examples/mclx-base/semi.toml --versus examples/mclx-base/semi.toml \
        --versus-set model.channels=[] --versus-set model.n_mels=0 --versus-set model.hop_length=0 \
        --versus-set views.segment_s=3.0 --threads 1     # mclx-base's recipe against the full-size melcnn

Both loops run `mclx train`'s own step function (built from its plan: model, loss target,
augmentations, optimiser, precision, gradient clipping) for the same number of steps; the
real one cuts each step's segments from the decoded-track cache (what `mclx train` does), the
synthetic one reuses the first batch, already on the device. Prints steps/s of each and
their ratio (data loading is not the bottleneck when the ratio is close to 1). ``--versus``
measures a second config (with ``--versus-set`` overrides) the same way in the same run and
prints the ratio of examples (tracks) per second.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from mclx.batching import batches, make_batch
from mclx.contrastive import build_model
from mclx.train import Step
from mclx.trainplan import make_train_plan, prepare_data


def measure(config_path: str, overrides: list[str], device: torch.device, steps: int, warmup: int) -> dict:
    """Steps/s of one config on synthetic tensors and on real batches from the cache, and tracks/s.

    Both run `mclx train`'s own plan and step function (model, view layout, augmentations, loss
    target, precision, gradient clipping), so the benchmark measures what training runs."""
    plan = make_train_plan(config_path, None, False, [*overrides, f"train.device='{device}'"], quiet=True)
    config = plan.config
    torch.manual_seed(config.train.seed)
    model = build_model(config)
    data = prepare_data(plan, model.encoder.spec.sample_rate)
    step = Step(plan, data, model)

    def timed(real: bool) -> float:
        n = warmup + steps
        x, tracks = make_batch(0, config, data.cache, plan.rank)
        fixed = (torch.from_numpy(x).to(device), torch.from_numpy(tracks).to(device))
        gpu = device.type == "cuda"
        feed = batches(0, n, config, data.cache, plan.rank, gpu) if real else [fixed] * n
        for k, (x, tracks) in enumerate(feed):
            if k == warmup:
                if gpu:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            step(k, x, tracks)
        if gpu:
            torch.cuda.synchronize()
        return steps / (time.perf_counter() - t0)

    synthetic = timed(False)
    real = timed(True)
    params = sum(p.numel() for p in model.encoder.parameters())
    b = config.train.batch_size
    return {"architecture": config.model.architecture, "encoder_args": model.encoder.spec.args,
            "encoder_params": params, "batch": b, "views": step.layout.n_views,
            "synthetic_steps_s": round(synthetic, 3), "real_steps_s": round(real, 3),
            "ratio": round(real / synthetic, 3), "examples_per_s": round(real * b, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="examples/configs/smoke.toml")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="tracks per step (default: the config's)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--versus", default="", help="a second config measured the same way")
    ap.add_argument("--versus-set", action="append", default=[], help="section.key=value for --versus")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = [f"train.batch_size={args.batch}"] if args.batch else []
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"device": name, "threads": torch.get_num_threads(),
              "recipe": measure(args.config, overrides, device, args.steps, args.warmup)}  # fmt: skip
    if args.versus:
        result["versus"] = measure(args.versus, overrides + args.versus_set, device, args.steps, args.warmup)
    for key in ("recipe", "versus") if args.versus else ("recipe",):
        r = result[key]
        print(f"{key}: {r['architecture']} ({r['encoder_params']:,} encoder parameters), batch {r['batch']} "
              f"({r['views']} views) on {name}: synthetic {r['synthetic_steps_s']:.2f} steps/s, real data "
              f"{r['real_steps_s']:.2f} steps/s ({r['ratio']:.2f} of synthetic), "
              f"{r['examples_per_s']:.1f} tracks/s")  # fmt: skip
    if args.versus:
        result["speedup"] = round(result["recipe"]["examples_per_s"] / result["versus"]["examples_per_s"], 2)
        print(f"recipe / versus: {result['speedup']:.2f}x tracks per second")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
