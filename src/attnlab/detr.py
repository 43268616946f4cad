"""DETR (chapter 5, "Detection as set prediction"): a detector that predicts a set of boxes at once.

Carion et al. (2020), "End-to-end object detection with transformers". The model reads an image and
outputs a fixed number N_q of (class, box) pairs, one per **object query**, where the class may be
"no object" (∅); there are no proposals, no anchors and no non-maximum suppression. Training must
then decide which prediction answers which true object: the **Hungarian algorithm** finds the
one-to-one assignment of least total cost, and only matched predictions are pulled towards boxes.
Bottom-up, as the file reads:

* :func:`matching_cost`: the cost of giving true object j to query q, for every image of a batch at
  once, ``-p_q(class_j) + 5 |b_q - b_j|_1 - 2 GIoU(b_q, b_j)`` (DETR's weights), one (B, N_q, N)
  tensor; :func:`hungarian_match` moves it to the CPU in **one** transfer and solves each image with
  ``scipy.optimize.linear_sum_assignment``; :func:`match_per_image` is the naive loop (a cost, a
  transfer and a solve per image), kept to test against and to time;
* :func:`set_loss`: cross-entropy over Y classes + ∅ with ∅ down-weighted (0.1), and the L1 and
  GIoU losses of the matched boxes, normalised by the number of true boxes; :func:`detr_loss`
  matches and scores the last decoder layer and, optionally, every earlier one (auxiliary losses),
  all layers in the same single cost tensor;
* :class:`DETR`: a small CNN backbone (chapter 0's :class:`~attnlab.cnn.ScalableCNN` stem and
  stages), the 2-D sine positions of chapter 4 (:func:`~attnlab.vit.sincos_2d_positions`), chapter
  3's :class:`~attnlab.transformer.Encoder` and :class:`~attnlab.transformer.Decoder` (pre-norm), N_q
  learned queries, a class head and a box head; the decoder runs **without** a causal mask: the
  queries are decoded in parallel, not auto-regressively, because a set has no order;
* :func:`detections`: scores, classes and boxes of every query, for
  :func:`attnlab.boxes.average_precision`.

Targets are padded tensors, as :class:`attnlab.data.scenes.Scenes` holds them: ``labels`` (B, N)
long (any value in padding slots), ``boxes`` (B, N, 4) ``(cx, cy, w, h)`` in [0, 1], and the
number of objects of each image; :func:`pad_targets` makes them from DETR's per-image dicts.

Simplifications with respect to the paper: a small CNN instead of ResNet-50, no dilation, no
padding masks (all images have one size); positions are added once to the encoder's input and the
queries are the decoder's input (as in the paper's own listing, appendix A.6, and its demo
notebook), instead of adding positions to queries and keys in every layer (the paper's trained
model); pre-norm layers; the losses of the decoder layers are averaged (the paper sums them: the
same up to a factor); no panoptic head.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from scipy.optimize import linear_sum_assignment
from torch import nn

from .boxes import box_cxcywh_to_xyxy, generalized_box_iou, paired_generalized_box_iou
from .cnn import ScalableCNN
from .transformer import Decoder, Encoder
from .vit import sincos_2d_positions

__all__ = [
    "COST_CLASS",
    "COST_L1",
    "COST_GIOU",
    "NO_OBJECT_WEIGHT",
    "pad_targets",
    "matching_cost",
    "hungarian_match",
    "match_per_image",
    "set_loss",
    "detr_loss",
    "DETR",
    "detections",
]

# DETR's weights (its main.py): the same three in the matching cost and in the loss.
COST_CLASS, COST_L1, COST_GIOU = 1.0, 5.0, 2.0
NO_OBJECT_WEIGHT = 0.1              # the class weight of ∅ in the cross-entropy ("eos_coef")

Matching = list[tuple[torch.Tensor, torch.Tensor]]


def pad_targets(targets: Sequence[dict[str, torch.Tensor]], *, slots: int | None = None):
    """DETR's per-image targets -> padded tensors.

    Args:
        targets: B dicts ``{"labels": (k_b,) long, "boxes": (k_b, 4)}`` (``Scenes.targets()``).
        slots: N, the padded number of objects (default: the largest k_b, at least 1).

    Returns:
        labels (B, N) long (0 in padding), boxes (B, N, 4) of the targets' dtype (0 in padding),
        sizes (B,) long k_b.
    """
    sizes = torch.tensor([len(t["labels"]) for t in targets], dtype=torch.long)
    n = slots if slots is not None else max(1, int(sizes.max()) if len(sizes) else 1)
    dtype = targets[0]["boxes"].dtype if len(targets) else torch.float32
    labels = torch.zeros(len(targets), n, dtype=torch.long)
    boxes = torch.zeros(len(targets), n, 4, dtype=dtype)
    for b, t in enumerate(targets):
        labels[b, : len(t["labels"])] = t["labels"]
        boxes[b, : len(t["labels"])] = t["boxes"]
    return labels, boxes, sizes


def matching_cost(logits: torch.Tensor, pred_boxes: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor, *,
                  cost_class: float = COST_CLASS, cost_l1: float = COST_L1,
                  cost_giou: float = COST_GIOU) -> torch.Tensor:
    """The cost of assigning each true object to each query, for a whole batch in one tensor.

    ``C[b, q, j] = -cost_class p_q(c_j) + cost_l1 |b_q - b_j|_1 - cost_giou GIoU(b_q, b_j)``: a
    query that gives the object's class a high probability and puts its box close to the object's
    is cheap. (DETR uses ``-p`` rather than the log-probability of the loss: it is bounded, and the
    constant 1 of ``1 - p`` does not change the assignment.)

    Args:
        logits: (*, B, N_q, Y + 1), the last class being ∅; pred_boxes: (*, B, N_q, 4) (cx, cy, w, h).
        labels: (B, N) long true classes (padding slots may hold anything, e.g. IGNORE_INDEX);
        boxes: (B, N, 4) true boxes (cx, cy, w, h). A leading ``*`` (decoder layers) broadcasts.

    Returns:
        (*, B, N_q, N); columns of padding slots hold meaningless numbers: the matcher drops them.
    """
    prob = logits.softmax(-1)                                                  # (*, B, N_q, Y + 1)
    index = labels.clamp(min=0)[..., None, :].expand(*prob.shape[:-1], labels.shape[-1])  # (*, B, N_q, N)
    class_cost = -prob.gather(-1, index)                                       # -p_q(c_j): (*, B, N_q, N)
    l1 = (pred_boxes[..., :, None, :] - boxes[..., None, :, :]).abs().sum(-1)  # (*, B, N_q, N)
    giou = generalized_box_iou(box_cxcywh_to_xyxy(pred_boxes), box_cxcywh_to_xyxy(boxes))   # (*, B, N_q, N)
    return cost_class * class_cost + cost_l1 * l1 - cost_giou * giou


@torch.no_grad()
def hungarian_match(cost: torch.Tensor, sizes: Sequence[int] | torch.Tensor) -> Matching:
    """The assignment of least total cost, image by image, with one transfer for the whole batch.

    Args:
        cost: (B, N_q, N) from :func:`matching_cost`, on any device.
        sizes: the number k_b of true objects of each image (ints, or a CPU tensor: reading a GPU
            tensor here would be a second synchronisation); image b's objects are slots 0 .. k_b - 1.

    Returns:
        B pairs ``(query_index, object_index)`` of int64 CPU tensors, each of length min(N_q, k_b),
        queries in increasing order (DETR's format): query ``query_index[i]`` answers object
        ``object_index[i]``. An image without objects gives two empty tensors; with more objects
        than queries, every query is matched and the objects left over are not.
    """
    table = cost.detach().float().cpu()                                        # the one transfer: (B, N_q, N)
    sizes = sizes.tolist() if isinstance(sizes, torch.Tensor) else list(sizes)
    matching = []
    for c, k in zip(table, sizes):
        rows, cols = linear_sum_assignment(c[:, :k].numpy())                  # rows come out sorted
        matching.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return matching


@torch.no_grad()
def match_per_image(logits: torch.Tensor, pred_boxes: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]],
                    **weights: float) -> Matching:
    """The naive matcher: for each image its own (N_q, k_b) cost, its own transfer, its own solve.

    Args:
        logits: (B, N_q, Y + 1); pred_boxes: (B, N_q, 4); targets: DETR's B dicts; ``weights`` as
            :func:`matching_cost`.

    Returns the same pairs as :func:`hungarian_match` on the batched cost (the tests check it).
    """
    matching = []
    for b, t in enumerate(targets):
        c = matching_cost(logits[b], pred_boxes[b], t["labels"], t["boxes"], **weights)   # (N_q, k_b)
        rows, cols = linear_sum_assignment(c.float().cpu().numpy())                     # a transfer per image
        matching.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return matching


def _flat_indices(matching: Matching, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The matched pairs as three (M,) index tensors (image, query, object), copied to ``device`` at once."""
    image = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(matching)])
    query = torch.cat([q for q, _ in matching])
    obj = torch.cat([j for _, j in matching])
    return torch.stack([image, query, obj]).to(device, non_blocking=True).unbind(0)


