"""Export a run's model to ONNX and prove the file computes what the run's model computes.

What is exported: the inference form of the model (`fuse_for_inference(model, fold_bn=True)`:
quaternion layers become plain convs / linears holding their Hamilton kernels, and each conv's
batch norm is folded into it), from features (batch, channels, frames, mels) to logits, or with
`with_frontend=True` from the waveform (batch, samples) to logits. The batch axis is dynamic.

Exporter: torch.onnx.export(dynamo=True), the torch.export-based exporter (torch's default since
2.9; it needs the `onnxscript` package, in the `measure` extra). Both exporters run offline; we
use this one because (checked with torch 2.13): the legacy TorchScript exporter (dynamo=False)
warns that it will be removed, and it cannot export the front end at all -- its STFT symbolic
refuses complex tensors ("STFT does not currently support complex types") -- while the dynamo
exporter turns torch.stft into ONNX STFT and the waveform-to-logits graph matches PyTorch to
~1e-6 in ONNX Runtime.

The exporter's own graph optimiser (onnxscript's rewriter, `optimize=True`) is switched off:
its no-op rules match a constant "0" with an absolute tolerance of 1e-8, so it deletes the
front end's `log10(mel_power + 1e-10)` offset and silent frames (zero padding) become -inf in
ONNX Runtime (found by the parity check on real FSDD speech; onnxscript 0.7). ONNX Runtime
optimises the graph itself when it loads it, so nothing is lost but a few kilobytes.

Opsets: the exporter builds opset 18 and converts to the one asked for. When the conversion
fails it silently keeps 18, so we read the opset back from the file and refuse a mismatch. With
torch 2.13 / onnxscript 0.7 the body converts down to opset 16 but not 15 (no Identity adapter);
the front end needs opset 18: STFT exists since opset 17, but the reflect padding of
torch.stft(center=True) is a Pad-18 that the converter cannot take back to 17.

Parity: ONNX Runtime and PyTorch (the run's own model, unfused, eval mode) run the same REAL
inputs -- clips from the run's test split when its data can be found, else seeded noise (and the
result says which) -- and the export fails with a UserError when the largest absolute logit
difference exceeds `tol` (1e-4).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audioprune.errors import UserError
from audioprune.extras import require
from audioprune.models.base import AudioClassifier
from audioprune.models.qmodels import fuse_for_inference

__all__ = ["DEFAULT_OPSET", "PARITY_TOL", "Body", "check_parity", "clip_samples", "export_onnx",
           "inference_model"]


DEFAULT_OPSET = 18  # what the dynamo exporter builds natively (no version conversion)


PARITY_TOL = 1e-4


EXAMPLE_BATCH = 2  # traced with 2 so that the batch axis is not specialised to 1


_NOISY_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


def inference_model(model: AudioClassifier) -> AudioClassifier:
    """The model as deployed: eval mode, quaternion layers fused to real ones, BN folded."""
    return fuse_for_inference(model, fold_bn=True)


class Body(nn.Module):
    """features -> logits (the model's `classify`) as a module's forward, for the exporter."""

    def __init__(self, model: AudioClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model.classify(feats)


class _Capture(logging.Handler):
    """Keeps the records the exporter logs (with their exceptions) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[tuple[str, str]] = []  # (logger name, message)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {str(record.exc_info[1]).strip().splitlines()[-1]}"
        self.messages.append((record.name, text))

    def reason(self) -> str:
        """The version converter's last words when it logged any (its failure comes last),
        else the exporter's."""
        ranked = sorted(reversed(self.messages), key=lambda m: not m[0].startswith("onnxscript"))
        return ranked[0][1] if ranked else "no reason given"


@contextmanager
def _quiet_exporter() -> Iterator[_Capture]:
    """Route the exporter's log lines (torchvision notices, opset fallbacks, version-converter
    failures) and deprecation warnings away from the user's terminal into a `_Capture`, which
    the error messages quote. torch.onnx has a stderr handler of its own: it is set aside for
    the duration and put back."""
    capture = _Capture()
    saved = []
    for name in _NOISY_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, list(lg.handlers), lg.level, lg.propagate))
        lg.handlers = [capture]
        lg.setLevel(logging.WARNING)
        lg.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield capture
    finally:
        for lg, handlers, level, propagate in saved:
            lg.handlers = handlers
            lg.setLevel(level)
            lg.propagate = propagate


