"""Tiny random models of each family in diffusers layout (SD, SDXL, FLUX.1, SD 3.5), and the models beside
them (ControlNets, IP-Adapters, a BLIP captioner), built offline.

The tests load these back by path through the studio's real loading code. Weights are random but seeded, so
a model built twice is the same model. Run `python -m tests.tiny_models FOLDER [sd|sdxl|flux|sd3]` to write
one for trying the studio by hand (`python app.py --model FOLDER`).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from diffusers import (
    AutoencoderDC,
    AutoencoderKL,
    AutoencoderKLFlux2,
    AutoencoderKLQwenImage,
    ControlNetModel,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    Flux2KleinPipeline,
    Flux2Transformer2DModel,
    FluxFillPipeline,
    FluxKontextPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    QwenImageEditPipeline,
    QwenImageEditPlusPipeline,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
    SanaSprintPipeline,
    SanaTransformer2DModel,
    SCMScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    Gemma2Config,
    Gemma2Model,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3Model,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)


def _bytes_to_unicode() -> list[str]:
    """The printable stand-ins CLIP's byte-level BPE uses for the 256 byte values."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_tokenizer(folder: Path) -> CLIPTokenizer:
    """A character-level CLIP tokenizer: every byte is a token, no merges (no hub download)."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(folder)
    return tokenizer


VOCAB_SIZE = 514


def _tokenizer() -> CLIPTokenizer:
    with tempfile.TemporaryDirectory() as folder:
        return write_tokenizer(Path(folder))


def _text_config(**overrides) -> CLIPTextConfig:
    config = dict(
        bos_token_id=VOCAB_SIZE - 2,
        eos_token_id=VOCAB_SIZE - 1,
        pad_token_id=VOCAB_SIZE - 1,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=32,
    )
    config.update(overrides)
    return CLIPTextConfig(**config)


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=[16, 32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="leading",
        steps_offset=1,
    )


def build_sd(folder: Path, seed: int = 0) -> Path:
    """An SD 1.x-family pipeline (one CLIP text encoder) that makes 64x64 images by default."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    pipe = StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        tokenizer=_tokenizer(),
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def build_sdxl(folder: Path, seed: int = 0) -> Path:
    """An SDXL-family pipeline (two text encoders, size conditioning) that makes 64x64 images by default."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop values + pooled text embedding
        cross_attention_dim=64,  # both text encoders' hidden states side by side
        norm_num_groups=8,
    )
    tokenizer = _tokenizer()
    pipe = StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        text_encoder_2=CLIPTextModelWithProjection(_text_config()),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
    )
    pipe.save_pretrained(folder)
    return folder


def _t5_tokenizer() -> T5TokenizerFast:
    """A character-level T5 tokenizer (a unigram vocabulary of single characters, with and without T5's
    word-start mark), made without SentencePiece files or a hub download."""
    chars = [chr(code) for code in range(33, 127)]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(char, -3.0) for char in chars] + [("\u2581" + char, -2.5) for char in chars]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=512)


def build_flux(folder: Path, seed: int = 0, *, kontext: bool = False, fill: bool = False) -> Path:
    """A FLUX.1-family pipeline (a transformer on packed latents, CLIP and T5, a 1-channel autoencoder that
    keeps the image's size) that makes 64x64 images by default; with `guidance_embeds`, as FLUX.1-dev.
    `kontext`: saved as an instruction-editing checkpoint (FLUX.1 Kontext has the same architecture);
    `fill`: as FLUX.1 Fill, whose transformer also takes the masked image's latents and the mask (both
    packed like the latents)."""
    torch.manual_seed(seed)
    tokenizer_2 = _t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=12 if fill else 4,  # 2x2 patches of the 1-channel latents (and of image and mask)
        out_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5's width
        pooled_projection_dim=32,  # CLIP's pooled embedding
        guidance_embeds=True,
        axes_dims_rope=[4, 4, 8],
    )
    pipe = (FluxKontextPipeline if kontext else FluxFillPipeline if fill else FluxPipeline)(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=CLIPTextModel(_text_config()),
        tokenizer=_tokenizer(),
        text_encoder_2=_t5(tokenizer_2),
        tokenizer_2=tokenizer_2,
        transformer=transformer,
        vae=_transformer_vae(latent_channels=1),
    )
    pipe.save_pretrained(folder)
    return folder


def _t5(tokenizer: T5TokenizerFast) -> T5EncoderModel:
    return T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        )
    )  # fmt: skip


def _transformer_vae(latent_channels: int) -> AutoencoderKL:
    """A one-block autoencoder (latents at the image's size) that says 64 px is its native size."""
    return AutoencoderKL(
        sample_size=64,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )


def build_sd3(folder: Path, seed: int = 0) -> Path:
    """An SD 3.5-family pipeline (a transformer, two CLIPs with projections and T5, flow matching) that
    makes 64x64 images by default."""
    torch.manual_seed(seed)
    tokenizer_3 = _t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,  # as SD 3.5's: a quarter of the tokens patch 1 would make
        in_channels=16,  # SD 3.5's latent channels, which its inpainting pipeline checks for
        out_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,  # T5's width
        pooled_projection_dim=64,  # both CLIPs' projections side by side
        pos_embed_max_size=192,  # as SD 3.5's
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_transformer_vae(latent_channels=16),
        text_encoder=CLIPTextModelWithProjection(_text_config()),
        tokenizer=_tokenizer(),
        text_encoder_2=CLIPTextModelWithProjection(_text_config()),
        tokenizer_2=_tokenizer(),
        text_encoder_3=_t5(tokenizer_3),
        tokenizer_3=tokenizer_3,
    )
    pipe.save_pretrained(folder)
    return folder


