"""A static before/after HTML report next to the outputs: `python -m pipeline.report OUTPUT`.

Per image: the input with its removed instances outlined and labelled, beside the cleaned image,
as thumbnails; counts per class; the errors table; pages of `--per_page` images. Static files
only, so the report can be copied or served from a bucket as is. The output may be local or any
Beam file system (`gs://`); inputs read from TFRecord shards (`shard#offset`) are read back from
their shard.
"""
from __future__ import annotations

import argparse
import collections
import html
import io
import re

import cv2
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from PIL import Image, ImageDraw
from pycocotools import mask as coco_mask

from transforms.decode import decode_image
from transforms.metadata import metadata_prefix
from transforms.read import RecordParser, read_bytes

THUMBNAIL_SIZE = 320
OUTLINE = (255, 0, 255)


def read_metadata(output: str) -> list[dict]:
    files = sorted(m.path for r in FileSystems.match([metadata_prefix(output) + "-*.parquet"])
                   for m in r.metadata_list)
    if not files:
        raise FileNotFoundError(f"no metadata under {FileSystems.join(output, 'metadata')}: "
                                "run the pipeline first")
    rows = []
    for path in files:
        rows += pq.read_table(io.BytesIO(read_bytes(path))).to_pylist()
    return sorted(rows, key=lambda r: _record_order(r["image_uri"]))


_RECORD_URI = re.compile(r"^(?P<shard>.+)#(?P<offset>\d+)$")


def _record_order(uri: str) -> tuple[str, int]:
    """Sort key keeping a shard's records in file order (`s#2` before `s#10`)."""
    match = _RECORD_URI.match(uri)
    return (match["shard"], int(match["offset"])) if match else (uri, -1)


class _InputReader:
    """Input bytes by `image_uri`: a file, or record `offset` of a TFRecord shard (`shard#offset`).

    Rows come in shard order, so each shard is read through once, not once per record.
    """

    def __init__(self, tfrecord_image_key: str):
        self._parser = RecordParser(tfrecord_image_key, id_key="")  # the pipeline's own parsing
        self._shard, self._records, self._next_offset = None, None, 0

    def read(self, uri: str) -> bytes:
        match = _RECORD_URI.match(uri)
        if match is None or FileSystems.exists(uri):
            return read_bytes(uri)
        return self._record_image(match["shard"], int(match["offset"]))

    def _record_image(self, shard: str, offset: int) -> bytes:
        if shard != self._shard or offset < self._next_offset:
            self._shard, self._next_offset = shard, 0
            self._records = self._parser.records(shard)
        for record_offset, info, image, _ in self._records:
            self._next_offset = record_offset + 1
            if record_offset == offset:
                if info.status is not None:
                    raise ValueError(info.error)
                return image
        raise FileNotFoundError(f"{shard} has no record {offset}")


def _open_rgb(data: bytes) -> Image.Image:
    return Image.fromarray(decode_image(data).rgb)


def outlined_thumbnail(image: Image.Image, instances: list[dict]) -> Image.Image:
    """The input with each removed instance's outline and label, scaled to thumbnail size."""
    scale = THUMBNAIL_SIZE / max(image.size)
    thumb = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.LANCZOS) if scale < 1 else image.copy()
    scale = min(scale, 1.0)
    draw = ImageDraw.Draw(thumb)
    for instance in instances:
        if not instance["removed"]:
            continue
        mask = coco_mask.decode(instance["mask"]).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            points = [(float(x) * scale, float(y) * scale) for x, y in contour[:, 0]]
            if len(points) > 1:
                draw.line(points + points[:1], fill=OUTLINE, width=2)
        x0, y0 = instance["bbox"][0] * scale, instance["bbox"][1] * scale
        draw.text((x0 + 2, max(0, y0 - 11)), f'{instance["label"]} {instance["score"]:.2f}', fill=OUTLINE)
    return thumb


def _thumbnail(image: Image.Image) -> Image.Image:
    image = image.copy()
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    return image


def _save_jpeg(image: Image.Image, path: str) -> None:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=85)
    _write(path, buffer.getvalue(), "image/jpeg")


def _write(path: str, data: bytes, mime_type: str) -> None:
    with FileSystems.create(path, mime_type=mime_type, compression_type="uncompressed") as f:
        f.write(data)


