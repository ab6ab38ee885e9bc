"""The command line `python -m explorer`: the app's views, training and prediction for one network, without a browser."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from explorer import files, fmt
from explorer.annotate import AnnotatedGraph, build
from explorer.config import FIELDS, ConfigError, Field, ResNetConfig
from explorer.presets import PRESETS, get_preset

EXIT_OK, EXIT_USAGE, EXIT_DIAGNOSTICS = 0, 2, 3
MAX_CONFIG_FILE_BYTES = 64 * 1024 * 1024  # `summary --json` of the deepest network the config allows is ~30 MB

# Every path argument: (argparse dest, what it must be, how the message names it, what to give instead).
# They are checked with os.stat before any command opens them (`check_path_args`).
PATH_ARGS = (
    ("config", "file", "--config", "give a config JSON file (as `summary --json` prints it)"),
    ("model", "file", "--model", "give a .keras model file"),
    ("images", "file", "IMAGE", "give PNG, JPEG, GIF, BMP or WebP files"),
    ("weights", "file", "--weights", "give imagenet or a keras.applications .h5 weights file"),
    ("data_dir", "file or folder", "--data-dir", "give the folder that holds CIFAR-10 (or one of its .tar.gz archives)"),
    ("image_dir", "folder", "--image-dir", "give a folder with one subfolder per class"),
    ("val_dir", "folder", "--val-dir", "give a folder with one subfolder per class"),
    ("out", "folder", "--out", "give a folder (it is created when missing)"),
    ("output", "file", "--output", "give the path of a .dot, .svg or .png file to write"),
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _add_config_flags(p: argparse.ArgumentParser, *, side: str = "") -> None:
    """The config flags (`--preset`, `--config`, one per FIELDS entry); with `side="b"` the second network's
    (`--preset-b`, `--config-b`, `--depth-b`, …, read by `config_from_args(args, side="b")`)."""
    suffix = f"-{side}" if side else ""
    title = (f"network {side.upper()} (starts from network A; the same flags with -{side})" if side
             else "network (also usable as overrides after --preset)")
    g = p.add_argument_group(title)
    src = g.add_mutually_exclusive_group()
    src.add_argument(f"--preset{suffix}", metavar="NAME", help=f"start from a preset: {', '.join(PRESETS)}"
                     if not side else "start from this preset instead of network A")
    src.add_argument(f"--config{suffix}", metavar="FILE.json",
                     help="start from a config JSON file (as printed by summary --json)")
    for field in FIELDS:
        if field.cli:
            kwargs = _flag_args(field)
            if side:
                kwargs = {**kwargs, "help": argparse.SUPPRESS, "dest": f"{field.dest}_{side}"}
            g.add_argument(f"--{field.cli}{suffix}", **kwargs)


def _flag_args(field: Field) -> dict:
    """argparse's keyword arguments for the flag of a config field (lists and shapes are read by `Field.parse`)."""
    kwargs: dict = {"metavar": field.cli_metavar, "help": field.cli_help}
    if field.kind == "choice":
        kwargs["choices"] = field.choices
    if field.kind in ("int", "depth") or (field.kind == "choice" and isinstance(field.choices[0], int)):
        kwargs["type"] = int
    elif field.kind == "float":
        kwargs["type"] = float
    return kwargs


def check_path(value: str | None, *, want: str, flag: str, give: str) -> None:
    """Refuse a path argument that exists but is not what the command reads (a device, a FIFO, a folder for a file).

    Looked at with `os.stat` only (nothing is opened, so a FIFO cannot block and a device is not
    read). A path that does not exist passes: the command says what is missing, as before.

    Args:
        value: The argument (None when not given).
        want: "file" (a regular file), "folder", or "file or folder".
        flag: How the message names the argument (`--config`).
        give: What to give instead.

    Raises:
        ConfigError: The path is something else, or cannot be looked at.
    """
    if value is None:
        return
    field = flag.lstrip("-").lower()
    try:
        files.check_kind(value, want=want)
    except files.FileRefused as exc:
        raise ConfigError(field, str(exc), give) from None
    except (OSError, ValueError) as exc:  # permissions, a loop of links, a NUL in the name
        raise ConfigError(field, f"cannot look at {value} ({getattr(exc, 'strerror', None) or exc})", give) from None


def check_path_args(args: argparse.Namespace) -> None:
    """`check_path` on every path argument the command has (PATH_ARGS), before the command runs.

    Raises:
        ConfigError: One of them is not a regular file / folder as it must be.
    """
    for dest, want, flag, give in PATH_ARGS:
        value = getattr(args, dest, None)
        if dest == "weights" and value == "imagenet":
            continue
        for one in value if isinstance(value, list) else [value]:
            check_path(one, want=want, flag=flag, give=give)


