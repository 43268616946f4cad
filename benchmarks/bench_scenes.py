"""How fast attnlab.data.scenes generates scenes: ``.venv/bin/python benchmarks/bench_scenes.py``.

Prints images per second at 32 x 32 (one object, each preset) and at 64 x 64 (one to four objects,
as chapter 5 uses them), every field of :class:`~attnlab.data.scenes.Scenes` included (masks, boxes,
captions); each figure is the median of a few timed calls (:func:`attnlab.measure.time_call`).
The figure to compare with: a ViT of width 64 trains at about 190 images/s on a 2-core CPU, so
generating its data must cost a small fraction of training.

Timings on a shared machine fluctuate with the other work on it: each block starts with the time
of a fixed reference operation, so two runs can be compared; run it twice. On a busy 2-core machine
one thread can beat two (the second waits for a core), so both are measured.
"""

from __future__ import annotations

import argparse

import torch

from attnlab.data import scenes
from attnlab.measure import time_call


def images_per_second(config: scenes.SceneConfig, n: int, *, repeat: int) -> float:
    """Median images/s of ``make_scenes(n, config=config)`` over ``repeat`` calls (after one warm-up call)."""
    generator = torch.Generator().manual_seed(0)
    return n / time_call(lambda: scenes.make_scenes(n, generator=generator, config=config), repeat=repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="scenes per timed call at 32 x 32 (a quarter at 64 x 64)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads(), 1],
                        help="torch thread counts to measure with (default: torch's choice, then 1)")
    args = parser.parse_args()
    x = torch.rand(10_000_000, generator=torch.Generator().manual_seed(0))
    for threads in dict.fromkeys(args.threads):
        torch.set_num_threads(threads)
        reference = time_call(lambda: x * x + x, repeat=args.repeat)
        print(f"torch {torch.__version__}, {threads} thread(s); reference: x * x + x on 10M floats takes "
              f"{1e3 * reference:.1f} ms")
        for name in scenes.PRESETS:
            rate = images_per_second(scenes.preset(name), args.n, repeat=args.repeat)
            print(f"  32 x 32, 1 object,     {name:6s}: {rate:9,.0f} images/s")
        for name in scenes.PRESETS:
            config = scenes.preset(name, size=64, num_objects=(1, 4), scale=(0.15, 0.35), max_overlap=0.2)
            rate = images_per_second(config, args.n // 4, repeat=args.repeat)
            print(f"  64 x 64, 1-4 objects,  {name:6s}: {rate:9,.0f} images/s")


if __name__ == "__main__":
    main()
