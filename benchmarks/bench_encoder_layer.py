"""Forward + backward of one encoder layer: attnlab's EncoderLayer against torch.nn.TransformerEncoderLayer.

A script that prints figures (not a test): both layers have the same sizes, the same weights
(copied with ``attnlab.convert``) and the same dropout setting, and run in training mode in one
process. Runs alternate (ours, torch, ours, torch, ...) so that a change in the machine's load
hits both; the figures are the medians over the rounds and their ratio (torch / ours: above 1
means ours is faster).

    .venv/bin/python benchmarks/bench_encoder_layer.py            # lab-sized: B=32, T=32, D=64, H=4, F=256
    .venv/bin/python benchmarks/bench_encoder_layer.py --threads 1 --rounds 41
    python benchmarks/bench_encoder_layer.py --device cuda         # on a GPU (CUDA synchronised)

With dropout > 0 the two do not compute the same function: torch also drops attention weights
(this package, like the paper, does not), so only the dropout-0 rows compare equal work.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from attnlab.attention import padding_mask
from attnlab.convert import encoder_layer_to_torch
from attnlab.transformer import EncoderLayer


def _step(layer, x, call):
    """One forward + backward; returns nothing (gradients accumulate in .grad, harmlessly)."""
    out = call(layer, x)
    out.sum().backward()


def _time(fn, iters: int, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - start) / iters


def bench(*, B: int, T: int, D: int, H: int, F: int, dropout: float, masked: bool, norm_first: bool,
          rounds: int, iters: int, device: torch.device) -> tuple[float, float]:
    """Median seconds per forward+backward of (ours, torch's) layer."""
    torch.manual_seed(0)
    ours = EncoderLayer(dim=D, num_heads=H, ffn_dim=F, dropout=dropout, norm_first=norm_first).to(device).train()
    ref = encoder_layer_to_torch(ours).train()
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(1)).to(device).requires_grad_()
    lengths = torch.randint(T // 2, T + 1, (B,), generator=torch.Generator().manual_seed(2)).to(device)
    ours_mask = padding_mask(lengths, T) if masked else None                        # (B, 1, 1, T), True = pad
    torch_mask = ours_mask[:, 0, 0] if masked else None                             # (B, T), torch's form
    run_ours = lambda: _step(ours, x, lambda m, v: m(v, mask=ours_mask))            # noqa: E731
    run_torch = lambda: _step(ref, x, lambda m, v: m(v, src_key_padding_mask=torch_mask))  # noqa: E731
    for fn in (run_ours, run_torch):                                                 # warm-up
        _time(fn, iters, device)
    times = {"ours": [], "torch": []}
    for _ in range(rounds):
        times["ours"].append(_time(run_ours, iters, device))
        times["torch"].append(_time(run_torch, iters, device))
    return statistics.median(times["ours"]), statistics.median(times["torch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--T", type=int, default=32)
    parser.add_argument("--D", type=int, default=64)
    parser.add_argument("--H", type=int, default=4)
    parser.add_argument("--F", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, float32, training mode, forward + backward")
    print(f"B={args.B} T={args.T} D={args.D} H={args.H} F={args.F}; median of {args.rounds} alternating rounds "
          f"of {args.iters} steps")
    print(f"{'placement':>10} {'dropout':>8} {'mask':>8} {'ours ms':>9} {'torch ms':>9} {'torch/ours':>11}")
    for norm_first in (False, True):
        for dropout in (0.0, 0.1):
            for masked in (False, True):
                ours, ref = bench(B=args.B, T=args.T, D=args.D, H=args.H, F=args.F, dropout=dropout, masked=masked,
                                  norm_first=norm_first, rounds=args.rounds, iters=args.iters, device=device)
                print(f"{'pre' if norm_first else 'post':>10} {dropout:8.1f} {'padding' if masked else 'none':>8} "
                      f"{ours * 1e3:9.3f} {ref * 1e3:9.3f} {ref / ours:10.2f}x")


if __name__ == "__main__":
    main()
