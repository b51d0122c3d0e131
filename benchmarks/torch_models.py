"""Three PyTorch models exported to ONNX with a dynamic batch, as users export what they deploy.

    pip install torch==2.13.0 onnxscript     # torch.onnx.export(dynamo=True) needs onnxscript
    python benchmarks/torch_models.py DIR [--width N]

- ``attention.onnx``: a 2-layer ``nn.TransformerEncoder`` (multi-head attention, LayerNorm, ReLU MLP) with a final
  LayerNorm and a linear head; input ``x`` [batch, 16, width], output ``y`` [batch, 16, 10];
- ``cnn.onnx``: Conv-BatchNorm-ReLU, Conv-ReLU-BatchNorm, global average pooling and a linear head; ``x``
  [batch, 3, 32, 32] (the exporter folds the first BatchNorm into its Conv's weights, as it does for users; the
  second, after the ReLU, stays a BatchNormalization node);
- ``mlp.onnx``: Linear-GELU-Linear-ReLU-Linear; ``x`` [batch, width].

Weights come from ``torch.manual_seed(0)`` (BatchNorm statistics drawn apart, so folding changes the weights).
``benchmarks/converters.py`` exports them at width 64; the project's tests use the files in
``tests/data/torch/``, written by this script at ``--width 32``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

MODELS = ("attention", "cnn", "mlp")


def input_shape(name: str, batch: int, width: int) -> tuple[int, ...]:
    return {"attention": (batch, 16, width), "cnn": (batch, 3, 32, 32), "mlp": (batch, width)}[name]


def build(name: str, width: int):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "attention":
        class Attention(nn.Module):
            def __init__(self):
                super().__init__()
                layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True)
                self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
                self.norm = nn.LayerNorm(width)
                self.head = nn.Linear(width, 10)

            def forward(self, x):
                return self.head(self.norm(self.encoder(x)))

        return Attention().eval()
    if name == "cnn":
        model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                              nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(), nn.BatchNorm2d(32),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()
        with torch.no_grad():
            for norm in (model[1], model[5]):
                norm.running_mean.uniform_(-0.5, 0.5)
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.uniform_(0.5, 1.5)
        return model
    return nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, 4 * width), nn.ReLU(),
                         nn.Linear(4 * width, 10)).eval()


def export(name: str, folder: Path, width: int = 64) -> Path:
    """Export model ``name`` to ``folder/<name>.onnx`` (input ``x`` with a dynamic batch, output ``y``)."""
    import contextlib
    import io

    import torch

    model = build(name, width)
    path = Path(folder) / f"{name}.onnx"
    example = torch.randn(*input_shape(name, 2, width))
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints each step
        torch.onnx.export(model, (example,), str(path), input_names=["x"], output_names=["y"], dynamo=True,
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
                          external_data=False)
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:   # the exporter records each node's Python stack (local file paths)
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(model, str(path))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        print(export(name, args.folder, args.width))


if __name__ == "__main__":
    main()