def set_loss(logits: torch.Tensor, pred_boxes: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor,
             matching: Matching, *, num_boxes: float | torch.Tensor, no_object_weight: float = NO_OBJECT_WEIGHT,
             weights: tuple[float, float, float] = (COST_CLASS, COST_L1, COST_GIOU)) -> dict[str, torch.Tensor]:
    """DETR's loss for one matching: class cross-entropy with ∅, and L1 and GIoU on the matched boxes.

    Every query has a class target: its matched object's class, or ∅ (index Y, the last) if it is
    unmatched. Most queries are unmatched, so ∅'s weight in the cross-entropy is ``no_object_weight``
    (the weighted mean of torch's ``cross_entropy``). Only matched queries have a box target.

    Args:
        logits: (B, N_q, Y + 1); pred_boxes: (B, N_q, 4) (cx, cy, w, h).
        labels: (B, N) long; boxes: (B, N, 4): the padded targets.
        matching: B pairs (query_index, object_index), from :func:`hungarian_match`.
        num_boxes: the number of true boxes in the batch, matched or not (a number, or a tensor
            on the logits' device); the L1 and GIoU sums are divided by it (at least 1).
        weights: of the cross-entropy, L1 and GIoU terms in ``"loss"``.

    Returns:
        ``{"loss_ce", "loss_l1", "loss_giou", "loss"}``, scalar tensors; ``"loss"`` is the weighted sum.
    """
    num_classes = logits.shape[-1] - 1                                         # Y; ∅ is index Y
    image, query, obj = _flat_indices(matching, logits.device)                 # (M,) each
    target_classes = torch.full(logits.shape[:2], num_classes, dtype=torch.long, device=logits.device)  # (B, N_q)
    target_classes[image, query] = labels[image, obj]
    class_weight = torch.ones(num_classes + 1, dtype=logits.dtype, device=logits.device)
    class_weight[num_classes] = no_object_weight
    loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, weight=class_weight)   # (B, Y + 1, N_q)
    matched, true = pred_boxes[image, query], boxes[image, obj]                # (M, 4) each
    # a Python number divides as it is (a tensor made from it would be a copy to the GPU and a wait)
    num_boxes = num_boxes.clamp(min=1) if isinstance(num_boxes, torch.Tensor) else max(float(num_boxes), 1.0)
    loss_l1 = F.l1_loss(matched, true, reduction="sum") / num_boxes
    giou = paired_generalized_box_iou(box_cxcywh_to_xyxy(matched), box_cxcywh_to_xyxy(true))  # (M,)
    loss_giou = (1 - giou).sum() / num_boxes
    total = weights[0] * loss_ce + weights[1] * loss_l1 + weights[2] * loss_giou
    return {"loss_ce": loss_ce, "loss_l1": loss_l1, "loss_giou": loss_giou, "loss": total}


