"""Annotated graph → standalone Keras source that builds exactly that network (one function per distinct block)."""

from __future__ import annotations

import keyword
from collections import Counter
from dataclasses import dataclass

from explorer import fmt
from explorer.annotate import AnnotatedGraph, build
from explorer.config import ConfigError, ResNetConfig
from explorer.graph import BlockInfo, Graph, Node
from explorer.ops import OPS, Regularizer

# Mirrors keras_build.recursion_limit's rule: deep functional builds need a higher limit.
RECURSION_NODES = 400

ZERO_PAD_SHORTCUT_SOURCE = '''

@keras.saving.register_keras_serializable(package="explorer")
class ZeroPadShortcut(keras.layers.Layer):
    """Option-A shortcut: keep every `stride`-th pixel, append zero channels up to `channels`."""

    def __init__(self, stride, channels, **kwargs):
        super().__init__(**kwargs)
        self.stride = stride
        self.channels = channels

    def call(self, x):
        if self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        extra = self.channels - x.shape[-1]
        if extra > 0:
            x = keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])
        return x

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        s = self.stride
        h = None if h is None else -(-h // s)
        w = None if w is None else -(-w // s)
        return (n, h, w, self.channels)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride, "channels": self.channels}
'''

# The source of the explorer's own layers (`Op.custom`), written into a file that uses them.
CUSTOM_LAYER_SOURCE = {"ZeroPadShortcut": ZERO_PAD_SHORTCUT_SOURCE}


class CodegenError(ConfigError):
    """The network cannot become Keras source (it does not fit together)."""


def _lit(value: object) -> str:
    """A Python literal for an argument from the op table (a `Regularizer` becomes its constructor call)."""
    if isinstance(value, Regularizer):
        return f"regularizers.{value.kind}({_lit(value.factor)})"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def layer_call(node: Node, name_expr: str) -> str:
    """The Keras layer constructor for one node, e.g. `layers.Conv2D(16, 3, ..., name="stem_conv")`.

    Args:
        node: The graph node.
        name_expr: Python expression for the layer name (a string literal or an f-string).

    Raises:
        CodegenError: The node has an op or attribute this generator does not know.
    """
    spec = OPS.get(node.op)
    if spec is None or spec.arguments is None:
        raise CodegenError("codegen", f"no Keras source for op {node.op!r} ({node.name})", "export the .keras file instead")
    extra = set(node.attrs) - spec.attrs
    if extra:
        raise CodegenError("codegen", f"{node.name} has attributes the source export does not know: {sorted(extra)}",
                           "export the .keras file instead")
    args, kwargs = spec.arguments(node.attrs)
    parts = [_lit(v) for v in args] + [f"{k}={_lit(v)}" for k, v in kwargs.items()] + [f"name={name_expr}"]
    cls = spec.keras_class if spec.custom else f"layers.{spec.keras_class}"
    return f"{cls}({', '.join(parts)})"


def _uses_regularizers(graph: Graph) -> bool:
    """Whether any layer of the graph gets a regularizer (so the source imports `keras.regularizers`)."""
    for node in graph:
        spec = OPS.get(node.op)
        if spec is not None and spec.arguments is not None:
            if any(isinstance(v, Regularizer) for v in spec.arguments(node.attrs)[1].values()):
                return True
    return False


@dataclass
class _Step:
    """One step of build_model(): a layer, a block-function call, or a loop over identical blocks."""

    output: str
    inputs: tuple[str, ...]
    role: str
    node: Node | None = None
    blocks: tuple[BlockInfo, ...] = ()


class _Emitter:
    """Writes `x = Layer(...)(x)` lines, keeping a value in a named variable while something still needs it."""

    def __init__(self, consumers: Counter, entry: dict[str, str], indent: str, local_names: dict[str, str]) -> None:
        self.pending = Counter(consumers)
        self.var_of = dict(entry)
        self.holder: dict[str, str] = {v: k for k, v in entry.items()}
        self.lines: list[str] = []
        self.indent = indent
        self.local_names = local_names
        self.used_names = set(entry.values()) | {"x", "shortcut", "layers", "keras", "name", "regularizers", "b"}

    def _save_name(self, node_name: str) -> str:
        held = self.holder.get("shortcut")
        if held is None or self.pending[held] == 0:
            return "shortcut"
        local = self.local_names.get(node_name, node_name)
        base = local if local.isidentifier() and not keyword.iskeyword(local) else "saved"
        candidate, i = base, 2
        while candidate in self.used_names:
            candidate, i = f"{base}_{i}", i + 1
        self.used_names.add(candidate)
        return candidate

    def emit(self, output: str, inputs: tuple[str, ...], role: str, make) -> None:
        """Emit the lines computing `output`; `make(target, args)` returns them (without indent)."""
        for i in inputs:
            self.pending[i] -= 1
        args = [self.var_of[i] for i in inputs]  # read before any save: the target still holds its value
        target = "shortcut" if role == "shortcut" else "x"
        current = self.holder.get(target)
        if current is not None and self.pending[current] > 0:
            saved = self._save_name(current)
            self.lines.append(f"{self.indent}{saved} = {target}")
            self.var_of[current] = saved
            self.holder[saved] = current
        self.lines += [f"{self.indent}{line}" for line in make(target, args)]
        self.holder[target] = output
        self.var_of[output] = target


