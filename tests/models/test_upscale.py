import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from pipelines.parts.tiling import tile_grid
from pipelines.upscale import LANCZOS, UpscalePipeline, UpscaleRequest
from studio.core.errors import InvalidRequest, RunCancelled
from studio.core.metadata import GenerationParameters, read_parameters, save_png
from studio.core.requests import parse_request
from studio.ui.upscale_tab import size_settings


@pytest.fixture
def upscale(cache, presets, tmp_path):
    return UpscalePipeline(cache, presets, upscalers_dir=tmp_path / "upscalers")


def photo(size: int = 48) -> Image.Image:
    """A real photograph (scikit-image ships it): the astronaut's face, reduced to a small square."""
    face = Image.fromarray(skimage.data.astronaut()[0:256, 128:384])
    return face.resize((size, size), Image.Resampling.LANCZOS)


def request(**values) -> UpscaleRequest:
    return parse_request(UpscaleRequest, {"image": photo(), **values})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_lanczos_scales_and_targets(upscale):
    [result] = upscale(request(upscaler=LANCZOS, scale=3))
    assert result.image.size == (144, 144)
    [wide] = upscale(request(upscaler=LANCZOS, image=photo().resize((60, 30)), target_width=240))
    assert wide.image.size == (240, 120), "one target side keeps the aspect ratio"
    [exact] = upscale(request(upscaler=LANCZOS, target_width=100, target_height=50))
    assert exact.image.size == (100, 50)


def test_a_recorded_size_gives_back_the_settings_that_remake_it():
    assert size_settings("48x32->144x96") == (3, 0, 0), "a scale of the tab's"
    assert size_settings("60x30->240x120") == (4, 0, 0)
    assert size_settings("60x30->100x50") == (None, 100, 50), "else the exact size"
    assert size_settings("not a size") == (None, None, None), "a damaged record: nothing"


def test_limits_and_unknown_upscalers_are_clear(upscale):
    with pytest.raises(InvalidRequest, match="would be 8800×400; the limit is 8192"):
        upscale(request(upscaler=LANCZOS, image=photo().resize((1100, 50)), scale=8))
    with pytest.raises(InvalidRequest, match="Target width must be between 0 and 8192"):
        request(target_width=8200)
    with pytest.raises(InvalidRequest, match="Unknown upscaler 'Magic'"):
        upscale(request(upscaler="Magic"))
    with pytest.raises(InvalidRequest, match="Scale must be between 1 and 8"):
        request(scale=9)
    with pytest.raises(InvalidRequest, match="Add an image first"):
        upscale(request(image=None))


def test_the_source_parameters_are_kept(upscale, tmp_path):
    made = GenerationParameters(
        task="txt2img",
        prompt="an astronaut",
        negative_prompt="",
        steps=20,
        sampler="Euler",
        guidance_scale=6,
        seed=1234,
        width=48,
        height=48,
        model="sd-1.5",
        user_prompt="an astronaut",
    )
    path = tmp_path / "made.png"
    save_png(photo(), path, made)
    with Image.open(path) as opened:
        opened.load()
        source = opened.copy()
    [result] = upscale(request(image=source, upscaler=LANCZOS, scale=2))
    params = result.parameters
    assert (params.task, params.prompt, params.seed, params.model) == (
        "upscale",
        "an astronaut",
        1234,
        "sd-1.5",
    )
    assert (params.width, params.height) == (96, 96)
    assert params.extras["upscaler"] == LANCZOS and params.extras["upscale"] == "48x48->96x96"
    assert params.extras["source_task"] == "txt2img"
    saved = tmp_path / "up.png"
    save_png(result.image, saved, params)
    assert read_parameters(saved) == params


def test_upscaler_names_list_packaged_user_and_lanczos(upscale, tmp_path):
    folder = tmp_path / "upscalers"
    folder.mkdir()
    (folder / "My-ESRGAN.safetensors").write_bytes(b"")
    (folder / "notes.txt").write_text("ignored")
    names = upscale.upscalers.names()
    assert "Real-ESRGAN x4plus" in names and "My-ESRGAN.safetensors" in names and names[-1] == LANCZOS
    assert "notes.txt" not in names


# -- Real-ESRGAN, from the weights the package ships --------------------------------------------------------


