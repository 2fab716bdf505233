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
