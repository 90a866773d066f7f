"""What this machine has, read without importing torch (1.5 s): for the refusals that come in the command's first
second. Where unsure, it says so (None), and the full check (torch's) decides later."""

import os
import sys


# The device files of the GPUs a torch build can use: NVIDIA's driver, AMD's ROCm, WSL's GPU.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def surely_no_gpu() -> bool:
    """True when this Linux machine has no GPU device a CUDA or ROCm build of torch could use; False when it has one
    or cannot tell (another system)."""
    return sys.platform == "linux" and not any(os.path.exists(path) for path in GPU_DEVICE_FILES)
