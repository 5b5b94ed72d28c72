"""`taller export --format onnx`: the logits model for every other tool (onnxruntime in Python, C#, Java, JavaScript…),
with the run's tokenizer written beside it as JSON.

    ids (1, T) int64 ──► the model ──► logits (1, T, V) float32          T: any length (a Transformer: ≤ block_size)

torch.onnx's TorchScript-based exporter (dynamo=False), opset 18: in torch 2.13 the newer torch.export-based one fixes
the length T of an nn.LSTM to the example's, and the TorchScript one handles every kind here with T free. It has no
rule for RMSNorm (aten::rms_norm, the modern recipe's norm) at opset 18: rms_norm_symbolic writes it out.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import warnings

import torch

from taller.errors import TallerError
from taller.models.modes import evaluating

OPSET = 18
EXAMPLE_LENGTH = 8  # characters (tokens) of the example the exporter traces; the exported T is free


def traceable(model: torch.nn.Module) -> torch.nn.Module:
    """The model as the exporter must trace it: a readable path written as a Python loop over time
    (recurrence = "explicit") would fix T to the example's length, so the copy takes the fused path (the same numbers,
    the same weights)."""
    traced = model.cfg.traceable()  # ModelConfig.traceable: the same config unless a readable loop must be fused
    if traced == model.cfg:
        return model
    fused = copy.copy(model)  # shares the weights; only its configuration differs
    fused.cfg = traced
    return fused


def rms_norm_symbolic(g, x, normalized_shape, weight, eps):
    """aten::rms_norm as ONNX operations: x / √(mean(x²) over the last dims + eps) · weight. eps=None is PyTorch's
    torch.finfo(float32).eps, as in nn.RMSNorm."""
    from torch.onnx import symbolic_helper as helper  # (torch's own module, needed only while exporting)

    dims = helper._get_const(normalized_shape, "is", "normalized_shape")
    axes = g.op("Constant", value_t=torch.tensor(list(range(-len(dims), 0)), dtype=torch.long))
    eps = torch.finfo(torch.float32).eps if helper._is_none(eps) else helper._get_const(eps, "f", "eps")
    mean_square = g.op("ReduceMean", g.op("Mul", x, x), axes, keepdims_i=1)
    rms = g.op("Sqrt", g.op("Add", mean_square, g.op("Constant", value_t=torch.tensor(eps, dtype=torch.float32))))
    y = g.op("Div", x, rms)
    return y if helper._is_none(weight) else g.op("Mul", y, weight)


def onnx_bytes(model: torch.nn.Module) -> bytes:
    """The model (in eval mode) as an ONNX file: input "ids" (1, T), output "logits" (1, T, V)."""
    length = min(EXAMPLE_LENGTH, model.block_size or EXAMPLE_LENGTH)
    example = torch.zeros(1, length, dtype=torch.long)  # (1, T)
    if importlib.util.find_spec("onnx") is None:  # torch writes the file through it
        raise TallerError("para exportar a ONNX falta el paquete onnx; instálalo con pip install 'taller[export]'.")
    torch.onnx.register_custom_op_symbolic("aten::rms_norm", rms_norm_symbolic, OPSET)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), evaluating(model):
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it fixes (none that matter here)
        torch.onnx.export(
            traceable(model),
            (example,),
            buffer,
            input_names=["ids"],
            output_names=["logits"],
            dynamic_axes={"ids": {1: "T"}, "logits": {1: "T"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()
