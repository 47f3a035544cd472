"""A text table of a built network: layers, output shapes, parameter counts, and what was
fused."""

from __future__ import annotations


def summary(network) -> str:
    rows = [("Layer (type)", "Output shape", "Params")]
    for layer in network.layers:
        count = sum(p.size for p in layer.parameters())
        shape = "(None, " + ", ".join(str(d) for d in (layer.output_shape or ())) + ")"
        rows.append(
            (f"{layer.name} ({type(layer).__name__})", shape.replace(", )", ")"), f"{count:,}")
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    line = "-" * (sum(widths) + 4)

    def fmt(r):
        return f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}"

    trainable = network.count_params()
    buffers = sum(v.size for v in network.state().values())
    out = [fmt(rows[0]), line, *(fmt(r) for r in rows[1:]), line]
    out.append(f"Trainable params: {trainable:,}")
    out.append(f"Non-trainable params: {buffers:,}")
    return "\n".join(out + fused_lines(network))


def fused_lines(network) -> list[str]:
    """One line per fused layer that runs (``fusion.fuse``); none for a network built with
    ``fuse=False``."""
    return [f"Fused: {run.describe()}" for run in network.runs if hasattr(run, "describe")]
