"""attnlab.boxes against independent references: torchvision.ops for the formats, IoU and GIoU (every
case, degenerate and non-overlapping boxes included, bit for bit in float64), and pycocotools for
average precision (a test-only dependency, pinned in requirements/pins.txt)."""

import contextlib
import io
import math

import pytest
import torch
from torchvision import ops

from attnlab import boxes as BX
from attnlab.data.scenes import make_scenes, preset


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _random_xyxy(n, generator, dtype=torch.float64):
    corner = torch.rand(n, 2, generator=generator, dtype=dtype)
    size = torch.rand(n, 2, generator=generator, dtype=dtype) * 0.5
    return torch.cat([corner, corner + size], dim=1)


def _awkward_xyxy(dtype=torch.float64):
    """Hand-made cases: identical, nested, touching, far apart, and degenerate (a line, a point)."""
    return torch.tensor([
        [0.0, 0.0, 1.0, 1.0],      # unit square
        [0.0, 0.0, 1.0, 1.0],      # the same box
        [0.25, 0.25, 0.5, 0.5],    # inside the first
        [1.0, 0.0, 2.0, 1.0],      # touching the first along an edge (IoU 0, GIoU 0)
        [3.0, 3.0, 4.0, 5.0],      # far away (GIoU close to -1)
        [0.5, 0.0, 0.5, 1.0],      # zero width: a vertical line through the first
        [0.2, 0.2, 0.2, 0.2],      # a point
    ], dtype=dtype)


def test_formats_equal_torchvision_box_convert():
    xyxy = _random_xyxy(50, _gen(0))
    cxcywh = ops.box_convert(xyxy, "xyxy", "cxcywh")
    torch.testing.assert_close(BX.box_xyxy_to_cxcywh(xyxy), cxcywh, rtol=0, atol=1e-15)
    torch.testing.assert_close(BX.box_cxcywh_to_xyxy(cxcywh), ops.box_convert(cxcywh, "cxcywh", "xyxy"), rtol=0, atol=1e-15)
    torch.testing.assert_close(BX.box_cxcywh_to_xyxy(BX.box_xyxy_to_cxcywh(xyxy)), xyxy, rtol=0, atol=1e-15)
    batch = xyxy.view(5, 10, 4)                                             # leading dimensions are kept
    assert BX.box_xyxy_to_cxcywh(batch).shape == (5, 10, 4)


@pytest.mark.parametrize("pairwise,reference", [(BX.box_iou, ops.box_iou), (BX.generalized_box_iou, ops.generalized_box_iou)],
                         ids=["iou", "giou"])
def test_pairwise_overlaps_equal_torchvision_on_every_case(pairwise, reference):
    cases = [(_random_xyxy(20, _gen(1)), _random_xyxy(30, _gen(2))), (_awkward_xyxy(), _awkward_xyxy())]
    for a, b in cases:
        # equal_nan: two boxes of zero area give 0 / 0 in torchvision too; the rest must be equal
        torch.testing.assert_close(pairwise(a, b), reference(a, b), rtol=0, atol=1e-15, equal_nan=True)
    a = _awkward_xyxy().float()
    torch.testing.assert_close(pairwise(a, a), reference(a, a), equal_nan=True)


def test_iou_and_giou_of_hand_made_cases():
    box = _awkward_xyxy()
    iou, giou = BX.box_iou(box, box), BX.generalized_box_iou(box, box)
    assert iou[0, 1] == 1 and giou[0, 1] == 1                               # identical
    assert iou[0, 2] == pytest.approx(1 / 16) and giou[0, 2] == pytest.approx(1 / 16)  # nested: C = the big box
    assert iou[0, 3] == 0 and giou[0, 3] == 0                               # touching: C = A u B
    assert iou[0, 4] == 0 and giou[0, 4] == pytest.approx(3 / 20 - 1)      # far apart: |A u B| / |C| - 1
    assert giou[0, 5] == 0 and iou[0, 5] == 0                               # a line inside the square: IoU 0
    assert math.isnan(iou[6, 6]) and math.isnan(giou[6, 6])               # a point with itself: 0 / 0, as torchvision


def test_leading_dimensions_broadcast_like_a_loop():
    a, b = _random_xyxy(24, _gen(3)).view(2, 3, 4, 4), _random_xyxy(15, _gen(4)).view(3, 5, 4)
    batched = BX.generalized_box_iou(a, b)                                  # (2, 3, 4, 5)
    assert batched.shape == (2, 3, 4, 5)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(batched[i, j], ops.generalized_box_iou(a[i, j], b[j]), rtol=0, atol=1e-15)


def test_paired_giou_is_the_diagonal_and_equals_torchvisions_loss():
    a, b = _random_xyxy(40, _gen(5)), _random_xyxy(40, _gen(6))
    paired = BX.paired_generalized_box_iou(a, b)
    torch.testing.assert_close(paired, BX.generalized_box_iou(a, b).diagonal(), rtol=0, atol=1e-15)
    torch.testing.assert_close(1 - paired, ops.generalized_box_iou_loss(a, b, eps=0.0), rtol=0, atol=1e-12)


