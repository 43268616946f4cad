"""attnlab.detr: the matching cost against its formula (torchvision's GIoU), the assignment against brute
force and against DETR's own formulation of the matcher, batched against per-image, the set loss
against a plain per-image computation, and the model's set behaviour (parallel decoding)."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torchvision import ops

from attnlab import detr as D
from attnlab.data.scenes import make_scenes, preset


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _outputs(B, Nq, Y, generator, dtype=torch.float64):
    logits = torch.randn(B, Nq, Y + 1, generator=generator, dtype=dtype) * 2
    boxes = torch.cat([torch.rand(B, Nq, 2, generator=generator, dtype=dtype) * 0.6 + 0.2,
                       torch.rand(B, Nq, 2, generator=generator, dtype=dtype) * 0.3 + 0.05], -1)
    return logits, boxes


def _targets(sizes, Y, generator, dtype=torch.float64):
    """DETR's per-image dicts with the given numbers of objects (0 allowed)."""
    out = []
    for k in sizes:
        boxes = torch.cat([torch.rand(k, 2, generator=generator, dtype=dtype) * 0.6 + 0.2,
                           torch.rand(k, 2, generator=generator, dtype=dtype) * 0.3 + 0.05], -1)
        out.append({"labels": torch.randint(Y, (k,), generator=generator), "boxes": boxes})
    return out


def _detr_reference_matcher(logits, boxes, targets):
    """DETR's models/matcher.py formulation, written from the paper's code: one (B N_q, sum k) cost over
    all images' objects, split by image, with torchvision's box_convert and generalized_box_iou."""
    B, Nq = logits.shape[:2]
    prob = logits.flatten(0, 1).softmax(-1)
    out_boxes = boxes.flatten(0, 1)
    tgt_ids = torch.cat([t["labels"] for t in targets])
    tgt_boxes = torch.cat([t["boxes"] for t in targets])
    cost = 5 * torch.cdist(out_boxes, tgt_boxes, p=1) - prob[:, tgt_ids] \
        - 2 * ops.generalized_box_iou(ops.box_convert(out_boxes, "cxcywh", "xyxy"), ops.box_convert(tgt_boxes, "cxcywh", "xyxy"))
    cost = cost.view(B, Nq, -1)
    sizes = [len(t["boxes"]) for t in targets]
    return [linear_sum_assignment(c[i]) for i, c in enumerate(cost.split(sizes, -1))]


def test_matching_cost_is_the_formula_for_every_pair():
    logits, boxes = _outputs(3, 5, 4, _gen(0))
    targets = _targets([3, 1, 4], 4, _gen(1))
    labels, true_boxes, sizes = D.pad_targets(targets)
    true_boxes = true_boxes
    cost = D.matching_cost(logits, boxes, labels, true_boxes)
    assert cost.shape == (3, 5, 4)
    for b, t in enumerate(targets):
        prob = logits[b].softmax(-1)
        giou = ops.generalized_box_iou(ops.box_convert(boxes[b], "cxcywh", "xyxy"), ops.box_convert(t["boxes"], "cxcywh", "xyxy"))
        for q in range(5):
            for j in range(len(t["labels"])):
                expected = -prob[q, t["labels"][j]] + 5 * (boxes[b, q] - t["boxes"][j]).abs().sum() - 2 * giou[q, j]
                assert cost[b, q, j].item() == pytest.approx(expected.item(), abs=1e-12)


def _brute_force(cost):
    """The least total cost over every one-to-one assignment of min(N_q, k) pairs."""
    nq, k = cost.shape
    cost = cost.tolist()
    if k <= nq:
        return min(sum(cost[q][j] for j, q in enumerate(queries)) for queries in itertools.permutations(range(nq), k))
    return min(sum(cost[q][j] for q, j in enumerate(objects)) for objects in itertools.permutations(range(k), nq))


@pytest.mark.parametrize("nq,sizes", [(4, [0, 1, 2, 3, 4]), (3, [5, 4, 3])], ids=["objects<=queries", "more-objects-than-queries"])
def test_hungarian_match_is_optimal_by_brute_force(nq, sizes):
    g = _gen(2)
    for trial in range(4):
        logits, boxes = _outputs(len(sizes), nq, 3, g)
        labels, true_boxes, _ = D.pad_targets(_targets(sizes, 3, g))
        cost = D.matching_cost(logits, boxes, labels, true_boxes)
        matching = D.hungarian_match(cost, sizes)
        for b, (queries, objects) in enumerate(matching):
            k = sizes[b]
            assert queries.dtype == objects.dtype == torch.int64
            assert len(queries) == len(objects) == min(nq, k)
            assert len(set(queries.tolist())) == len(queries) and len(set(objects.tolist())) == len(objects)
            assert queries.tolist() == sorted(queries.tolist())               # DETR's order
            assert all(j < k for j in objects.tolist())                       # padding slots are never matched
            if k:
                total = cost[b, queries, objects].sum().item()
                assert total == pytest.approx(_brute_force(cost[b, :, :k]), abs=1e-9)


