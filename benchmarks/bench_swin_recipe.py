"""What makes chapter 6's small Swin train on one CPU thread, against chapter 4's ViT recipe.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_swin_recipe.py [names...]`` (default: all),
``--small-objects`` for the same rows on chapter 4's scenes of smaller shapes (``zoo.SMALL_OBJECTS``),
or ``... bench_swin_recipe.py --segmentation 0 1 2`` for the page's segmentation experiment with
those seeds (chapter 6's section "Swin as a backbone"; the trained backbones come from the model
cache, ``attnlab.zoo``).

Every row trains with chapter 4's training (``attnlab.zoo.train_scenes_vit``: the ``easy`` 32 x 32
scenes, fresh scenes every step, 400 steps of 64 unless the row says otherwise, AdamW at 3e-3 with
10 % warm-up and a cosine decay, weight decay 0.05) on one thread, back to back in this process,
and is scored on chapter 4's 1,000 test scenes and on 3,000 (the same first 1,000 and 2,000
more). Seconds are CPU seconds of this process (``time.process_time``): comparable within one run
of the script. Prints one JSON line per row.
"""

from __future__ import annotations

import json
import sys
import time

import copy

import torch
import torch.nn.functional as F

from attnlab import setr as S
from attnlab import swin as SW
from attnlab import zoo
from attnlab.swin_seg import SwinSegmenter
from attnlab.data import scenes as sc
from attnlab.measure import count_parameters
from attnlab.training import accuracy, seed_everything, train

SWIN = dict(image_size=32, patch_size=4, tokenizer="conv", dim=32, depths=(1, 1), num_heads=(2, 4), window_size=4)
# name -> (changes to SWIN, changes to the training); "vit" is chapter 4's recipe itself
CONFIGS = {
    "vit (chapter 4's recipe)": None,
    "swin (the recipe: conv tokenizer, C=32, depths 1, 1)": ({}, {}),
    "swin, linear patches": (dict(tokenizer="linear"), {}),
    "swin, linear patches, C=16, depths 2, 2 (the chapter's earlier Swin)": (
        dict(tokenizer="linear", dim=16, depths=(2, 2), num_heads=(1, 2)), {}),
    "swin, depths 2, 2": (dict(depths=(2, 2)), {}),
    "swin, C=24, depths 2, 2": (dict(dim=24, depths=(2, 2)), {}),
    "swin, C=48, depths 2, 2": (dict(dim=48, depths=(2, 2)), {}),
    "swin, depths 2, 2, 300 steps": (dict(depths=(2, 2)), dict(steps=300)),
    "swin, depths 2, 1": (dict(depths=(2, 1)), {}),
    "swin, depths 2, 1, 300 steps": (dict(depths=(2, 1)), dict(steps=300)),
    "swin, C=40, depths 2, 1": (dict(dim=40, depths=(2, 1)), {}),
}


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    world = zoo.SMALL_OBJECTS if "--small-objects" in names else "easy"     # chapter 4's two kinds of scenes
    names = [n for n in names if n != "--small-objects"]
    test = sc.make_scenes(3000, generator=torch.Generator().manual_seed(1), config=zoo.scenes_world(world))
    for name in names or list(CONFIGS):
        config = zoo.scenes_vit_config("cpu", world)
        if CONFIGS[name] is None:
            model = zoo.build_scenes_vit(config)
        else:
            sizes, training = CONFIGS[name]
            config.update(training)
            seed_everything(config["seed"])
            model = SW.SwinTransformer(num_classes=len(sc.SHAPES), **{**SWIN, **sizes})
        start = time.process_time()
        record = zoo.train_scenes_vit(model, config)
        seconds = time.process_time() - start
        model.eval()
        print(json.dumps(dict(name=name, parameters=count_parameters(model), steps=config["steps"],
                              cpu_seconds=round(seconds, 1),
                              accuracy_1000=accuracy(model, test.images[:1000], test.labels[:1000]),
                              accuracy_3000=accuracy(model, test.images, test.labels),
                              validation=[round(e["accuracy"], 3) for e in record["eval"]])), flush=True)


def segmentation(seeds: list[int], steps: int = 150, batch: int = 32) -> None:
    """The page's segmentation experiment (scenes of 2 or 3 shapes; Swin + FPN, its stage 1 alone and
    SETR-PUP on chapter 4's ViT; 150 steps of 32) once per seed: the seed draws the training scenes
    (the page's are seed 0's) and the heads' initialisation; the test scenes stay the page's."""
    torch.set_num_threads(1)
    several = sc.preset("easy", size=32, num_objects=(2, 3), scale=(0.3, 0.5))
    test = sc.make_scenes(500, generator=torch.Generator().manual_seed(8), config=several)
    vit, swin = zoo.scenes_vit("cpu")[0], zoo.scenes_swin("cpu")[0]
    classes = 1 + len(sc.SHAPES)
    makers = {"Swin + FPN": lambda: SwinSegmenter(backbone=copy.deepcopy(swin), num_classes=classes),
              "Swin + FPN, stage 1 only": lambda: SwinSegmenter(backbone=copy.deepcopy(swin), num_classes=classes,
                                                                 stages=1),
              "ViT + SETR-PUP": lambda: S.SETR(num_classes=classes, image_size=32, patch_size=4, head="pup",
                                               encoder=copy.deepcopy(vit))}
    for seed in seeds:
        pool = sc.make_scenes(steps * batch, generator=torch.Generator().manual_seed(7 + 100 * seed), config=several)
        batches = list(zip(pool.images.split(batch), pool.masks.split(batch)))
        for name, make in makers.items():
            seed_everything(seed)
            model = make()
            start = time.process_time()
            train(model, lambda: batches, lambda m, b: F.cross_entropy(m(b[0]), b[1]), steps=steps, lr=2e-3,
                  warmup=steps // 10, desc=name)
            seconds = time.process_time() - start
            with torch.no_grad():
                predicted = model.eval()(test.images).argmax(1)
            print(json.dumps(dict(seed=seed, name=name, cpu_seconds=round(seconds, 1),
                                  miou=round(S.mean_iou(predicted, test.masks, num_classes=classes), 3))), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--segmentation"]:
        segmentation([int(seed) for seed in sys.argv[2:]] or [0, 1, 2])
    else:
        main(sys.argv[1:])
