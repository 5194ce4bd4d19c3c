"""Is SANA-Sprint usable on a CPU? The studio's text to image with SANA-Sprint 0.6B's shapes, on 2 cores.

    python bench/sana_cpu.py --work /tmp/sana-bench            # each part apart (builds the model once)
    python bench/sana_cpu.py --work /tmp/sana-bench --studio   # whole images through the studio
    python bench/sana_cpu.py --tiny [--studio]                 # the same code paths on the tiny test model

SANA-Sprint 0.6B (28 linear-attention blocks, 1152 wide), its Gemma 2 2B text encoder and the DC-AE
f32c32 autoencoder, with random weights of the real shapes (diffusers' conversion script's configs), saved
in diffusers layout and loaded back by path through the studio's own loading code: what a user who picks
the `sana-sprint-0.6b` preset runs (torch: OpenVINO does not run transformer families). Its pipeline works
at 1024² (sizes are binned to its trained ones). By default each part is timed apart (text encoder, one
step, the decode); `--studio` prints per variant (1 and 2 steps, interleaved round by round as
../shared/cpu-measurements.md says) the median seconds an image, and the process's peak RSS. Name the
CPU's instruction set with every figure.

Measured on 2 cores of an AMD EPYC with AVX-512 and AVX512-BF16 (fp32, 24 GB RAM): load 18 s, text encoder
9.9 s (300 tokens), a step 7.6 s, the decode 56 s (4.5 GiB peak alone): about 81 s for a two-step image.
Through the studio the first image had not finished after 8 minutes: the models in fp32 (~14 GB) and the
decode's activations filled the RAM. So SANA-Sprint is documented, not offered, for CPUs.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.text_to_image import TextToImagePipeline  # noqa: E402
from studio.core.cache import ModelCache  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.presets import load_presets  # noqa: E402
from studio.core.requests import parse_request  # noqa: E402
from studio.core.settings import DEFAULT_PRESETS_DIR  # noqa: E402

PROMPT = "a lighthouse on a granite cliff at dusk, waves breaking in white foam, gulls"


def word_tokenizer() -> Any:
    """A tokenizer of whole words (a token per word or mark) over the words the runs read: Gemma's own
    tokenizer (not on this machine) makes about as many tokens of English, so the text encoder reads a
    prompt of the real length (its instruction preamble included)."""
    import inspect

    from diffusers import SanaSprintPipeline
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    preamble = inspect.signature(SanaSprintPipeline.__call__).parameters["complex_human_instruction"].default
    words = sorted(set(re.findall(r"\w+|[^\w\s]+", "\n".join([*preamble, PROMPT]))))
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    vocab = {word: index for index, word in enumerate([*specials, *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


def build_real_shapes(folder: Path) -> Path:
    """SANA-Sprint 0.6B at 1024px with random weights: transformer, Gemma 2 2B's decoder, DC-AE f32c32."""
    import torch
    from diffusers import AutoencoderDC, SanaSprintPipeline, SanaTransformer2DModel, SCMScheduler
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    transformer = SanaTransformer2DModel(
        in_channels=32, out_channels=32, num_attention_heads=36, attention_head_dim=32, num_layers=28,
        num_cross_attention_heads=16, cross_attention_head_dim=72, cross_attention_dim=1152,
        caption_channels=2304, mlp_ratio=2.5, sample_size=32, patch_size=1, qk_norm="rms_norm_across_heads",
        guidance_embeds=True,
    )  # fmt: skip
    text_encoder = Gemma2Model(
        Gemma2Config(
            vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
            num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=8192,
            pad_token_id=0, eos_token_id=1, bos_token_id=2,
        )
    )  # fmt: skip
    vae = AutoencoderDC(
        latent_channels=32,
        encoder_block_types=("ResBlock",) * 3 + ("EfficientViTBlock",) * 3,
        decoder_block_types=("ResBlock",) * 3 + ("EfficientViTBlock",) * 3,
        encoder_block_out_channels=(128, 256, 512, 512, 1024, 1024),
        decoder_block_out_channels=(128, 256, 512, 512, 1024, 1024),
        encoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)),
        decoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)),
        encoder_layers_per_block=(2, 2, 2, 3, 3, 3),
        decoder_layers_per_block=(3, 3, 3, 3, 3, 3),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        scaling_factor=0.41407,
    )
    pipe = SanaSprintPipeline(
        tokenizer=word_tokenizer(), text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=SCMScheduler(prediction_type="trigflow", sigma_data=0.5),
    )  # fmt: skip
    pipe.to(torch.bfloat16).save_pretrained(folder)  # as the hub's weights are: bf16
    return folder