def read_config_file(path: str) -> ResNetConfig:
    """A config from a JSON file: a regular file of at most MAX_CONFIG_FILE_BYTES, parsed by `load_json`.

    Raises:
        ConfigError: Not a regular file, too large, unreadable, or not a config.
    """
    give = "give the path of a config JSON file"
    try:
        data = files.read_regular(path, limit=MAX_CONFIG_FILE_BYTES)
    except files.FileRefused as exc:
        raise ConfigError("config", str(exc), give) from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path} ({exc.strerror or exc})", give) from None
    return ResNetConfig.from_json(data, name=path)


def config_from_args(args: argparse.Namespace, *, side: str = "", base: ResNetConfig | None = None) -> ResNetConfig:
    """The config the flags describe: a preset or file (or `base`, else the default) with overrides applied
    (`with_changes`); `side="b"` reads the second network's flags (`--preset-b`, `--depth-b`, …)."""
    suffix = f"_{side}" if side else ""
    preset, config_file = getattr(args, f"preset{suffix}"), getattr(args, f"config{suffix}")
    if preset:
        base = get_preset(preset).config
    elif config_file:
        base = read_config_file(config_file)
    elif base is None:
        base = ResNetConfig()
    changes: dict = {}
    for field in FIELDS:
        value = getattr(args, f"{field.dest}{suffix}") if field.cli else None
        if value is not None:
            changes[field.name] = field.parse(value) if field.kind in ("ints", "shape") else value
    if "blocks" in changes and "depth" in changes:
        raise ConfigError("depth", "give either --depth or --blocks, not both", "drop one of them")
    return base.with_changes(**changes)


def summary_json(ag: AnnotatedGraph) -> dict:
    """The `summary --json` object."""
    from explorer.tables import layer_records

    layers = [
        {k: r[k] for k in ("name", "type", "stage", "block", "role", "output_shape", "params", "macs", "receptive_field")}
        for r in layer_records(ag)
    ]
    return {
        "config": ag.config.to_dict(),
        "depth": ag.depth,
        "total_params": ag.total_params,
        "trainable_params": ag.trainable_params,
        "non_trainable_params": ag.non_trainable_params,
        "macs": ag.macs,
        "activation_bytes": ag.activation_bytes,
        "layers": layers,
        "diagnostics": [d.to_dict() for d in ag.diagnostics],
    }


def _print_diagnostics(ag: AnnotatedGraph, out) -> None:

    for d in ag.diagnostics:
        shapes = " vs ".join(fmt.shape(s) for s in d.shapes)
        print(f"{d.severity.upper()} at {d.node}: {d.message} [{shapes}]\n  fix: {d.hint}", file=out)


def cmd_presets(args: argparse.Namespace) -> int:
    """Print the presets table."""
    import pandas as pd


    rows = []
    for p in PRESETS.values():
        ag = build(p.config)
        rows.append({
            "name": p.name, "depth": ag.depth, "params": fmt.count(ag.total_params),
            "reference params": fmt.count(p.reported_params) if p.reported_params else "—",
            "reported error %": f"{p.reported_error:.2f}" if p.reported_error is not None else "—",
            "dataset": p.dataset, "source": p.source,
        })
    df = pd.DataFrame(rows)
    if args.json:
        print(df.to_json(orient="records", force_ascii=False, indent=1))
    else:
        print(df.to_string(index=False))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """Print what differs between network A and network B, node by node (exit 0 either way)."""
    from explorer.diff import diff, network_text

    config_a = config_from_args(args)
    config_b = config_from_args(args, side="b", base=config_a)
    result = diff(build(config_a), build(config_b))
    if args.json:
        print(json.dumps({"a": config_a.to_dict(), "b": config_b.to_dict(), **result.to_dict()}, indent=1))
        return EXIT_OK
    print(f"A: {network_text(config_a)}\nB: {network_text(config_b)}")
    print("\n".join(result.lines(limit=args.limit)))
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    """Print the per-layer table and totals (text, JSON or CSV)."""
    ag = build(config_from_args(args))
    if args.json:
        print(json.dumps(summary_json(ag), indent=1))
    elif args.csv:
        from explorer.tables import layer_table

        sys.stdout.write(layer_table(ag).to_csv(index=False))
    else:
        from explorer.tables import layer_table

        df = layer_table(ag)
        cols = ["name", "type", "output_shape", "params", "macs", "receptive_field"]
        print(df[cols].to_string(index=False))
        print(
            f"\ndepth {ag.depth} · {len(ag.graph)} layers · params {ag.total_params:,} "
            f"(trainable {ag.trainable_params:,}, non-trainable {ag.non_trainable_params:,}) · "
            f"MACs {fmt.count(ag.macs)} · activations {fmt.binary_bytes(ag.activation_bytes)} per image"
        )
    _print_diagnostics(ag, sys.stderr)
    return EXIT_DIAGNOSTICS if ag.diagnostics else EXIT_OK


