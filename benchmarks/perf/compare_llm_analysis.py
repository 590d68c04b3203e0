"""Time llm-analysis (PyPI: llm-analysis) on the configuration analyze_speed.py uses, for ratios.

Run it with an interpreter that has llm-analysis installed (it is not an llmeff dependency):
    python3 -m venv /tmp/la && /tmp/la/bin/pip install llm-analysis
    /tmp/la/bin/python benchmarks/perf/compare_llm_analysis.py
Llama-2-7B, A100 SXM 80GB, batch 8, 1024 prompt + 128 generated tokens, fp16 (w16a16e16).
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import time


def main() -> None:
    from llm_analysis.analysis import infer

    args = dict(model_name="NousResearch_Llama-2-7b-hf", gpu_name="a100-sxm-80gb", dtype_name="w16a16e16",
                batch_size_per_gpu=8, seq_len=1024, num_tokens_to_generate=128, log_level="ERROR")
    logging.disable(logging.CRITICAL)
    infer(**args)  # warm up: configs read, modules imported
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(200):
            infer(**args)
        samples.append((time.perf_counter() - start) / 200)
    print(f"llm-analysis warm infer():  {statistics.median(samples) * 1e3:.3f} ms")
    argv = [sys.executable, "-m", "llm_analysis.analysis", "infer"] + [f"--{k}={v}" for k, v in args.items()]
    cold = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        cold.append(time.perf_counter() - start)
    print(f"llm-analysis cold process:  {statistics.median(cold):.3f} s")


if __name__ == "__main__":
    main()
