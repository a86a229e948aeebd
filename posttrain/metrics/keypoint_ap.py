"""OKS keypoint AP/AR through pycocotools' COCOeval, for any keypoint set (the spec's per-keypoint OKS sigmas)."""

import contextlib
import copy
import io
import logging
from collections.abc import Mapping

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

log = logging.getLogger(__name__)

# COCOeval.stats order for iouType="keypoints"; M / L are the medium (32²–96² px area) and large (> 96²) persons.
STAT_NAMES = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
_CATEGORY_ID = 1


def _array(x: torch.Tensor | np.ndarray | list, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """float64 numpy copy of x, checked against `shape` (None = any size)."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    a = a.astype(np.float64)
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape, strict=True)):
        expected = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} has shape {tuple(a.shape)}, expected {expected}")
    return a


class KeypointAP:
    """Collects ground-truth persons and predicted poses, then scores them with COCOeval(iouType="keypoints").

    `sigmas` [K] are the keypoint set's OKS sigmas (COCO-17, WholeBody-133, the 308-keypoint set, ...); they replace
    pycocotools' COCO-17 defaults, so any K works. COCO's rules apply unchanged: a ground-truth person with no labelled
    keypoint (all visibility 0) or `iscrowd` is ignored, at most 20 predictions per image are scored, matching is greedy
    by instance score at OKS thresholds 0.50:0.05:0.95, and AP uses 101-point interpolated precision.
    Predictions on an image without ground truth persons count as false positives.

    Output keys: `kpt_AP`, `kpt_AP50`, `kpt_AP75`, `kpt_AP_M`, `kpt_AP_L`, `kpt_AR`, `kpt_AR50`, `kpt_AR75`,
    `kpt_AR_M`, `kpt_AR_L`. A value pycocotools cannot define (-1, e.g. AP_M when no ground truth person is medium)
    is returned as NaN.
    """

    def __init__(self, sigmas: np.ndarray) -> None:
        sigmas = np.asarray(sigmas, dtype=np.float64)
        if sigmas.ndim != 1 or sigmas.size == 0 or (sigmas <= 0).any():
            raise ValueError(f"sigmas must be a non-empty 1-D array of positive values, got shape {sigmas.shape}")
        self.sigmas = sigmas
        self.num_keypoints = sigmas.size
        self.reset()

    def reset(self) -> None:
        self.ground_truth: list[dict] = []
        self.predictions: list[dict] = []
        self.image_ids: set[int] = set()

    def add_ground_truth(
        self,
        image_ids: torch.Tensor | np.ndarray | list,
        keypoints: torch.Tensor | np.ndarray,
        bboxes: torch.Tensor | np.ndarray,
        areas: torch.Tensor | np.ndarray | list,
        iscrowd: torch.Tensor | np.ndarray | list | None = None,
    ) -> None:
        """N persons: image_ids [N]; keypoints [N, K, 3] (x, y, visibility: 0 unlabelled, 1 occluded, 2 visible);
        bboxes [N, 4] as (x, y, w, h) in pixels; areas [N] (the person's segmentation area, which scales OKS);
        iscrowd [N] (default 0)."""
        K = self.num_keypoints
        kpts = _array(keypoints, "keypoints", (None, K, 3))
        n = len(kpts)
        ids = _array(image_ids, "image_ids", (n,)).astype(np.int64)
        boxes = _array(bboxes, "bboxes", (n, 4))
        area = _array(areas, "areas", (n,))
        crowd = np.zeros(n, np.int64) if iscrowd is None else _array(iscrowd, "iscrowd", (n,)).astype(np.int64)
        for i in range(n):
            self.ground_truth.append(
                {
                    "id": len(self.ground_truth) + 1,  # COCOeval reads a match to id 0 as "no match": start at 1
                    "image_id": int(ids[i]),
                    "category_id": _CATEGORY_ID,
                    "keypoints": kpts[i].reshape(-1).tolist(),  # [K * 3]
                    "num_keypoints": int((kpts[i, :, 2] > 0).sum()),
                    "bbox": boxes[i].tolist(),
                    "area": float(area[i]),
                    "iscrowd": int(crowd[i]),
                }
            )
        self.image_ids.update(int(i) for i in ids)

    def add_predictions(
        self,
        image_ids: torch.Tensor | np.ndarray | list,
        keypoints: torch.Tensor | np.ndarray,
        scores: torch.Tensor | np.ndarray | list,
        keypoint_scores: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """M poses: image_ids [M]; keypoints [M, K, 2] in image pixels; scores [M] instance scores (the ranking
        for AP); keypoint_scores [M, K] (default 1; stored in the results but not used by OKS)."""
        K = self.num_keypoints
        xy = _array(keypoints, "keypoints", (None, K, 2))
        m = len(xy)
        ids = _array(image_ids, "image_ids", (m,)).astype(np.int64)
        score = _array(scores, "scores", (m,))
        kpt_score = np.ones((m, K)) if keypoint_scores is None else _array(keypoint_scores, "keypoint_scores", (m, K))
        kpts = np.concatenate([xy, kpt_score[..., None]], axis=-1)  # [M, K, 3]
        for i in range(m):
            self.predictions.append(
                {
                    "image_id": int(ids[i]),
                    "category_id": _CATEGORY_ID,
                    "keypoints": kpts[i].reshape(-1).tolist(),  # [K * 3]
                    "score": float(score[i]),
                }
            )
        self.image_ids.update(int(i) for i in ids)

    def update(self, pred: Mapping[str, object], target: Mapping[str, object] | None = None) -> None:
        """pred: {"image_id", "keypoints", "score", optional "keypoint_scores"} (see add_predictions);
        target: {"image_id", "keypoints", "bbox", "area", optional "iscrowd"} (see add_ground_truth). Ground truth
        may come with the batches or be added once with add_ground_truth; validity is the keypoint visibility."""
        self.add_predictions(pred["image_id"], pred["keypoints"], pred["score"], pred.get("keypoint_scores"))
        if target is not None:
            self.add_ground_truth(
                target["image_id"], target["keypoints"], target["bbox"], target["area"], target.get("iscrowd")
            )

    def compute(self) -> dict[str, float]:
        if not self.ground_truth:
            raise RuntimeError("no ground truth persons: call add_ground_truth() (or update() with a target) first")
        category = {"id": _CATEGORY_ID, "name": "person"}
        images = [{"id": i} for i in sorted(self.image_ids)]
        captured = io.StringIO()
        # pycocotools reports progress with print(); keep it out of stdout and in the debug log.
        with contextlib.redirect_stdout(captured):
            gt = COCO()
            gt.dataset = {"images": images, "categories": [category], "annotations": copy.deepcopy(self.ground_truth)}
            gt.createIndex()
            if self.predictions:
                dt = gt.loadRes(copy.deepcopy(self.predictions))  # loadRes adds id, bbox, area to each dict
            else:
                # loadRes cannot take an empty list; an empty result set makes every AP 0 through the same code path.
                dt = COCO()
                dt.dataset = {"images": images, "categories": [category], "annotations": []}
                dt.createIndex()
            evaluator = COCOeval(gt, dt, iouType="keypoints")
            evaluator.params.kpt_oks_sigmas = self.sigmas
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        log.debug("COCOeval keypoints:\n%s", captured.getvalue())
        stats = evaluator.stats  # [10]
        return {f"kpt_{name}": float(v) if v != -1 else float("nan") for name, v in zip(STAT_NAMES, stats, strict=True)}