def detr_loss(outputs: dict[str, torch.Tensor], labels: torch.Tensor, boxes: torch.Tensor,
              sizes: Sequence[int] | torch.Tensor, *, aux: bool = True,
              no_object_weight: float = NO_OBJECT_WEIGHT) -> dict[str, torch.Tensor]:
    """Match and score DETR's outputs; with ``aux``, every decoder layer is matched and scored too.

    The L layers are stacked and treated as L x B images: one cost tensor, one transfer to the CPU,
    one loss call. Each loss is the mean over the layers.

    Args:
        outputs: :class:`DETR`'s dict (``pred_logits``, ``pred_boxes``, ``aux_logits``, ``aux_boxes``).
        labels, boxes: (B, N), (B, N, 4) padded targets; sizes: (B,) objects per image, on the CPU.

    Returns:
        as :func:`set_loss`.
    """
    logits, pred = outputs["pred_logits"][None], outputs["pred_boxes"][None]   # (1, B, N_q, .)
    if aux and outputs.get("aux_logits") is not None and len(outputs["aux_logits"]):
        logits = torch.cat([outputs["aux_logits"], logits])                    # (L, B, N_q, Y + 1)
        pred = torch.cat([outputs["aux_boxes"], pred])                         # (L, B, N_q, 4)
    layers = logits.shape[0]
    logits, pred = logits.flatten(0, 1), pred.flatten(0, 1)                    # (L B, N_q, .)
    labels, boxes = labels.repeat(layers, 1), boxes.repeat(layers, 1, 1)       # (L B, N), (L B, N, 4)
    sizes = sizes.tolist() if isinstance(sizes, torch.Tensor) else list(sizes)
    with torch.no_grad():
        cost = matching_cost(logits, pred, labels, boxes)                      # (L B, N_q, N)
    matching = hungarian_match(cost, sizes * layers)
    return set_loss(logits, pred, labels, boxes, matching, num_boxes=layers * sum(sizes),
                    no_object_weight=no_object_weight)


