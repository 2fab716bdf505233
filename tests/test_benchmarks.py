"""The benchmarks' own bookkeeping: a figure they misread would misstate what the pipeline costs."""
import os

from tests.pipeline_helpers import run_pipeline

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def test_the_overhead_benchmark_counts_the_workers_model_loading(masks_corpus, tmp_path,
                                                                 tiny_inpaint_weights, monkeypatch):
    """Each model has several RunInference steps (batches, images retried alone, ...) and the one
    that sets up first loads it: reading one step's figure counted 0 s of loading, so the
    pipeline's "processing" paid its model loading while the bare loop's did not."""
    monkeypatch.syspath_prepend(BENCHMARKS)
    from pipeline_overhead import model_figures

    images, masks, specs = masks_corpus
    result = run_pipeline(["--input", f"{images}/**", "--segmenter", "masks", "--masks", masks,
                           "--output", tmp_path / "out", "--inpaint_weights", tiny_inpaint_weights])
    figures = model_figures(result)
    assert figures["loading"] > 0
    assert figures["model"] > 0
    assert figures["inpaint batches"] != "none"


def test_the_bare_loop_cleans_every_image_and_writes_its_row(masks_corpus, tmp_path, tiny_inpaint_weights,
                                                              monkeypatch):
    """The loop the pipeline is measured against must do the pipeline's work; a stale unpacking of
    the decoder's result once broke it unseen."""
    import pyarrow.parquet as pq

    monkeypatch.syspath_prepend(BENCHMARKS)
    from common import centre_hole
    from pipeline_overhead import BareLoop

    from models.pconv import Inpainter
    from transforms.user_masks import user_mask_detections

    class CentreSegmenter:
        def segment(self, images):
            return [user_mask_detections(centre_hole(*rgb.shape[:2])) for rgb in images]

    images, _, specs = masks_corpus
    paths = sorted(str(images / relative) for relative in specs)
    output = tmp_path / "bare"
    loop = BareLoop(CentreSegmenter(), Inpainter.load(tiny_inpaint_weights), str(output), seg_batch=2,
                    inpaint_batch=2, dilate=2, min_score=0.5)
    loop.run(paths)
    rows = pq.read_table(output / "metadata.parquet").to_pylist()
    assert sorted(row["image_uri"] for row in rows) == paths
    assert all(row["status"] == "cleaned" and os.path.isfile(row["output_uri"]) for row in rows)
    assert loop.model_seconds > 0
