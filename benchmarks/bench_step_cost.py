"""What a recipe field costs per training step: the same network trained with two recipes, side by side in one process.

    python benchmarks/bench_step_cost.py                                  # resnet20: Muon steps (the short recipe) vs plain SGD
    python benchmarks/bench_step_cost.py --preset resnet56 --a muon_lr=0.0 --b muon_lr=0.1 --rounds 8

Both models train on the same random batch of 64 (the short recipe's batch; values do not change a step's cost)
through Keras' own `train_on_batch`, in alternating rounds of `--steps` steps, so that load from other processes
hits both; prints the median milliseconds per step of each, their ratio, and one JSON line. Asserts nothing.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def recipe_with(items: list[str]):
    from explorer.training.recipes import RECIPES

    changes = {}
    for item in items:
        name, _, value = item.partition("=")
        changes[name] = ast.literal_eval(value)
    return dataclasses.replace(RECIPES["short"], **changes)


def trainer(preset: str, recipe):
    from explorer.presets import get_preset
    from explorer.training import loop

    precision = loop.choose_precision("auto", recipe)
    model = loop.build_training_model(get_preset(preset).config, precision=precision)
    loop.fuse_batchnorm(model)
    optimizer = loop.compile_for_training(model, recipe, precision=precision, muon=True)
    return model, precision, type(optimizer).__name__


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="resnet20")
    p.add_argument("--a", action="append", default=[], metavar="FIELD=VALUE", help="recipe A's changes (default: the short recipe)")
    p.add_argument("--b", action="append", default=None, metavar="FIELD=VALUE", help="recipe B's changes (default muon_lr=0.0)")
    p.add_argument("--steps", type=int, default=10, help="steps per round")
    p.add_argument("--rounds", type=int, default=6)
    args = p.parse_args(argv)
    import numpy as np

    from explorer.backend import quiet_start

    quiet_start()
    recipes = {"A": recipe_with(args.a), "B": recipe_with(args.b if args.b is not None else ["muon_lr=0.0"])}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 32, 32, 3)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
    models = {}
    for name, recipe in recipes.items():
        model, precision, opt = trainer(args.preset, recipe)
        model.train_on_batch(x, y)  # (traces the step)
        models[name] = model
        print(f"{name}: {opt}, {precision}, muon_lr {recipe.muon_lr}", flush=True)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            times[name].append((time.perf_counter() - started) / args.steps * 1000)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{args.preset}, batch 64: A {med['A']:.1f} ms/step, B {med['B']:.1f} ms/step, A/B {med['A'] / med['B']:.3f} "
          f"(medians of {args.rounds} alternating rounds of {args.steps} steps)")
    print(json.dumps({"preset": args.preset, "a": args.a, "b": args.b or ["muon_lr=0.0"], "ms_per_step": med,
                      "ratio_a_over_b": med["A"] / med["B"], "rounds": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
