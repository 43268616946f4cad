"""Training steps of attnlab's SwinTransformer against torchvision's Swin, images per second.

A script that prints figures (not a test). Both models have the same sizes and the same weights
(copied with ``attnlab.convert``), run in training mode in one process, and take the same steps:
forward, cross-entropy, backward, AdamW. torchvision's stochastic depth is switched off (``p = 0``;
this package has none), so both compute the same function. Rounds alternate (ours, torchvision,
ours, ...) so that a change in the machine's load hits both; the figures are the medians over the
rounds and the median of the per-round ratios (ours / torchvision images/s: above 1 means ours is
faster), with every round's ratio printed to show the spread.

    .venv/bin/python benchmarks/bench_swin.py                      # CPU, a lab-sized Swin on 64 x 64 images
    .venv/bin/python benchmarks/bench_swin.py --threads 1 --rounds 11
    python benchmarks/bench_swin.py --device cuda --dtype bf16     # torchvision.models.swin_t at 224 x 224

``--model lab`` (the CPU default) is C = 32, depths (2, 2, 2), heads (2, 4, 8), M = 4 on 64 x 64
images; ``--model swin_t`` (the CUDA default) is ``torchvision.models.swin_t`` itself (C = 96, depths
(2, 2, 6, 2), M = 7) on 224 x 224 images. ``--dtype bf16`` runs both under ``torch.autocast``.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from attnlab.convert import swin_from_torchvision, swin_to_torchvision
from attnlab.measure import time_call
from attnlab.swin import SwinTransformer

LAB = dict(dim=32, depths=(2, 2, 2), num_heads=(2, 4, 8), window_size=4)


def build(model: str, image_size: int, num_classes: int, device: torch.device):
    """(ours, torchvision's) with the same weights, in training mode, on ``device``."""
    torch.manual_seed(0)
    if model == "swin_t":
        import torchvision

        ref = torchvision.models.swin_t(num_classes=num_classes)
        for m in ref.modules():
            if type(m).__name__ == "StochasticDepth":
                m.p = 0.0                                              # the same function as ours
        ours = swin_from_torchvision(ref, image_size=image_size)
    else:
        ours = SwinTransformer(image_size=image_size, num_classes=num_classes, **LAB)
        ref = swin_to_torchvision(ours)
    return ours.to(device).train(), ref.to(device).train()


def make_step(model, images, labels, dtype):
    """One training step of ``model`` (a closure), under autocast when ``dtype`` is bf16."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = dtype == "bf16"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()

    return step


def bench(args, device: torch.device) -> tuple[float, float, list[float]]:
    """Median images/s of (ours, torchvision's) training step, and the ratio of each round."""
    ours, ref = build(args.model, args.image_size, 10, device)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(args.batch, 3, args.image_size, args.image_size, generator=g).to(device)
    labels = torch.randint(0, 10, (args.batch,), generator=g).to(device)
    steps = {"ours": make_step(ours, images, labels, args.dtype), "torchvision": make_step(ref, images, labels, args.dtype)}
    for fn in steps.values():                                          # warm-up
        time_call(fn, repeat=1, warmup=max(1, args.iters // 2), device=device)
    times = {name: [] for name in steps}
    for _ in range(args.rounds):                                       # each round: the median of its steps
        for name, fn in steps.items():
            times[name].append(time_call(fn, repeat=args.iters, warmup=0, device=device))
    ratios = sorted(tv / ours for ours, tv in zip(times["ours"], times["torchvision"]))
    return args.batch / statistics.median(times["ours"]), args.batch / statistics.median(times["torchvision"]), ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--model", choices=("lab", "swin_t"), default=None,
                        help="lab (CPU default) or swin_t (CUDA default)")
    parser.add_argument("--image-size", type=int, default=None, help="64 for lab, 224 for swin_t")
    parser.add_argument("--batch", type=int, default=None, help="32 on CPU, 128 on CUDA")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.model = args.model or ("swin_t" if device.type == "cuda" else "lab")
    args.image_size = args.image_size or (224 if args.model == "swin_t" else 64)
    args.batch = args.batch or (128 if device.type == "cuda" else 32)
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, {args.dtype}, training step (forward, backward, AdamW)")
    sizes = "torchvision.models.swin_t" if args.model == "swin_t" else f"lab-sized Swin {LAB}"
    print(f"{sizes}, {args.image_size} x {args.image_size} images, batch {args.batch}; "
          f"median of {args.rounds} alternating rounds of {args.iters} steps")
    ours, ref, ratios = bench(args, device)
    print(f"{'attnlab images/s':>18} {'torchvision images/s':>21} {'ratio (ours / torchvision)':>27}")
    print(f"{ours:18.1f} {ref:21.1f} {statistics.median(ratios):26.2f}x")
    print(f"per-round ratios (a round times the two back to back): {[round(r, 2) for r in ratios]}")


if __name__ == "__main__":
    main()
