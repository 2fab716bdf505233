"""A static before/after HTML report next to the outputs: `python -m pipeline.report OUTPUT`.

Per image: the input with its removed instances outlined and labelled (and the subjects
`--keep_largest` / `--keep_larger_than` kept, in another colour), beside the cleaned image, as
thumbnails; counts per class; the errors table; pages of `--per_page` images. Static files
only, so the report can be copied or served from a bucket as is. The output may be local or any
Beam file system (`gs://`); inputs read from TFRecord shards (`shard#offset`) are read back from
their shard.
"""
from __future__ import annotations

import argparse
import collections
import functools
import html
import io
import itertools
import posixpath
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from PIL import Image, ImageDraw
from pycocotools import mask as coco_mask

from models.runtime import usable_cpu_count
from transforms.decode import DEFAULT_MAX_PIXELS, decode_frames, decode_image
from transforms.metadata import metadata_pattern
from transforms.read import RecordParser, read_bytes
from transforms.records import CLEANED, ERROR, SKIPPED, UNCHANGED
from transforms.write import output_path, output_root

THUMBNAIL_SIZE = 320
OUTLINE = (255, 0, 255)       # a removed instance
KEPT_OUTLINE = (0, 200, 255)  # a subject kept (--keep_largest / --keep_larger_than)


def metadata_files(output: str) -> list[str]:
    files = sorted(m.path for r in FileSystems.match([metadata_pattern(output)])
                   for m in r.metadata_list)
    if not files:
        raise FileNotFoundError(f"no metadata under {FileSystems.join(output, 'metadata')}: "
                                "run the pipeline first")
    return files


def _read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(io.BytesIO(read_bytes(path)), columns=columns)


@dataclass
class ReportContent:
    """What the report shows of a run: its totals, and the rows behind its gallery and errors
    table (each at most its limit, so an archive's report stays a few pages' work)."""
    statuses: collections.Counter
    removed_per_class: collections.Counter
    kept_per_class: collections.Counter  # subjects kept, in the images written
    shown: list[dict]   # gallery rows (whole, with instances), in record order
    showable: int       # rows with an output image (skipped ones too), of which `shown` is an even sample
    errors: list[dict]  # `image_uri`, `error` of the first error rows in record order
    error_count: int


