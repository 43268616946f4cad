"""Tests of attnlab.cnn (chapter 0) against torch, torchvision, scipy and hand formulas."""

import math

import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from _shared import conv_rounding_bound

from attnlab import cnn
from attnlab.measure import count_flops, count_parameters


def gen(seed=0):
    return torch.Generator().manual_seed(seed)



# --- convolution ---------------------------------------------------------------------------------

@pytest.mark.parametrize("c_in,c_out,k,stride,padding,size", [
    (1, 1, 3, 1, 0, 7), (3, 1, 5, 1, 2, 32), (3, 8, 3, 2, 1, 9), (2, 4, 1, 1, 0, 5),
    (4, 3, 3, 3, 2, 11), (5, 2, 4, 2, 0, 10), (3, 6, 7, 1, 3, 8),
])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_conv2d_equals_torch(c_in, c_out, k, stride, padding, size, with_bias, dtype):
    """Equal to ``F.conv2d`` up to rounding: within the bound that any order of summation obeys."""
    g = gen(1)
    x = torch.randn(2, c_in, size, size + 1, generator=g, dtype=dtype)
    w = torch.randn(c_out, c_in, k, k, generator=g, dtype=dtype)
    b = torch.randn(c_out, generator=g, dtype=dtype) if with_bias else None
    ours = cnn.conv2d(x, w, b, stride=stride, padding=padding)
    ref = F.conv2d(x, w, b, stride=stride, padding=padding)
    assert ours.shape == ref.shape and ours.dtype == dtype
    bound = conv_rounding_bound(x, w, b, stride=stride, padding=padding)
    assert ((ours - ref).abs() <= bound).all(), float(((ours - ref).abs() / bound).max())
    if dtype == torch.float64:
        assert float(bound.max()) < 1e-11                            # the bound itself is tight


def test_5x5x3_filter_on_32x32x3_gives_32x32x1():
    g = gen(2)
    out = cnn.conv2d(torch.randn(1, 3, 32, 32, generator=g), torch.randn(1, 3, 5, 5, generator=g), padding=2)
    assert out.shape == (1, 1, 32, 32)


def test_conv2d_gradients_match_torch():
    g = gen(3)                                                       # float64: an identity, shown to 1e-10
    x = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    (gx, gw) = torch.autograd.grad(cnn.conv2d(x, w, stride=2, padding=1).square().sum(), (x, w))
    (rx, rw) = torch.autograd.grad(F.conv2d(x, w, stride=2, padding=1).square().sum(), (x, w))
    torch.testing.assert_close(gx, rx, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gw, rw, rtol=1e-10, atol=1e-10)


def test_naive_sliding_window_equals_scipy_and_torch():
    g = gen(4)
    image = torch.randn(9, 11, generator=g, dtype=torch.float64)
    for kernel in cnn.hand_filters().values():
        kernel = kernel.double()
        ours = cnn.conv2d_naive(image, kernel)
        ref = scipy.signal.correlate2d(image.numpy(), kernel.numpy(), mode="valid")
        torch.testing.assert_close(ours, torch.from_numpy(ref))
        torch.testing.assert_close(ours, F.conv2d(image[None, None], kernel[None, None])[0, 0])


def test_hand_filters_do_what_they_say():
    f = cnn.hand_filters()
    ramp = torch.arange(6.0).repeat(6, 1)  # brightness grows to the right: a horizontal change
    assert torch.allclose(cnn.conv2d_naive(ramp, f["sobel x"]), torch.full((4, 4), 8.0))
    assert torch.allclose(cnn.conv2d_naive(ramp, f["sobel y"]), torch.zeros(4, 4))
    assert torch.allclose(cnn.conv2d_naive(ramp, f["laplacian"]), torch.zeros(4, 4))
    flat = torch.full((5, 5), 3.0)
    assert torch.allclose(cnn.conv2d_naive(flat, f["box blur"]), flat[:3, :3])


def test_conv_output_size_matches_torch_on_many_shapes():
    checked = 0
    for size in (1, 4, 7, 8, 13, 32):
        for k in (1, 2, 3, 5, 7):
            for stride in (1, 2, 3):
                for padding in (0, 1, 2, 3):
                    if size + 2 * padding < k:
                        continue
                    out = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k),
                                   stride=stride, padding=padding)
                    assert cnn.conv_output_size(size, k, stride, padding) == out.shape[-1]
                    checked += 1
    assert checked > 200


def test_conv_output_size_rejects_bad_arguments():
    with pytest.raises(ValueError):
        cnn.conv_output_size(3, 5)
    with pytest.raises(ValueError):
        cnn.conv_output_size(8, 3, stride=0)
    with pytest.raises(ValueError):
        cnn.conv_output_size(8, 3, padding=-1)