def _example(model: AudioClassifier, with_frontend: bool, num_samples: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if with_frontend:
        return 0.1 * torch.randn(EXAMPLE_BATCH, num_samples, generator=gen)
    return torch.randn(EXAMPLE_BATCH, *model.feature_shape(num_samples), generator=gen)


def clip_samples(model: AudioClassifier) -> int:
    """Samples per example: the front end's clip length (1 s when it keeps full length)."""
    fe = model.frontend_cfg
    return fe.clip_samples or fe.sample_rate


def export_onnx(model: AudioClassifier, *, opset: int = DEFAULT_OPSET,
                with_frontend: bool = False, num_samples: int | None = None,
                deployed: bool = False) -> bytes:
    """The ONNX model (serialised) of `inference_model(model)`: features -> logits, or
    waveform -> logits with `with_frontend`; input "features" / "waveform", output "logits",
    dynamic batch axis. `deployed`: the model already is the inference form (fused, BN folded,
    e.g. after quantization-aware fine-tuning). Raises UserError when the graph cannot be
    exported at `opset`."""
    onnx = require("onnx", "ONNX export")
    require("onnxscript", "ONNX export")  # the dynamo exporter needs it
    if opset < 7 or opset > onnx.defs.onnx_opset_version():
        raise UserError(f"`opset` {opset}: onnx {onnx.__version__} knows opsets 7 to "
                        f"{onnx.defs.onnx_opset_version()}; the default is {DEFAULT_OPSET}")
    num_samples = num_samples or clip_samples(model)
    deploy = model.eval() if deployed else inference_model(model)
    module: nn.Module = deploy if with_frontend else Body(deploy)
    example = _example(model, with_frontend, num_samples)
    name = "waveform" if with_frontend else "features"
    with _quiet_exporter() as log, torch.no_grad():
        try:
            program = torch.onnx.export(
                module, (example,), dynamo=True, external_data=False, opset_version=opset,
                input_names=[name], output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), optimize=False,
                verbose=False)
        except Exception as exc:  # the exporter raises many types; all mean "cannot export"
            what = "waveform-to-logits graph" if with_frontend else "model"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"torch.onnx.export could not export the {what} "
                            f"({type(exc).__name__}: {first})") from exc
    proto = program.model_proto
    got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        reason = log.reason()
        hint = (" The front end (torch.stft -> ONNX STFT, reflect padding) exports at opset 18 "
                "or later." if with_frontend else "")
        raise UserError(f"`opset` {opset}: the exporter could not convert the graph to opset "
                        f"{opset} and produced opset {got} instead ({reason}).{hint} Choose a "
                        f"higher `opset` ({got}, the exporter's own, needs no conversion).")
    return proto.SerializeToString()


def _run_ort(onnx_model: bytes | str | Path, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    from audioprune.measure.latency import default_threads, ort_session

    session = ort_session(onnx_model, threads or default_threads())
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def check_parity(onnx_model: bytes | str | Path, reference: np.ndarray, inputs: np.ndarray,
                 tol: float = PARITY_TOL) -> float:
    """Largest |ONNX Runtime - reference| over `inputs`; UserError when above `tol` (or NaN)."""
    got = _run_ort(onnx_model, np.ascontiguousarray(inputs, dtype=np.float32))
    if got.shape != reference.shape:
        raise UserError(f"ONNX parity check failed: ONNX Runtime returned shape {got.shape}, "
                        f"PyTorch {reference.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - reference.astype(np.float64))))
    if not diff <= tol:
        raise UserError(f"ONNX parity check failed: max |ONNX Runtime - PyTorch| = {diff:.3g} "
                        f"> {tol:g} on {len(inputs)} inputs; the exported graph does not compute "
                        f"what the model computes, so no file was kept")
    return diff
