"""What makes chapter 6's small Swin train on one CPU thread, against chapter 4's ViT recipe.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_swin_recipe.py [names...]`` (default: all).

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

import torch

from attnlab import swin as SW
from attnlab import zoo
from attnlab.data import scenes as sc
from attnlab.measure import count_parameters
from attnlab.training import accuracy, seed_everything

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
    test = sc.make_scenes(3000, generator=torch.Generator().manual_seed(1), config=sc.preset("easy", size=32))
    for name in names or list(CONFIGS):
        config = zoo.scenes_vit_config("cpu")
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


if __name__ == "__main__":
    main(sys.argv[1:])
