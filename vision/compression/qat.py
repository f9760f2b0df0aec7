"""Quantization-aware fine-tuning that trains against the int8 arithmetic ONNX Runtime will run.

The fake quantization mirrors the export stage's static QDQ file exactly where
it matters: BatchNorm folded into the convolutions (as the ONNX export does),
weights per output channel, symmetric, 7 or 8 bits (ONNX Runtime's
`reduce_range`), and each convolution's and linear layer's input as uint8 over
its observed min/max range (ONNX Runtime's MinMax calibration, zero always
inside the range). After fine-tuning the fake quantization is removed and the
plain fp32 model, BatchNorm folded, goes through the same export and static
quantization as every other candidate: ONNX Runtime's quantizer writes the QDQ
file, so the deployed graph is the one every other int8 variant has.

Written here rather than with torch.ao's QAT: its eager and FX flows fuse only
conv-bn-relu patterns they recognise (timm's BatchNormAct2d is not one), export
to ONNX poorly, and their quantization scheme is not ONNX Runtime's, so the
model would be trained against arithmetic it never runs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.fusion import fuse_conv_bn_weights

from core.spec.training import AugmentSection, TrainSection
from vision.data.dataset import SplitData, to_tensor
from vision.data.streams import Images, batches
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION

if TYPE_CHECKING:
    from vision.training.fit import Teacher

QAT_LR_SHARE = 0.1
"""Share of the training learning rate the fine-tuning uses: the weights are already trained, QAT only moves
them into the int8 grid's good side."""


def fold_batchnorm(model: nn.Module, size_px: int) -> int:
    """Fold every BatchNorm that directly follows a convolution into it, in place; returns how many.

    Pairs are found by running the model once and matching each BatchNorm's input to the convolution output
    it is (so any architecture works, not a list of known patterns). timm's BatchNormAct2d keeps its
    activation: it is replaced by its own dropout and activation. Folding only a structurally fresh model
    (its statistics the defaults) gives the same module tree, which is how a saved QAT candidate loads back.
    """
    produced: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[nn.Conv2d, str, nn.BatchNorm2d]] = []
    names = {module: name for name, module in model.named_modules()}
    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(
                lambda conv, _, output: produced.__setitem__(id(output), conv)))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_pre_hook(
                lambda bn, inputs: pairs.append((produced[id(inputs[0])], names[bn], bn))
                if id(inputs[0]) in produced else None))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size_px, size_px))
    finally:
        for hook in hooks:
            hook.remove()
    for conv, name, bn in pairs:
        weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                            bn.weight, bn.bias)
        conv.weight, conv.bias = weight, bias
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        after = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
        setattr(parent, child, nn.Sequential(*after) if after else nn.Identity())
    return len(pairs)


class _WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric int8 (ONNX Runtime's scale: max |w| over the symmetric integer range)."""

    def __init__(self, weight_bits: int):
        super().__init__()
        self.qmax = 64 if weight_bits == 7 else 127  # ONNX Runtime's reduced symmetric range is [-64, 64]

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        absmax = weight.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-12)
        scale = (absmax / self.qmax).float()
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -self.qmax, self.qmax)


class _InputFakeQuant(nn.Module):
    """uint8 over the observed range of a layer's input, zero included (ONNX Runtime's MinMax calibration).

    While training the range follows the batches (a moving average); `calibrating` switches it to the plain
    min/max over every batch seen, which is what the export's calibration computes."""

    momentum = 0.01

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(False))
        self.calibrating = False

    def observe(self, x: torch.Tensor) -> None:
        low, high = x.detach().min().clamp_max(0.0), x.detach().max().clamp_min(0.0)
        if not bool(self.seen):
            self.low.copy_(low)
            self.high.copy_(high)
            self.seen.fill_(True)
        elif self.calibrating:
            self.low.copy_(torch.minimum(self.low, low))
            self.high.copy_(torch.maximum(self.high, high))
        else:
            self.low.lerp_(low, self.momentum)
            self.high.lerp_(high, self.momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.calibrating:
            self.observe(x)
        if not bool(self.seen) or float(self.high - self.low) <= 0.0:
            return x
        scale = float(self.high - self.low) / 255.0
        zero = int(torch.clamp(torch.round(-self.low / scale), 0, 255))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255)