def _apply(call: str, args: list[str]) -> str:
    return f"{call}([{', '.join(args)}])" if len(args) > 1 else f"{call}({args[0]})"


def _signature(ag: AnnotatedGraph, block: BlockInfo) -> tuple | None:
    """What makes two blocks the same code (names aside), or None when the block reads outside itself."""
    prefix = f"stage{block.stage}_block{block.block}_"
    inside = set(block.nodes)
    parts = []
    for name in block.nodes:
        node = ag.graph[name]
        if not name.startswith(prefix):
            return None
        ins = []
        for i in node.inputs:
            if i == block.input:
                ins.append("<input>")
            elif i in inside:
                ins.append(i[len(prefix):])
            else:
                return None
        parts.append((name[len(prefix):], node.op, node.role, tuple(sorted((k, repr(v)) for k, v in node.attrs.items())), tuple(ins)))
    return tuple(parts)


def _block_function(ag: AnnotatedGraph, block: BlockInfo, fname: str, users: list[BlockInfo]) -> list[str]:
    """The `def` of one block function, written from its first user."""
    prefix = f"stage{block.stage}_block{block.block}_"
    inside = list(block.nodes)
    consumers: Counter = Counter()
    for name in inside:
        for i in ag.graph[name].inputs:
            consumers[i] += 1
    locals_ = {name: name[len(prefix):] for name in inside} | {block.input: "block_input"}
    em = _Emitter(consumers, {block.input: "x"}, "    ", locals_)
    for name in inside:
        node = ag.graph[name]
        call = layer_call(node, f'f"{{name}}_{locals_[name]}"')
        em.emit(name, node.inputs, node.role, lambda target, args, call=call: [f"{target} = {_apply(call, args)}"])
    where = ", ".join(f"stage{u.stage}_block{u.block}" for u in users[:4]) + (f" and {len(users) - 4} more" if len(users) > 4 else "")
    shortcut = {"identity": "identity shortcut", "zero_pad": "zero-padding shortcut (A)", "projection": "1×1 projection shortcut",
                "subsample": "1×1 max-pool shortcut", "none": "no shortcut"}.get(block.shortcut, block.shortcut)
    doc = (f'    """{ag.config.block.capitalize()} block, {shortcut}, stride {block.stride}, '
           f'{block.in_width}→{block.out_width} channels (used by {where})."""')
    out_var = em.var_of[block.output]
    return [f"def {fname}(x, name):", doc, *em.lines, f"    return {out_var}", "", ""]


def _header(ag: AnnotatedGraph, preset: str | None) -> list[str]:
    cfg = ag.config
    origin = f"preset {preset!r}" + (" (modified)" if preset and _modified(cfg, preset) else "") if preset else "a custom configuration"
    return [
        f'"""{_title(cfg)} — generated by ResNet Explorer from {origin}.',
        "",
        f"Input {fmt.shape(cfg.input_shape)}, {cfg.classes} classes, {len(ag.graph)} layers, depth {ag.depth}.",
        f"Parameters: {ag.total_params:,} (trainable {ag.trainable_params:,}, non-trainable {ag.non_trainable_params:,}).",
        "Layer names match the explorer's diagram and table. Run this file to print the model summary.",
        "",
        "The configuration it was generated from (ResNetConfig.from_json):",
        f"    {cfg.to_json()}",
        '"""',
        "",
    ]


def _modified(cfg: ResNetConfig, preset: str) -> bool:
    from explorer.presets import PRESETS

    return preset in PRESETS and PRESETS[preset].config != cfg


def _title(cfg: ResNetConfig) -> str:
    kind = "ResNet v1 (post-activation)" if cfg.version == 1 else "ResNet v2 (pre-activation)"
    return f"{kind}, {cfg.block} blocks, depth {cfg.resolved_depth}, shortcut {cfg.shortcut}"