def test_giou_has_a_gradient_where_iou_is_flat():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0]], dtype=torch.float64, requires_grad=True)
    assert BX.box_iou(a, b).item() == 0
    BX.paired_generalized_box_iou(a, b).sum().backward()
    assert b.grad[0, 0] < 0                                                  # moving b left raises its GIoU
    assert torch.autograd.gradcheck(lambda x: BX.paired_generalized_box_iou(a, x), (b.detach().clone().requires_grad_(),))


# ---------------------------------------------------------------------------- average precision
def _coco_ap(predictions, targets, num_classes, size=100):
    """AP, AP50 and AP75 from pycocotools' COCOeval, boxes given in pixels of a size x size image."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(box):
        cx, cy, w, h = (v * size for v in box)
        return [cx - w / 2, cy - h / 2, w, h]

    images, annotations, results = [], [], []
    for i, (p, t) in enumerate(zip(predictions, targets)):
        images.append({"id": i, "width": size, "height": size})
        for label, box in zip(t["labels"].tolist(), t["boxes"].tolist()):
            x = xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": label + 1, "bbox": x,
                                "area": x[2] * x[3], "iscrowd": 0})
        for score, label, box in zip(p["scores"].tolist(), p["labels"].tolist(), p["boxes"].tolist()):
            results.append({"image_id": i, "category_id": label + 1, "bbox": xywh(box), "score": score})
    truth = COCO()
    truth.dataset = {"images": images, "annotations": annotations,
                     "categories": [{"id": c + 1} for c in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):                          # COCOeval prints its table
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"AP": evaluation.stats[0], "AP50": evaluation.stats[1], "AP75": evaluation.stats[2]}


def _noisy_detections(scenes, generator, *, queries=6, num_classes=3, noise=0.03, wrong_class=0.2):
    """Detections made from the true boxes: jittered, some with the wrong class, plus random extras."""
    predictions = []
    for t in scenes.targets():
        k = len(t["labels"])
        extra = torch.cat([torch.rand(queries - k, 2, generator=generator) * 0.6 + 0.2,
                           torch.rand(queries - k, 2, generator=generator) * 0.3 + 0.05], 1)
        boxes = torch.cat([t["boxes"], extra]) + noise * torch.randn(queries, 4, generator=generator)
        labels = torch.cat([t["labels"], torch.randint(num_classes, (queries - k,), generator=generator)])
        flip = torch.rand(queries, generator=generator) < wrong_class
        labels = torch.where(flip, torch.randint(num_classes, (queries,), generator=generator), labels)
        predictions.append({"scores": torch.rand(queries, generator=generator), "labels": labels,
                            "boxes": boxes.clamp(0.01, 0.99)})
    return predictions


@pytest.mark.parametrize("noise", [0.005, 0.03])
def test_average_precision_equals_pycocotools(noise):
    config = preset("easy", size=64, num_objects=(1, 4), scale=(0.15, 0.35), max_overlap=0.2,
                    shapes=("circle", "square", "triangle"))
    scenes = make_scenes(60, generator=_gen(7), config=config)
    predictions = _noisy_detections(scenes, _gen(8), noise=noise)
    ours = BX.average_precision(predictions, scenes.targets())
    theirs = _coco_ap(predictions, scenes.targets(), num_classes=3)
    for key in ("AP", "AP50", "AP75"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-12), key
    assert 0.05 < ours["AP"] < ours["AP50"] < 1                              # a case that is neither 0 nor 1


def test_average_precision_of_hand_made_cases():
    truth = [{"labels": torch.tensor([0, 1]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]])}]
    perfect = [{"scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 1]), "boxes": truth[0]["boxes"].clone()}]
    assert BX.average_precision(perfect, truth) == pytest.approx({"AP": 1.0, "AP50": 1.0, "AP75": 1.0})  # COCO: tp / (tp + fp + eps)
    swapped = [{**perfect[0], "labels": torch.tensor([1, 0])}]               # right boxes, wrong classes
    assert BX.average_precision(swapped, truth)["AP"] == 0.0
    # class 0: a false positive scored above the hit: precision 1/2 at recall 1 -> AP 0.5
    shifted = [{"scores": torch.tensor([0.9, 0.5, 0.8]), "labels": torch.tensor([0, 0, 1]),
                "boxes": torch.tensor([[0.8, 0.1, 0.1, 0.1], [0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]])}]
    assert BX.average_precision(shifted, truth)["AP50"] == pytest.approx((0.5 + 1.0) / 2)
    # a box shifted by a quarter of its side: IoU = 0.75 / 1.25 = 0.6, a hit at t <= 0.6 only
    near = [{"scores": torch.tensor([0.9]), "labels": torch.tensor([0]), "boxes": torch.tensor([[0.35, 0.3, 0.2, 0.2]])}]
    one = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2]])}]
    result = BX.average_precision(near, one)
    assert result["AP50"] == pytest.approx(1.0) and result["AP75"] == 0.0 and result["AP"] == pytest.approx(0.3)   # 3 of 10 thresholds
    assert math.isnan(BX.average_precision(near, [{"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}])["AP"])
