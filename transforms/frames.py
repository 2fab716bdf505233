"""Stage 6c: the frames of a multi-frame input (an animated GIF, WebP or PNG, a multi-page TIFF,
an MPO, a HEIF burst) written together as one image, with one metadata row.

Each frame goes through the models as an element of its own, so frames batch like photos and no
batch has to hold a whole animation. The writer stores each frame that cannot be decoded again
from the input (`transforms/frame_store.py`): the cleaned ones, and every frame of a TFRecord
record. The frames' infos, small, are grouped by image here, and each image is written from
its stored frames and, where some were left unchanged, its input decoded again; an image with
nothing removed from any frame is copied. A frame that failed anywhere makes its image an error
row: writing the others would keep the removed object in that frame.
"""
from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from transforms.decode import decode_frames
from transforms.frame_store import delete_stored_frames, load_frame
from transforms.read import read_bytes
from transforms.records import CLEANED, ERROR, UNCHANGED, ImageInfo, skip_type_inference, uri_bytes
from transforms.select import kept_note
from transforms.write import WriteImage, encode_frames, orientation_only, without_removed_regions_in_xmp

FRAME = WriteImage.FRAME


@skip_type_inference
class FramesApart(beam.DoFn):
    """`ImageInfo` -> the same, on the 'frame' output when it is one frame of several."""

    def process(self, info: ImageInfo):
        yield beam.pvalue.TaggedOutput(FRAME, info) if info.frames > 1 else info


def merged_info(frames: list[ImageInfo]) -> ImageInfo:
    """One image's info from its frames' (in order): frame 0's size and orientation, every frame's
    instances (each names its frame), the share of all frames' pixels replaced, one note on the
    subjects kept in all of them, and the first failure, if any, as the image's error."""
    first, count = frames[0], frames[0].frames
    pixels = [frame.width * frame.height for frame in frames]
    instances = tuple(instance for frame in frames for instance in frame.instances)
    kept = kept_note(instances)
    merged = first.replace(
        frame=0, instances=instances,
        removed_fraction=sum(frame.removed_fraction * size for frame, size in zip(frames, pixels))
        / max(1, sum(pixels)),
        notes=tuple(dict.fromkeys(note for frame in frames for note in frame.notes))
        + ((kept,) if kept else ()),
        frame_sizes=tuple((frame.height, frame.width) for frame in frames),
        output_uri=None, alpha=None, encoding=orientation_only(first.encoding))
    failed = next((frame for frame in frames if frame.status == ERROR), None)
    if failed is not None:
        return merged.replace(status=ERROR, error=f"{failed.error} (frame {failed.frame + 1} of {count})")
    if [frame.frame for frame in frames] != list(range(count)):
        return merged.failed("write", f"{len(frames)} of its {count} frames reached the writer")
    cleaned = any(frame.status == CLEANED for frame in frames)
    return merged.replace(status=CLEANED if cleaned else UNCHANGED)


@skip_type_inference
class WriteFrames(WriteImage):
    """`(image_uri, frame infos)` -> the image's `ImageInfo`, its frames written as one file (or,
    when nothing was removed from any, the input copied as it was); the stored frames deleted."""

    def process(self, element):
        _, frames = element
        frames = [without_removed_regions_in_xmp(frame) if frame.status == CLEANED else frame
                  for frame in sorted(frames, key=lambda frame: frame.frame)]
        image = merged_info(frames)
        try:
            if image.status == ERROR:
                self._errors.inc()
                yield image
                return
            yield self.written(image, lambda: encode_frames(list(_frames_to_write(frames)),
                                                            image.image_format))
        finally:
            delete_stored_frames(frames)


def _frames_to_write(frames: list[ImageInfo]):
    """`(rgb, alpha, encoding)` of each frame, in order: stored ones loaded, the others (unchanged
    frames of a file input) decoded again from the input, as the decoder first gave them."""
    decoded = None
    if not all(frame.output_uri for frame in frames):
        # The file passed --max_image_pixels when first decoded.
        decoded = decode_frames(read_bytes(frames[0].image_uri), max_pixels=sys.maxsize)
    for frame in frames:
        again = next(decoded) if decoded is not None else None  # in step, so frame k is frame k
        if frame.output_uri:
            rgb, stored = load_frame(frame)
            yield rgb, stored.alpha, stored.encoding
        else:
            yield again.rgb, again.alpha, again.encoding


@beam.typehints.with_output_types(beam.typehints.KV[bytes, Any])  # declared, so Beam reads no bytecode
def _by_image(info: ImageInfo) -> tuple[bytes, ImageInfo]:
    """Keyed by the input's name as bytes, which any name is (`records.uri_bytes`)."""
    return uri_bytes(info.image_uri), info


class AssembleFrames(beam.PTransform):
    """Frame infos (the writer's 'frame' output, and frames that failed before it) -> one
    `ImageInfo` per multi-frame image, once all its frames are in."""

    def __init__(self, output_root: str, copy_unchanged: bool):
        super().__init__()
        self._write = WriteFrames(output_root, copy_unchanged)

    def expand(self, frames):
        return (frames
                | "ByImage" >> beam.Map(_by_image)
                | "GroupFrames" >> beam.GroupByKey()
                | "WriteFrames" >> beam.ParDo(self._write))
