"""Style codes and moodboards: a style kept as its IP-Adapter image embedding, named by a short code.

- A code is the start of the base32 hash of the embedding and the encoder that made it (8 letters and
  digits, like `k3vq7m2a`): the same style always gets the same code, and it can be typed (`--sref CODE`).
- Each code is one small `.safetensors` file in the styles folder: the embedding (float32, as the image
  encoder gives it for the reference) and, as text, the encoder it was made with, a name, how many images
  were mixed into it and when. An embedding only means something to its own encoder, so loading a code for
  another encoder is refused with a message instead of giving a meaningless style.
- A moodboard is a named set of reference images kept as one code: the (weighted) mean of their embeddings.
  `mix_embeddings` is that mean, and what several weighted references in one run use too.
- The embedding travels inside result PNGs, in a `studio-style` text chunk (base64 of the same bytes as the
  file), so whoever receives the PNG can save the style as a code of their own. Everything read from a file
  or a PNG is size-bounded and checked: a damaged or hostile one is refused with a reason, never run.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import random
import re
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load, save

from studio.core.errors import InvalidRequest, StudioError
from studio.core.presets import IPAdapterPreset

log = logging.getLogger(__name__)

STYLE_CHUNK = "studio-style"  # the PNG text chunk carrying a result's style embedding
FORMAT = "studio-style/1"  # written into every file, so a stray .safetensors is not taken for a style
CODE_LENGTH = 8  # 40 bits: a collision within one folder is unlikely, and handled (see `StyleCodes.save`)
MAX_STYLE_BYTES = 3 * 1024**2  # an IP-Adapter Plus embedding (257×1280 float32) is 1.3 MB; plain ones 5 kB
MAX_CHUNK_CHARS = (MAX_STYLE_BYTES + 2) // 3 * 4  # the same bound, in base64
MAX_NAME_CHARS = 80
_CODE = re.compile(rf"^[a-z2-7]{{{CODE_LENGTH},52}}$")  # base32 of a sha256: 52 characters at most
_TENSOR = "embedding"


@dataclass(frozen=True, eq=False)  # tensors have no single truth value
class StyleEmbedding:
    """One style: the IP-Adapter image embedding and what it was made with."""

    code: str
    tensor: torch.Tensor  # float32 on the CPU, as the image encoder gives it (e.g. 1×1024)
    encoder: str  # the image encoder that made it (`encoder_name`); other encoders cannot use it
    name: str = ""  # a moodboard's name; empty for a single reference
    sources: int = 1  # how many reference images were mixed into it
    created: str = ""  # ISO 8601, UTC


def encoder_name(preset: IPAdapterPreset) -> str:
    """What names an IP-Adapter's image encoder in a style: its hub id and subfolder, or for a local copy
    the folder's own name (a PNG sent to someone else must not carry this server's paths)."""
    source = Path(preset.source).expanduser()
    where = source.name if source.is_dir() else preset.source
    return f"{where}/{preset.image_encoder}"


def content_digest(tensor: torch.Tensor, encoder: str) -> str:
    """The base32 sha256 of an embedding (values, shape) and its encoder; codes are its first letters."""
    values = _as_stored(tensor)
    digest = hashlib.sha256()
    digest.update(json.dumps([encoder, list(values.shape)]).encode())
    digest.update(values.numpy().tobytes())
    return base64.b32encode(digest.digest()).decode().rstrip("=").lower()


def _as_stored(tensor: torch.Tensor) -> torch.Tensor:
    # float32 on the CPU: the same file and code whatever device or precision made the embedding
    return tensor.detach().to("cpu", torch.float32).contiguous()


# -- mixing ------------------------------------------------------------------------------------------------


def normalised_weights(weights: Sequence[float], count: int) -> list[float]:
    """`weights` scaled to sum to 1, checked against the `count` references they weigh."""
    if len(weights) != count:
        raise InvalidRequest(
            f"Give one weight per style reference: {count} references but {len(weights)} weights."
        )
    if any(weight < 0 for weight in weights):
        raise InvalidRequest("Style reference weights cannot be negative.")
    total = float(sum(weights))
    if total <= 0:
        raise InvalidRequest("The style reference weights sum to zero: give at least one a weight above 0.")
    return [float(weight) / total for weight in weights]


def mix_embeddings(
    embeddings: Sequence[torch.Tensor], weights: Sequence[float] | None = None
) -> torch.Tensor:
    """The weighted mean of image embeddings (equal weights when None): a moodboard, a blend, or several
    `--sref` references in one run. All must come from one encoder, which their shapes show."""
    if not embeddings:
        raise InvalidRequest("Give at least one style reference.")
    shares = normalised_weights([1.0] * len(embeddings) if weights is None else weights, len(embeddings))
    shapes = {tuple(embedding.shape) for embedding in embeddings}
    if len(shapes) > 1:
        listed = " and ".join(str(list(shape)) for shape in sorted(shapes))
        raise InvalidRequest(
            f"These style references cannot be mixed: their embeddings have different shapes ({listed}), so "
            "they were made with different image encoders. Mix references made for the same kind of model."
        )
    stored = [_as_stored(embedding) for embedding in embeddings]
    return sum(
        (share * embedding for share, embedding in zip(shares, stored, strict=True)),
        torch.zeros_like(stored[0]),
    )


# -- the bytes of one style (its file, and its PNG chunk) --------------------------------------------------


def style_bytes(style: StyleEmbedding) -> bytes:
    """A style's file, also its PNG chunk: the embedding and its description. The code is not written: it
    follows from the content (and a file's name is its code)."""
    metadata = {
        "format": FORMAT,
        "encoder": style.encoder,
        "name": style.name,
        "sources": str(style.sources),
        "created": style.created,
    }
    return save({_TENSOR: _as_stored(style.tensor)}, metadata=metadata)


def parse_style(data: bytes, what: str) -> StyleEmbedding:
    """The style in `data`, or `InvalidRequest` saying why `what` (e.g. "This PNG's style") is none."""

    def refuse(reason: str) -> InvalidRequest:
        return InvalidRequest(f"{what} cannot be read: {reason}.")

    if len(data) > MAX_STYLE_BYTES:
        raise refuse(f"it is {len(data)} bytes, more than a style embedding's {MAX_STYLE_BYTES}")
    metadata = _safetensors_metadata(data)
    if metadata is None or metadata.get("format") != FORMAT:
        raise refuse("it is not a style embedding")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise refuse(f"its tensor data is damaged ({type(error).__name__})") from None
    tensor = tensors.get(_TENSOR)
    if set(tensors) != {_TENSOR} or tensor.dtype != torch.float32 or not 1 <= tensor.ndim <= 3:
        raise refuse("it holds something other than one float32 embedding")
    if tensor.numel() == 0 or not torch.isfinite(tensor).all():
        raise refuse("its embedding is empty or not finite")
    sources, encoder = metadata.get("sources", ""), metadata.get("encoder", "")
    if not sources.isdigit() or int(sources) < 1 or not 0 < len(encoder) <= 200:  # shown in messages
        raise refuse("its description is incomplete")
    return StyleEmbedding(
        code=content_digest(tensor, encoder)[:CODE_LENGTH],  # from what it holds, never from what it claims
        tensor=tensor,
        encoder=encoder,
        name=metadata.get("name", "")[:MAX_NAME_CHARS],
        sources=int(sources),
        created=metadata.get("created", ""),
    )


def _safetensors_metadata(data: bytes) -> dict[str, str] | None:
    """The `__metadata__` of a safetensors header (8 bytes of length, then JSON); None if it has none."""
    if len(data) < 8:
        return None
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        return None
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        return None
    return metadata


# -- the PNG chunk -----------------------------------------------------------------------------------------


def style_png_chunks(style: StyleEmbedding) -> dict[str, str]:
    """Text chunks carrying `style` in a result PNG (for `save_png(..., extra_chunks=...)`)."""
    return {STYLE_CHUNK: base64.b64encode(style_bytes(style)).decode("ascii")}


def decode_style_chunk(text: object) -> StyleEmbedding:
    """The style in a `studio-style` chunk's text, or `InvalidRequest` saying why it has none."""
    what = "This PNG's style"
    if not isinstance(text, str) or len(text) > MAX_CHUNK_CHARS:
        raise InvalidRequest(f"{what} cannot be read: its chunk is not a style embedding or is too large.")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{what} cannot be read: its chunk is not base64.") from None
    return parse_style(data, what)


def style_chunk(image: Image.Image | str | Path) -> str | None:
    """The text of the `studio-style` chunk a PNG has (unchecked), or None."""
    if not isinstance(image, Image.Image):
        try:
            with Image.open(image) as opened:
                return style_chunk(opened)
        except (OSError, SyntaxError, ValueError):  # Pillow's errors for unreadable or hostile files
            return None
    try:
        text = {**getattr(image, "text", {}), **image.info}.get(STYLE_CHUNK)  # `text` reads the whole file
    except (OSError, SyntaxError, ValueError):
        return None
    return text if isinstance(text, str) else None


def read_style(image: Image.Image | str | Path) -> StyleEmbedding | None:
    """The style a PNG carries (ours, maybe made elsewhere), or None when it carries none or a damaged one
    (logged): PNG Info then simply offers no style to save."""
    text = style_chunk(image)
    if text is None:
        return None
    try:
        return decode_style_chunk(text)
    except InvalidRequest as error:
        log.warning("%s", error)
        return None


# -- the store ---------------------------------------------------------------------------------------------


class StyleCodes:
    """The saved styles: one `<code>.safetensors` file each in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def save(self, embedding: torch.Tensor, *, encoder: str, name: str = "", sources: int = 1) -> str:
        """The code of `embedding` (made by `encoder` from `sources` images), saved if it was not already:
        saving a style again gives its code and keeps the first file, name included."""
        name = name.strip()
        if len(name) > MAX_NAME_CHARS:
            raise InvalidRequest(f"A style's name is at most {MAX_NAME_CHARS} characters.")
        if sources < 1:
            raise InvalidRequest("A style is made from at least one image.")
        digest = content_digest(embedding, encoder)
        tensor = _as_stored(embedding)
        for length in range(CODE_LENGTH, len(digest) + 1):
            code = digest[:length]
            try:
                kept = self._read(code)
            except InvalidRequest:  # no file under this code, or a damaged one this save replaces
                break
            if kept.encoder == encoder and torch.equal(kept.tensor, tensor):
                return code
            # Another style shares these first letters (about one in a trillion): take a longer code.
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        style = StyleEmbedding(code, tensor, encoder, name, sources, created)
        self._write(self._path(code), style_bytes(style))
        return code

    def save_moodboard(
        self,
        embeddings: Sequence[torch.Tensor],
        *,
        encoder: str,
        name: str,
        weights: Sequence[float] | None = None,
    ) -> str:
        """One code for a named set of reference images: the (weighted) mean of their embeddings."""
        if not name.strip():
            raise InvalidRequest("Give the moodboard a name.")
        return self.save(
            mix_embeddings(embeddings, weights), encoder=encoder, name=name, sources=len(embeddings)
        )

    def load(self, code: str, *, encoder: str | None = None) -> StyleEmbedding:
        """The style saved as `code`; with `encoder`, refused unless it was made by that image encoder."""
        code = self._checked(code)
        style = self._read(code)
        if encoder is not None and style.encoder != encoder:
            raise InvalidRequest(
                f"Style code {code!r} was made with the image encoder {style.encoder!r}, but this model's "
                f"IP-Adapter uses {encoder!r}: use it with a model of that kind, or make the code again "
                "from its images with this model."
            )
        return style

    def list(self) -> list[StyleEmbedding]:
        """Every saved style, newest first; files that are not styles are left out (and logged)."""
        styles = []
        for path in self.folder.glob("*.safetensors") if self.folder.is_dir() else ():
            if not _CODE.match(path.stem):
                continue
            try:
                styles.append(self._read(path.stem))
            except InvalidRequest as error:
                log.warning("%s", error)
        return sorted(styles, key=lambda style: (style.created, style.code), reverse=True)

    def random_code(self, rng: random.Random, *, encoder: str | None = None) -> str:
        """A saved code picked by `rng` (`--sref random`), among those `encoder` can use when given."""
        codes = sorted(style.code for style in self.list() if encoder is None or style.encoder == encoder)
        if not codes:
            usable = "" if encoder is None else " for this model's image encoder"
            raise InvalidRequest(
                f"There are no saved style codes{usable} to pick from at random: save a style image or a "
                "moodboard as a code first."
            )
        return rng.choice(codes)

    def delete(self, code: str) -> None:
        path = self._path(self._checked(code))
        try:
            path.unlink()
        except FileNotFoundError:
            raise self._unknown(code) from None

    # -- files -------------------------------------------------------------------------------------------

    def _checked(self, code: str) -> str:
        """`code` as typed (case and spaces forgiven), refused unless it is a code: a name, never a path."""
        cleaned = code.strip().lower() if isinstance(code, str) else ""
        if not _CODE.match(cleaned):
            shown = repr(code[:40]) if isinstance(code, str) else "That"
            raise InvalidRequest(
                f"{shown} is not a style code: codes are {CODE_LENGTH} letters and digits, like 'k3vq7m2a'."
            )
        return cleaned

    def _path(self, code: str) -> Path:
        return self.folder / f"{code}.safetensors"

    def _unknown(self, code: str) -> InvalidRequest:
        return InvalidRequest(
            f"There is no style code {code.strip().lower()!r} in this studio. A code made elsewhere comes "
            "with its image: open that PNG in PNG Info to save its style here."
        )

    def _read(self, code: str) -> StyleEmbedding:
        path = self._path(code)
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_STYLE_BYTES + 1)  # one byte over the bound tells parse_style it is over
        except FileNotFoundError:
            raise self._unknown(code) from None
        except OSError as error:
            raise InvalidRequest(f"Style code {code!r} cannot be read ({error.strerror}).") from None
        style = parse_style(data, f"Style code {code!r}")
        return StyleEmbedding(code, style.tensor, style.encoder, style.name, style.sources, style.created)

    def _write(self, path: Path, data: bytes) -> None:
        """`data` under a hidden temporary name, then renamed: a write cut short leaves no damaged code."""
        partial = path.with_name(f".{os.getpid()}-{threading.get_ident()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise StudioError(
                f"The style code could not be saved in the styles folder ({reason})."
            ) from error
        finally:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
