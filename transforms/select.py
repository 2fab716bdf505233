"""Stage 4: keep the instances the user chose, union their masks and dilate them into one hole."""
from __future__ import annotations

import apache_beam as beam
import cv2
import numpy as np
from pycocotools import mask as coco_mask

from transforms.read import NAMESPACE
from transforms.records import ERROR, UNCHANGED, ImageInfo, count_error, skip_type_inference


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE with `counts` as text, as in COCO result files."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grows the hole by `pixels` (every pixel within that Euclidean distance of it), so the
    inpainter also replaces edge halos and shadows.

    An exact distance transform rather than `cv2.dilate` with a disc: that takes time in proportion
    to the disc's diameter (34 s for 200 px on a 24 MP photo, against 0.15 s here) and its
    elliptic kernel reaches past the radius. The transform's float32 distances cover only the
    hole's bounding box grown by `pixels` (nothing farther can be reached), not the whole photo.
    """
    if pixels <= 0 or not mask.any():
        return mask
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, left = max(0, rows[0] - pixels), max(0, columns[0] - pixels)
    bottom, right = rows[-1] + pixels + 1, columns[-1] + pixels + 1
    region = np.logical_not(mask[top:bottom, left:right]).astype(np.uint8)
    grown = np.zeros(mask.shape, bool)
    grown[top:bottom, left:right] = cv2.distanceTransform(region, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= pixels
    return grown


def instance_rows(detections, removed: np.ndarray, frame: int = 0,
                  kept: np.ndarray | None = None) -> tuple[dict, ...]:
    """One metadata row per instance (of `frame`, in a multi-frame image); each RLE encodes one
    image-sized mask at a time. `kept`: the chosen instances kept as the photo's subjects."""
    areas = detections.areas()
    kept = np.zeros(len(detections.labels), bool) if kept is None else kept
    return tuple(
        {"label": detections.labels[i], "label_id": int(detections.label_ids[i]),
         "score": float(detections.scores[i]), "bbox": [float(v) for v in detections.boxes[i]],
         "mask": encode_rle(detections.full_mask(i)), "area": int(areas[i]),
         "removed": bool(removed[i]), "kept": bool(kept[i]), "frame": frame}
        for i in range(len(detections.labels)))


def kept_note(instances) -> str | None:
    """The row's note on the subjects --keep_largest / --keep_larger_than kept, if any, over all
    of an image's frames."""
    kept = [instance for instance in instances if instance.get("kept")]
    if not kept:
        return None
    labels = ", ".join(sorted({instance["label"] for instance in kept}))
    frames = len({instance.get("frame") or 0 for instance in kept})
    where = f" in {frames} frames" if frames > 1 else ""
    return (f"{len(kept)} kept as the photo's subjects ({labels}){where}: "
            "--keep_largest / --keep_larger_than")


def removed_region(info: ImageInfo, frame: int = 0) -> np.ndarray:
    """The pixels removed (from `frame` of a multi-frame image), before `--dilate` grows them:
    those of the instances chosen for removal less those of the subjects kept. Masks mode grows
    it again by its own `--dilate`."""
    removed = _union_of(info, frame, "removed")
    return removed & ~_union_of(info, frame, "kept") if removed.any() else removed


def _union_of(info: ImageInfo, frame: int, flag: str) -> np.ndarray:
    """The union of the masks of `frame`'s instances whose `flag` is true (rows written before
    `kept` existed have it null)."""
    rles = [instance["mask"] for instance in info.instances
            if instance.get(flag) and instance.get("frame", 0) == frame]
    if not rles:
        return np.zeros(info.frame_sizes[frame] if info.frame_sizes else (info.height, info.width), bool)
    merged = coco_mask.merge([{"size": rle["size"], "counts": rle["counts"].encode("ascii")}
                              for rle in rles], intersect=False)
    return coco_mask.decode(merged).astype(bool)


@skip_type_inference
class SelectAndDilate(beam.DoFn):
    """`(ImageInfo, PredictionResult(rgb, Detections))` -> `(ImageInfo, (rgb, hole))` to inpaint,
    `(ImageInfo, rgb)` on 'unchanged' when nothing was selected, or an error info on 'error' when
    the hole is the whole image: nothing is left to fill it from (the model would paint it black)."""

    UNCHANGED = "unchanged"
    ERROR = ERROR

    def __init__(self, class_ids: frozenset[int] | None, min_score: float, dilate_pixels: int,
                 keep_largest: int = 0, keep_larger_than: float | None = None,
                 class_min_scores: dict[int, float] | None = None):
        self._class_ids = class_ids
        self._min_score = min_score
        self._class_min_scores = class_min_scores
        self._dilate = dilate_pixels
        self._keep_largest = keep_largest
        self._keep_larger_than = keep_larger_than
        self._errors = beam.metrics.Metrics.counter(NAMESPACE, "errors")

    def process(self, element):
        info, result = element
        rgb, detections = result.example, result.inference
        # An empty mask removes nothing, so it is never counted (nor reported) as removed.
        chosen = detections.select(self._class_ids, self._min_score, self._class_min_scores) & detections.nonempty()
        kept = detections.subjects(chosen, self._keep_largest, self._keep_larger_than)
        removed = chosen & ~kept
        if kept.any():
            # A subject's pixels stay, also where a removed instance's mask overlaps it (the same
            # object found twice, or a mask bleeding over its edge): an instance within the
            # subjects removes nothing. The hole grown by --dilate stops at them too.
            subjects = detections.union(kept)
            removed &= detections.reaching_outside(subjects)
            union = detections.union(removed) & ~subjects
            hole = dilate(union, self._dilate) & ~subjects
        else:
            union = detections.union(removed)
            hole = dilate(union, self._dilate)
        info = info.replace(instances=instance_rows(detections, removed, info.frame, kept),
                            removed_fraction=float(hole.mean()))
        if kept.any() and info.frames == 1:  # a multi-frame image's note counts all its frames (frames.py)
            info = info.with_note(kept_note(info.instances))
        if hole.all():
            count_error(self._errors, info)
            dilated = "" if union.all() else f" grown by --dilate {self._dilate} px"
            yield beam.pvalue.TaggedOutput(self.ERROR, info.failed(
                "select", f"the instances to remove{dilated} cover the whole image: no pixel is "
                          "left to fill them from"))
        elif hole.any():
            yield info, (rgb, hole)
        else:
            yield beam.pvalue.TaggedOutput(self.UNCHANGED, (info.replace(status=UNCHANGED), rgb))