def cmd_dot(args: argparse.Namespace) -> int:
    """Print or write the Graphviz diagram."""
    from explorer import diagram

    ag = build(config_from_args(args))
    source = diagram.to_dot(ag, level=args.level, expand=args.expand, rankdir=args.rankdir, rollup=not args.no_rollup,
                            show_params=args.params, color_by=args.color_by)
    if args.output:
        path = Path(args.output)
        suffix = path.suffix.lower().lstrip(".")
        if suffix == "dot" or suffix == "gv":
            data = source.encode()
        elif suffix in ("svg", "png"):
            data = diagram.render(source, suffix)
        else:
            raise ConfigError("output", f"cannot write {path.name}", "give a file ending in .dot, .svg or .png")
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise ConfigError("output", f"cannot write {path} ({exc.strerror or exc})", "give a writable path") from None
    else:
        sys.stdout.write(source)
    _print_diagnostics(ag, sys.stderr)
    return EXIT_DIAGNOSTICS if ag.diagnostics else EXIT_OK


def cmd_gradflow(args: argparse.Namespace) -> int:
    """Print gradient norms and activation spread at initialisation (optionally beside the plain twin)."""
    from explorer import gradflow

    config = config_from_args(args)
    if args.no_bn:
        config = config.replace(batch_norm=False)
    if args.zero_init:
        config = config.replace(zero_init=True)
    if build(config).errors:
        raise ConfigError("config", "the network does not fit together", "run `summary` with the same flags to see where")
    batch = gradflow.load_batch(config, size=args.batch_size, data_dir=args.data_dir)
    _start_tensorflow(args)
    result = gradflow.report(config, batch, twin=args.twin, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=1))
        return EXIT_OK
    print(f"batch: {result['source']}")
    for net in result["networks"]:
        print(f"\n{net['label']}: loss {net['loss']:.3f}; gradient norm first/last conv "
              f"{gradflow.summary_ratio(net):.3g}×")
        print(f"{'depth':>5s}  {'layer':28s} {'grad norm':>10s} {'output std':>10s}")
        for layer in net["layers"]:
            print(f"{layer['depth_index']:5d}  {layer['name']:28s} {layer['grad_norm']:10.3g} {layer['activation_std']:10.3g}")
    return EXIT_OK