# The chat layout Qwen3's tokenizer wraps a prompt in (Z-Image encodes the prompt as a user's message)
QWEN_CHAT = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _byte_level_tokenizer(specials: list[str]) -> Tokenizer:
    """A byte-level BPE tokenizer with no merges (a token per byte) and `specials` first, made without a
    hub download."""
    vocab = {
        token: index for index, token in enumerate([*specials, *sorted(pre_tokenizers.ByteLevel.alphabet())])
    }
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(specials)
    return tokenizer


def _qwen_tokenizer(*, vision: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with Qwen's chat markers (with `vision`, Qwen2.5-VL's image markers too)."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if vision:
        specials += ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    return PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_tokenizer(specials), pad_token="<|endoftext|>", eos_token="<|im_end|>",
        chat_template=QWEN_CHAT, model_max_length=512,
    )  # fmt: skip


def build_zimage(folder: Path, seed: int = 0) -> Path:
    """A Z-Image pipeline (a single-stream transformer, a Qwen3 text encoder read at its second-last layer,
    flow matching, an autoencoder at the image's size) that makes 64x64 images by default."""
    torch.manual_seed(seed)
    tokenizer = _qwen_tokenizer()
    text_encoder = Qwen3Model(
        Qwen3Config(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=1024,
            pad_token_id=0,
        )
    )  # fmt: skip
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=32, n_layers=1, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, cap_feat_dim=32, axes_dims=[4, 6, 6], axes_lens=[1024, 512, 512],
    )  # fmt: skip
    ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_transformer_vae(latent_channels=4),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    ).save_pretrained(folder)
    return folder


def build_flux2_klein(folder: Path, seed: int = 0) -> Path:
    """A FLUX.2 [klein] pipeline (a transformer on 2x2-patchified latents, Qwen3 read at three of its 28
    layers, flow matching, FLUX.2's autoencoder at the image's size) that makes 64x64 images by default;
    distilled, as the 4-step klein checkpoints are."""
    torch.manual_seed(seed)
    tokenizer = _qwen_tokenizer()
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=len(tokenizer), hidden_size=16, intermediate_size=16, num_hidden_layers=28,
            num_attention_heads=2, num_key_value_heads=2, head_dim=8, max_position_embeddings=1024,
            pad_token_id=0,
        )
    )  # fmt: skip
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=48,  # three layers of the text encoder, side by side
        timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4], guidance_embeds=False,
    )  # fmt: skip
    vae = AutoencoderKLFlux2(
        sample_size=64, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",), block_out_channels=(4,), layers_per_block=1, latent_channels=1,
        norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
    )  # fmt: skip
    Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=True,
    ).save_pretrained(folder)
    return folder


