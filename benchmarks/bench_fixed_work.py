"""Fixed-work accuracy of a recipe: the same number of training steps for several seeds, each in a fresh process.

    python benchmarks/bench_fixed_work.py --data-dir /tmp/cifar10                       # resnet20, short, 480 steps, seeds 0,1,2
    python benchmarks/bench_fixed_work.py --data-dir /tmp/cifar10 --set label_smoothing=0.3 --set peak_lr=0.12
    python benchmarks/bench_fixed_work.py --data-dir /tmp/cifar10 --flag=--precision --flag=float32

A budget in steps makes the machine's speed drop out: the figure is the test accuracy (all 10,000 test images)
after exactly `--steps` batches. `--set FIELD=VALUE` replaces a field of the recipe for the run (a Python literal:
0.3, True, None, "step"); the child process applies it to `explorer.training.recipes.RECIPES` before the command
line runs, so nothing in the package knows about it. Prints one line per seed, the mean, and one JSON line last.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The child: apply the recipe overrides (JSON in argv[1]) to one recipe (argv[2]), then run the CLI with argv[3:].
CHILD = """
import dataclasses, json, runpy, sys
from explorer.training import recipes
overrides, name = json.loads(sys.argv[1]), sys.argv[2]
if overrides:
    recipes.RECIPES[name] = dataclasses.replace(recipes.RECIPES[name], **overrides)
sys.argv = ["explorer", *sys.argv[3:]]
runpy.run_module("explorer", run_name="__main__", alter_sys=True)
"""


def cpu_flags() -> dict[str, bool]:
    """avx2 / avx512f / avx512_bf16 / amx_bf16 of this machine's CPU (from /proc/cpuinfo)."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}


def parse_set(items: list[str]) -> dict:
    """`FIELD=VALUE` pairs into a dict of recipe overrides, each field checked against `Recipe`."""
    from explorer.training.recipes import Recipe

    known = {f.name for f in dataclasses.fields(Recipe)}
    out = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or field not in known:
            raise SystemExit(f"--set {item!r}: give FIELD=VALUE with FIELD one of: {', '.join(sorted(known))}")
        try:
            out[field] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[field] = value  # a bare word: a string
    return out


def run_one(args: argparse.Namespace, seed: int, overrides: dict) -> dict:
    cmd = [sys.executable, "-c", CHILD, json.dumps(overrides), args.recipe,
           "train", "--preset", args.preset, "--recipe", args.recipe, "--steps", str(args.steps),
           "--seed", str(seed), "--json", *(["--data-dir", args.data_dir] if args.data_dir else []), *args.flag]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"seed": seed, "error": f"exit {proc.returncode}: " + " | ".join(tail), "wall_seconds": round(wall, 1)}
    result = json.loads(lines[-1])
    return {"seed": seed, "test_accuracy": result.get("test_accuracy"), "precision": result.get("precision"),
            "steps": result.get("steps"), "train_seconds": result.get("train_seconds"), "wall_seconds": round(wall, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="resnet20")
    p.add_argument("--recipe", default="short")
    p.add_argument("--steps", type=int, default=480)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    p.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR"))
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field (repeatable)")
    p.add_argument("--flag", action="append", default=[], metavar="ARG",
                   help="one extra argument for `explorer train` (repeatable: --flag=--precision --flag=float32)")
    p.add_argument("--label", default="", help="a name for this configuration in the output")
    args = p.parse_args(argv)
    overrides = parse_set(args.set)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    flags = cpu_flags()
    print(f"{args.preset}, recipe {args.recipe}, {args.steps} steps, seeds {seeds}; overrides {overrides or 'none'}; "
          f"flags {' '.join(args.flag) or 'none'}; CPU {', '.join(f for f, on in flags.items() if on) or 'no AVX2'}",
          flush=True)
    started = time.perf_counter()
    runs = []
    for seed in seeds:
        run = run_one(args, seed, overrides)
        runs.append(run)
        if "error" in run:
            print(f"  seed {seed}: FAILED {run['error']}", flush=True)
        else:
            print(f"  seed {seed}: {100 * run['test_accuracy']:.2f} %  ({run['precision']}, {run['steps']} steps, "
                  f"train {run['train_seconds']:.0f} s, wall {run['wall_seconds']:.0f} s)", flush=True)
    accs = [r["test_accuracy"] for r in runs if r.get("test_accuracy") is not None]
    mean = statistics.mean(accs) if accs else None
    spread = statistics.stdev(accs) if len(accs) > 1 else None
    wall = time.perf_counter() - started
    if mean is not None:
        print(f"mean {100 * mean:.2f} %" + (f" (sd {100 * spread:.2f})" if spread is not None else "")
              + f" over {len(accs)} seed(s); {wall:.0f} s in all", flush=True)
    print(json.dumps({"label": args.label, "preset": args.preset, "recipe": args.recipe, "steps": args.steps,
                      "overrides": overrides, "flags": args.flag, "cpu": flags, "runs": runs,
                      "mean_accuracy": mean, "sd": spread, "wall_seconds": round(wall, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