def time_parts(model: Path, size: int) -> None:
    """Each part of an image apart, in one process: the text encoder on the prompt (its instruction
    preamble included), one transformer step and the autoencoder's decode at `size`²."""
    import torch
    from diffusers import SanaSprintPipeline

    started = time.perf_counter()
    pipe = SanaSprintPipeline.from_pretrained(model, dtype=torch.float32)  # the studio's CPU precision
    print(f"load: {time.perf_counter() - started:.1f} s")
    side = size // 32
    with torch.no_grad():
        started = time.perf_counter()
        embeddings, mask = pipe.encode_prompt(PROMPT, device="cpu")[:2]
        print(f"text encoder: {time.perf_counter() - started:.1f} s ({embeddings.shape[1]} tokens)")
        latents = torch.randn(1, pipe.transformer.config.in_channels, side, side)
        started = time.perf_counter()
        pipe.transformer(latents, encoder_hidden_states=embeddings, encoder_attention_mask=mask,
                         guidance=torch.tensor([4.5]), timestep=torch.tensor([1.0]))  # fmt: skip
        print(f"a transformer step at {size}²: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        pipe.vae.decode(torch.randn(1, pipe.vae.config.latent_channels, side, side))
        print(f"the decode at {size}²: {time.perf_counter() - started:.1f} s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, help="folder for the model (kept)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model instead of the real shapes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--studio", action="store_true", help="whole images through the studio, not parts")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sana-bench-"))
    model = work / ("tiny-sana-sprint" if args.tiny else "sana-sprint-0.6b")
    if not (model / "model_index.json").exists():
        started = time.perf_counter()
        if args.tiny:
            from tests.tiny_models import build_sana_sprint

            build_sana_sprint(model)
        else:
            build_real_shapes(model)
        print(f"built {model} in {time.perf_counter() - started:.0f} s")
    if not args.studio:
        time_parts(model, size=64 if args.tiny else 1024)
        return
    cache = ModelCache.for_machine(resolve_device("cpu"), offline=True)
    pipeline = TextToImagePipeline(cache, load_presets(DEFAULT_PRESETS_DIR))

    def one_image(steps: int) -> float:
        values = {"prompt": PROMPT, "model": str(model), "steps": steps, "seed": 7, "num_images": 1}
        started = time.perf_counter()
        [made] = pipeline(parse_request(pipeline.request_type, values))
        assert made.image.size == (1024, 1024) and made.parameters.extras["backend"] == "torch"
        return time.perf_counter() - started

    started = time.perf_counter()
    one_image(1)  # loads the model: not counted
    print(f"first image (loading included): {time.perf_counter() - started:.1f} s")
    variants = {"1 step": 1, "2 steps": 2}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, steps in variants.items():
            times[name].append(one_image(steps))
    for name, measured in times.items():
        print(f"{name}: median {statistics.median(measured):.2f} s an image at 1024² ({measured})")
    one, two = statistics.median(times["1 step"]), statistics.median(times["2 steps"])
    print(f"a step: {two - one:.2f} s; the rest (text encoder, decode): {2 * one - two:.2f} s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


if __name__ == "__main__":
    main()