def _gemma_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with Gemma's markers (a prompt starts with <bos>)."""
    tokenizer = _byte_level_tokenizer(["<pad>", "<eos>", "<bos>", "<unk>"])
    bos = ("<bos>", tokenizer.token_to_id("<bos>"))
    tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[bos])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
        unk_token="<unk>", model_max_length=4096,
    )  # fmt: skip


def build_sana_sprint(folder: Path, seed: int = 0) -> Path:
    """A SANA-Sprint pipeline (a linear-attention transformer taking its guidance as an input, Gemma 2 as
    the text encoder, a 32x deep-compression autoencoder, the SCM sampler). Its pipeline bins every size
    to the 1024-pixel family it was trained at and resizes the image back."""
    torch.manual_seed(seed)
    tokenizer = _gemma_tokenizer()
    text_encoder = Gemma2Model(
        Gemma2Config(
            vocab_size=len(tokenizer), hidden_size=16, intermediate_size=16, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=4096,
            pad_token_id=0, eos_token_id=1, bos_token_id=2,
        )
    )  # fmt: skip
    transformer = SanaTransformer2DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8, num_layers=1,
        num_cross_attention_heads=2, cross_attention_head_dim=8, cross_attention_dim=16, caption_channels=16,
        sample_size=32, patch_size=1, guidance_embeds=True, qk_norm="rms_norm_across_heads",
    )  # fmt: skip
    blocks = 6  # five halvings: latents at a 32nd of the image's side
    vae = AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2, encoder_block_types=("ResBlock",) * blocks,
        decoder_block_types=("ResBlock",) * blocks, encoder_block_out_channels=(4,) * blocks,
        decoder_block_out_channels=(4,) * blocks, encoder_layers_per_block=(1,) * blocks,
        decoder_layers_per_block=(1,) * blocks, encoder_qkv_multiscales=((),) * blocks,
        decoder_qkv_multiscales=((),) * blocks, scaling_factor=0.41407,
    )  # fmt: skip
    SanaSprintPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=SCMScheduler(),
    ).save_pretrained(folder)
    return folder


def build_qwen_image(
    folder: Path, seed: int = 0, *, edit: bool = False, plus: bool = False, channels: int = 4
) -> Path:
    """A Qwen-Image pipeline (a dual-stream transformer on packed latents, Qwen2.5-VL's language model as
    the text encoder, flow matching, its causal-video autoencoder at 4 latent `channels`, or the real one's
    16) that makes 64x64 images by default. `edit`: as Qwen-Image-Edit, whose Qwen2.5-VL also sees the
    image (through its processor) and whose autoencoder here works at an eighth of the image's side (the
    pipeline reads the image at a megapixel); `plus` too: as Qwen-Image-Edit-Plus, which reads several."""
    edit = edit or plus
    torch.manual_seed(seed)
    tokenizer = _qwen_tokenizer(vision=edit)
    text = dict(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192 if edit else 1024,
        rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},  # halves of the 8-wide heads
    )  # fmt: skip
    vision = dict(
        depth=1, hidden_size=32, intermediate_size=37, num_heads=2, out_hidden_size=32,
        fullatt_block_indexes=[0],
    )  # fmt: skip
    markers = ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"), (
        "vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")  # fmt: skip
    token_ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in markers} if edit else {}
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config=text, vision_config=vision, vocab_size=len(tokenizer), hidden_size=32,
            bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            **token_ids,
        )
    )  # fmt: skip
    halvings = 3 if edit else 1
    components = dict(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=AutoencoderKLQwenImage(
            base_dim=8,
            z_dim=channels,
            dim_mult=[1] * (halvings + 1),
            num_res_blocks=1,
            temperal_downsample=[False, True, True][:halvings],
            latents_mean=[0.0] * channels,
            latents_std=[1.0] * channels,
        ),  # fmt: skip
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=QwenImageTransformer2DModel(
            patch_size=2,
            in_channels=channels * 4,
            out_channels=channels,
            num_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            axes_dims_rope=(4, 6, 6),
        ),  # fmt: skip
    )
    if edit:
        processor = Qwen2VLProcessor(
            image_processor=Qwen2VLImageProcessor(),
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(),
        )
        editor = QwenImageEditPlusPipeline if plus else QwenImageEditPipeline
        editor(**components, processor=processor).save_pretrained(folder)
    else:
        QwenImagePipeline(**components).save_pretrained(folder)
    return folder


