"""Training throughput with real data against synthetic tensors already on the device.

    python -m benchmarks.train --config examples/configs/choi_regional_adjacent.toml --device cuda --batch 256
    python -m benchmarks.train --config examples/configs/clmr_ssl.toml --device cuda --batch 96
    python -m benchmarks.train --config examples/configs/smoke.toml --device cpu        # runs anywhere

Both loops run the same model, loss, optimiser and precision for the same number of steps;
the real one cuts segments from the decoded-track cache and augments them on the device
(what `mclx train` does), the synthetic one reuses one random batch that never leaves the
device. Prints steps/s of each and their ratio (data loading is not the bottleneck when
the ratio is close to 1).
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
from mclx.train import batches, build_model, make_batch, pool_matrix
from mclx.traindata import build_cache, cache_root, list_audio
from mclx.views import view_sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="examples/configs/smoke.toml")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="tracks per step (default: the config's)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    overrides = [f"train.batch_size={args.batch}"] if args.batch else []
    config = load_config(args.config, overrides)
    device = torch.device(args.device)
    model = build_model(config).to(device).train()
    rate = model.encoder.spec.sample_rate
    cache = build_cache(
        list_audio(config, Path(args.config).resolve().parent),
        rate,
        cache_root(config, Path(args.config).resolve().parent),
        rate,
    )
    sizes = view_sizes(config.views)
    b = config.train.batch_size
    pool = pool_matrix(b, sizes, device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    amp = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    target = losses.same_clip_target(torch.arange(b, device=device).repeat(len(sizes)))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    def step(x: torch.Tensor, k: int) -> None:
        gen = torch.Generator(device=device).manual_seed(k)
        x = augment(x, config.views.augment, gen, config.views.augment_p, rate)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            z = model(x, pool)
        loss = losses.contrastive_loss(z, target, config.loss.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(real: bool) -> float:
        n = args.warmup + args.steps
        fixed = torch.from_numpy(make_batch(0, config, cache, Rank())[0]).to(device)
        data = batches(0, n, config, cache, Rank(), device.type == "cuda") if real else [(fixed, None)] * n
        for k, (x, _) in enumerate(data):
            if k == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            step(x.to(device, non_blocking=True), k)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return args.steps / (time.perf_counter() - t0)

    synthetic = timed(False)
    real = timed(True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{config.model.architecture} batch {b} ({len(sizes)} views) on {name}")
    print(f"synthetic tensors on device: {synthetic:.2f} steps/s")
    print(f"real data from the cache:    {real:.2f} steps/s  ({real / synthetic:.2f} of synthetic)")
    print(json.dumps({"architecture": config.model.architecture, "batch": b, "device": name,
                      "synthetic_steps_s": round(synthetic, 3), "real_steps_s": round(real, 3),
                      "ratio": round(real / synthetic, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
