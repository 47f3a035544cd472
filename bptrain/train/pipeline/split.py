"""Which layers each pipeline stage holds: consecutive runs of the model's layers, where the
config says (``stage_boundaries``) or balanced by parameter count, and the lines that say so
(in the model summary of a run and in ``bptrain config show``)."""

from __future__ import annotations

from bptrain.config.sections import PipelineOptions


def balanced_boundaries(sizes: list[int], stages: int) -> list[int]:
    """The layer indices where stages 2..S begin that minimise the largest stage's parameter
    count (``sizes``: each layer's), ties broken by the largest stage's layer count, then by
    the earliest boundaries; every stage keeps at least one layer."""
    n = len(sizes)
    if not 1 <= stages <= n:
        raise ValueError(f"{stages} stages need at least {stages} layers, got {n}")
    prefix = [0]
    for size in sizes:
        prefix.append(prefix[-1] + size)
    # best[k][j]: (cost, boundaries) of layers[:j] in k stages; cost = (params, layers) of the
    # largest stage, compared as a tuple
    best = [{0: ((0, 0), [])}]
    for k in range(1, stages + 1):
        row = {}
        for j in range(k, n - (stages - k) + 1):
            options = []
            for i, (cost, bounds) in best[k - 1].items():
                if i < j:
                    stage = (prefix[j] - prefix[i], j - i)
                    options.append((max(cost, stage), bounds + ([i] if i else [])))
            row[j] = min(options)
        best.append(row)
    return best[stages][n][1]


def stage_boundaries(options: PipelineOptions, sizes: list[int]) -> list[int]:
    """The boundaries the config gives, else the balanced ones."""
    if options.stage_boundaries is not None:
        return list(options.stage_boundaries)
    return balanced_boundaries(sizes, options.stages)


def stage_ranges(bounds: list[int], layers: int) -> list[range]:
    """The layer indices of each stage."""
    edges = [0, *bounds, layers]
    return [range(a, b) for a, b in zip(edges, edges[1:], strict=False)]


def layer_sizes(network) -> list[int]:
    """Each layer's parameter count (of a built network)."""
    return [sum(p.size for p in layer.parameters()) for layer in network.layers]


def describe(network, bounds: list[int], replicas: int = 1) -> list[str]:
    """One line per stage: the ranks that hold it (rank = replica x S + stage), its layers
    and its parameter count."""
    ranges = stage_ranges(bounds, len(network.layers))
    stages, sizes, lines = len(ranges), layer_sizes(network), []
    for s, layers in enumerate(ranges):
        ranks = [d * stages + s for d in range(replicas)]
        who = f"rank {ranks[0]}" if replicas == 1 else "ranks " + ", ".join(map(str, ranks))
        span = f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}-{layers[-1]}"
        names = ", ".join(network.layers[i].name for i in layers)
        params = sum(sizes[i] for i in layers)
        lines.append(f"pipeline stage {s} ({who}): {span} ({names}), {params:,} params")
    return lines
