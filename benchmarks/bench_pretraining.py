"""Does pre-training pay off at chapter 7's scale? Transfer to 3 % of the labels, per CPU-second.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_pretraining.py [names...]``

Each configuration pre-trains an MAE on 4000 unlabelled ``easy`` scenes (one thread; the
pre-training is stored in a temporary cache, so the methods share it), then classifies the shape
of the largest object (6 classes, chance 1/6) with 120 labelled scenes, three seeds (three
labelled sets, three starts of the new weights), scored on 1000 test scenes: a ViT of the same size
trained from scratch, the MAE's encoder fine-tuned with the same recipe, and a linear probe on its
frozen features. Times are CPU seconds of one thread (``time.process_time``); the machine's other
processes do not change them much, but run one experiment at a time. Prints a markdown table.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time

import torch

from attnlab import transfer as TL
from attnlab.data.scenes import SHAPES, make_scenes, preset
from attnlab.training import accuracy
from attnlab.vit import ViT

# name -> (MAE sizes and pre-training budget, fine-tuning steps)
CONFIGS = {
    "D=32, L=3, 600 x 64": (dict(dim=32, depth=3, steps=600, batch=64), 200),
    "D=64, L=4, 400 x 64": (dict(dim=64, depth=4, steps=400, batch=64), 200),
    "D=64, L=4, 600 x 128, 200 fine-tuning steps": (dict(dim=64, depth=4, steps=600, batch=128), 200),
    "D=64, L=4, 600 x 128, 150 fine-tuning steps": (dict(dim=64, depth=4, steps=600, batch=128), 150),
    "D=64, L=4, 600 x 128, 120 fine-tuning steps (the page)": (dict(dim=64, depth=4, steps=600, batch=128), 120),
}
N_LABELLED, SEEDS = 120, 3


def run(name: str, cache: str) -> list[tuple]:
    sizes, ft_steps = CONFIGS[name]
    vit_args = dict(image_size=32, patch_size=4, dim=sizes["dim"], depth=sizes["depth"], num_heads=4)
    config = dict(scenes="easy", n_unlabelled=4000, data_seed=20, seed=0, steps=sizes["steps"],
                  batch=sizes["batch"], lr=2e-3,
                  model=dict(vit_args, decoder_dim=32, decoder_depth=1, mask_ratio=0.75))
    start = time.process_time()
    mae, _ = TL.pretrained_mae(config, directory=cache)
    pre_seconds = time.process_time() - start
    world = preset("easy")
    test = make_scenes(1000, generator=torch.Generator().manual_seed(23), config=world)
    accs, seconds = {"scratch": [], "MAE fine-tuned": [], "MAE linear probe": []}, dict.fromkeys(("scratch", "MAE fine-tuned", "MAE linear probe"), 0.0)
    for seed in range(SEEDS):
        labelled = make_scenes(N_LABELLED, generator=torch.Generator().manual_seed(26 + seed), config=world)
        torch.manual_seed(50 + seed)
        fresh = ViT(**vit_args, num_classes=0, positions="sincos")
        for method, encoder in (("scratch", fresh), ("MAE fine-tuned", mae.encoder)):
            start = time.process_time()
            torch.manual_seed(100 + seed)
            model = TL.Classifier(encoder=copy.deepcopy(encoder), num_classes=len(SHAPES))
            TL.fine_tune(model, labelled.images, labelled.labels, steps=ft_steps,
                         generator=torch.Generator().manual_seed(seed), lr=1e-3)
            accs[method].append(accuracy(model, test.images, test.labels))
            seconds[method] += time.process_time() - start
        start = time.process_time()
        accs["MAE linear probe"].append(TL.probe_accuracy(
            TL.encoder_features(mae.encoder, labelled.images), labelled.labels,
            TL.encoder_features(mae.encoder, test.images), test.labels, num_classes=len(SHAPES)))
        seconds["MAE linear probe"] += time.process_time() - start
    rows = []
    for method, values in accs.items():
        t = torch.tensor(values)
        pre = pre_seconds if method != "scratch" else 0.0
        rows.append((name, method, N_LABELLED, SEEDS, float(t.mean()), float(t.min()), float(t.max()),
                     pre, seconds[method] / SEEDS))
    return rows


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    print("| MAE | method | labels | seeds | accuracy mean | min-max | pre-training CPU s | per-seed CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cache:
        for name in names or CONFIGS:
            for r in run(name, cache):
                print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.1%} | {r[5]:.1%}-{r[6]:.1%} | {r[7]:.0f} | {r[8]:.1f} |",
                      flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
