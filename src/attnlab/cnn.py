"""Convolutional backbones (chapter 0, "Prelude: convolutional backbones").

The chapter's pieces, in its order: a filter slid over an image (:func:`conv2d_naive`,
:func:`conv2d`), the feature-map size (:func:`conv_output_size`), pooling (:func:`max_pool2d`,
:func:`avg_pool2d`), the receptive field (:func:`receptive_field`), then one idea from each backbone:
AlexNet (:class:`TinyAlexNet`), VGG (:func:`conv_parameters`), ResNet (:class:`ResidualBlock`,
:func:`block_stack`, :func:`gradient_norms`) and EfficientNet (:func:`compound_coefficients`,
:class:`ScalableCNN`; FLOPs are counted by :func:`attnlab.measure.count_flops`).

Teaching path and fast path: :func:`conv2d`, :func:`max_pool2d` and :func:`avg_pool2d` show the
maths (windows cut out with ``unfold``, then one matrix product or one reduction); the models call
``torch.nn.Conv2d`` and ``torch.nn.MaxPool2d``. The tests prove the two equal.

Simplifications with respect to the papers:

* square kernels, the same stride and padding on both axes, no dilation, no groups; pooling has no
  padding;
* :class:`TinyAlexNet` keeps AlexNet's ReLU, max pooling and dropout for 8 x 8 digits; it drops local
  response normalisation, overlapping pooling, the two-GPU split and the 224 x 224 input;
* :class:`ResidualBlock` is ResNet's *basic block* with stride 1 and an identity shortcut only
  (no projection shortcut, no bottleneck block);
* :class:`ScalableCNN` is a plain stack of 3 x 3 convolutions, not EfficientNet's MBConv blocks with
  squeeze-and-excitation; the compound coefficients (alpha, beta, gamma) = (1.2, 1.1, 1.15) are the
  paper's grid-search result, not searched here.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "hand_filters",
    "conv2d_naive",
    "conv2d",
    "conv_output_size",
    "max_pool2d",
    "avg_pool2d",
    "receptive_field",
    "conv_parameters",
    "TinyAlexNet",
    "ResidualBlock",
    "block_stack",
    "gradient_norms",
    "compound_coefficients",
    "ScalableCNN",
]


# --- 1. Filters and convolution ------------------------------------------------------------------

def hand_filters() -> dict[str, torch.Tensor]:
    """Classic hand-made 3 x 3 filters: ``{name: (K, K) float32 kernel}``.

    ``box blur`` averages a neighbourhood; ``sobel x`` / ``sobel y`` respond to horizontal /
    vertical changes of brightness (vertical / horizontal edges); ``laplacian`` to both.
    """
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    return {
        "box blur": torch.full((3, 3), 1.0 / 9.0),
        "sobel x": sobel_x,
        "sobel y": sobel_x.T.contiguous(),
        "laplacian": torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]),
    }


def conv2d_naive(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Slide ``kernel`` over ``image`` and take a dot product at every position (no padding, stride 1).

    Args:
        image: (Hi, Wi) float, one channel.
        kernel: (K, K) float.
    Returns:
        (Hi - K + 1, Wi - K + 1) feature map. Like every deep-learning library this is
        cross-correlation: the kernel is not flipped.
    """
    k = kernel.shape[0]
    h_out, w_out = image.shape[0] - k + 1, image.shape[1] - k + 1
    out = image.new_zeros(h_out, w_out)
    for i in range(h_out):
        for j in range(w_out):
            out[i, j] = (image[i:i + k, j:j + k] * kernel).sum()  # one window, one number
    return out


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Feature-map size along one axis: ``floor((size + 2 * padding - kernel) / stride) + 1``.

    Raises:
        ValueError: if ``stride < 1``, ``padding < 0`` or the kernel does not fit the padded input.
    """
    if stride < 1 or padding < 0 or kernel < 1:
        raise ValueError(f"need kernel >= 1, stride >= 1, padding >= 0; got {kernel}, {stride}, {padding}")
    if size + 2 * padding < kernel:
        raise ValueError(f"kernel {kernel} does not fit an input of size {size} padded by {padding}")
    return (size + 2 * padding - kernel) // stride + 1


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int = 1,
    padding: int = 0,
) -> torch.Tensor:
    """2-D convolution (cross-correlation) as windows times filters; equals ``F.conv2d``.

    Args:
        x: (B, C, Hi, Wi) float input.
        weight: (C_out, C, K, K) float, one (C, K, K) filter per output channel.
        bias: (C_out,) or ``None``.
        stride, padding: the same on both axes; padding adds zeros.
    Returns:
        (B, C_out, Ho, Wo) with Ho, Wo from :func:`conv_output_size`.
    """
    B, C, Hi, Wi = x.shape
    C_out, _, K, _ = weight.shape
    Ho, Wo = conv_output_size(Hi, K, stride, padding), conv_output_size(Wi, K, stride, padding)
    windows = F.unfold(x, kernel_size=K, stride=stride, padding=padding)  # (B, C*K*K, Ho*Wo)
    out = weight.reshape(C_out, C * K * K) @ windows  # (B, C_out, Ho*Wo): a dot product per window
    if bias is not None:
        out = out + bias[:, None]  # (B, C_out, Ho*Wo)
    return out.reshape(B, C_out, Ho, Wo)


# --- 2. Pooling and the receptive field ----------------------------------------------------------

def _pool_windows(x: torch.Tensor, kernel: int, stride: int | None) -> tuple[torch.Tensor, int, int]:
    B, C, Hi, Wi = x.shape
    stride = kernel if stride is None else stride
    Ho, Wo = conv_output_size(Hi, kernel, stride), conv_output_size(Wi, kernel, stride)
    windows = F.unfold(x, kernel_size=kernel, stride=stride)  # (B, C*K*K, Ho*Wo)
    return windows.reshape(B, C, kernel * kernel, Ho * Wo), Ho, Wo  # (B, C, K*K, Ho*Wo)


def max_pool2d(x: torch.Tensor, kernel: int, stride: int | None = None) -> torch.Tensor:
    """Max pooling: the largest value of each K x K window, channel by channel; no parameters.

    Args:
        x: (B, C, Hi, Wi). stride: defaults to ``kernel`` (windows that do not overlap).
    Returns:
        (B, C, Ho, Wo), equal to ``F.max_pool2d(x, kernel, stride)``.
    """
    windows, Ho, Wo = _pool_windows(x, kernel, stride)  # (B, C, K*K, Ho*Wo)
    return windows.amax(dim=2).reshape(x.shape[0], x.shape[1], Ho, Wo)


def avg_pool2d(x: torch.Tensor, kernel: int, stride: int | None = None) -> torch.Tensor:
    """Average pooling: the mean of each K x K window, channel by channel; equals ``F.avg_pool2d``."""
    windows, Ho, Wo = _pool_windows(x, kernel, stride)  # (B, C, K*K, Ho*Wo)
    return windows.mean(dim=2).reshape(x.shape[0], x.shape[1], Ho, Wo)


def receptive_field(layers: Sequence[tuple[int, int]]) -> list[int]:
    """Receptive field (in input pixels, along one axis) after each layer of a stack.

    Args:
        layers: ``(kernel, stride)`` of each convolution or pooling layer, input side first.
    Returns:
        ``r`` with ``r[l]`` the receptive field after layer ``l``: ``r = r_prev + (K - 1) * jump``,
        where ``jump`` (the input distance between neighbouring outputs) is the product of the
        earlier strides. ``receptive_field([(3, 1), (3, 1)]) == [3, 5]``.
    """
    r, jump, out = 1, 1, []
    for kernel, stride in layers:
        r += (kernel - 1) * jump
        jump *= stride
        out.append(r)
    return out


# --- 3. Counting parameters by hand (attnlab.measure counts what torch allocated) -----------------------------------------------------------

def conv_parameters(c_in: int, c_out: int, kernel: int, *, bias: bool = True) -> int:
    """Weights of one convolution by the hand formula ``K * K * C_in * C_out (+ C_out)``."""
    return kernel * kernel * c_in * c_out + (c_out if bias else 0)


# --- 4. AlexNet: ReLU, pooling, dropout -----------------------------------------------------------

class TinyAlexNet(nn.Module):
    """An AlexNet-style classifier for small images: conv-ReLU-pool features, a dropout MLP head.

    Args:
        in_channels, num_classes: image channels and classes.
        image_size: Hi = Wi of the input; must be divisible by 4 (two 2 x 2 poolings).
        channels: channels of the first convolution (then 2x and 4x).
        dropout: dropout probability in the classifier (AlexNet: 0.5).
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, image_size: int = 8,
                 channels: int = 16, dropout: float = 0.5):
        super().__init__()
        w = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        flat = 4 * w * (image_size // 4) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, 8 * w), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(8 * w, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, Hi, Wi) -> logits (B, num_classes)."""
        return self.classifier(self.features(x))  # features: (B, 4w, Hi/4, Wi/4)


# --- 5. ResNet: the residual block -----------------------------------------------------------------

class ResidualBlock(nn.Module):
    """ResNet's basic block: ``y = ReLU(F(x) + x)``, ``F = conv3x3 -> BN -> ReLU -> conv3x3 -> BN``.

    Attribute names match ``torchvision.models.resnet.BasicBlock`` (``conv1, bn1, conv2, bn2``), so
    state dicts load into each other.

    Args:
        channels: C of input and output (stride 1, identity shortcut).
        shortcut: add the identity ``x``; ``False`` gives the *plain* block ``ReLU(F(x))``.
        norm: use batch normalisation (``False``: ``nn.Identity`` in its place).
    """

    def __init__(self, *, channels: int, shortcut: bool = True, norm: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.shortcut = shortcut

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): (B, C, Hi, Wi) -> (B, C, Hi, Wi)."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, Hi, Wi) -> (B, C, Hi, Wi)."""
        out = self.residual(x)
        if self.shortcut:
            out = out + x  # the identity shortcut: the gradient reaches x through "+ x" unchanged
        return F.relu(out)


def block_stack(*, depth: int, channels: int, shortcut: bool, norm: bool = False) -> nn.Sequential:
    """``depth`` :class:`ResidualBlock` s in a row (2 * depth convolutions), plain or residual."""
    return nn.Sequential(*[ResidualBlock(channels=channels, shortcut=shortcut, norm=norm) for _ in range(depth)])


def gradient_norms(stack: nn.Sequential, x: torch.Tensor, target: torch.Tensor) -> list[float]:
    """How much gradient reaches each block: the norm of ``d loss / d h_l`` for the input ``h_l`` of block l.

    Args:
        stack: a :func:`block_stack`. x, target: (B, C, Hi, Wi); the loss is the mean squared error
            between ``stack(x)`` and ``target``.
    Returns:
        one norm per block, input side first (back-propagation walks this list from the end).
    """
    h = x.detach().clone().requires_grad_(True)
    inputs = []
    for block in stack:
        h.retain_grad()  # keep d loss / d h of this intermediate tensor
        inputs.append(h)
        h = block(h)  # (B, C, Hi, Wi)
    F.mse_loss(h, target).backward()
    return [float(h_in.grad.norm()) for h_in in inputs]


# --- 6. EfficientNet: width, depth and resolution scaling -----------------------------------------

def compound_coefficients(phi: float, *, alpha: float = 1.2, beta: float = 1.1,
                          gamma: float = 1.15) -> tuple[float, float, float]:
    """EfficientNet's compound scaling: ``(depth, width, resolution) = (alpha^phi, beta^phi, gamma^phi)``.

    With ``alpha * beta**2 * gamma**2 ~= 2`` the FLOPs of a CNN grow by about ``2**phi``.
    """
    return alpha ** phi, beta ** phi, gamma ** phi


class ScalableCNN(nn.Module):
    """A small CNN whose width and depth scale by multipliers (EfficientNet's two model knobs).

    A 3 x 3 stem, then one stage per entry of ``base_channels``: a stride-2 convolution followed by
    ``ceil(depth_mult * base_layers[i]) - 1`` more 3 x 3 convolutions (each conv -> BN -> ReLU);
    then global average pooling and a linear classifier. Resolution is the third knob: the input size.

    Args:
        width_mult: channels are ``round(width_mult * c)`` (at least 1).
        depth_mult: layers per stage are ``ceil(depth_mult * n)``, as in EfficientNet.
    """

    def __init__(self, *, width_mult: float = 1.0, depth_mult: float = 1.0, in_channels: int = 3,
                 num_classes: int = 10, base_channels: Sequence[int] = (16, 32, 64),
                 base_layers: Sequence[int] = (1, 2, 2)):
        super().__init__()
        widths = [max(1, round(width_mult * c)) for c in (base_channels[0], *base_channels)]
        self.stem = self._conv(in_channels, widths[0], stride=1)
        stages = []
        for c_in, c_out, n in zip(widths[:-1], widths[1:], base_layers):
            layers = [self._conv(c_in, c_out, stride=2)]
            layers += [self._conv(c_out, c_out, stride=1) for _ in range(math.ceil(depth_mult * n) - 1)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(widths[-1], num_classes)

    @staticmethod
    def _conv(c_in: int, c_out: int, *, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                             nn.BatchNorm2d(c_out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, Hi, Wi) -> logits (B, num_classes)."""
        feats = self.stages(self.stem(x))  # (B, C_last, Hi/8, Wi/8)
        return self.head(feats.mean(dim=(2, 3)))  # (B, num_classes)
