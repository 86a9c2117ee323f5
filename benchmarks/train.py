"""Training throughput with real data against synthetic tensors already on the device.

    python -m benchmarks.train --config examples/configs/choi_regional_adjacent.toml --device cuda --batch 256
    python -m benchmarks.train --config examples/configs/clmr_ssl.toml --device cuda --batch 96
    python -m benchmarks.train --config examples/configs/smoke.toml --device cpu        # runs anywhere
    python -m benchmarks.train --config examples/mclx-base/semi.toml --versus examples/mclx-base/semi.toml \
        --versus-set model.channels=[] --versus-set model.n_mels=0 --versus-set model.hop_length=0 \
        --versus-set views.segment_s=3.0 --threads 1     # mclx-base's recipe against the full-size melcnn

Both loops run the same model, loss, optimiser and precision for the same number of steps;
the real one cuts segments from the decoded-track cache and augments them on the device
(what `mclx train` does), the synthetic one reuses one random batch that never leaves the
device. Prints steps/s of each and their ratio (data loading is not the bottleneck when
the ratio is close to 1). ``--versus`` measures a second config (with ``--versus-set``
overrides) the same way in the same run and prints the ratio of examples (tracks) per second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mclx import losses
from mclx.augment import augment
from mclx.config import load_config
from mclx.distributed import Rank
from mclx.train import batches, build_model, make_batch, pool_matrix, view_groups
from mclx.traindata import build_cache, cache_root, list_audio
from mclx.views import view_sizes


def measure(config_path: str, overrides: list[str], device: torch.device, steps: int, warmup: int) -> dict:
    """Steps/s of one config on synthetic tensors and on real batches from the cache, and tracks/s."""
    config = load_config(config_path, overrides)
    model = build_model(config).to(device).train()
    rate = model.encoder.spec.sample_rate
    base = Path(config_path).resolve().parent
    cache = build_cache(list_audio(config, base), rate, cache_root(config, base), rate, quiet=True)
    sizes = view_sizes(config.views)
    b = config.train.batch_size
    pool = pool_matrix(b, sizes, device)
    groups = view_groups(pool, sizes)
    opt = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    amp = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    target = losses.same_clip_target(torch.arange(b, device=device).repeat(len(sizes)))

    def step(x: torch.Tensor, k: int) -> None:
        gen = torch.Generator(device=device).manual_seed(k)
        x = augment(x, config.views.augment, gen, config.views.augment_p, rate, groups)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            z = model(x, pool)
        loss = losses.contrastive_loss(z, target, config.loss.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(real: bool) -> float:
        n = warmup + steps
        fixed = torch.from_numpy(make_batch(0, config, cache, Rank())[0]).to(device)
        data = batches(0, n, config, cache, Rank(), device.type == "cuda") if real else [(fixed, None)] * n
        for k, (x, _) in enumerate(data):
            if k == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            step(x.to(device, non_blocking=True), k)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return steps / (time.perf_counter() - t0)

    synthetic = timed(False)
    real = timed(True)
    params = sum(p.numel() for p in model.encoder.parameters())
    return {"architecture": config.model.architecture, "encoder_args": model.encoder.spec.args,
            "encoder_params": params, "batch": b, "views": len(sizes),
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
