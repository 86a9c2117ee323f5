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

    python -m benchmarks.train --augmentations [--device cuda] [--batch 96] [--threads 1]

times each augmentation alone on one batch of (batch, 3 s at 16 kHz) noise on the device, at
`views.augment_p`'s default (0.8), beside the default chain (gain, polarity, noise, filter, delay):
milliseconds per batch and the ratio to that chain. No model and no data are needed.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from mclx.config import AUGMENTATIONS, DEFAULT_AUGMENTATIONS, ViewsConfig
from mclx.train import Step, batches, build_model, make_batch, make_train_plan, prepare_data
from mclx.train.augment import chain


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


def augmentation_costs(device: torch.device, batch: int, repeats: int, seconds: float = 3.0) -> dict:
    """Median ms per (batch, seconds * 16 kHz) batch of each augmentation alone and of the
    default chain, each timed on the same input with fresh seeds (the draws, and so pitch's
    number of distinct shifts, vary from batch to batch as in training)."""
    rate, p = 16000, ViewsConfig().augment_p
    x = 0.1 * torch.randn(batch, int(seconds * rate), generator=torch.Generator().manual_seed(0)).to(device)
    runs = {"default chain": list(DEFAULT_AUGMENTATIONS), **{name: [name] for name in AUGMENTATIONS}}
    ms = {}
    for label, names in runs.items():
        apply = chain(names, p, rate)
        times = []
        for k in range(repeats + 2):  # the first two warm up (FFT plans, allocator)
            gen = torch.Generator(device=device).manual_seed(k)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            apply(x, gen)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        ms[label] = round(1000 * sorted(times[2:])[repeats // 2], 2)
    return ms


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
    ap.add_argument("--augmentations", action="store_true", help="time each augmentation alone instead")
    ap.add_argument("--repeats", type=int, default=10, help="timed batches per augmentation")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.augmentations:
        device = torch.device(args.device)
        batch = args.batch or 96
        ms = augmentation_costs(device, batch, args.repeats)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"augmentations alone, batch {batch} x 3 s at 16 kHz, p = 0.8, on {name} "
              f"({torch.get_num_threads()} threads), median of {args.repeats}:")  # fmt: skip
        base = ms["default chain"]
        for label, t in ms.items():
            print(f"  {label:>14}: {t:9.2f} ms/batch  {t / base:6.2f}x the default chain")
        print(json.dumps({"device": name, "threads": torch.get_num_threads(), "batch": batch, "ms": ms}))
        return
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
