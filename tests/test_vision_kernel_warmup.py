"""The vision process (runtime/vision/process.py, through front_end.warm_grounding_kernels) loads the grounding fit's compiled kernels before its first frame (not inline on it)."""
import subprocess
import sys


def test_warm_up_compiles_the_grounding_filter_kernel_in_a_fresh_process() -> None:
    code = ("from models import iir_kernels\n"
            "before = len(iir_kernels._df2t.signatures)\n"
            "from runtime.vision.front_end import warm_grounding_kernels\n"
            "s = warm_grounding_kernels()\n"
            "print(before, len(iir_kernels._df2t.signatures), s)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=".")
    before, after, seconds = out.stdout.split()
    assert int(before) == 0 and int(after) >= 1 and float(seconds) > 0.0