def _start_tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow here, in the main thread, before anything else writes to stderr: quietly, or with its
    start-up log under --verbose (`explorer.backend.quiet_start`)."""
    from explorer import backend

    if args.verbose:
        os.environ[backend.VERBOSE_ENV] = "1"
    backend.quiet_start()


def cmd_train(args: argparse.Namespace) -> int:
    """Train the network on CIFAR-10 (or --image-dir): progress on stderr, final test accuracy (or one JSON object) on stdout."""
    from explorer import training
    from explorer.data import DataError, load_cifar10

    config = config_from_args(args)
    worker = _backend_worker(args)
    folders = args.image_dir is not None
    if folders:  # the network is checked now, against the images once they are read
        _check_folder_flags(args)
        if args.adapt:  # the images are resized to the configured H×W; --adapt sets 3 channels (and, below, the classes)
            config = config.replace(input_shape=(*config.input_shape[:2], 3))
        _refuse_unfit(build(config))
        settings = _train_settings(args, folders=True)
        training.check_weights(config, settings)  # before reading the data: another body, no such file
    else:  # CIFAR-10's shape is known before it is read: the whole preparation now
        if args.val_dir is not None:
            raise ConfigError("val-dir", "--val-dir is for image folders", "give --image-dir DIR with it")
        settings = _train_settings(args, folders=False)
        plan = _refuse_unready(training.prepare_run(config, None, settings, adapt=args.adapt), folders=False)
    if args.out:  # before training, so an unwritable folder costs nothing
        try:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("out", f"cannot create the folder {args.out} ({exc.strerror or exc})",
                              "give --out a folder you can write to") from None
    try:
        if folders:
            data = _load_folders(args, config)
        else:  # CIFAR-10 is read (files and numpy: mostly without the GIL) while TensorFlow starts in this thread
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="read-cifar10") as pool:
                reading = pool.submit(load_cifar10, args.data_dir)
                _start_tensorflow(args)
                data = reading.result()
    except DataError as exc:
        print(f"python -m explorer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if folders:
        plan = _refuse_unready(training.prepare_run(config, data, settings, adapt=args.adapt), folders=True)
        print(f"data: {data.source} ({data.n_train:,} training, {data.n_test:,} validation images)", file=sys.stderr)
        print(f"classes ({data.num_classes}, training + validation images): {data.classes_text()}", file=sys.stderr)
        print(f"images {data.sizes_text()}", file=sys.stderr)
        for warning in plan.warnings:
            print(warning, file=sys.stderr)
    else:
        print(f"data: {data.source} ({data.n_train:,} training, {data.n_test:,} test images)", file=sys.stderr)
    config, ag = plan.config, plan.graph
    if folders:
        _start_tensorflow(args)
    job = training.TrainJob(config, data, settings, idle_timeout=None, name=f"depth-{config.resolved_depth}",
                            worker=worker, pressed=command_started(), release_memory=False)
    r = job.settings  # with the batch fitted to the data read
    if job.batch_notice:
        print(f"note: {job.batch_notice}", file=sys.stderr)
    print(f"training depth-{config.resolved_depth} network ({ag.total_params:,} params), recipe {r.recipe}, "
          f"budget {r.budget_text()}, batch {r.batch_size}", file=sys.stderr)
    if args.weights is not None:
        print(f"starting from ImageNet weights ({args.weights}); "
              + (f"frozen: stem + stage 1–{config.freeze} ({ag.trainable_params:,} trainable params)" if config.freeze
                 else "nothing frozen (--freeze K freezes the stem and K stages)"), file=sys.stderr)
    job.start()
    shown_epochs, weights_shown = _follow(job)
    if not weights_shown:
        _print_weights(job)
    result = job.result()
    result["files"] = []  # what --out wrote
    if args.out and result["status"] != "failed":
        result["files"] = [str(path) for path in training.save_history(job, args.out)]
        for path in result["files"]:
            print(f"wrote {path}", file=sys.stderr)
    if result.get("restored_best"):
        print(f"the model holds the weights of epoch {result['best_epoch']} (lowest {result['monitor']})", file=sys.stderr)
    if result["status"] == "done" and result["stop_reason"]:
        print(result["stop_reason"], file=sys.stderr)
    for e in job.poll().epochs[shown_epochs:]:
        print(f"epoch {e['epoch']} ({e['fraction']:.0%}) at {e['seconds']:.0f}s: loss {e['loss']:.3f}", file=sys.stderr)
    if result["status"] == "done":
        budget = f" (budget {r.seconds:g} s)" if r.seconds is not None else ""
        print(f"{result['wall_seconds']:.1f} s from the command to the result{budget}: "
              f"{training.timings_text(result['timings'], views=result.get('test_views'))}", file=sys.stderr)
    if result["status"] == "failed":
        print(f"python -m explorer: error: training failed: {result['error']}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    elif result["test_accuracy"] is not None:
        print(f"{'validation' if folders else 'test'} accuracy {result['test_accuracy']:.2%} (loss {result['test_loss']:.3f}, {result['test_images']:,} "
              f"images) after {result['train_seconds']:.0f} s of training, {result['epochs_fractional']:.2f} epochs, "
              f"{result['train_images_per_second'] or 0:,.0f} img/s ({result['precision']} on {result['device']})")
    else:
        print(f"{result['status']}: {result['stop_reason']}")
    return EXIT_OK if result["status"] == "done" else 1


def command_started() -> float:
    """When this command started (`time.time()`): a budget in seconds counts from there, Python's and TensorFlow's
    start included (Linux: the process's start time; elsewhere: now)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(") ", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
    return started if 0 <= time.time() - started < 3600 else time.time()


def _backend_worker(args: argparse.Namespace) -> str:
    """Where `train`/`sweep` train (--backend, else EXPLORER_TRAIN_BACKEND): "ray" (connected now, so that a missing
    Ray or an unreachable head is one line before any data is read), else the default process backend ("thread":
    in this command's own process; a sweep of several networks: "process")."""
    from explorer.training import ray_backend

    backend = args.backend or ray_backend.backend()
    if backend != "ray":
        return "process" if args.command == "sweep" else "thread"
    try:
        ray_backend.connect(args.ray_address)
    except ray_backend.RayUnavailable as exc:
        raise ConfigError("backend", str(exc)) from None
    return "ray"


def cmd_sweep(args: argparse.Namespace) -> int:
    """Train one network at several depths with one budget (at once when the backend has room): a row each."""
    from explorer import training
    from explorer.data import DataError, load_cifar10

    base = config_from_args(args)
    try:
        depths = [int(d) for d in args.depths.split(",") if d.strip()]
    except ValueError:
        raise ConfigError("depths", f"{args.depths!r} is not a list of depths", "e.g. --depths 20,32,44,56") from None
    if not depths:
        raise ConfigError("depths", "no depth given", "e.g. --depths 20,32,44,56")
    settings = training.TrainSettings(recipe=args.recipe, epochs=args.epochs, seconds=args.seconds, steps=args.steps,
                                      subset=args.subset, batch_size=args.batch_size, seed=args.seed,
                                      precision=args.precision)
    plans = []
    for depth in depths:
        plan = _refuse_unready(training.prepare_run(base.replace(depth=depth), None, settings, adapt=args.adapt),
                               folders=False)
        plans.append(plan)
    worker = _backend_worker(args)
    try:
        data = load_cifar10(args.data_dir)
    except DataError as exc:
        print(f"python -m explorer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"data: {data.source}; {len(plans)} networks, budget {plans[0].settings.budget_text()} each, "
          f"backend {'ray' if worker == 'ray' else 'process'}", file=sys.stderr)
    _start_tensorflow(args)
    jobs = [training.TrainJob(plan.config, data, settings, idle_timeout=None, worker=worker,
                              name=f"depth-{plan.config.resolved_depth}").start() for plan in plans]
    try:
        for job in jobs:
            while not job.join(1.0):
                pass
            snap = job.poll()
            print(f"{job.name}: {snap.status}" + (f" ({snap.error})" if snap.error else ""), file=sys.stderr)
    except KeyboardInterrupt:
        for job in jobs:
            job.stop("interrupted (Ctrl-C)")
        for job in jobs:
            job.join()
    rows = []
    for plan, job in zip(plans, jobs, strict=True):
        r = job.result()
        rows.append({"network": job.name, "depth": plan.config.resolved_depth, "params": plan.graph.total_params,
                     "status": r["status"], "test_accuracy": r["test_accuracy"], "train_seconds": r["train_seconds"],
                     "images_per_second": r["train_images_per_second"], "error": r["error"] or r["stop_reason"]})
    if args.json:
        print(json.dumps({"backend": "ray" if worker == "ray" else "process", "settings": vars(settings),
                          "results": rows}))
    else:
        print(f"{'network':12s} {'params':>10s} {'test acc':>9s} {'train s':>8s} {'img/s':>8s}  status")
        for row in rows:
            acc = "-" if row["test_accuracy"] is None else f"{row['test_accuracy']:.2%}"
            ips = "-" if row["images_per_second"] is None else f"{row['images_per_second']:,.0f}"
            print(f"{row['network']:12s} {row['params']:>10,d} {acc:>9s} {row['train_seconds']:>8.1f} {ips:>8s}  "
                  f"{row['status']}" + (f": {row['error']}" if row["status"] == "failed" else ""))
    return EXIT_OK if all(row["status"] == "done" for row in rows) else 1


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("process", "ray"), help="where to train: process (default: here) or ray "
                   "(a Ray cluster; else $EXPLORER_TRAIN_BACKEND)")
    p.add_argument("--ray-address", metavar="ADDR", help="with --backend ray: auto, host:6379 or ray://host:10001 "
                   "(else $EXPLORER_RAY_ADDRESS, else a local Ray started for this command)")


