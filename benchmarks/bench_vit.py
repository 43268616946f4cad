"""Training step of a ViT: attnlab's ViT against torchvision's VisionTransformer of the same configuration.

A script that prints figures (not a test). Both models have the same sizes and the same weights
(``attnlab.vit.vit_to_torchvision`` copies ours into torchvision's), and each training step is the
same work: forward, cross-entropy, backward, one AdamW step. Runs alternate (ours, torchvision,
ours, ...) in one process, so that a change in the machine's load hits both; the figures are the
medians over the rounds, in images per second, and their ratio (ours / torchvision: above 1 means
ours is faster).

    .venv/bin/python benchmarks/bench_vit.py                          # lab-sized, CPU: 32 x 32, P = 4, D = 64, 4 blocks
    .venv/bin/python benchmarks/bench_vit.py --threads 1 --rounds 21
    python benchmarks/bench_vit.py --device cuda --dtype bf16 --size vit_b_16    # 224 x 224, D = 768, 12 blocks

``--dtype bf16`` runs both models under ``torch.autocast`` (bfloat16 matrix products and fused
attention, float32 weights and optimizer), as mixed-precision training does.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from attnlab.measure import time_call
from attnlab.vit import ViT, vit_to_torchvision

# image, patch, dim, depth, heads, ffn_dim, batch
SIZES = {
    "lab": dict(image=32, patch=4, dim=64, depth=4, heads=4, ffn=256, batch=64),
    "vit_s_16": dict(image=224, patch=16, dim=384, depth=12, heads=6, ffn=1536, batch=128),
    "vit_b_16": dict(image=224, patch=16, dim=768, depth=12, heads=12, ffn=3072, batch=64),
}
NUM_CLASSES = 10


def _trainer(model, images, labels, dtype, device):
    """A function doing one training step of ``model`` on one fixed batch."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = dtype != torch.float32

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=autocast):
            loss = F.cross_entropy(model(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench(size: dict, *, dtype: torch.dtype, device: torch.device, rounds: int, iters: int) -> tuple[float, float]:
    """Median images/s of (ours, torchvision's) training step."""
    torch.manual_seed(0)
    ours = ViT(image_size=size["image"], patch_size=size["patch"], num_classes=NUM_CLASSES, dim=size["dim"],
               depth=size["depth"], num_heads=size["heads"], ffn_dim=size["ffn"], eps=1e-6).to(device).train()
    theirs = vit_to_torchvision(ours)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(size["batch"], 3, size["image"], size["image"], generator=g).to(device)
    labels = torch.randint(0, NUM_CLASSES, (size["batch"],), generator=g).to(device)
    runs = {"ours": _trainer(ours, images, labels, dtype, device),
            "torchvision": _trainer(theirs, images, labels, dtype, device)}
    for fn in runs.values():                                              # warm-up (kernels, allocator)
        time_call(fn, repeat=1, warmup=max(2, iters // 2), device=device)
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            times[name].append(time_call(fn, repeat=iters, warmup=0, device=device))   # median step of the round
    return tuple(size["batch"] / statistics.median(times[name]) for name in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="lab")
    parser.add_argument("--batch", type=int, default=None, help="images per step (default: the size's)")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = dict(SIZES[args.size], **({"batch": args.batch} if args.batch else {}))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, {args.dtype}, training step (forward + backward + AdamW)")
    print(f"{args.size}: " + ", ".join(f"{k}={v}" for k, v in size.items())
          + f"; median of {args.rounds} alternating rounds of {args.iters} steps")
    ours, theirs = bench(size, dtype=dtype, device=device, rounds=args.rounds, iters=args.iters)
    print(f"{'attnlab ViT':>24} {ours:10.1f} images/s")
    print(f"{'torchvision ViT':>24} {theirs:10.1f} images/s")
    print(f"{'ratio (ours / torchvision)':>24} {ours / theirs:9.2f}x")


if __name__ == "__main__":
    main()