def test_real_esrgan_reaches_any_scale_with_one_model(upscale, cache):
    [four] = upscale(request(upscaler="Real-ESRGAN x4plus", tile_size=64))
    assert four.image.size == (192, 192)
    [two] = upscale(request(upscaler="Real-ESRGAN x4plus", scale=2, tile_size=64))
    assert two.image.size == (96, 96)
    assert cache.stats().weight_loads == 1, "the network is loaded once and kept in the cache"
    assert any(e.key.component == "upscaler" and e.size_bytes > 10_000_000 for e in cache.stats().entries)


def test_tiled_and_whole_image_results_agree_and_seams_do_not_show(upscale):
    image = photo(128)
    [whole] = upscale(request(image=image, upscaler="Real-ESRGAN AnimeVideo v3 x4", tile_size=1024))
    [tiled] = upscale(request(image=image, upscaler="Real-ESRGAN AnimeVideo v3 x4", tile_size=64))
    difference = np.abs(pixels(whole.image) - pixels(tiled.image)).max(axis=-1)
    # Tolerance: the mean difference stays under 1 level of 255 and the 99th percentile under 8. Tiles see
    # less context at their edges; the feathered overlap hides it.
    assert difference.mean() < 1.0 and np.percentile(difference, 99) < 8
    # Invisible seams: the image's gradient across the tile boundaries is no stronger than elsewhere.
    columns = np.abs(np.diff(pixels(tiled.image), axis=1)).mean(axis=(0, 2))
    boundaries = sorted({4 * box.left for box in tile_grid(128, 128, 64, 8)} - {0})
    assert columns[[b - 1 for b in boundaries]].mean() < 1.5 * columns.mean()


def test_stop_between_tiles(upscale):
    seen = []
    with pytest.raises(RunCancelled):
        upscale(
            request(upscaler="Real-ESRGAN AnimeVideo v3 x2", scale=2, tile_size=64, image=photo(160)),
            progress=lambda step, total: seen.append((step, total)),
            is_cancelled=lambda: len(seen) == 2,
        )
    assert seen == [(1, 9), (2, 9)]


def test_scales_beyond_the_network_take_several_passes(upscale):
    seen = []
    [result] = upscale(
        request(upscaler="Real-ESRGAN AnimeVideo v3 x2", scale=4, tile_size=64, image=photo(40)),
        progress=lambda step, total: seen.append(total),
    )
    assert result.image.size == (160, 160)
    assert seen[-1] == 1 + 4, "one tile at 40 px, then four at 80 px"


def test_creative_upscale_runs_a_tiled_diffusion_pass_on_the_cached_model(upscale, cache, tiny_sd):
    fast = upscale(request(upscaler=LANCZOS, scale=2))[0]
    [creative] = upscale(
        request(
            upscaler=LANCZOS, scale=2, mode="creative", model=str(tiny_sd), prompt="detail", steps=4, seed=3
        )
    )
    assert creative.image.size == (96, 96)
    assert not np.array_equal(pixels(creative.image), pixels(fast.image))
    params = creative.parameters
    assert params.model == str(tiny_sd) and params.seed == 3 and params.extras["creative_strength"] == 0.3
    assert cache.stats().loaded_sources == [str(tiny_sd)]


def test_network_memory_follows_the_tile_not_the_image(upscale):
    """Measured as the bytes of the largest tensor any layer of the network allocates during a run."""
    largest = []

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor):
            largest.append(output.numel() * output.element_size())

    def peak_bytes(size: int, tile: int) -> int:
        with upscale.cache.lease() as lease:
            network = upscale.upscalers.network(lease, "Real-ESRGAN AnimeVideo v3 x4")
        hooks = [m.register_forward_hook(record) for m in network.model.modules()]
        try:
            largest.clear()
            upscale(request(image=photo(size), upscaler="Real-ESRGAN AnimeVideo v3 x4", tile_size=tile))
        finally:
            for hook in hooks:
                hook.remove()
        return max(largest)

    small_image, large_image = peak_bytes(96, tile=64), peak_bytes(384, tile=64)
    assert large_image == small_image, "16x the pixels, the same largest activation"
    untiled = peak_bytes(384, tile=384)
    assert untiled > 20 * large_image, "without tiles the network's memory grows with the image"