def read_report_content(output: str, max_images: int | None = 1000,
                        max_errors: int = 1000) -> ReportContent:
    """Reads the metadata one shard at a time, keeping only the small columns of every row:
    an archive-scale run's instances and masks would not fit in memory all at once."""
    files = metadata_files(output)
    statuses, removed_per_class, kept_per_class = collections.Counter(), collections.Counter(), collections.Counter()
    showable, errors = [], []  # (record order, shard file index, row index) / rows
    for file_index, path in enumerate(files):
        table = _read_table(path, ["image_uri", "status", "error", "output_uri", "instances"])
        # Only a cleaned image had its instances removed: an error row lists those it would have.
        removed_per_class.update(_labels_where(table, (CLEANED,), "removed"))
        kept_per_class.update(_labels_where(table, (CLEANED, UNCHANGED), "kept"))
        small = table.drop_columns(["instances"]).to_pydict()
        for row_index, (uri, status, error, output_uri) in enumerate(zip(
                small["image_uri"], small["status"], small["error"], small["output_uri"])):
            statuses[status] += 1
            if status == ERROR:
                errors.append((_record_order(uri), {"image_uri": uri, "error": error}))
            elif status in (CLEANED, UNCHANGED, SKIPPED) and output_uri:
                showable.append((_record_order(uri), file_index, row_index))
    errors.sort(key=lambda item: item[0])
    showable.sort()
    chosen = (showable if max_images is None or len(showable) <= max_images
              else [showable[i * len(showable) // max_images] for i in range(max_images)])
    wanted = collections.defaultdict(list)
    for order, (_, file_index, row_index) in enumerate(chosen):
        wanted[file_index].append((row_index, order))
    shown = [None] * len(chosen)
    for file_index, picks in wanted.items():
        rows = _read_table(files[file_index]).take([row_index for row_index, _ in picks]).to_pylist()
        for (_, order), row in zip(picks, rows):
            shown[order] = row
    return ReportContent(statuses, removed_per_class, kept_per_class, shown, len(showable),
                         [row for _, row in errors[:max_errors]], len(errors))


def _labels_where(table: pa.Table, statuses: tuple[str, ...], flag: str) -> dict[str, int]:
    """How many instances of each label have `flag` set, in the rows of these statuses (metadata
    written before an instance had the field has none set)."""
    rows = table.filter(pc.is_in(table["status"], pa.array(statuses)))
    instances = pc.list_flatten(rows["instances"])
    if instances.type.get_field_index(flag) < 0:
        return {}
    labels = pc.filter(pc.struct_field(instances, "label"), pc.struct_field(instances, flag))
    return {item["values"].as_py(): item["counts"].as_py() for item in pc.value_counts(labels)}


_RECORD_URI = re.compile(r"^(?P<shard>.+)#(?P<offset>\d+)$")


def _record_order(uri: str) -> tuple[str, int]:
    """Sort key keeping a shard's records in file order (`s#2` before `s#10`)."""
    match = _RECORD_URI.match(uri)
    return (match["shard"], int(match["offset"])) if match else (uri, -1)


class _InputReader:
    """The image of record `offset` of a TFRecord shard, by `image_uri` (`shard#offset`).

    Rows come in shard order, so each shard is read through once, not once per record.
    """

    def __init__(self, tfrecord_image_key: str):
        self._parser = RecordParser(tfrecord_image_key, id_key="")  # the pipeline's own parsing
        self._shard, self._records, self._next_offset = None, None, 0

    def record_bytes(self, uri: str) -> bytes | Exception | None:
        """The image of a TFRecord record (or why it cannot be read); None for a file's URI."""
        match = _RECORD_URI.match(uri)
        if match is None or FileSystems.exists(uri):
            return None
        try:
            return self._record_image(match["shard"], int(match["offset"]))
        except Exception as e:  # noqa: BLE001 - shown in the report as a missing item
            return e

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


def _open_rgb(data: bytes, frame: int, max_pixels: int) -> Image.Image:
    return Image.fromarray(decode_image(data, max_pixels, frame).rgb)


def shown_frame(instances: list[dict]) -> int:
    """The frame of a multi-frame image the report shows: the first one something was removed
    from (rows written before frames were counted have no `frame`: theirs is the first)."""
    return min((instance.get("frame") or 0 for instance in instances if instance["removed"]), default=0)


def output_frame(source: bytes, output: bytes, frame: int,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """The output's frame showing input frame `frame`, the first one cleaned. PIL's GIF and PNG
    writers merge identical consecutive frames into one (an animation holding a still moment as
    repeated frames), so where the output has fewer frames than its input, `frame` moves one
    earlier for each repeat before it: those frames were written as they were."""
    if frame == 0 or decode_image(output, max_pixels).frames == decode_image(source, max_pixels).frames:
        return frame
    repeats, previous = 0, None
    for decoded in itertools.islice(decode_frames(source, max_pixels), frame):  # one frame in memory at a time
        current = (decoded.rgb, decoded.alpha)
        repeats += previous is not None and all(map(np.array_equal, previous, current))
        previous = current
    return frame - repeats


def outlined_thumbnail(image: Image.Image, instances: list[dict]) -> Image.Image:
    """The input with each removed instance's outline and label, and each kept subject's in
    another colour, scaled to thumbnail size."""
    scale = THUMBNAIL_SIZE / max(image.size)
    thumb = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.LANCZOS) if scale < 1 else image.copy()
    scale = min(scale, 1.0)
    draw = ImageDraw.Draw(thumb)
    for instance in instances:
        if instance["removed"]:
            colour, label = OUTLINE, instance["label"]
        elif instance.get("kept"):
            colour, label = KEPT_OUTLINE, f'kept: {instance["label"]}'
        else:
            continue
        mask = coco_mask.decode(instance["mask"]).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            points = [(float(x) * scale, float(y) * scale) for x, y in contour[:, 0]]
            if len(points) > 1:
                draw.line(points + points[:1], fill=colour, width=2)
        x0, y0 = instance["bbox"][0] * scale, instance["bbox"][1] * scale
        draw.text((x0 + 2, max(0, y0 - 11)), f'{label} {instance["score"]:.2f}', fill=colour)
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
table{border-collapse:collapse;margin-bottom:1em}
td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;overflow-wrap:anywhere}
nav a{margin-right:.6em}"""


def _page_name(index: int) -> str:
    return "index.html" if index == 0 else f"page-{index + 1}.html"


def write_report(output: str, per_page: int = 50, tfrecord_image_key: str = "image/encoded",
                 max_images: int | None = 1000, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Writes `<output>/report/` and returns the path of its index.html. The gallery shows at most
    `max_images` images (None: all), evenly spaced over the run's inputs. `max_pixels`: the run's
    `--max_image_pixels`, so that every image it cleaned can be shown."""
    if per_page < 1 or (max_images is not None and max_images < 1):
        raise ValueError(f"per_page and max_images must be >= 1, got {per_page}, {max_images}")
    content = read_report_content(output, max_images)
    Image.MAX_IMAGE_PIXELS = None  # `max_pixels` replaces PIL's fixed bomb limit, as in the run's workers
    inputs = _InputReader(tfrecord_image_key)
    report_dir = FileSystems.join(output.rstrip("/"), "report")
    images_root = output_path(output_root(output), "")
    thumbs_dir = FileSystems.join(report_dir, "thumbs")  # FileSystems.create makes folders
    # An earlier report may have had more pages or images: none of its files may linger.
    earlier = FileSystems.match([FileSystems.join(report_dir, "page-*.html"),
                                 FileSystems.join(thumbs_dir, "*.jpg")])
    FileSystems.delete([m.path for r in earlier for m in r.metadata_list])

    shown = content.shown
    pages = [shown[i:i + per_page] for i in range(0, len(shown), per_page)] or [[]]
    summary = ["<h1>bg-obj-remover report</h1>",
               "<p>" + (", ".join(f"{html.escape(k)}: {v}" for k, v in sorted(content.statuses.items()))
                        or "The run recorded no image.") + "</p>"]
    summary += _per_class_table(content.removed_per_class, content.kept_per_class)
    if content.errors:
        summary.append("<h2>Errors</h2>")
        if content.error_count > len(content.errors):
            summary.append(f"<p>The first {len(content.errors)} of {content.error_count} errors; "
                           "the metadata has every one (<code>status = 'error'</code>).</p>")
        summary.append('<table class="errors"><tr><th>image</th><th>error</th></tr>')
        summary += [f"<tr><td>{html.escape(r['image_uri'])}</td><td>{html.escape(r['error'] or '')}</td></tr>"
                    for r in content.errors]
        summary.append("</table>")
    if content.showable > len(shown):
        summary.append(f"<p>{len(shown)} of the {content.showable} images written, evenly spaced "
                       "in input order (<code>python -m pipeline.report OUTPUT --max_images 0</code> "
                       "shows all).</p>")

    with ThreadPoolExecutor(_THUMBNAIL_THREADS) as pool, ThreadPoolExecutor(usable_cpu_count()) as decoders:
        for page_index, page in enumerate(pages):
            nav = _nav(page_index, len(pages))
            stems = [f"{page_index * per_page + n:06d}" for n in range(len(page))]
            # Records are read here, in shard order; files are read by the pool, in parallel.
            sources = [inputs.record_bytes(row["image_uri"]) for row in page]
            made = pool.map(functools.partial(_write_thumbnails, thumbs_dir=thumbs_dir, max_pixels=max_pixels,
                                              decoders=decoders),
                            page, sources, stems)
            items = [_item(row, stem, problem, images_root) for row, stem, problem in zip(page, stems, made)]
            body = (summary if page_index == 0 else ["<h1>bg-obj-remover report</h1>"]) + [nav] + items + [nav]
            title = "bg-obj-remover report" + (f", page {page_index + 1} of {len(pages)}" if len(pages) > 1 else "")
            page_html = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
                         '<meta name="viewport" content="width=device-width, initial-scale=1">'
                         f"<title>{title}</title><style>{_STYLE}</style></head><body>{''.join(body)}</body></html>")
            _write(FileSystems.join(report_dir, _page_name(page_index)), page_html.encode("utf-8"),
                   "text/html")
    return FileSystems.join(report_dir, "index.html")


# Files are read and written by many threads: a bucket waits on the network, not the CPU. They
# are decoded by one thread per CPU: each thread's malloc arena keeps the memory of the largest
# image it decoded (12 24 MP JPEGs on 2 CPUs: 2.4 GiB peak decoded by the 8 reading threads, 0.9 GiB
# apart; benchmarks/report_memory.py).
_THUMBNAIL_THREADS = min(32, 4 * usable_cpu_count())


def _write_thumbnails(row: dict, source: bytes | Exception | None, stem: str, thumbs_dir: str,
                      max_pixels: int, decoders: ThreadPoolExecutor) -> Exception | None:
    """Writes the row's before/after thumbnails; returns what went wrong, if anything (a vanished
    file should not sink the report). `source`: the input's bytes when already read."""
    try:
        if isinstance(source, Exception):
            raise source
        data = source if source is not None else read_bytes(row["image_uri"])
        output = read_bytes(row["output_uri"])
        before, after = decoders.submit(_thumbnails, row, data, output, max_pixels).result()
        _save_jpeg(before, FileSystems.join(thumbs_dir, f"{stem}-before.jpg"))
        _save_jpeg(after, FileSystems.join(thumbs_dir, f"{stem}-after.jpg"))
    except Exception as e:  # noqa: BLE001
        return e
    return None


def _thumbnails(row: dict, source: bytes, output: bytes, max_pixels: int) -> tuple[Image.Image, Image.Image]:
    """The input's thumbnail, outlined, and the cleaned image's, of the frame shown."""
    instances = row["instances"] or []
    frame = shown_frame(instances)
    before = outlined_thumbnail(_open_rgb(source, frame, max_pixels), [
        instance for instance in instances if (instance.get("frame") or 0) == frame])
    after = _thumbnail(_open_rgb(output, output_frame(source, output, frame, max_pixels), max_pixels))
    return before, after


def _item(row: dict, stem: str, problem: Exception | None, images_root: str) -> str:
    if problem is not None:
        return f'<div class="item missing">{html.escape(row["image_uri"])}: {html.escape(str(problem))}</div>'
    instances = row["instances"] or []
    labels = ", ".join(sorted({i["label"] for i in instances if i["removed"]})) or "nothing removed"
    kept = ", ".join(sorted({i["label"] for i in instances if i.get("kept")}))
    if kept:
        labels += f"; kept: {kept}"
    frame = shown_frame(instances)
    if frame:
        labels += f" (frame {frame + 1} shown)"
    outcome = f"{labels}, {100 * (row['removed_fraction'] or 0):.1f}% replaced"
    if row["status"] == SKIPPED:  # written by a run that was stopped before its metadata was
        outcome = "written by an earlier run, which recorded nothing of it"
    # Each image's alt names it: a screen reader reads it out, and as the link's text.
    name = html.escape(posixpath.basename(row["image_uri"]))
    after = f'<img src="thumbs/{stem}-after.jpg" alt="{name}, after">'
    if row["output_uri"].startswith(images_root):  # the image in full, beside the report
        after = f'<a href="../images/{urllib.parse.quote(row["output_uri"][len(images_root):])}">{after}</a>'
    return (f'<div class="item"><img src="thumbs/{stem}-before.jpg" alt="{name}, before">{after}'
            f'<div class="caption">{html.escape(row["image_uri"])} — {row["status"]}, '
            f'{html.escape(outcome)}</div></div>')


def _per_class_table(removed: collections.Counter, kept: collections.Counter) -> list[str]:
    """Removed instances per class, most first; and beside them the subjects kept, where any were."""
    if not removed and not kept:
        return ["<h2>Removed instances per class</h2><p>None: nothing was removed.</p>"]
    if not kept:
        return (["<h2>Removed instances per class</h2><table><tr><th>class</th><th>count</th></tr>"]
                + [f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in removed.most_common()]
                + ["</table>"])
    classes = sorted(removed.keys() | kept.keys(), key=lambda k: (-removed[k], -kept[k], k))
    return (["<h2>Instances per class</h2><table><tr><th>class</th><th>removed</th><th>kept as subjects</th></tr>"]
            + [f"<tr><td>{html.escape(k)}</td><td>{removed[k]}</td><td>{kept[k]}</td></tr>" for k in classes]
            + ["</table>"])


def _nav(current: int, count: int) -> str:
    """Links to the first and last pages and to the three either side of this one: a link to
    every page from every page would grow with the square of the page count. None for one page."""
    if count == 1:
        return ""
    near = {0, count - 1, *range(max(0, current - 3), min(count, current + 4))}
    parts, previous = [], None
    if current > 0:
        parts.append(f'<a href="{_page_name(current - 1)}">previous</a>')
    for index in sorted(near):
        if previous is not None and index > previous + 1:
            parts.append("…")
        parts.append(f"<b>{index + 1}</b>" if index == current
                     else f'<a href="{_page_name(index)}">{index + 1}</a>')
        previous = index
    if current < count - 1:
        parts.append(f'<a href="{_page_name(current + 1)}">next</a>')
    return '<nav aria-label="pages">' + " ".join(parts) + "</nav>"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="The pipeline's --output folder (local or gs://).")
    parser.add_argument("--per_page", type=_int_at_least(1), default=50,
                        help="Images per page (default 50).")
    parser.add_argument("--max_images", type=_int_at_least(0), default=1000,
                        help="Images in the gallery, evenly spaced over the run's inputs when it "
                             "wrote more; 0: all (default 1000).")
    parser.add_argument("--max_image_pixels", type=_int_at_least(1), default=DEFAULT_MAX_PIXELS,
                        help="As given to the pipeline: images declaring more pixels (over all "
                             f"their frames) are not shown (default {DEFAULT_MAX_PIXELS}).")
    parser.add_argument("--tfrecord_image_key", default="image/encoded",
                        help="For TFRecord input: the feature holding the image bytes, as given "
                             "to the pipeline (default image/encoded).")
    args = parser.parse_args(argv)
    try:
        print(write_report(args.output, args.per_page, args.tfrecord_image_key,
                           args.max_images or None, args.max_image_pixels))
    except FileNotFoundError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")


def _int_at_least(minimum: int):
    """An argparse type: an int no smaller than `minimum`."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


if __name__ == "__main__":
    main()