# --- pooling ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel,stride,size", [(2, None, 8), (2, 1, 7), (3, 2, 9), (3, None, 10), (4, 3, 13)])
def test_pooling_equals_torch(kernel, stride, size):
    x = torch.randn(2, 3, size, size + 2, generator=gen(5))
    torch.testing.assert_close(cnn.max_pool2d(x, kernel, stride), F.max_pool2d(x, kernel, stride))
    torch.testing.assert_close(cnn.avg_pool2d(x, kernel, stride), F.avg_pool2d(x, kernel, stride))


def test_pooling_has_no_parameters_and_keeps_channels():
    assert count_parameters(nn.MaxPool2d(2)) == 0 and count_parameters(nn.AvgPool2d(2)) == 0
    x = torch.randn(1, 5, 6, 6, generator=gen(6))
    assert cnn.max_pool2d(x, 2).shape == (1, 5, 3, 3)


# --- receptive field ------------------------------------------------------------------------------------

def _brute_force_receptive_field(layers, size=64):
    """Which input pixels change the centre output: the support of the gradient (all weights = 1)."""
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    h = x + 0.0
    for k, s in layers:
        h = F.conv2d(h, torch.ones(1, 1, k, k), stride=s)
    h[0, 0, h.shape[2] // 2, h.shape[3] // 2].backward()
    cols = (x.grad[0, 0].abs().sum(0) > 0).nonzero().flatten()
    return int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("layers", [[(3, 1)], [(3, 1)] * 2, [(3, 1)] * 5, [(5, 1)], [(3, 2), (3, 2), (3, 1)],
                                    [(7, 2), (3, 2), (3, 1), (3, 1)], [(2, 2), (2, 2)]])
def test_receptive_field_equals_gradient_support(layers):
    r = cnn.receptive_field(layers)
    assert len(r) == len(layers)
    assert r[-1] == _brute_force_receptive_field(layers)


def test_two_3x3_see_as_far_as_one_5x5():
    assert cnn.receptive_field([(3, 1), (3, 1)])[-1] == cnn.receptive_field([(5, 1)])[-1] == 5


# --- counting ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("c", [1, 8, 64])
def test_vgg_18c2_vs_25c2(c):
    two_3x3 = nn.Sequential(nn.Conv2d(c, c, 3, bias=False), nn.Conv2d(c, c, 3, bias=False))
    one_5x5 = nn.Conv2d(c, c, 5, bias=False)
    assert count_parameters(two_3x3) == 18 * c * c == 2 * cnn.conv_parameters(c, c, 3, bias=False)
    assert count_parameters(one_5x5) == 25 * c * c == cnn.conv_parameters(c, c, 5, bias=False)
    assert count_parameters(nn.Conv2d(c, 2 * c, 3)) == cnn.conv_parameters(c, 2 * c, 3)


def test_count_flops_matches_hand_formula():
    B, c_in, c_out, k, size = 2, 3, 8, 3, 10
    conv = nn.Conv2d(c_in, c_out, k, stride=2, padding=1)
    ho = cnn.conv_output_size(size, k, 2, 1)
    assert count_flops(conv, torch.zeros(B, c_in, size, size)) == 2 * B * c_out * ho * ho * c_in * k * k
    assert count_flops(nn.Linear(20, 7), torch.zeros(5, 20)) == 2 * 5 * 20 * 7


# --- AlexNet ----------------------------------------------------------------------------------------------

def test_tiny_alexnet_shapes_and_dropout():
    torch.manual_seed(0)
    net = cnn.TinyAlexNet(channels=4)
    x = torch.randn(6, 1, 8, 8, generator=gen(7))
    net.eval()
    a, b = net(x), net(x)
    assert a.shape == (6, 10) and torch.equal(a, b)  # eval: dropout is off
    net.train()
    assert not torch.equal(net(x), net(x))  # train: dropout drops different units each call
    assert any(isinstance(m, nn.ReLU) for m in net.features) and any(isinstance(m, nn.Dropout) for m in net.classifier)


# --- ResNet ---------------------------------------------------------------------------------------------

def _randomise(module, g):
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "var" in name else torch.randn(t.shape, generator=g))


def test_residual_block_equals_torchvision_basic_block():
    g = gen(8)
    ours = cnn.ResidualBlock(channels=6)
    _randomise(ours, g)
    ref = BasicBlock(6, 6)
    ref.load_state_dict(ours.state_dict())
    ours.eval()
    ref.eval()
    x = torch.randn(2, 6, 5, 7, generator=g)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_residual_block_shortcut():
    g = gen(9)
    block = cnn.ResidualBlock(channels=3, norm=False)
    x = torch.randn(2, 3, 4, 4, generator=g)
    with torch.no_grad():
        block.conv2.weight.zero_()  # F(x) = 0
    torch.testing.assert_close(block(x), F.relu(x))  # so the block passes x through its shortcut
    plain = cnn.ResidualBlock(channels=3, shortcut=False, norm=False)
    plain.load_state_dict(block.state_dict())
    torch.testing.assert_close(plain(x), torch.zeros_like(x))
    _randomise(block, g)
    plain.load_state_dict(block.state_dict())
    torch.testing.assert_close(block(x), F.relu(plain.residual(x) + x))