def build_sd_inpaint(folder: Path, seed: int = 1) -> Path:
    """An SD 1.x-family inpainting checkpoint: a 9-channel UNet (latents, mask, masked-image latents)."""
    torch.manual_seed(seed)
    build_sd(folder, seed)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    config = dict(unet.config)
    config["in_channels"] = 9
    UNet2DConditionModel.from_config(config).save_pretrained(folder / "unet")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionInpaintPipeline"
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def build_controlnet(base: Path, folder: Path, seed: int = 2) -> Path:
    """A ControlNet for the model at `base` (same architecture, random weights)."""
    torch.manual_seed(seed)
    # As many stride-2 steps in the conditioning encoder as the VAE has: the tiny VAE shrinks images 2×.
    vae_blocks = len(json.loads((base / "vae" / "config.json").read_text())["block_out_channels"])
    controlnet = ControlNetModel.from_unet(
        UNet2DConditionModel.from_pretrained(base / "unet"),
        conditioning_embedding_out_channels=(16, 32, 96, 256)[:vae_blocks],
    )
    controlnet.save_pretrained(folder)
    return folder


IMAGE_EMBED_DIM = 24


TINY_IMAGE_ENCODER = CLIPVisionConfig(
    hidden_size=32,
    intermediate_size=37,
    num_attention_heads=4,
    num_hidden_layers=2,
    image_size=32,
    patch_size=8,
    projection_dim=IMAGE_EMBED_DIM,
)