def _train_settings(args: argparse.Namespace, *, folders: bool):  # -> training.TrainSettings
    """The training flags as settings (image folders have their own validation images: no --val-split there)."""
    from explorer.training import TrainSettings

    return TrainSettings(
        recipe=args.recipe, epochs=args.epochs, seconds=args.seconds, steps=args.steps, subset=args.subset,
        batch_size=args.batch_size, flip=args.flip, crop=args.crop, val_split=None if folders else args.val_split, precision=args.precision,
        tta=args.tta, muon=args.muon, seed=args.seed,
        early_stopping=args.early_stopping, reduce_lr_on_plateau=args.reduce_lr_on_plateau,
        checkpoint_best=args.checkpoint_best, weights=args.weights,
    )


def _refuse_unfit(ag: AnnotatedGraph) -> None:
    """A network that does not fit together cannot be trained: its diagnostics on stderr, and a ConfigError."""
    if ag.errors:
        _print_diagnostics(ag, sys.stderr)
        raise ConfigError("config", "the network does not fit together, so it cannot be trained",
                          "run `summary` with the same flags to see where")


def _refuse_unready(plan, *, folders: bool):  # plan: training.RunPlan -> the same
    """Refuse a prepared run whose network does not fit the data (without --adapt) or does not fit together."""
    if plan.mismatch and not plan.adapted:
        if folders:
            data = plan.data
            raise ConfigError("classes", plan.mismatch.replace("or adapt it", f"or add --adapt (--classes {data.num_classes})"),
                              f"e.g. --input {'x'.join(map(str, data.image_shape))} --classes {data.num_classes}")
        raise ConfigError("input", plan.mismatch.replace("Adapt it", "Add --adapt to adapt it"),
                          "or choose a CIFAR preset such as resnet20")
    _refuse_unfit(plan.graph)
    return plan


