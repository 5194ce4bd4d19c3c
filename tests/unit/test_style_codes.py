"""Style codes and moodboards: codes from content, the store's files, mixing and the PNG chunk, on fake
tensors."""

import base64
import random

import pytest
import torch
from PIL import Image

from studio.core import style_codes
from studio.core.errors import InvalidRequest, StudioError
from studio.core.metadata import GenerationParameters, read_parameters, save_png
from studio.core.presets import IPAdapterPreset
from studio.core.style_codes import (
    CODE_LENGTH,
    MAX_CHUNK_CHARS,
    STYLE_CHUNK,
    StyleCodes,
    decode_style_chunk,
    encoder_name,
    mix_embeddings,
    read_style,
    style_png_chunks,
)

ENCODER = "h94/IP-Adapter/models/image_encoder"
OTHER_ENCODER = "h94/IP-Adapter/sdxl_models/image_encoder"


def embedding(seed: int, dim: int = 16) -> torch.Tensor:
    return torch.randn(1, dim, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def codes(tmp_path) -> StyleCodes:
    return StyleCodes(tmp_path / "styles")


def parameters() -> GenerationParameters:
    return GenerationParameters("txt2img", "a fox", "", 4, "Euler", 5.0, 7, 32, 32, "tiny")


# -- codes -------------------------------------------------------------------------------------------------


def test_the_same_style_gets_the_same_short_code(codes, tmp_path):
    code = codes.save(embedding(1), encoder=ENCODER)
    assert len(code) == CODE_LENGTH and code.isalnum() and code == code.lower()
    assert codes.save(embedding(1).to(torch.float64), encoder=ENCODER) == code, "precision does not matter"
    assert StyleCodes(tmp_path / "elsewhere").save(embedding(1), encoder=ENCODER) == code
    assert codes.save(embedding(2), encoder=ENCODER) != code
    assert codes.save(embedding(1), encoder=OTHER_ENCODER) != code, "an embedding means its own encoder's"
    assert len(list(codes.folder.glob("*.safetensors"))) == 3


def test_a_saved_style_loads_back_exactly(codes):
    tensor = embedding(3)
    code = codes.save(tensor, encoder=ENCODER, name="  Dusk  ")
    style = codes.load(f" {code.upper()} ")  # as typed: case and spaces forgiven
    assert torch.equal(style.tensor, tensor) and style.tensor.dtype == torch.float32
    assert (style.code, style.encoder, style.name, style.sources) == (code, ENCODER, "Dusk", 1)
    assert style.created.endswith("+00:00")
    assert codes.load(code, encoder=ENCODER).code == code


def test_saving_a_style_again_keeps_its_first_file(codes):
    code = codes.save(embedding(4), encoder=ENCODER, name="first")
    assert codes.save(embedding(4), encoder=ENCODER, name="second") == code
    assert codes.load(code).name == "first"


def test_a_code_sharing_the_first_letters_of_another_gets_a_longer_code(codes, monkeypatch):
    monkeypatch.setattr(style_codes, "content_digest", lambda tensor, encoder: "abcdefgh" + "q" * 44)
    first = codes.save(embedding(5), encoder=ENCODER)
    second = codes.save(embedding(6), encoder=ENCODER)
    assert (first, second) == ("abcdefgh", "abcdefghq")
    assert torch.equal(codes.load(second).tensor, embedding(6))
    assert codes.save(embedding(6), encoder=ENCODER) == second


def test_a_code_for_another_image_encoder_is_refused(codes):
    code = codes.save(embedding(7), encoder=OTHER_ENCODER)
    with pytest.raises(
        InvalidRequest, match=f"Style code '{code}' was made with the image encoder '{OTHER_ENCODER}'"
    ):
        codes.load(code, encoder=ENCODER)


def test_unknown_codes_and_paths_are_refused_plainly(codes, tmp_path):
    codes.save(embedding(8), encoder=ENCODER)
    with pytest.raises(InvalidRequest, match="There is no style code 'abcdefgh' in this studio.*PNG Info"):
        codes.load("abcdefgh")
    (tmp_path / "secret.safetensors").write_bytes(b"not a style")
    for hostile in ("../../etc/passwd", "../secret", "/etc/passwd", "abcd/efgh", "abc", "", "x" * 500):
        with pytest.raises(InvalidRequest, match="is not a style code: codes are 8 letters and digits"):
            codes.load(hostile)
        with pytest.raises(InvalidRequest, match="is not a style code"):
            codes.delete(hostile)
    with pytest.raises(InvalidRequest, match="'xxxxxxxxxx"):  # a long input is shown cut short
        codes.load("x" * 500)


def test_a_damaged_or_foreign_file_under_a_code_is_refused_and_left_out_of_the_list(codes):
    good = codes.save(embedding(9), encoder=ENCODER)
    (codes.folder / "abcdefgh.safetensors").write_bytes(b"\x00" * 64)
    (codes.folder / "notacode!.safetensors").write_bytes(b"")
    with pytest.raises(InvalidRequest, match="Style code 'abcdefgh' cannot be read: it is not a style"):
        codes.load("abcdefgh")
    assert [style.code for style in codes.list()] == [good]


def test_list_and_delete(codes):
    assert codes.list() == []
    first = codes.save(embedding(10), encoder=ENCODER, name="one")
    second = codes.save(embedding(11), encoder=OTHER_ENCODER, name="two")
    assert {style.code for style in codes.list()} == {first, second}
    codes.delete(first)
    assert [style.code for style in codes.list()] == [second]
    with pytest.raises(InvalidRequest, match=f"There is no style code '{first}'"):
        codes.delete(first)


def test_random_picks_only_saved_codes_and_says_when_there_are_none(codes):
    with pytest.raises(InvalidRequest, match="There are no saved style codes to pick from at random"):
        codes.random_code(random.Random(0))
    saved = {codes.save(embedding(seed), encoder=ENCODER) for seed in range(12, 16)}
    other = codes.save(embedding(16), encoder=OTHER_ENCODER)
    picks = {codes.random_code(random.Random(seed), encoder=ENCODER) for seed in range(40)}
    assert picks == saved, "every saved code of the encoder is picked, and nothing else"
    assert codes.random_code(random.Random(3)) == codes.random_code(random.Random(3)), "one rng, one pick"
    assert codes.random_code(random.Random(0), encoder=OTHER_ENCODER) == other
    with pytest.raises(InvalidRequest, match="no saved style codes for this model's image encoder"):
        codes.random_code(random.Random(0), encoder="someone/else")


def test_an_encoder_is_named_without_this_servers_paths(tmp_path):
    values = {"architecture": "sd1", "weight": "a.safetensors", "style_blocks": ["up_blocks.1"]}
    hub = IPAdapterPreset(name="a", source="h94/IP-Adapter", image_encoder="models/image_encoder", **values)
    local = IPAdapterPreset(name="b", source=str(tmp_path / "IP-Adapter"), image_encoder="enc", **values)
    (tmp_path / "IP-Adapter").mkdir()
    assert encoder_name(hub) == "h94/IP-Adapter/models/image_encoder"
    assert encoder_name(local) == "IP-Adapter/enc"


# -- moodboards and mixing ---------------------------------------------------------------------------------


def test_a_moodboard_is_the_mean_of_its_images_embeddings(codes):
    images = [embedding(seed) for seed in (20, 21, 22)]
    code = codes.save_moodboard(images, encoder=ENCODER, name="Autumn")
    board = codes.load(code)
    assert torch.allclose(board.tensor, (images[0] + images[1] + images[2]) / 3)
    assert (board.name, board.sources) == ("Autumn", 3)
    weighted = codes.load(codes.save_moodboard(images[:2], encoder=ENCODER, name="Two", weights=[3, 1]))
    assert torch.allclose(weighted.tensor, 0.75 * images[0] + 0.25 * images[1])
    with pytest.raises(InvalidRequest, match="Give the moodboard a name"):
        codes.save_moodboard(images, encoder=ENCODER, name=" ")


def test_mixing_normalises_the_weights():
    a, b = torch.ones(1, 4), torch.zeros(1, 4)
    assert torch.allclose(mix_embeddings([a, b], [2, 2]), torch.full((1, 4), 0.5))
    assert torch.allclose(mix_embeddings([a, b], [0.3, 0.1]), torch.full((1, 4), 0.75))
    assert torch.equal(mix_embeddings([a]), a)
    assert mix_embeddings([a.half(), b.half()]).dtype == torch.float32


@pytest.mark.parametrize(
    ("embeddings", "weights", "message"),
    [
        ([], None, "Give at least one style reference"),
        ([torch.ones(1, 4)] * 2, [1.0], "one weight per style reference: 2 references but 1 weights"),
        ([torch.ones(1, 4)] * 2, [0, 0], "weights sum to zero"),
        ([torch.ones(1, 4)] * 2, [1, -1], "cannot be negative"),
        (
            [torch.ones(1, 4), torch.ones(1, 8)],
            None,
            r"different shapes \(\[1, 4\] and \[1, 8\]\), so they were made with different image encoders",
        ),
    ],
)
def test_mixing_refuses_what_cannot_be_mixed(embeddings, weights, message):
    with pytest.raises(InvalidRequest, match=message):
        mix_embeddings(embeddings, weights)


# -- the PNG chunk -----------------------------------------------------------------------------------------


def test_the_style_travels_in_the_png_and_is_saved_as_a_code_where_it_arrives(codes, tmp_path):
    code = codes.save(embedding(30, dim=1024), encoder=ENCODER, name="Dusk")
    path = tmp_path / "result.png"
    chunks = style_png_chunks(codes.load(code))
    save_png(Image.new("RGB", (32, 32), "teal"), path, parameters(), extra_chunks=chunks)

    assert read_parameters(path) == parameters(), "the parameters chunks are as before"
    received = read_style(path)
    assert received is not None
    assert (received.code, received.encoder, received.name) == (code, ENCODER, "Dusk")
    assert torch.equal(received.tensor, embedding(30, dim=1024))
    theirs = StyleCodes(tmp_path / "someone-else")
    assert theirs.save(received.tensor, encoder=received.encoder, name=received.name) == code
    with Image.open(path) as opened:
        assert read_style(opened).code == code


def test_a_png_without_a_style_or_not_an_image_gives_none(tmp_path):
    plain = tmp_path / "plain.png"
    save_png(Image.new("RGB", (8, 8)), plain, parameters())
    assert read_style(plain) is None
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\xff" * 100)
    assert read_style(tmp_path / "junk.png") is None
    assert read_style(tmp_path / "missing.png") is None


def _png_with_chunk(tmp_path, text: str):
    path = tmp_path / "hostile.png"
    save_png(Image.new("RGB", (8, 8)), path, parameters(), extra_chunks={STYLE_CHUNK: text})
    return path


def _safetensors(metadata: str, body: bytes = b"") -> bytes:
    header = metadata.encode()
    return len(header).to_bytes(8, "little") + header + body


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A" * (MAX_CHUNK_CHARS + 4), "too large"),
        ("not base64 at all!", "not base64"),
        (base64.b64encode(b"garbage bytes, not safetensors").decode(), "not a style embedding"),
        (base64.b64encode((2**63).to_bytes(8, "little") + b"{}").decode(), "not a style embedding"),
        (
            base64.b64encode(_safetensors('{"__metadata__": {"format": "studio-style/1"}}')).decode(),
            "other than one float32 embedding",
        ),
        (
            base64.b64encode(
                _safetensors(
                    '{"__metadata__": {"format": "studio-style/1"}, '
                    '"embedding": {"dtype": "F32", "shape": [1000000], "data_offsets": [0, 4000000]}}'
                )
            ).decode(),
            "damaged",
        ),
    ],
    ids=["huge", "not-base64", "garbage", "header-overflow", "no-tensor", "data-missing"],
)
def test_a_hostile_style_chunk_is_refused_with_a_reason_and_read_as_none(tmp_path, text, reason):
    with pytest.raises(InvalidRequest, match=f"This PNG's style cannot be read: .*{reason}"):
        decode_style_chunk(text)
    assert read_style(_png_with_chunk(tmp_path, text)) is None