def _image_attention_weights(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """An IP-Adapter's keys and values for the image tokens, one pair per cross-attention layer, numbered
    1, 3, 5, ... in the order of `attn_processors`, as diffusers reads them."""
    cross_dim = unet.config.cross_attention_dim
    cross_attention = [name for name in unet.attn_processors if name.endswith("attn2.processor")]
    weights = {}
    for position, name in enumerate(cross_attention):
        hidden = unet.get_submodule(name.removesuffix(".processor")).to_k.out_features
        weights[f"ip_adapter.{2 * position + 1}.to_k_ip.weight"] = torch.randn(hidden, cross_dim) * 0.2
        weights[f"ip_adapter.{2 * position + 1}.to_v_ip.weight"] = torch.randn(hidden, cross_dim) * 0.2
    return weights


def build_ip_adapter(
    base: Path,
    folder: Path,
    seed: int = 3,
    encoder_config: CLIPVisionConfig = TINY_IMAGE_ENCODER,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """An IP-Adapter for the model at `base`, laid out like h94/IP-Adapter: a .safetensors file with
    `image_proj.*` and `ip_adapter.{n}.to_{k,v}_ip.weight` keys, and a CLIP vision encoder beside it.

    Tiny by default; with the real encoder's config it has the real shapes (for benchmarks)."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    cross_dim = unet.config.cross_attention_dim
    embed_dim = encoder_config.projection_dim
    weights = {
        "image_proj.proj.weight": torch.randn(cross_dim * 4, embed_dim) * 0.2,
        "image_proj.proj.bias": torch.zeros(cross_dim * 4),
        "image_proj.norm.weight": torch.ones(cross_dim),
        "image_proj.norm.bias": torch.zeros(cross_dim),
    }
    weights |= _image_attention_weights(unet)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype) for k, v in weights.items()}, str(folder / "models" / "ip-adapter.safetensors"))
    encoder = CLIPVisionModelWithProjection(encoder_config).to(dtype)
    encoder.save_pretrained(folder / "models" / "image_encoder")
    return folder


def build_ip_adapter_plus(base: Path, folder: Path, seed: int = 6) -> Path:
    """An IP-Adapter Plus for the model at `base` (a Resampler over the image encoder's patch features),
    in h94/IP-Adapter's file layout: diffusers' projection, its keys written back the way the original
    files name them, which diffusers' converter reads."""
    from diffusers.models.embeddings import IPAdapterPlusImageProjection
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    cross_dim = unet.config.cross_attention_dim
    projection = IPAdapterPlusImageProjection(
        embed_dims=TINY_IMAGE_ENCODER.hidden_size,
        output_dims=cross_dim,
        hidden_dims=64,
        heads=1,
        num_queries=4,
    )
    original = {}
    for name, value in projection.state_dict().items():
        if ".attn.to_k." in name:  # the original keeps keys and values in one layer
            value = torch.cat([value, projection.state_dict()[name.replace("to_k", "to_v")]])
            name = name.replace("attn.to_k", "0.to_kv")
        elif ".attn.to_v." in name:
            continue
        for diffusers_name, original_name in PLUS_KEYS:
            name = name.replace(diffusers_name, original_name)
        original[f"image_proj.{name}"] = value.contiguous()
    original |= _image_attention_weights(unet)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    save_file(original, str(folder / "models" / "ip-adapter-plus.safetensors"))
    CLIPVisionModelWithProjection(TINY_IMAGE_ENCODER).save_pretrained(folder / "models" / "image_encoder")
    return folder


PLUS_KEYS = [  # diffusers' names of a Resampler's layers -> the original file's
    (".ln0.", ".0.norm1."),
    (".ln1.", ".0.norm2."),
    (".attn.to_q.", ".0.to_q."),
    (".attn.to_out.0.", ".0.to_out."),
    (".ff.0.", ".1.0."),
    (".ff.1.net.0.proj.", ".1.1."),
    (".ff.1.net.2.", ".1.3."),
]


def write_adapter_presets(
    folder: Path, adapters: dict[str, tuple[Path, Path, str]], plus: dict[str, Path] | None = None
) -> Path:
    """The shipped presets in `folder`, with a Canny ControlNet and an IP-Adapter per architecture
    (`adapters`: architecture -> (ControlNet folder, IP-Adapter folder, style block)), IP-Adapter Plus
    folders for the architectures in `plus`, and a tiny FLUX.1 Redux (kept in `folder`/redux)."""
    from studio.core.settings import DEFAULT_PRESETS_DIR

    folder.mkdir(parents=True, exist_ok=True)
    for preset_file in DEFAULT_PRESETS_DIR.glob("*.json"):
        shutil.copy(preset_file, folder)
    controlnets, ip_adapters = [], []
    for architecture, (controlnet, adapter, style_block) in adapters.items():
        controlnets.append(
            {
                "name": f"canny-{architecture}",
                "architecture": architecture,
                "structure": "canny",
                "source": str(controlnet),
            }
        )
        ip_adapters.append(
            {
                "name": f"ip-adapter-{architecture}",
                "architecture": architecture,
                "source": str(adapter),
                "weight": "models/ip-adapter.safetensors",
                "image_encoder": "models/image_encoder",
                "style_blocks": [style_block],
            }
        )
    for architecture, adapter in (plus or {}).items():
        ip_adapters.append(
            {
                "name": f"ip-adapter-plus-{architecture}",
                "architecture": architecture,
                "purpose": "object",
                "source": str(adapter),
                "weight": "models/ip-adapter-plus.safetensors",
                "image_encoder": "models/image_encoder",
            }
        )
    shipped = json.loads((DEFAULT_PRESETS_DIR / "controlnets.json").read_text())
    (folder / "controlnets.json").write_text(json.dumps({**shipped, "controlnets": controlnets}))
    (folder / "ip_adapters.json").write_text(json.dumps({"ip_adapters": ip_adapters}))
    return write_redux_presets(folder, build_redux(folder / "redux"))


def build_tiny_autoencoder(folder: Path, seed: int = 4) -> Path:
    """A TAESD-like `AutoencoderTiny` for the tiny models' latents (4 channels, scale 2), in diffusers
    layout: the fast decoder and the live previews' decoder of the tests."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
    ).save_pretrained(folder)
    return folder


def write_decoder_presets(folder: Path, autoencoder: Path) -> Path:
    """`folder`'s decoders.json with `autoencoder` as the fast decoder of every family that has one (the
    4-channel ones; a 16-channel family's preset is its preview map alone)."""
    decoders = json.loads((folder / "decoders.json").read_text())
    for decoder in decoders["decoders"]:
        if "source" in decoder:
            decoder["source"] = str(autoencoder)
    (folder / "decoders.json").write_text(json.dumps(decoders))
    return folder


# Whole words, so the tiny captioner's random captions decode to words; [DEC] starts BLIP's decoder.
CAPTIONER_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
# fmt: off
CAPTIONER_WORDS = [
    "a", "an", "the", "of", "in", "on", "with", "and", "at", "by", "near", "under",
    "photograph", "painting", "illustration", "close", "-", "up", "drawing",
    "cat", "dog", "man", "woman", "child", "tree", "house", "car", "boat",
    "red", "blue", "green", "yellow", "sitting", "standing", "walking",
    "street", "sky", "water", "table", "window", "field", "mountain", "sunset",
]
# fmt: on


def build_captioner(folder: Path, seed: int = 5) -> Path:
    """A tiny BLIP captioner (vision and text), random weights, with a processor whose word-level BERT
    tokenizer is written here from a hand-made vocabulary (no hub download), laid out as
    Salesforce/blip-image-captioning-* is: `BlipForConditionalGeneration` and `BlipProcessor` files."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = CAPTIONER_SPECIAL_TOKENS + CAPTIONER_WORDS
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(vocab_file), bos_token="[DEC]")
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor, tokenizer).save_pretrained(folder)

    torch.manual_seed(seed)
    text = dict(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=96,
        # The real checkpoints' roles: [DEC] begins a caption, [SEP] ends it, [PAD] pads.
        bos_token_id=vocab.index("[DEC]"),
        sep_token_id=vocab.index("[SEP]"),
        eos_token_id=vocab.index("[SEP]"),
        pad_token_id=vocab.index("[PAD]"),
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    model = BlipForConditionalGeneration(
        BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    )
    model.save_pretrained(folder)
    return folder


def write_captioner_presets(folder: Path, captioner: Path) -> Path:
    """`folder`'s captioners.json with `captioner` as the source of every captioner preset."""
    captioners = json.loads((folder / "captioners.json").read_text())
    for preset in captioners["captioners"]:
        preset["source"] = str(captioner)
    (folder / "captioners.json").write_text(json.dumps(captioners))
    return folder


def write_editor_presets(folder: Path, editor: Path) -> Path:
    """`folder`'s models.json with `editor` (a tiny Kontext) as the source of every editing model preset."""
    models = json.loads((folder / "models.json").read_text())
    for preset in models["models"]:
        if preset.get("edits"):
            preset["source"] = str(editor)
    (folder / "models.json").write_text(json.dumps(models))
    return folder


def build_lora(base: Path, path: Path, seed: int = 3, *, text_encoders: bool = False) -> Path:
    """A LoRA for the tiny model at `base` (its UNet's or transformer's attention, and with `text_encoders`
    its CLIP text encoders' too), as a single `.safetensors` file in diffusers' LoRA layout for the
    model's family. Its weights are random, not zero, so it changes what the model makes."""
    from diffusers import DiffusionPipeline
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    pipe = DiffusionPipeline.from_pretrained(base)
    torch.manual_seed(seed)
    denoiser = "unet" if "unet" in pipe.components else "transformer"
    config = LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v"])
    pipe.components[denoiser].add_adapter(config)
    layers = {f"{denoiser}_lora_layers": get_peft_model_state_dict(pipe.components[denoiser])}
    if text_encoders:
        for name in ("text_encoder", "text_encoder_2"):
            if isinstance(pipe.components.get(name), CLIPTextModel | CLIPTextModelWithProjection):
                text_config = LoraConfig(r=4, init_lora_weights=False, target_modules=["q_proj", "v_proj"])
                encoder = inject_adapter_in_model(text_config, pipe.components[name])
                layers[f"{name}_lora_layers"] = get_peft_model_state_dict(encoder)
    type(pipe).save_lora_weights(path.parent, weight_name=path.name, **layers)
    return path


def build_gguf_transformer(base: Path, path: Path, *, names: dict[str, str] | None = None) -> Path:
    """The transformer of the tiny model at `base` as a GGUF file, as city96 and others quantize them:
    its matrices in Q8_0 (32-value blocks, one scale each), its vectors in F32. Tensor names are diffusers'
    own; `names` renames some (to an original layout's, whose names tell diffusers which model it is)."""
    import gguf
    from diffusers import AutoModel

    transformer = AutoModel.from_pretrained(str(base), subfolder="transformer")
    writer = gguf.GGUFWriter(str(path), "tiny")
    for name, tensor in transformer.state_dict().items():
        values = tensor.float().numpy()
        name = (names or {}).get(name, name)
        if values.ndim == 2 and values.shape[-1] % 32 == 0:
            quantized = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(
                name, quantized, raw_shape=quantized.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0
            )
        else:
            writer.add_tensor(name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build_redux(folder: Path, seed: int = 8) -> Path:
    """FLUX.1 Redux's image side for the tiny FLUX.1 models: a one-layer SigLIP on 32² images (16 patches,
    so 16 tokens an image) and an embedder to T5's width (32), saved as diffusers' FluxPriorReduxPipeline
    with no text encoders, as the hub's is."""
    from diffusers import FluxPriorReduxPipeline
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    encoder = SiglipVisionModel(
        SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8)
    )  # fmt: skip
    FluxPriorReduxPipeline(
        image_encoder=encoder,
        feature_extractor=SiglipImageProcessor(size={"height": 32, "width": 32}),
        image_embedder=ReduxImageEncoder(redux_dim=16, txt_in_features=32),
    ).save_pretrained(folder)
    return folder


def write_redux_presets(folder: Path, redux: Path) -> Path:
    """The presets in `folder` with the tiny Redux at `redux` as FLUX.1's."""
    entry = {"name": "tiny-redux", "family": "flux", "source": str(redux)}
    (folder / "redux.json").write_text(json.dumps({"redux": [entry]}))
    return folder


def write_tiny_presets(model: Path, folder: Path, family: str) -> Path:
    """The shipped presets in `folder`, with a tiny Canny ControlNet and IP-Adapter (and, for SD, an
    IP-Adapter Plus) for the tiny model at `model`, kept in `folder`/adapters, and a tiny FLUX.1 Redux:
    Blend, style references, --oref and diffusion style transfer then run offline too."""
    adapters = folder / "adapters"
    architecture = "sdxl" if family == "sdxl" else "sd1"
    built = {
        architecture: (
            build_controlnet(model, adapters / "controlnet"),
            build_ip_adapter(model, adapters / "ip-adapter"),
            "up_blocks.0.attentions.0",  # the tiny UNets' one cross-attention up block
        )
    }
    plus = (
        {} if family == "sdxl" else {architecture: build_ip_adapter_plus(model, adapters / "ip-adapter-plus")}
    )
    return write_adapter_presets(folder, built, plus)


BUILDERS = {
    "sd": build_sd,
    "sdxl": build_sdxl,
    "flux": build_flux,
    "sd3": build_sd3,
    "zimage": build_zimage,
    "qwen": build_qwen_image,
    "flux2": build_flux2_klein,
    "sana": build_sana_sprint,
}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tests.tiny_models",
        description="Write a tiny random Stable Diffusion model in diffusers layout, to try the studio "
        "without downloads: python app.py --model FOLDER (it makes 64x64 noise, fast).",
    )
    parser.add_argument("folder", type=Path, help="where to write the model (a new or empty folder)")
    parser.add_argument("family", nargs="?", choices=list(BUILDERS), default="sd", help="default: sd")
    parser.add_argument(
        "--presets",
        type=Path,
        metavar="FOLDER",
        help="also write presets with a tiny ControlNet and IP-Adapter for it (then: --presets FOLDER)",
    )
    args = parser.parse_args(argv)
    for folder in (args.folder, args.presets):
        if folder is not None and folder.exists() and any(folder.iterdir()):
            parser.error(f"{folder} is not empty: give a new or empty folder")
    BUILDERS[args.family](args.folder)
    print(f"wrote a tiny {args.family} model to {args.folder}")
    if args.presets is not None:
        if args.family not in {"sd", "sdxl"}:
            parser.error("--presets writes ControlNet and IP-Adapter presets, which are for sd and sdxl")
        write_tiny_presets(args.folder, args.presets, args.family)
        print(f"wrote presets with a tiny ControlNet and IP-Adapter for it to {args.presets}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
