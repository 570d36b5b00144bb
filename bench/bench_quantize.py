"""int8 against fp32 LATENCY per model family, so users know when int8 pays (issue 16).

No training: latency does not depend on the weights' values. Each model's body (features ->
logits) is exported with ap.export_onnx (BN folded, parity checked) and quantized with
ap.quantize_onnx - static (QDQ, per-channel weights, uint8 activations, 4 calibration batches
of random features; with the default 7-bit weights and with 8-bit ones) and dynamic - then the
four files are timed round-robin in ONNX Runtime
(--threads threads) at batch 1 and 8 on features of --clip-seconds of audio. Families:
dcase21net (plain 7x7 convs), cnn6 x0.5 and cnn14 x0.25 (PANNs 5x5 / 3x3 convs; small widths to
fit a 2-core CPU), qcnn6 x0.5 fused (a quaternion net as deployed: real convs), and a depthwise
net: a MobileNetV3-like stack of inverted residuals (1x1 expand, 3x3 depthwise, 1x1 project,
hardswish) at mn04's width 0.4, written here as a plain nn.Module - the layout of EfficientAT's
mn04 family, not its weights or exact blocks.

    .venv/bin/python bench/bench_quantize.py      # writes bench/results/quantize_latency.json

What int8 costs in ACCURACY is a recipe, recorded like every accuracy benchmark:
recipes/ravdess/quantize.yaml (`python bench/benchmark.py recipes/ravdess/quantize.yaml --vs`).
A speed benchmark: it imports ort_session to time the files as the profiler does (DEVELOPERS.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from audioprune.measure.latency import ort_session

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402


def depthwise_net(num_classes: int = 10, width: float = 0.4) -> Any:
    """A MobileNetV3-like net on (batch, 1, frames, mels) features: a strided 3x3 stem, inverted
    residual blocks (1x1 expand, 3x3 depthwise, 1x1 project; a residual when the shape allows),
    hardswish, global pooling, a linear head; batch norms after every conv."""
    from torch import nn

    def ch(c: int) -> int:
        return max(8, int(c * width + 4) // 8 * 8)

    class Block(nn.Module):
        def __init__(self, c_in: int, expand: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.expand = nn.Sequential(nn.Conv2d(c_in, expand, 1, bias=False),
                                        nn.BatchNorm2d(expand), nn.Hardswish())
            self.depthwise = nn.Sequential(nn.Conv2d(expand, expand, 3, stride, 1, groups=expand,
                                                     bias=False),
                                           nn.BatchNorm2d(expand), nn.Hardswish())
            self.project = nn.Sequential(nn.Conv2d(expand, c_out, 1, bias=False),
                                         nn.BatchNorm2d(c_out))
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x: Any) -> Any:
            y = self.project(self.depthwise(self.expand(x)))
            return x + y if self.residual else y

    # (expansion, output channels, stride) as MobileNetV3-large's first stages
    cfg = [(16, 16, 1), (64, 24, 2), (72, 24, 1), (72, 40, 2), (120, 40, 1), (240, 80, 2),
           (200, 80, 1), (480, 112, 1), (672, 160, 2)]
    layers: list[Any] = [nn.Conv2d(1, ch(16), 3, 2, 1, bias=False), nn.BatchNorm2d(ch(16)),
                         nn.Hardswish()]
    c = ch(16)
    for e, o, st in cfg:
        layers.append(Block(c, ch(e), ch(o), st))
        c = ch(o)
    body = nn.Sequential(*layers, nn.Conv2d(c, ch(960), 1, bias=False), nn.BatchNorm2d(ch(960)),
                         nn.Hardswish())

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = body
            self.head = nn.Linear(ch(960), num_classes)

        def forward(self, x: Any) -> Any:
            return self.head(self.body(x).mean((2, 3)))

    return Net()


FAMILIES = {"dcase21net": ("dcase21net", {}), "cnn6": ("cnn6", {"width": 0.5}),
            "cnn14": ("cnn14", {"width": 0.25}), "qcnn6 (fused)": ("qcnn6", {"width": 0.5}),
            "depthwise (mn04-like)": ("depthwise", {"width": 0.4})}


def family_model(arch: str, kwargs: dict[str, Any], clip_seconds: float) -> tuple[Any, Any, Any]:
    """(module on features, example features (1, C, frames, mels), forward_fn) of a family."""
    import torch

    from audioprune.audio.frontend import FrontEndConfig
    from audioprune.models.dcase21net import DCASE21_FRONTEND
    from audioprune.models.registry import create_model
    from audioprune.nn.fuse import fuse_quaternion

    torch.manual_seed(0)
    if arch == "depthwise":
        fe = FrontEndConfig(sample_rate=32000, n_mels=128, clip_seconds=clip_seconds)
        frames = int(clip_seconds * fe.sample_rate / fe.hop_length) + 1
        return depthwise_net(10, **kwargs).eval(), torch.randn(1, 1, frames, fe.n_mels), None
    base = DCASE21_FRONTEND if arch == "dcase21net" else FrontEndConfig()
    fe = FrontEndConfig(**{**base.__dict__, "clip_seconds": clip_seconds,
                           "channels": "deltas" if arch.startswith("q") else base.channels})
    model = create_model(arch, 10, frontend=fe, **kwargs).eval()
    example = model.example_features()
    if arch.startswith("q"):
        model = fuse_quaternion(model).eval()
    return model, example, "classify"


def _randomised_norms(model: Any) -> None:
    """Batch-norm statistics away from identity, as after training (folding then matters)."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def families(args: argparse.Namespace) -> int:
    import torch

    import audioprune as ap

    out_path = args.out
    torch.set_num_threads(args.threads)
    start = benchlib.machine()
    rows: dict[str, Any] = {}
    chosen = {k: v for k, v in FAMILIES.items() if not args.only or v[0] in args.only}
    if not chosen:
        raise SystemExit(f"--only: no family among {', '.join(v[0] for v in FAMILIES.values())}")
    for label, (arch, kwargs) in chosen.items():
        model, example, forward_fn = family_model(arch, kwargs, args.clip_seconds)
        _randomised_norms(model)
        counts = ap.count(model, example, forward_fn)
        exported = ap.export_onnx(model, example, forward_fn=forward_fn)
        g = torch.Generator().manual_seed(1)
        calib = [torch.randn((8, *example.shape[1:]), generator=g).numpy() for _ in range(4)]
        # "int8 static 8-bit": full-range weights (reduce_range=False), timed beside the 7-bit
        # default to show what the default costs in time (the kernels are the same)
        files = {"fp32": exported.data, "int8 static": ap.quantize_onnx(exported, calib),
                 "int8 static 8-bit": ap.quantize_onnx(exported, calib, reduce_range=False),
                 "int8 dynamic": ap.quantize_onnx(exported, None, method="dynamic")}
        row: dict[str, Any] = {"arch": arch, "kwargs": kwargs, "params": counts.params,
                               "macs": counts.macs, "features": list(example.shape[1:]),
                               "bytes": {k: len(v) for k, v in files.items()},
                               "bn_folded": len(exported.folded), "latency": {}}
        for batch in (1, 8):
            x = np.ascontiguousarray(np.repeat(example.numpy(), batch, axis=0))
            fns = {}
            for name, data in files.items():
                s = ort_session(data, args.threads)
                fns[name] = lambda s=s, x=x: s.run(None, {s.get_inputs()[0].name: x})
            timed = benchlib.round_robin(fns, rounds=args.rounds, budget_s=0.2)
            row["latency"][f"b{batch}"] = {name: timed.row(name, "fp32") for name in files}
        rows[label] = row
        b1, b8 = row["latency"]["b1"], row["latency"]["b8"]
        print(f"{label:24s} fp32 {b1['fp32']['ms']:7.2f} ms  static int8 "
              f"{b1['int8 static']['ratio']:.2f}x (8-bit {b1['int8 static 8-bit']['ratio']:.2f}x)  "
              f"dynamic {b1['int8 dynamic']['ratio']:.2f}x "
              f"(b1); b8 static {b8['int8 static']['ratio']:.2f}x  dynamic "
              f"{b8['int8 dynamic']['ratio']:.2f}x", flush=True)
    end = benchlib.machine()
    benchlib.save(out_path, {
        "what": "ONNX Runtime ms per call of each family's body (features -> logits), fp32 and "
                "int8 (static QDQ per-channel, 7-bit weights as deployed by default and 8-bit; "
                "dynamic); ratio = int8 / fp32 timed round-robin "
                "(< 1: int8 is faster); random weights (latency does not depend on them)",
        "threads": args.threads, "rounds": args.rounds, "clip_seconds": args.clip_seconds,
        "families": rows,
        "machine": {**start, "load_average_1min_at_end": end["load_average_1min"]}})
    print(f"written to {out_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=benchlib.RESULTS / "quantize_latency.json")
    p.add_argument("--clip-seconds", type=float, default=1.0, help="features of this much audio")
    p.add_argument("--only", nargs="+", metavar="FAMILY", help="these only "
                   "(dcase21net, cnn6, cnn14, qcnn6, depthwise)")
    return families(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
