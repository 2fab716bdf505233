"""The metadata folder as its readers see it: pyarrow (and pandas, which reads through it) take
every file of a folder but hidden ones."""
from __future__ import annotations

import os

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.metadata import STAGING_FOLDER, WriteMetadata


def _row(name: str) -> dict:
    return {"image_uri": f"/in/{name}", "output_uri": f"/out/images/{name}", "status": "unchanged",
            "error": None, "width": 4, "height": 3, "instances": [], "removed_fraction": 0.0,
            "segmenter": "s", "inpainter": "i", "notes": []}


def _write(output: str, run: str, names: list[str]) -> None:
    with beam.Pipeline(runner="DirectRunner") as pipeline:
        _ = pipeline | beam.Create([_row(name) for name in names]) | WriteMetadata(output, run)


def test_the_metadata_folder_reads_as_one_run_beside_a_running_or_killed_runs_files(tmp_path, monkeypatch):
    output, metadata = str(tmp_path), tmp_path / "metadata"
    _write(output, "1", ["a.png", "b.png"])
    # What a killed run leaves: Beam's half-written temporary file, a whole shard never published.
    killed = metadata / STAGING_FOLDER / "beam-temp-part-2-0123"
    killed.mkdir(parents=True)
    [shard] = metadata.glob("part-1-*.parquet")
    (killed / "4567.parquet").write_bytes(shard.read_bytes()[:100])
    (metadata / STAGING_FOLDER / "part-2-00000-of-00001.parquet").write_bytes(shard.read_bytes())
    assert sorted(pq.read_table(metadata).column("image_uri").to_pylist()) == ["/in/a.png", "/in/b.png"]

    made = []  # Beam's temporary folders, which stay for the whole run
    mkdirs = FileSystems.mkdirs
    monkeypatch.setattr(FileSystems, "mkdirs", staticmethod(lambda path: made.append(path) or mkdirs(path)))
    _write(output, "3", ["c.png"])
    assert made and all(os.path.dirname(path) == str(metadata / STAGING_FOLDER) for path in made)
    assert sorted(os.listdir(metadata)) == [STAGING_FOLDER, "part-3-00000-of-00001.parquet"]
    assert pq.read_table(metadata).column("image_uri").to_pylist() == ["/in/c.png"]