def test_a_chunk_holding_other_tensors_or_bad_values_is_refused(tmp_path):
    from safetensors.torch import save

    meta = {"format": "studio-style/1", "encoder": ENCODER, "sources": "1"}
    cases = {
        "other than one float32 embedding": save({"weights": torch.ones(2)}, metadata=meta),
        "other than one float32": save({"embedding": torch.ones(2, dtype=torch.int64)}, metadata=meta),
        "not finite": save({"embedding": torch.tensor([1.0, float("nan")])}, metadata=meta),
        "incomplete": save({"embedding": torch.ones(2)}, metadata={"format": "studio-style/1"}),
    }
    for reason, data in cases.items():
        with pytest.raises(InvalidRequest, match=reason):
            decode_style_chunk(base64.b64encode(data).decode())


# -- writing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_save_cut_short_leaves_no_file_behind(codes, monkeypatch, failing):
    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(style_codes.os, failing, full_disk)
    with pytest.raises(
        StudioError, match=r"could not be saved in the styles folder \(No space left on device\)"
    ):
        codes.save(embedding(40), encoder=ENCODER)
    assert list(codes.folder.iterdir()) == [], "no partial file, no code file"
    monkeypatch.undo()
    code = codes.save(embedding(40), encoder=ENCODER)
    assert [path.name for path in codes.folder.iterdir()] == [f"{code}.safetensors"]


def test_a_damaged_file_under_a_code_is_replaced_when_the_style_is_saved_again(codes):
    code = codes.save(embedding(41), encoder=ENCODER)
    (codes.folder / f"{code}.safetensors").write_bytes(b"half a fi")
    assert codes.save(embedding(41), encoder=ENCODER) == code
    assert torch.equal(codes.load(code).tensor, embedding(41))