def keras_source(source: AnnotatedGraph | ResNetConfig, *, preset: str | None = None, model_name: str = "resnet") -> str:
    """Standalone Python source that builds the network with Keras (no explorer import needed).

    Blocks with the same structure share one function; runs of them become a loop. Every layer
    gets the graph's node name, so the model equals `keras_build.build_model` layer by layer.

    Args:
        source: A config or its annotated graph.
        preset: The preset it came from (named in the file's docstring).
        model_name: The Keras model's name.

    Returns:
        The source text (runs as a script: builds the model and prints its summary).

    Raises:
        CodegenError: The network has error diagnostics, so Keras could not build it.
    """
    ag = build(source) if isinstance(source, ResNetConfig) else source
    if ag.errors:
        first = ag.errors[0]
        raise CodegenError("config", f"the network does not fit together ({first.node}: {first.message})", first.hint)
    graph = ag.graph
    first_block_node = {b.nodes[0]: b for b in graph.blocks}
    block_nodes = {n for b in graph.blocks for n in b.nodes}
    signatures = {(b.stage, b.block): _signature(ag, b) for b in graph.blocks}
    use_functions = all(s is not None for s in signatures.values())

    functions: dict[tuple, str] = {}
    users: dict[tuple, list[BlockInfo]] = {}
    stage_counts = Counter(b.stage for b in graph.blocks)
    taken: set[str] = set()
    for b in graph.blocks if use_functions else ():
        sig = signatures[(b.stage, b.block)]
        users.setdefault(sig, []).append(b)
        if sig in functions:
            continue
        shared_in_stage = sum(1 for u in graph.blocks if u.stage == b.stage and signatures[(u.stage, u.block)] == sig) > 1
        base = (f"stage{b.stage}_block" if shared_in_stage else f"stage{b.stage}_first_block" if b.block == 1 else
                f"stage{b.stage}_last_block" if b.block == stage_counts[b.stage] else f"stage{b.stage}_block")
        fname, i = base, 2
        while fname in taken:
            fname, i = f"{base}_{i}", i + 1
        taken.add(fname)
        functions[sig] = fname

    # Steps: stem and head layers one by one; each run of identical consecutive blocks of a stage as one call or loop.
    steps: list[_Step] = []
    for node in graph.nodes[1:]:
        if use_functions and node.name in first_block_node:
            b = first_block_node[node.name]
            last = steps[-1] if steps else None
            if (last is not None and last.blocks and last.blocks[-1].stage == b.stage
                    and signatures[(last.blocks[-1].stage, last.blocks[-1].block)] == signatures[(b.stage, b.block)]):
                last.blocks += (b,)
                last.output = b.output
            else:
                steps.append(_Step(b.output, (b.input,), "main", blocks=(b,)))
        elif use_functions and node.name in block_nodes:
            continue
        else:
            steps.append(_Step(node.name, node.inputs, node.role, node=node))

    lines = _header(ag, preset)
    regularizers = ", regularizers" if _uses_regularizers(graph) else ""
    lines += ["import sys", "", "import keras", f"from keras import layers{regularizers}", ""]
    for cls in dict.fromkeys(OPS[n.op].keras_class for n in graph if OPS[n.op].custom):
        lines += ["", *CUSTOM_LAYER_SOURCE[cls].strip("\n").splitlines(), ""]
    lines += [""]
    for sig, fname in functions.items():
        lines += _block_function(ag, users[sig][0], fname, users[sig])

    consumers: Counter = Counter()
    for step in steps:
        for i in step.inputs:
            consumers[i] += 1
    input_node = graph.nodes[0]
    em = _Emitter(consumers, {input_node.name: "inputs"}, "    ", {})
    em.lines.append(f'    inputs = keras.Input(shape={tuple(input_node.attrs["shape"])!r}, name="{input_node.name}")')
    in_head = False
    for step in steps:
        if step.node is not None:
            if step.role == "head" and not in_head:
                em.lines += ["", "    # head"]
                in_head = True
            call = layer_call(step.node, f'"{step.output}"')
            em.emit(step.output, step.inputs, step.role, lambda target, args, call=call: [f"{target} = {_apply(call, args)}"])
            continue
        first, last = step.blocks[0], step.blocks[-1]
        fname = functions[signatures[(first.stage, first.block)]]
        if first.block == 1:
            em.lines += ["", f"    # stage {first.stage}: {stage_counts[first.stage]} blocks, "
                             f"{first.in_width}→{stage_last_width(graph, first.stage)} channels"]
        if len(step.blocks) == 1:
            def make(target, args, fname=fname, b=first):
                return [f'{target} = {fname}({args[0]}, "stage{b.stage}_block{b.block}")']
        else:
            def make(target, args, fname=fname, first=first, last=last):
                pre = [] if args[0] == target else [f"{target} = {args[0]}"]
                return pre + [f"for b in range({first.block}, {last.block + 1}):",
                              f'    {target} = {fname}({target}, f"stage{first.stage}_block{{b}}")']
        em.emit(step.output, step.inputs, "main", make)
    out = em.var_of[graph.output.name]
    limit = 10_000 + 20 * len(graph)
    lines += ["def build_model():", f'    """Build the Keras model ({len(graph)} layers)."""']
    if len(graph) > RECURSION_NODES:
        lines += ["    # Deep functional models need more than Python's default recursion limit.",
                  f"    sys.setrecursionlimit(max(sys.getrecursionlimit(), {limit}))"]
    lines += em.lines
    lines += [f'    return keras.Model(inputs, {out}, name="{model_name}")', "", ""]
    lines += ['if __name__ == "__main__":']
    lines += ["    model = build_model()", "    model.summary()", '    print(f"parameters: {model.count_params():,}")', ""]
    text = "\n".join(lines)
    if len(graph) <= RECURSION_NODES:
        text = text.replace("import sys\n\n", "", 1)
    return text


def stage_last_width(graph: Graph, stage: int) -> int:
    """Channels leaving a stage."""
    return [b for b in graph.blocks if b.stage == stage][-1].out_width