_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
.item{display:inline-block;margin:0 1em 1.5em 0;vertical-align:top}
.item img{max-width:320px;max-height:320px;margin-right:4px;border:1px solid #ccc}
.caption{font-size:12px;max-width:650px;word-break:break-all}
table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}
nav a{margin-right:.6em}"""


def _page_name(index: int) -> str:
    return "index.html" if index == 0 else f"page-{index + 1}.html"


def write_report(output: str, per_page: int = 50, tfrecord_image_key: str = "image/encoded") -> str:
    """Writes `<output>/report/` and returns the path of its index.html."""
    if per_page < 1:
        raise ValueError(f"per_page must be >= 1, got {per_page}")
    rows = read_metadata(output)
    inputs = _InputReader(tfrecord_image_key)
    report_dir = FileSystems.join(output.rstrip("/"), "report")
    thumbs_dir = FileSystems.join(report_dir, "thumbs")  # FileSystems.create makes folders
    # An earlier report may have had more pages or images: none of its files may linger.
    earlier = FileSystems.match([FileSystems.join(report_dir, "page-*.html"),
                                 FileSystems.join(thumbs_dir, "*.jpg")])
    FileSystems.delete([m.path for r in earlier for m in r.metadata_list])

    statuses = collections.Counter(r["status"] for r in rows)
    removed_per_class = collections.Counter(
        i["label"] for r in rows for i in (r["instances"] or []) if i["removed"])
    errors = [r for r in rows if r["status"] == "error"]
    shown = [r for r in rows if r["status"] in ("cleaned", "unchanged") and r["output_uri"]]
    pages = [shown[i:i + per_page] for i in range(0, len(shown), per_page)] or [[]]

    summary = ["<h1>bg-obj-remover report</h1>",
               "<p>" + ", ".join(f"{html.escape(k)}: {v}" for k, v in sorted(statuses.items())) + "</p>",
               "<h2>Removed instances per class</h2><table><tr><th>class</th><th>count</th></tr>"]
    summary += [f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in removed_per_class.most_common()]
    summary.append("</table>")
    if errors:
        summary.append('<h2>Errors</h2><table class="errors"><tr><th>image</th><th>error</th></tr>')
        summary += [f"<tr><td>{html.escape(r['image_uri'])}</td><td>{html.escape(r['error'] or '')}</td></tr>"
                    for r in errors]
        summary.append("</table>")

    for page_index, page in enumerate(pages):
        nav = "<nav>" + "".join(
            f'<a href="{_page_name(i)}">{i + 1}</a>' if i != page_index else f"<b>{i + 1}</b> "
            for i in range(len(pages))) + "</nav>"
        items = []
        for n, row in enumerate(page):
            stem = f"{page_index * per_page + n:06d}"
            try:
                before = outlined_thumbnail(_open_rgb(inputs.read(row["image_uri"])),
                                            row["instances"] or [])
                after = _thumbnail(_open_rgb(read_bytes(row["output_uri"])))
            except Exception as e:  # noqa: BLE001 - a vanished file should not sink the report
                items.append(f'<div class="item missing">{html.escape(row["image_uri"])}: {html.escape(str(e))}</div>')
                continue
            _save_jpeg(before, FileSystems.join(thumbs_dir, f"{stem}-before.jpg"))
            _save_jpeg(after, FileSystems.join(thumbs_dir, f"{stem}-after.jpg"))
            labels = ", ".join(sorted({i["label"] for i in row["instances"] or [] if i["removed"]})) or "nothing removed"
            items.append(
                f'<div class="item"><img src="thumbs/{stem}-before.jpg" alt="input">'
                f'<img src="thumbs/{stem}-after.jpg" alt="cleaned">'
                f'<div class="caption">{html.escape(row["image_uri"])} — {row["status"]}, '
                f'{html.escape(labels)}, {100 * (row["removed_fraction"] or 0):.1f}% replaced</div></div>')
        body = (summary if page_index == 0 else ["<h1>bg-obj-remover report</h1>"]) + [nav] + items + [nav]
        page_html = (f'<!doctype html><html><head><meta charset="utf-8"><title>bg-obj-remover report</title>'
                     f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>")
        _write(FileSystems.join(report_dir, _page_name(page_index)), page_html.encode("utf-8"),
               "text/html")
    return FileSystems.join(report_dir, "index.html")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="The pipeline's --output folder (local or gs://).")
    parser.add_argument("--per_page", type=_positive_int, default=50,
                        help="Images per page (default 50).")
    parser.add_argument("--tfrecord_image_key", default="image/encoded",
                        help="For TFRecord input: the feature holding the image bytes, as given "
                             "to the pipeline (default image/encoded).")
    args = parser.parse_args(argv)
    try:
        print(write_report(args.output, args.per_page, args.tfrecord_image_key))
    except FileNotFoundError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


if __name__ == "__main__":
    main()