def _follow(job) -> tuple[int, bool]:  # job: training.TrainJob
    """Print the job's progress on stderr until it ends (Ctrl-C stops it); the epochs printed and whether the
    ImageNet weights were."""
    import time

    shown_epochs, last_line, weights_shown, last_phase, started = 0, 0.0, False, "", time.monotonic()
    try:
        while not job.join(0.5):
            snap = job.poll()
            weights_shown = weights_shown or _print_weights(job)
            for e in snap.epochs[shown_epochs:]:
                val = "" if e["val_accuracy"] is None else f", val loss {e['val_loss']:.3f} acc {e['val_accuracy']:.2%}"
                print(f"epoch {e['epoch']} ({e['fraction']:.0%}) at {e['seconds']:.0f}s: loss {e['loss']:.3f} "
                      f"acc {e['accuracy']:.2%}{val}", file=sys.stderr)
            shown_epochs = len(snap.epochs)
            now = time.monotonic()
            if snap.phase != "training":
                # before and after the training batches (data, compilation, validation, test): wall clock and phase,
                # again every 5 s while it lasts (the test set's share done)
                if snap.phase.split(" (")[0] != last_phase.split(" (")[0] or now - last_line >= 5:
                    print(f"[{now - started:6.1f}s wall] {snap.phase} …", file=sys.stderr)
                    last_phase, last_line = snap.phase, now
            elif snap.batches and now - last_line >= 5:
                b = snap.batches[-1]
                ips = f" · {snap.images_per_second:,.0f} img/s" if snap.images_per_second else ""
                print(f"[{snap.elapsed:6.1f}s] epoch {snap.epoch:5.2f} step {snap.steps} · loss {b['loss']:.3f} "
                      f"acc {b['accuracy']:.2%} · lr {b['lr']:.4f}{ips} · {snap.phase}", file=sys.stderr)
                last_phase, last_line = snap.phase, now
    except KeyboardInterrupt:
        job.stop("interrupted (Ctrl-C)")
        job.join()
    return shown_epochs, weights_shown


def _print_weights(job) -> bool:  # job: training.TrainJob
    """Say once what the ImageNet weights gave (on stderr); False while they are not loaded."""
    report = job.weights_report
    if report is None:
        return False
    new = f"; new: {', '.join(report.skipped)}" if report.skipped else ""
    print(f"ImageNet weights: {report.layers} layers ({report.params:,} params) copied from {report.source}{new}",
          file=sys.stderr)
    return True


def cmd_predict(args: argparse.Namespace) -> int:
    """Top-K classes of images under a saved `.keras` model (text, or one JSON object); exit 2 on a bad model or image."""
    import numpy as np

    from explorer import inference

    if args.top < 1:
        raise ConfigError("top", f"--top {args.top} is not positive", "give --top 1 or more (default 5)")
    # The model's archive and the images are checked before TensorFlow starts, so a bad file costs nothing, and
    # every bad file is reported at once (not one per try).
    problems, opened = [], []
    try:
        inference.read_meta(args.model)
    except inference.InferenceError as exc:
        problems.append(str(exc))
    for path in args.images:
        try:
            opened.append(inference.open_image(path))
        except inference.InferenceError as exc:
            problems.append(str(exc))
    if problems:
        for problem in problems:
            print(f"python -m explorer: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        loaded = inference.load_model(args.model)
        images = np.stack([inference.fit_image(img, loaded.input_size) for img in opened])
        results = inference.predict(loaded, images, top=args.top)
    except inference.InferenceError as exc:
        print(f"python -m explorer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    meta = loaded.meta
    if meta.note:
        print(f"note: {meta.note}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "model": args.model,
            "classes": list(meta.class_names),
            "input_shape": list(meta.input_shape or ()),
            "class_names_stored": meta.stored,
            "predictions": [
                {"image": path, "top": [{"class": name, "probability": prob} for name, prob in top]}
                for path, top in zip(args.images, results, strict=True)
            ],
        }))
        return EXIT_OK
    h, w, _ = meta.input_shape
    print(f"model {args.model}: {len(meta.class_names)} classes, input {h}×{w} (each image is centre-cropped and resized)")
    for path, top in zip(args.images, results, strict=True):
        print(f"\n{path}")
        for rank, (name, prob) in enumerate(top, 1):
            print(f"  {rank}. {name:24s} {prob:7.2%}")
    return EXIT_OK


