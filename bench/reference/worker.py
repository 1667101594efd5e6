# One PyTorch engine of bench/run.ts: serves the sampling protocol of bench/harness.ts (see common.serve) for
# the cases below, in a process of its own (so its peak RSS is its own). The parent sets the environment:
# threads, OPENBLAS_CORETYPE pinned or unset (auto-detected), glibc malloc without mmap.
#   python3 worker.py      (requests on stdin, replies on stdout, one JSON object per line)
import sys

from common import serve


def factories():
    # Imported lazily: a worker builds one case only, and the model files are large.
    def lazy(module, name):
        def make(spec):
            return getattr(__import__(module), name)(spec)

        return make

    return {
        "matmul": lazy("engine", "matmul"),
        "conv": lazy("engine", "conv"),
        "vit-fwd": lazy("engine", "vit_fwd"),
        "vit-fwd-bwd": lazy("engine", "vit_fwd_bwd"),
        "tiny-op": lazy("engine", "tiny"),
        "clip-vision": lazy("clip", "vision_case"),
        "clip-text": lazy("clip", "text_case"),
        "unet": lazy("diffusion", "unet_case"),
    }


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    serve(factories())