QUANTIZED_LAYERS = (nn.Conv2d, nn.Linear)


def add_fake_quant(model: nn.Module, weight_bits: int) -> None:
    """Fake-quantize every convolution's and linear layer's weights and input, in place."""
    for module in list(model.modules()):
        if isinstance(module, QUANTIZED_LAYERS):
            parametrize.register_parametrization(module, "weight", _WeightFakeQuant(weight_bits))
            module.input_quant = _InputFakeQuant()
            module.input_quant_hook = module.register_forward_pre_hook(
                lambda layer, inputs: (layer.input_quant(inputs[0]), *inputs[1:]))


def remove_fake_quant(model: nn.Module) -> None:
    """Back to plain layers whose weights are the fine-tuned fp32 ones (unquantized: the export quantizes)."""
    for module in list(model.modules()):
        if isinstance(module, QUANTIZED_LAYERS) and parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
            module.input_quant_hook.remove()
            del module.input_quant, module.input_quant_hook


@contextmanager
def _calibrating(model: nn.Module) -> Iterator[None]:
    quantizers = [m for m in model.modules() if isinstance(m, _InputFakeQuant)]
    for quantizer in quantizers:
        quantizer.calibrating = True
        quantizer.seen.fill_(False)
    try:
        yield
    finally:
        for quantizer in quantizers:
            quantizer.calibrating = False


def calibrate(model: nn.Module, images: Images, batch: int = 32) -> None:
    """Set every input range to the min/max over `images`, as the export's calibration will."""
    model.eval()
    with _calibrating(model), torch.no_grad():
        for chunk in batches(images, batch):
            model(to_tensor(chunk))


# Nine parameters: the trained model, its data and training settings, the int8 arithmetic to train for, and the
# task whose loss it trains with.
def quantization_aware_finetune(trained: nn.Module, train: SplitData, val: SplitData, training: TrainSection,
                                seed: int, weight_bits: int, augment: AugmentSection | None = None,
                                teacher: Teacher | None = None, task: Task = CLASSIFICATION) -> nn.Module:
    """A BatchNorm-folded copy of `trained` fine-tuned under int8 fake quantization for `training.epochs`,
    returned as a plain fp32 model ready for export and static quantization."""
    model = copy.deepcopy(trained).eval()
    fold_batchnorm(model, int(train.images.shape[1]))
    probe = to_tensor(train.sample(16).images[:])
    with torch.no_grad():
        before, after = trained.eval()(probe), model(probe)
    if not torch.allclose(before, after, atol=1e-3 * float(before.abs().max()) + 1e-4):
        # a convolution whose output also feeds something besides its BatchNorm cannot be folded
        raise ValueError("folding BatchNorm into the convolutions changed this backbone's outputs, so "
                         "quantization-aware fine-tuning cannot mirror the int8 file; set "
                         "compress.quantization.qat_epochs: 0 for it")
    add_fake_quant(model, weight_bits)
    # ranges start where the export's would be: on images spread over the split (its first are one class, and
    # their ranges would still weigh 40% in the moving average after two epochs)
    calibrate(model, train.sample(256).images)
    slower = training.optimizer.model_copy(update={"lr": training.optimizer.lr * QAT_LR_SHARE})
    settings = training.model_copy(update={"optimizer": slower, "hpo": None, "early_stopping_patience": 0})
    from vision.training.fit import fit  # here: a stage that only loads a QAT candidate needs no Lightning

    fit(model, train, val, settings, seed, augment, teacher=teacher, progress=False, task=task,
        label="compress: quantization-aware fine-tuning")
    remove_fake_quant(model)
    return model.eval()
