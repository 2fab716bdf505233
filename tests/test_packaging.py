"""What Dataflow workers install: the sdist Beam's stager builds from `--setup_file ./setup.py`,
installed by pip (not editable), must run from any folder with its default model files."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile

from models.uri import sha256_of
from pipeline.options import SHIPPED_INPAINT_WEIGHTS

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_package_beam_stages_installs_with_the_shipped_inpainting_checkpoint(tmp_path):
    from apache_beam.runners.portability.stager import Stager

    staged = tmp_path / "staged"
    staged.mkdir()
    egg_info = os.path.join(PROJECT_ROOT, "bg_obj_remover.egg-info")
    leave_egg_info = os.path.exists(egg_info)
    try:  # as Beam does at launch: `setup.py sdist` in the project folder
        sdist = Stager._build_setup_package(os.path.join(PROJECT_ROOT, "setup.py"), str(staged))
    finally:
        if not leave_egg_info:
            shutil.rmtree(egg_info, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert not [name for name in names if "/tests/" in name], "tests are not for workers"

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), sdist],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("from pipeline.options import SHIPPED_INPAINT_WEIGHTS as shipped\n"
            "from models.uri import sha256_of\n"
            "print(shipped, sha256_of(shipped))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr[-3000:]
    path, digest = done.stdout.split()
    assert path == str(site / "assets" / "inpainter" / "pconv_unet.keras")
    assert digest == sha256_of(SHIPPED_INPAINT_WEIGHTS)


def _install_requires() -> list[str]:
    """setup.py's install_requires, read by running it with setuptools.setup stubbed out."""
    import runpy
    from unittest import mock

    with mock.patch("setuptools.setup") as setup:
        runpy.run_path(os.path.join(PROJECT_ROOT, "setup.py"))
    return setup.call_args.kwargs["install_requires"]


def test_installing_the_package_brings_what_fetching_gs_and_https_model_files_needs():
    """Model files are fetched through fsspec, whose gs:// needs gcsfs and whose https:// (the
    default --seg_checkpoint) aiohttp and requests: without them `pip install .` fails the default
    run at the download."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    wanted, seen = [Requirement(spec).name for spec in _install_requires()], set()
    while wanted:
        name = wanted.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dependencies = [Requirement(spec) for spec in requires(name) or []]
        except PackageNotFoundError:
            continue
        wanted += [dependency.name for dependency in dependencies
                   if not dependency.marker or dependency.marker.evaluate({"extra": ""})]
    assert {"gcsfs", "aiohttp", "requests"} <= seen