def test_an_image_without_objects_gives_empty_pairs_and_only_no_object_targets():
    logits, boxes = _outputs(2, 4, 3, _gen(3))
    targets = _targets([0, 2], 3, _gen(4))
    labels, true_boxes, sizes = D.pad_targets(targets)
    matching = D.hungarian_match(D.matching_cost(logits, boxes, labels, true_boxes), sizes)
    assert matching[0][0].numel() == matching[0][1].numel() == 0 and len(matching[1][0]) == 2
    losses = D.set_loss(logits, boxes, labels, true_boxes, matching, num_boxes=2)
    assert all(torch.isfinite(v) for v in losses.values())
    empty = D.set_loss(logits[:1], boxes[:1], labels[:1], true_boxes[:1].double(), matching[:1], num_boxes=0)
    assert empty["loss_l1"] == 0 and empty["loss_giou"] == 0                  # nothing to regress; no 0 / 0
    assert empty["loss_ce"] == pytest.approx(F.cross_entropy(logits[0], torch.full((4,), 3)).item())


def test_batched_matching_equals_the_per_image_loop_and_detrs_formulation():
    g = _gen(5)
    logits, boxes = _outputs(16, 6, 5, g)
    sizes = torch.randint(0, 7, (16,), generator=g).tolist()
    targets = _targets(sizes, 5, g)
    labels, true_boxes, counts = D.pad_targets(targets, slots=8)              # extra padding slots
    batched = D.hungarian_match(D.matching_cost(logits, boxes, labels, true_boxes), counts)
    loop = D.match_per_image(logits, boxes, targets)
    reference = _detr_reference_matcher(logits, boxes, targets)
    for (q, j), (q2, j2), (q3, j3) in zip(batched, loop, reference):
        assert q.tolist() == q2.tolist() == q3.tolist() and j.tolist() == j2.tolist() == j3.tolist()


def _plain_set_loss(logits, boxes, targets, matching, num_classes, eos=0.1):
    """The set loss image by image with torchvision's GIoU loss: a second, independent computation."""
    ce_num, ce_den, l1, giou = 0.0, 0.0, 0.0, 0.0
    for b, (t, (q, j)) in enumerate(zip(targets, matching)):
        classes = torch.full((logits.shape[1],), num_classes)
        classes[q] = t["labels"][j]
        weight = torch.where(classes == num_classes, eos, 1.0).double()
        ce_num += (weight * F.cross_entropy(logits[b], classes, reduction="none")).sum()
        ce_den += weight.sum()
        l1 += (boxes[b, q] - t["boxes"][j]).abs().sum()
        giou += ops.generalized_box_iou_loss(ops.box_convert(boxes[b, q], "cxcywh", "xyxy"),
                                             ops.box_convert(t["boxes"][j], "cxcywh", "xyxy"), reduction="sum", eps=0.0)
    n = max(1, sum(len(t["labels"]) for t in targets))
    return ce_num / ce_den, l1 / n, giou / n


@pytest.mark.parametrize("nq,sizes", [(5, [2, 0, 5, 3]), (3, [5, 1, 4])], ids=["objects<=queries", "more-objects-than-queries"])
def test_set_loss_equals_a_plain_per_image_computation(nq, sizes):
    logits, boxes = _outputs(len(sizes), nq, 4, _gen(6))
    targets = _targets(sizes, 4, _gen(7))
    labels, true_boxes, counts = D.pad_targets(targets)
    true_boxes = true_boxes
    matching = D.hungarian_match(D.matching_cost(logits, boxes, labels, true_boxes), counts)
    losses = D.set_loss(logits, boxes, labels, true_boxes, matching, num_boxes=sum(sizes))
    ce, l1, giou = _plain_set_loss(logits, boxes, targets, matching, 4)
    torch.testing.assert_close(losses["loss_ce"], ce)
    torch.testing.assert_close(losses["loss_l1"], l1)                         # divided by every true box,
    torch.testing.assert_close(losses["loss_giou"], giou)                     # matched or not
    torch.testing.assert_close(losses["loss"], ce + 5 * l1 + 2 * giou)


