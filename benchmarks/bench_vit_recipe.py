"""What makes chapter 4's small ViT train on one CPU thread: accuracy per CPU-second of recipes.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_vit_recipe.py [names...]``, or
``... bench_vit_recipe.py --seeds 0 1 2`` for the spread of chapter 4's recipe (``attnlab.zoo``) over seeds;
``--small-objects`` trains and tests on chapter 4's second world (``zoo.SMALL_OBJECTS``: shapes of 30
to 60 % of the side) instead.

Every configuration trains on the page's data (the ``easy`` 32 x 32 scenes, 6 classes, fresh
scenes every step), on one thread, and is scored on the same 1,000 test scenes: test accuracy,
the training seconds, and the rollout's share on the object's patches divided by those patches'
share of the image (chapter 4's measurement; 1 = the rollout is spread evenly). One experiment at
a time: the other processes on the machine share its cores, so seconds are comparable only within
one run of this script. Prints a markdown table.
"""

from __future__ import annotations

import os
import sys
import time

import torch
import torch.nn.functional as F

from attnlab import vit as V
from attnlab.data import scenes as sc
from attnlab.measure import count_parameters
from attnlab.training import accuracy, seed_everything, train

BASE = dict(tokenizer="linear", patch=4, dim=32, depth=3, heads=2, ffn=64, pool="cls", steps=400, batch=64,
            lr=3e-3, wd=0.05, warmup=0.1, smoothing=0.0)
# name -> changes to BASE
CONFIGS = {
    "baseline (chapter 4 today)": {},
    "P=8": dict(patch=8),
    "lr 1e-2": dict(lr=1e-2),
    "label smoothing 0.1": dict(smoothing=0.1),
    "wd 0": dict(wd=0.0),
    "batch 128, 200 steps": dict(batch=128, steps=200),
    "batch 32, 800 steps": dict(batch=32, steps=800),
    "wide D=64, L=2": dict(dim=64, ffn=128, depth=2, heads=4),
    "deep D=32, L=6": dict(depth=6),
    "1200 steps": dict(steps=1200),
    "seq pool": dict(pool="seq"),
    "mean pool": dict(pool="mean"),
    "conv tokenizer": dict(tokenizer="conv"),
    "conv tok + seq pool": dict(tokenizer="conv", pool="seq"),
    "conv tok, 200 steps": dict(tokenizer="conv", steps=200),
    "conv tok, 200 steps, lr 1e-2": dict(tokenizer="conv", steps=200, lr=1e-2),
    "conv tok, 200 steps, smoothing 0.1": dict(tokenizer="conv", steps=200, smoothing=0.1),
    "conv tok + seq pool, 200 steps": dict(tokenizer="conv", pool="seq", steps=200),
    "conv tok, L=6, 200 steps": dict(tokenizer="conv", depth=6, steps=200),
    "linear P4, 1200 steps, lr 1e-2": dict(steps=1200, lr=1e-2),
    "conv tok, D=48, L=2 (the recipe)": dict(tokenizer="conv", dim=48, ffn=96, depth=2),
    "conv tok, D=48, L=2, 300 steps": dict(tokenizer="conv", dim=48, ffn=96, depth=2, steps=300),
    "conv tok, D=48, L=2, 600 steps": dict(tokenizer="conv", dim=48, ffn=96, depth=2, steps=600),
    "conv tok, D=48, L=2, seq pool": dict(tokenizer="conv", dim=48, ffn=96, depth=2, pool="seq"),
    "conv tok, D=48, L=2, smoothing 0.1": dict(tokenizer="conv", dim=48, ffn=96, depth=2, smoothing=0.1),
    "conv tok, D=48, L=2, H=4": dict(tokenizer="conv", dim=48, ffn=96, depth=2, heads=4),
    "conv tok, D=64, L=2, H=4": dict(tokenizer="conv", dim=64, ffn=128, depth=2, heads=4),
    "conv tok, D=64, L=1, H=4": dict(tokenizer="conv", dim=64, ffn=128, depth=1, heads=4),
}


def build(cfg: dict) -> torch.nn.Module:
    return V.ViT(image_size=32, patch_size=cfg["patch"], num_classes=len(sc.SHAPES), dim=cfg["dim"],
                 depth=cfg["depth"], num_heads=cfg["heads"], ffn_dim=cfg["ffn"], tokenizer=cfg["tokenizer"],
                 pool=cfg["pool"])


def run(name: str, changes: dict, world, test) -> dict:
    cfg = {**BASE, **changes}
    seed_everything(0)
    model = build(cfg)
    n = cfg["steps"] * cfg["batch"]
    start = time.perf_counter()
    data = sc.make_scenes(n, generator=torch.Generator().manual_seed(0), config=world)
    batches = list(zip(data.images.split(cfg["batch"]), data.labels.split(cfg["batch"])))
    history = train(model, lambda: batches,
                    lambda m, b: F.cross_entropy(m(b[0]), b[1], label_smoothing=cfg["smoothing"]),
                    steps=cfg["steps"], lr=cfg["lr"], weight_decay=cfg["wd"], warmup=int(cfg["warmup"] * cfg["steps"]))
    seconds = time.perf_counter() - start
    acc = accuracy(model, test.images, test.labels)
    row = dict(config=name, params=count_parameters(model), steps=cfg["steps"], batch=cfg["batch"], seconds=seconds,
               accuracy=acc, rollout=V.rollout_on_object(model, test.images[:500], test.masks[:500])["ratio"],
               loss=history.loss[-1])
    print(f"| {row['config']} | {row['params']:,} | {row['steps']} x {row['batch']} | {seconds:.1f} | {acc:.3f} | "
          f"{row['rollout']:.2f} |", flush=True)
    return row


def seed_spread(seeds: list[int], test, world) -> None:
    """Chapter 4's recipe (attnlab.zoo, cpu profile) on ``world`` trained from each seed: seconds,
    accuracy, rollout ratio, pointing game."""
    from attnlab import zoo

    for seed in seeds:
        config = {**zoo.scenes_vit_config("cpu", world), "seed": seed}
        model = zoo.build_scenes_vit(config)
        start = time.perf_counter()
        zoo.train_scenes_vit(model, config)
        seconds = time.perf_counter() - start
        on_object = V.rollout_on_object(model.eval(), test.images[:500], test.masks[:500])
        print(f"| recipe, seed {seed} | {seconds:.1f} | {accuracy(model, test.images, test.labels):.3f} | "
              f"{on_object['ratio']:.2f} | {on_object['peak']:.2f} |", flush=True)


def main(names: list[str]) -> None:
    os.environ.setdefault("ATTNLAB_PROGRESS", "off")
    torch.set_num_threads(1)
    from attnlab import zoo

    small = "--small-objects" in names                       # chapter 4's second world (zoo.SMALL_OBJECTS)
    names = [n for n in names if n != "--small-objects"]
    spec = zoo.SMALL_OBJECTS if small else "easy"
    world = zoo.scenes_world(spec)
    test = sc.make_scenes(1000, generator=torch.Generator().manual_seed(1), config=world)
    if names[:1] == ["--seeds"]:
        print("| model | seconds | test accuracy | rollout share / object share | brightest patch on the object |\n"
              "|---|---|---|---|---|")
        return seed_spread([int(n) for n in names[1:]], test, spec)
    print("| config | parameters | steps x batch | seconds | test accuracy | rollout share / object share |")
    print("|---|---|---|---|---|---|")
    for name in names or CONFIGS:
        run(name, CONFIGS[name], world, test)


if __name__ == "__main__":
    main(sys.argv[1:])
