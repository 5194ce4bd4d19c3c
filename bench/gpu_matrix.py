"""The feature matrix on a GPU: every diffusion task × feature, SD 1.5 and SDXL shapes, CUDA fp16.

    python bench/gpu_matrix.py                      # on a GPU: the real shapes, random weights
    python bench/gpu_matrix.py --tiny --device cpu  # the same cells on the test suite's tiny models

Prints, per cell, whether it works, refuses in a plain sentence or fails, its time and its peak GPU memory.
The cells are the ones the test suite runs on both CPU backends (tests/matrix/cells.py). The base models are
the real architectures with random weights (../shared/bench/arch.py; speed and memory do not depend on the
values); the ControlNets, IP-Adapters and LoRAs beside them are built by tests/tiny_models.py for each base
(ControlNets of the base's own shape, small image encoders). Never look at these images.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "shared" / "bench"))

import torch  # noqa: E402

from studio.core.cache import ModelCache  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.errors import InvalidRequest  # noqa: E402
from studio.core.presets import load_presets  # noqa: E402
from studio.core.requests import parse_request  # noqa: E402
from tests.matrix.cells import FAMILIES, FEATURES, TASKS, values_for, write_matrix_presets  # noqa: E402
from tests.tiny_models import (  # noqa: E402
    build_controlnet,
    build_ip_adapter,
    build_lora,
    build_sd,
    build_sdxl,
    write_adapter_presets,
)

LORAS = {"sd": "lora-sd", "sdxl": "lora-sdxl"}
# The families this script builds real shapes of; FLUX.1's and SD 3.5's cells run in the test suite's matrix
# on tiny models (their real shapes want 40 GB of weights; bench/cache_bench.py is where FLUX.1 is timed).
BUILT_FAMILIES = [family for family in FAMILIES if family in LORAS]


def build_bases(work: Path, tiny: bool) -> dict[str, Path]:
    """SD 1.5's and SDXL's shapes (fp16 on disk, as a GPU loads them), or the tiny test models."""
    bases = {"sd": work / "sd", "sdxl": work / "sdxl"}
    for family, folder in bases.items():
        if (folder / "model_index.json").exists():
            continue  # --work: built by an earlier run
        if tiny:
            (build_sd if family == "sd" else build_sdxl)(folder)
            continue
        from arch import sd15, sdxl

        torch.manual_seed(0)
        (sd15 if family == "sd" else sdxl)().to(dtype=torch.float16).save_pretrained(folder)
    return bases


def first_cross_attention_up_block(base: Path) -> str:
    import json

    config = json.loads((base / "unet" / "config.json").read_text())
    index = next(i for i, kind in enumerate(config["up_block_types"]) if "CrossAttn" in kind)
    return f"up_blocks.{index}.attentions.0"


def build_side_models(work: Path, bases: dict[str, Path]) -> tuple[Path, Path]:
    """Presets naming a Canny ControlNet and an IP-Adapter for each base, and a LoRA folder."""
    adapters, loras = work / "adapters", work / "loras"
    architecture = {"sd": "sd1", "sdxl": "sdxl"}
    built = {
        architecture[family]: (
            build_controlnet(base, adapters / f"controlnet-{family}"),
            build_ip_adapter(base, adapters / f"ip-adapter-{family}"),
            first_cross_attention_up_block(base),
        )
        for family, base in bases.items()
    }
    for family, base in bases.items():
        build_lora(base, loras / f"{LORAS[family]}.safetensors", text_encoders=True)
    return write_adapter_presets(work / "adapter-presets", built), loras


def run_cell(
    cache: ModelCache, presets, task: str, values: dict, device: torch.device, loras: Path
) -> tuple[str, float, float]:
    """(outcome, seconds, peak GPU GiB) of one cell."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        pipeline = TASKS[task](cache, presets, loras_dir=loras)
        results = pipeline(parse_request(pipeline.request_type, values))
        outcome = f"works ({results[0].parameters.extras.get('backend', 'torch')})"
    except InvalidRequest as refusal:
        outcome = f"refuses: {refusal}"
    except Exception as error:  # noqa: BLE001 (the table says which cells fail, and how)
        outcome = f"ERROR {type(error).__name__}: {str(error)[:80]}"
        traceback.print_exc(file=sys.stderr)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    return outcome, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--tiny", action="store_true", help="the test suite's tiny models (checks the script)"
    )
    parser.add_argument("--work", help="keep the built models in this folder, and reuse them")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--families", nargs="*", default=BUILT_FAMILIES, choices=BUILT_FAMILIES)
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu-matrix-"))
    started = time.perf_counter()
    bases = build_bases(work, args.tiny)
    adapter_presets, loras = build_side_models(work, bases)
    side = {"sd": 64, "sdxl": 64} if args.tiny else {"sd": 512, "sdxl": 1024}
    presets = load_presets(write_matrix_presets(work / "presets", adapter_presets, bases, side))
    device_config = resolve_device(args.device)
    cache = ModelCache.for_machine(device_config, offline=True)
    name = torch.cuda.get_device_name() if device_config.device.type == "cuda" else args.device
    print(f"built in {time.perf_counter() - started:.0f} s; {name}, {device_config.dtype_name}, "
          f"backend {cache.backend}", flush=True)  # fmt: skip
    print(f"{'family':6} {'task':17} {'feature':12} {'s':>7} {'peak GiB':>9}  outcome", flush=True)
    for family in args.families:
        for task in args.tasks:
            for feature in FEATURES:
                values = values_for(task, feature, family, side[family], LORAS)
                outcome, seconds, peak = run_cell(cache, presets, task, values, device_config.device, loras)
                print(f"{family:6} {task:17} {feature:12} {seconds:7.2f} {peak:9.2f}  {outcome}", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    if not args.work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