def test_no_object_weight_changes_only_the_unmatched_queries_share():
    logits, boxes = _outputs(2, 6, 3, _gen(8))
    targets = _targets([1, 2], 3, _gen(9))
    labels, true_boxes, counts = D.pad_targets(targets)
    matching = D.hungarian_match(D.matching_cost(logits, boxes, labels, true_boxes), counts)
    full = D.set_loss(logits, boxes, labels, true_boxes, matching, num_boxes=3, no_object_weight=1.0)
    classes = torch.full((2, 6), 3)
    for b, (q, j) in enumerate(matching):
        classes[b, q] = targets[b]["labels"][j]
    torch.testing.assert_close(full["loss_ce"], F.cross_entropy(logits.flatten(0, 1), classes.flatten()))
    light = D.set_loss(logits, boxes, labels, true_boxes, matching, num_boxes=3)
    assert light["loss_ce"] != full["loss_ce"] and light["loss_l1"] == full["loss_l1"]


def test_detr_loss_with_auxiliary_layers_is_the_mean_of_each_layers_loss():
    g = _gen(10)
    logits, boxes = _outputs(3 * 4, 5, 3, g)                                  # 3 layers of a batch of 4
    logits, boxes = logits.view(3, 4, 5, 4), boxes.view(3, 4, 5, 4)
    targets = _targets([2, 3, 1, 4], 3, g)
    labels, true_boxes, sizes = D.pad_targets(targets)
    true_boxes = true_boxes
    outputs = {"pred_logits": logits[-1], "pred_boxes": boxes[-1], "aux_logits": logits[:-1], "aux_boxes": boxes[:-1]}
    per_layer = []
    for layer in range(3):
        m = D.hungarian_match(D.matching_cost(logits[layer], boxes[layer], labels, true_boxes), sizes)
        per_layer.append(D.set_loss(logits[layer], boxes[layer], labels, true_boxes, m, num_boxes=10))
    with_aux = D.detr_loss(outputs, labels, true_boxes, sizes)
    last_only = D.detr_loss(outputs, labels, true_boxes, sizes, aux=False)
    for key in ("loss_ce", "loss_l1", "loss_giou", "loss"):
        torch.testing.assert_close(with_aux[key], torch.stack([p[key] for p in per_layer]).mean())
        torch.testing.assert_close(last_only[key], per_layer[-1][key])


def _small_detr(**changes):
    torch.manual_seed(0)
    sizes = dict(num_classes=3, image_size=32, num_queries=5, dim=32, num_heads=4, encoder_layers=1,
                 decoder_layers=2, channels=(8, 16))
    return D.DETR(**{**sizes, **changes}).eval()


def test_detr_outputs_and_parallel_decoding():
    model = _small_detr()
    images = torch.rand(2, 3, 32, 32, generator=_gen(11))
    with torch.no_grad():
        out = model(images)
    assert out["pred_logits"].shape == (2, 5, 4) and out["pred_boxes"].shape == (2, 5, 4)
    assert out["aux_logits"].shape == (1, 2, 5, 4) and out["aux_boxes"].shape == (1, 2, 5, 4)
    assert ((out["pred_boxes"] > 0) & (out["pred_boxes"] < 1)).all()
    # No causal mask: the queries form a set. Shuffling them shuffles the predictions and nothing else.
    perm = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        model.query_embed.copy_(model.query_embed[perm])
        shuffled = model(images)
    torch.testing.assert_close(shuffled["pred_logits"], out["pred_logits"][:, perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shuffled["pred_boxes"], out["pred_boxes"][:, perm], rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        weighed = model(images, need_weights=True)
    assert weighed["cross_weights"].shape == (2, 4, 5, 64)                    # (B, H, N_q, N): an 8 x 8 feature map
    torch.testing.assert_close(weighed["cross_weights"].sum(-1), torch.ones(2, 4, 5))
    torch.testing.assert_close(weighed["pred_boxes"], shuffled["pred_boxes"])  # the weights change nothing
    scores, classes, boxes = D.detections(out)
    assert scores.shape == classes.shape == (2, 5) and classes.max() < 3 and (scores <= 1).all()


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread; on a busy 2-core machine two threads can be 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_detr_learns_a_fixed_batch(one_thread):
    torch.manual_seed(0)
    config = preset("easy", size=32, num_objects=(1, 2), scale=(0.3, 0.5), shapes=("circle", "square", "triangle"))
    scenes = make_scenes(8, generator=_gen(12), config=config)
    model = _small_detr().train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = D.detr_loss(model(scenes.images), scenes.shapes, scenes.boxes, scenes.num_objects)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses[::5]


def test_pad_targets_round_trips_the_scenes():
    config = preset("easy", size=32, num_objects=(1, 3), scale=(0.2, 0.4))
    scenes = make_scenes(8, generator=_gen(13), config=config)
    labels, boxes, sizes = D.pad_targets(scenes.targets(), slots=3)
    assert torch.equal(sizes, scenes.num_objects)
    assert torch.equal(labels[scenes.valid], scenes.shapes[scenes.valid]) and torch.equal(boxes, scenes.boxes)
