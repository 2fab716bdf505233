"""Process-wide framework set-up: what a user sees on the terminal before the job's first line."""
import os
import subprocess
import sys

from models.runtime import _NO_GPU, _STARTUP_NOISE, native_stderr_without

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tensorflows_start_up_lines_stay_off_the_terminal():
    """TensorFlow's C++ runtime printed nine lines on import and at its first device query, among
    them `E... failed call to cuInit: INTERNAL: CUDA error` on every CPU-only run, whatever
    TF_CPP_MIN_LOG_LEVEL said."""
    started = subprocess.run(
        [sys.executable, "-c", "import models.pconv; from models.runtime import configure_tensorflow; "
                               "configure_tensorflow('cpu'); print('configured')"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert started.returncode == 0 and started.stdout == "configured\n", started.stderr[-2000:]
    for noise in ("absl::InitializeLog", "cuda drivers", "cpu_feature_guard", "cuInit", "oneDNN"):
        assert noise not in started.stderr


def test_what_is_not_start_up_noise_still_reaches_stderr(capfd):
    with native_stderr_without(_STARTUP_NOISE, _NO_GPU):
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"I0000 00:00:1795814050.764347     856 cudart_stub.cc:31] Could not find cuda drivers\n"
                    b"E0000 00:00:1795814052.880606     856 cuda_platform.cc:52] failed call to cuInit: x\n"
                    b"E0000 00:00:1795814052.880606     856 some_op.cc:52] a real failure\n")
        print("a Python warning", file=sys.stderr)
    # (pytest captures Python's stderr apart from the file descriptor's, so the order is its own)
    assert sorted(capfd.readouterr().err.splitlines()) == [
        "E0000 00:00:1795814052.880606     856 some_op.cc:52] a real failure", "a Python warning"]


def test_a_native_crash_inside_the_filter_still_shows_its_last_words():
    """An abort while TensorFlow loads (say, a CPU without the instructions it was built for)
    prints why and dies at once: held back for filtering, that reason would die with it."""
    crashed = subprocess.run(
        [sys.executable, "-c", "import os\nfrom models.runtime import _STARTUP_NOISE, native_stderr_without\n"
                               "with native_stderr_without(_STARTUP_NOISE):\n"
                               "    os.write(2, b'F0000 00:00:17.5 1 cpu_feature_guard.cc:9] no AVX\\n')\n"
                               "    os.abort()"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert crashed.returncode != 0
    assert "cpu_feature_guard.cc:9] no AVX" in crashed.stderr
