"""DETR training steps per second with the batched matcher against the per-image loop.

A script that prints figures (not a test). Both runs train the same DETR on the same scenes with
the same loss (``attnlab.detr.set_loss`` with auxiliary layers); they differ only in the matcher:

* batched: ``detr_loss``: one (L B, N_q, N) cost tensor, one copy to the CPU, one
  ``linear_sum_assignment`` per image;
* loop: ``match_per_image`` per decoder layer: a cost, a copy (on a GPU: a wait) and a solve per image.

Runs alternate (batched, loop, batched, ...) so that a change in the machine's load hits both; the
figures are the medians over the rounds.

    .venv/bin/python benchmarks/bench_detr_matcher.py                         # the page's model, CPU
    python benchmarks/bench_detr_matcher.py --device cuda --batch 256 --size 64 --queries 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from attnlab import detr as D
from attnlab.data.scenes import SHAPES, make_scenes, preset


def _loop_loss(outputs, targets):
    """The set loss with the naive matcher: every decoder layer, every image on its own."""
    logits = torch.cat([outputs["aux_logits"], outputs["pred_logits"][None]])          # (L, B, N_q, Y + 1)
    boxes = torch.cat([outputs["aux_boxes"], outputs["pred_boxes"][None]])
    labels, true_boxes, sizes = D.pad_targets(targets)
    labels, true_boxes = labels.to(logits.device), true_boxes.to(logits.device)
    losses = [D.set_loss(lg, bx, labels, true_boxes, D.match_per_image(lg, bx, targets), num_boxes=int(sizes.sum()))
              for lg, bx in zip(logits, boxes)]
    return torch.stack([loss["loss"] for loss in losses]).mean()


def _steps_per_second(model, opt, batches, loss, steps: int, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for images, labels, boxes, sizes, targets in batches[:steps]:
        value = loss(model(images), labels, boxes, sizes, targets)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    sync()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--queries", type=int, default=6)
    parser.add_argument("--objects", type=int, default=3, help="at most this many objects per scene (at least 1)")
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    world = preset("easy", size=args.size, num_objects=(1, args.objects), scale=(0.25, 0.5), max_overlap=0.1,
                   shapes=SHAPES[:3])
    scenes = make_scenes(args.batch * args.steps, generator=torch.Generator().manual_seed(0), config=world)
    batches = []
    for k in range(args.steps):
        part = scenes.images[k * args.batch:(k + 1) * args.batch]
        chunk = slice(k * args.batch, (k + 1) * args.batch)
        targets = [{key: v.to(device) for key, v in t.items()} for t in scenes.targets()[chunk]]
        batches.append((part.to(device), scenes.shapes[chunk].to(device), scenes.boxes[chunk].to(device),
                        scenes.num_objects[chunk].tolist(), targets))
    losses = {"batched": lambda out, labels, boxes, sizes, targets: D.detr_loss(out, labels, boxes, sizes)["loss"],
              "loop": lambda out, labels, boxes, sizes, targets: _loop_loss(out, targets)}
    torch.manual_seed(0)
    model = D.DETR(num_classes=3, image_size=args.size, num_queries=args.queries, dim=64, num_heads=4,
                   encoder_layers=2, decoder_layers=2).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rates = {name: [] for name in losses}
    _steps_per_second(model, opt, batches, losses["batched"], min(2, args.steps), device)   # warm-up
    for _ in range(args.rounds):
        for name, loss in losses.items():
            rates[name].append(_steps_per_second(model, opt, batches, loss, args.steps, device))
    batched, loop = statistics.median(rates["batched"]), statistics.median(rates["loop"])
    print(f"device {device}, batch {args.batch}, {args.size} x {args.size}, {args.queries} queries, "
          f"{args.threads} thread(s), medians of {args.rounds} rounds of {args.steps} steps")
    print(f"  batched matcher: {batched:6.2f} steps/s")
    print(f"  per-image loop:  {loop:6.2f} steps/s  (batched / loop = {batched / loop:.2f})")


if __name__ == "__main__":
    main()