def test_gradients_vanish_in_plain_stack_not_in_residual_stack():
    g = gen(10)
    x, target = torch.randn(4, 8, 8, 8, generator=g), torch.randn(4, 8, 8, 8, generator=g)
    torch.manual_seed(0)
    plain = cnn.block_stack(depth=12, channels=8, shortcut=False)
    residual = cnn.block_stack(depth=12, channels=8, shortcut=True)
    residual.load_state_dict(plain.state_dict())  # same weights: only the shortcut differs
    p, r = cnn.gradient_norms(plain, x, target), cnn.gradient_norms(residual, x, target)
    assert len(p) == len(r) == 12
    assert p[0] < 1e-4 * p[-1]  # plain: the gradient shrinks at every block on its way down
    assert all(a < b for a, b in zip(p, p[1:]))
    assert r[0] > 0.5 * r[-1]  # residual: it reaches the first block almost undiminished
    assert r[0] > 1e4 * p[0]


# --- EfficientNet ------------------------------------------------------------------------------------------

def test_compound_coefficients():
    d, w, r = cnn.compound_coefficients(1.0)
    assert (d, w, r) == (1.2, 1.1, 1.15)
    assert abs(d * w**2 * r**2 - 2.0) < 0.1
    d3, w3, r3 = cnn.compound_coefficients(3.0)
    assert math.isclose(d3, 1.2**3) and math.isclose(w3, 1.1**3) and math.isclose(r3, 1.15**3)


def test_scalable_cnn_scaling_laws():
    x = torch.zeros(1, 3, 32, 32)
    base = cnn.ScalableCNN()
    assert base(x).shape == (1, 10)
    convs = lambda m: sum(isinstance(mod, nn.Conv2d) for mod in m.modules())  # noqa: E731
    assert convs(base) == 1 + 1 + 2 + 2
    assert convs(cnn.ScalableCNN(depth_mult=2.0)) == 1 + 2 + 4 + 4
    f0 = count_flops(base, x)
    # width x2: conv FLOPs are C_in * C_out, so x4 (the stem's 3 input channels do not double)
    f_w = count_flops(cnn.ScalableCNN(width_mult=2.0), x)
    assert 3.5 < f_w / f0 < 4.0
    # resolution x2: every feature map has 4x the positions
    f_r = count_flops(base, torch.zeros(1, 3, 64, 64))
    assert 3.95 < f_r / f0 <= 4.0
    # depth x2: twice the layers per stage, so about twice the FLOPs
    f_d = count_flops(cnn.ScalableCNN(depth_mult=2.0), x)
    assert 1.8 < f_d / f0 < 2.2
    # the model's own conv layers, summed by hand, equal the counter
    assert f0 - 2 * 64 * 10 == sum(
        2 * m.out_channels * m.in_channels * 9 * (32 // s) ** 2
        for m, s in zip([mod for mod in base.modules() if isinstance(mod, nn.Conv2d)], [1, 2, 4, 4, 8, 8]))


# --- devices ---------------------------------------------------------------------------------------------------

def test_models_are_device_agnostic_on_the_meta_device():
    """Nothing in forward (or the from-scratch layers) creates a tensor on a fixed device.

    On the meta device (no data) mixing devices fails, so this checks without a GPU that the
    chapter's models can train on one: forward, loss and backward of each trainable model. A
    convolution with meta weights quietly accepts a CPU input (and returns a CPU output), so the
    test checks the device of every result as well.
    """
    meta = torch.device("meta")
    x = torch.zeros(4, 1, 8, 8, device=meta)
    labels = torch.zeros(4, dtype=torch.long, device=meta)
    for model in (cnn.TinyAlexNet(channels=4), cnn.ScalableCNN(width_mult=0.25, in_channels=1)):
        model = model.to(meta).train()
        logits = model(x)
        assert logits.shape == (4, 10) and logits.device == meta
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        assert loss.device == meta and all(p.grad.device == meta for p in model.parameters())
    h = torch.zeros(2, 3, 5, 5, device=meta)
    for block in (cnn.ResidualBlock(channels=3), cnn.ResidualBlock(channels=3, shortcut=False, norm=False)):
        out = block.to(meta)(h)
        assert out.shape == h.shape and out.device == meta
    stack = cnn.block_stack(depth=2, channels=3, shortcut=True).to(meta)
    assert stack(h).device == meta
    weight, bias = torch.zeros(4, 3, 3, 3, device=meta), torch.zeros(4, device=meta)
    assert cnn.conv2d(h, weight, bias, stride=2, padding=1).shape == (2, 4, 3, 3)
    assert cnn.conv2d(h, weight, bias).device == meta
    assert cnn.max_pool2d(h, 2).device == meta and cnn.avg_pool2d(h, 2, 1).shape == (2, 3, 4, 4)
    assert cnn.conv2d_naive(h[0, 0], weight[0, 0]).device == meta