class DETR(nn.Module):
    """DETR: CNN features -> + 2-D sine positions -> encoder -> decoder of N_q queries -> class and box heads.

    Args:
        num_classes: Y (the class head has Y + 1 outputs, the last for ∅).
        image_size: Hi = Wi, a multiple of 2 ** len(channels) (the backbone's stride).
        num_queries: N_q, the largest number of objects the model can report.
        dim: D; num_heads: H; encoder_layers, decoder_layers: the stacks' depths; ffn_dim: F (2 D).
        channels: the backbone's stages (each halves the resolution); dropout: in the transformer.
    """

    def __init__(self, *, num_classes: int, image_size: int, num_queries: int = 8, dim: int = 64,
                 num_heads: int = 4, encoder_layers: int = 2, decoder_layers: int = 2, ffn_dim: int | None = None,
                 channels: Sequence[int] = (16, 32, 64), dropout: float = 0.0) -> None:
        super().__init__()
        cnn = ScalableCNN(base_channels=tuple(channels), base_layers=(1,) * len(channels))
        self.backbone = nn.Sequential(cnn.stem, cnn.stages)                    # stride 2 ** len(channels)
        self.input_proj = nn.Conv2d(channels[-1], dim, kernel_size=1)          # C -> D
        self.grid_size = image_size // 2 ** len(channels)
        self.register_buffer("pos_embed", sincos_2d_positions(self.grid_size, dim), persistent=False)  # (N, D)
        sizes = dict(dim=dim, num_heads=num_heads, ffn_dim=ffn_dim or 2 * dim, dropout=dropout, norm_first=True)
        self.encoder = Encoder(num_layers=encoder_layers, **sizes)
        self.decoder = Decoder(num_layers=decoder_layers, **sizes)
        self.query_embed = nn.Parameter(torch.randn(num_queries, dim))         # the object queries
        self.class_head = nn.Linear(dim, num_classes + 1)
        self.box_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(),
                                      nn.Linear(dim, 4))                       # DETR's 3-layer MLP

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, Hi, Wi) -> the encoder's output, one token per cell of the feature map: (B, N, D)."""
        features = self.input_proj(self.backbone(images))                      # (B, D, Hp, Wp)
        tokens = rearrange(features, "b d hp wp -> b (hp wp) d")               # (B, N, D), row-major
        return self.encoder(tokens + self.pos_embed)                           # (B, N, D)

    def forward(self, images: torch.Tensor, *, need_weights: bool = False) -> dict[str, torch.Tensor]:
        """images (B, 3, Hi, Wi) -> ``{"pred_logits": (B, N_q, Y + 1), "pred_boxes": (B, N_q, 4),
        "aux_logits": (L - 1, B, N_q, Y + 1), "aux_boxes": (L - 1, B, N_q, 4)}``, boxes (cx, cy, w, h)
        in (0, 1); ``aux_*`` are the earlier decoder layers' predictions, through the same heads.
        With ``need_weights``, also ``"cross_weights"``: the last decoder layer's cross-attention,
        (B, H, N_q, N), where each query looks in the feature map (N = Hp Wp cells, row-major)."""
        memory = self.encode(images)                                           # (B, N, D)
        x = self.query_embed.expand(images.shape[0], -1, -1)                   # (B, N_q, D)
        states, cross = [], None
        for layer in self.decoder.layers:                                      # no tgt_mask: parallel decoding
            if need_weights:
                x, (_, cross) = layer(x, memory, need_weights=True)            # cross: (B, H, N_q, N)
            else:
                x = layer(x, memory)                                           # (B, N_q, D)
            states.append(self.decoder.norm(x))
        h = torch.stack(states)                                                # (L, B, N_q, D)
        logits, boxes = self.class_head(h), self.box_head(h).sigmoid()         # (L, B, N_q, Y + 1), (L, B, N_q, 4)
        out = {"pred_logits": logits[-1], "pred_boxes": boxes[-1], "aux_logits": logits[:-1], "aux_boxes": boxes[:-1]}
        if need_weights:
            out["cross_weights"] = cross
        return out


@torch.no_grad()
def detections(outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every query as a detection (DETR's post-processing): its most probable real class and that
    class's probability as the score (∅'s probability is left out, no threshold, no NMS).

    Returns:
        scores (B, N_q), classes (B, N_q) long, boxes (B, N_q, 4) (cx, cy, w, h).
    """
    prob = outputs["pred_logits"].softmax(-1)[..., :-1]                        # (B, N_q, Y)
    scores, classes = prob.max(-1)
    return scores, classes, outputs["pred_boxes"]