def _check_folder_flags(args: argparse.Namespace) -> None:
    """--image-dir goes with --val-dir or --val-split (not both), not with --data-dir."""
    if args.data_dir is not None:
        raise ConfigError("data-dir", "--data-dir (CIFAR-10) and --image-dir (your folders) exclude each other",
                          "give one of them")
    if args.val_dir is not None and args.val_split is not None:
        raise ConfigError("val-split", "--val-dir and --val-split exclude each other",
                          "give a separate validation folder or a fraction of --image-dir to hold out, not both")


def _load_folders(args: argparse.Namespace, config: ResNetConfig):  # -> ImageFolders
    """Read --image-dir (and --val-dir), resized to the configured input H×W."""
    from explorer.imagefolder import DEFAULT_VAL_SPLIT, load_image_folders

    split = DEFAULT_VAL_SPLIT if args.val_split is None else args.val_split
    return load_image_folders(args.image_dir, val_dir=args.val_dir, val_split=split,
                              image_size=tuple(config.input_shape[:2]), seed=args.seed)


VERBOSE_HELP = "also show TensorFlow's own start-up log on stderr (hidden by default: it is not about your run)"


def make_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands."""
    parser = _Parser(prog="python -m explorer", description="ResNet Explorer: describe, check and draw residual networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("presets", help="list the named presets with their references")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("diff", help="what differs between two networks, node by node (e.g. --preset resnet20 --shortcut-b none)")
    _add_config_flags(p)
    _add_config_flags(p, side="b")
    p.add_argument("--json", action="store_true", help="one JSON object (both configs, totals, only_a, only_b, changed)")
    p.add_argument("--limit", type=int, default=40, help="longest list printed per kind of difference (default 40)")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("summary", help="per-layer table and totals of a network")
    _add_config_flags(p)
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON object (config, totals, layers, diagnostics)")
    output.add_argument("--csv", action="store_true", help="the per-layer table as CSV")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("dot", help="Graphviz diagram of a network (DOT on stdout, or -o FILE.dot|.svg|.png)")
    _add_config_flags(p)
    p.add_argument("--level", choices=("stage", "block", "layer"), default="block")
    p.add_argument("--expand", metavar="NAME", help="draw one stage (stage2) or block (stage2_block3) at layer level")
    p.add_argument("--rankdir", choices=("TB", "LR"), default="TB")
    p.add_argument("--no-rollup", action="store_true", help="draw every block (no '× k' roll-up)")
    p.add_argument("--params", action="store_true", help="show parameter counts in the labels")
    p.add_argument("--color-by", choices=("params", "macs", "memory"), help="fill nodes by cost")
    p.add_argument("-o", "--output", metavar="FILE", help="write .dot, .svg or .png (svg/png need Graphviz's dot)")
    p.set_defaults(func=cmd_dot)

    p = sub.add_parser("gradflow", help="gradient flow at initialisation, residual vs its plain twin")
    _add_config_flags(p)
    p.add_argument("--twin", action="store_true", help="also measure the plain twin (same network, no skips)")
    p.add_argument("--no-bn", action="store_true", help="leave out every BatchNormalization")
    p.add_argument("--zero-init", action="store_true", help="zero-init residual: every block starts as the identity")
    p.add_argument("--batch-size", type=int, default=64, metavar="N")
    p.add_argument("--data-dir", metavar="DIR", help="CIFAR-10 directory for a real batch (else CIFAR10_DIR, else random)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="JSON: per network, per layer name, depth_index, grad_norm, activation_std")
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.set_defaults(func=cmd_gradflow)

    p = sub.add_parser("train", help="train the network on CIFAR-10 or your image folders (progress on stderr; "
                       "--json for one result object)")
    _add_config_flags(p)
    p.add_argument("--adapt", action="store_true", help="train a non-CIFAR config with a 32x32x3 input and 10 classes "
                   "(with --image-dir: 3 channels and one class per folder)")
    p.add_argument("--data-dir", metavar="DIR", help="folder with cifar-10-batches-bin/, cifar-10-batches-py/ or the "
                   "official .tar.gz (else $CIFAR10_DIR, else the Keras cache, else a download)")
    p.add_argument("--image-dir", metavar="DIR", help="train on your own images instead: DIR/<class>/*.jpg|png, one "
                   "folder per class, resized to the configured input HxW (--adapt sets the classes to the folders)")
    p.add_argument("--val-dir", metavar="DIR", help="with --image-dir: validation images in the same class folders "
                   "(else --val-split of --image-dir is held out)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, metavar="N", help="budget in epochs")
    budget.add_argument("--seconds", type=float, metavar="S", help="budget in seconds of training (default of the short recipe: 90)")
    budget.add_argument("--steps", type=int, metavar="N", help="budget in training steps (batches): a fixed amount of "
                        "work, whatever the machine's speed")
    p.add_argument("--recipe", choices=("short", "paper"), default="short",
                   help="short: time-budgeted one-cycle SGD for a CPU; paper: He et al. 2015 (SGD 0.1, step decay)")
    p.add_argument("--subset", type=int, metavar="N", help="train on N images (class-balanced)")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--val-split", type=float, metavar="F", help="fraction held out for validation (default 0.1; "
                   "with --image-dir: of each class folder, default 0.2)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="random horizontal flips")
    p.add_argument("--crop", type=int, metavar="PX", help="random translations by up to PX pixels (0 = off)")
    p.add_argument("--muon", action=argparse.BooleanOptionalAction, default=None,
                   help="Muon steps for the convolutions into a BatchNorm (the short recipe's default; --no-muon: plain "
                        "SGD for every weight, as in the papers)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None, help="test-time augmentation: average each test image's prediction with its mirror's and both moved a pixel")
    p.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"))
    p.add_argument("--seed", type=int, default=0)
    cb = p.add_argument_group("paper recipe: callbacks (epoch by epoch; watch the validation loss, or the training "
                              "loss with --val-split 0)")
    cb.add_argument("--early-stopping", type=int, metavar="N", help="stop when the loss has not improved for N epochs")
    cb.add_argument("--reduce-lr-on-plateau", type=int, metavar="N",
                    help="LR ÷10 when the loss has not improved for N epochs (down to 1e-4 × peak; replaces the step decay)")
    cb.add_argument("--checkpoint-best", action="store_true",
                    help="restore the weights of the epoch with the lowest loss before the test evaluation")
    p.add_argument("--weights", metavar="imagenet|FILE.h5",
                   help="start from ImageNet weights (presets resnet50v2/101v2/152v2, any input size and classes): "
                   "imagenet = the Keras cache ~/.keras/models or a download; or a keras.applications weights file. "
                   "With --freeze K the stem and K stages stay fixed")
    p.add_argument("--out", metavar="DIR", help="write history.csv, history.html (history.png with kaleido installed), "
                   "model.keras and with --checkpoint-best best.keras into DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object (test_accuracy, history, ...) as the last line")
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    _add_backend_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", help="train one network at several depths with one budget and print a row each "
                       "(e.g. --preset resnet20 --depths 20,32,44,56; at once when the backend has room)")
    _add_config_flags(p)
    p.add_argument("--depths", required=True, metavar="D1,D2,...", help="the depths to train, e.g. 20,32,44,56")
    p.add_argument("--adapt", action="store_true", help="train non-CIFAR configs with a 32x32x3 input and 10 classes")
    p.add_argument("--data-dir", metavar="DIR", help="CIFAR-10 folder (else $CIFAR10_DIR, else the Keras cache, "
                   "else a download)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, metavar="N", help="budget of each network in epochs")
    budget.add_argument("--seconds", type=float, metavar="S", help="budget of each network in seconds of training")
    budget.add_argument("--steps", type=int, metavar="N", help="budget of each network in training steps (batches)")
    p.add_argument("--recipe", choices=("short", "paper"), default="short")
    p.add_argument("--subset", type=int, metavar="N", help="train on N images (class-balanced)")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    _add_backend_flags(p)
    p.add_argument("--json", action="store_true", help='one JSON object: {"backend", "settings", "results": '
                   '[{"network", "depth", "params", "status", "test_accuracy", "train_seconds", "images_per_second"}]}')
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("predict", help="top-K classes of your images under a saved .keras model (e.g. the Train tab's download)")
    p.add_argument("--model", required=True, metavar="FILE.keras", help="a .keras file (class names stored inside are used; "
                   "without them 10 outputs are taken as CIFAR-10)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG, GIF, BMP or WebP files (at most 10 MiB each)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="classes per image (default 5)")
    p.add_argument("--json", action="store_true", help='one JSON object: {"model", "classes", "predictions": '
                   '[{"image", "top": [{"class", "probability"}]}]}')
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 3 diagnostics found)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        check_path_args(args)
        return args.func(args)
    except ConfigError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `| head`
        return EXIT_OK
