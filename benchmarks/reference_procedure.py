"""The reference code's inner loop, step by step, for `benchmarks/inner_loop.py` to measure against.

Continual-Intelligence/SEAL, `knowledge-incorporation/src/inner/TTT_server.py` with `src/utils.py`, as
published. For every inner loop:
1. baseline answers to the passage's questions from a vLLM OpenAI server over HTTP (`/v1/completions`),
   regenerated on every request;
2. every training document tokenized, cut and padded to `max_seq_length` (2,048 by default), labels a
   copy of the input ids, so the loss covers the padding too;
3. a fresh PEFT LoRA adapter trained by `transformers.Trainer` (its defaults: AdamW, linear decay);
4. the adapter saved to disk, loaded into the server by name (`/v1/load_lora_adapter`), the questions
   answered through it (greedy, up to 64 tokens, stopping at end of sequence), unloaded, folder deleted.

Where this differs from the published code, so that every side of the benchmark grades alike: float32
instead of bfloat16 (this CPU), the project's chat question prompt instead of its answer template, F1
against the gold answer instead of the GPT-4.1 judge, seeds given instead of read from the clock, no
per-step loss logging, and a fresh PEFT wrap removed after each loop (the published server wraps the
same base model again on every request). Nothing is fetched at run time.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainingArguments,
    set_seed,
)

from seal_lightning.config import InnerConfig, RewardConfig, VLLMConfig
from seal_lightning.domains import Question
from seal_lightning.rewards import grade, mean_grade, question_prompts
from seal_lightning.sampling.hf import end_of_sequence_ids

PHASES = ("baseline answers", "training", "adapter answers")
# The reference's server sizes its KV cache automatically, as a share of NUMA node 0's RAM on the CPU
# backend, where vLLM's default 0.92 does not start; a server of its own is not forked from a large process.
SERVER_MEMORY_UTILIZATION = 0.25


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VLLMServer:
    """vLLM's OpenAI server in a process of its own, with LoRA adapters loadable at run time by HTTP."""

    def __init__(self, model: str, max_lora_rank: int, log: Path, start_timeout_s: float = 900.0) -> None:
        self.model = model
        self.url = f"http://127.0.0.1:{free_port()}"
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", model, "--port", self.url.rsplit(":", 1)[1], "--dtype", "float32",
            "--enable-lora", "--max-lora-rank", str(max_lora_rank), "--max-loras", "1",
            "--max-model-len", str(VLLMConfig().max_model_len), "--enforce-eager",
            "--gpu-memory-utilization", str(SERVER_MEMORY_UTILIZATION), "--seed", "0",
        ]  # fmt: skip
        # Runtime LoRA loading is what the reference's server uses; the CPU engine reserves no core here
        # (as the project's own engine on a machine this small).
        env = os.environ | {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
        self.log = log
        self.process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.wait_ready(start_timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
                raise SystemExit(f"the vLLM server exited ({self.process.returncode}): " + " | ".join(tail))
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        self.close()
        raise SystemExit(f"the vLLM server did not answer /health within {timeout_s:.0f} s (log: {self.log})")

    def post(self, endpoint: str, payload: dict) -> dict | str:
        request = urllib.request.Request(
            f"{self.url}/v1/{endpoint}", json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=600) as reply:
            body = reply.read().decode()
        return json.loads(body) if reply.headers.get("Content-Type", "").startswith("application/json") else body

    def complete(self, model: str, prompts: list[str], max_tokens: int, stop_ids: list[int]) -> list[str]:
        """Greedy completions as the reference asks for them: one request, all prompts."""
        payload = {"model": model, "prompt": prompts, "n": 1, "temperature": 0.0, "top_p": 1.0}
        reply = self.post("completions", payload | {"max_tokens": max_tokens, "stop_token_ids": stop_ids})
        assert isinstance(reply, dict)
        return [choice["text"] for choice in sorted(reply["choices"], key=lambda choice: choice["index"])]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> VLLMServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None):
        self.close()


def padded_rows(
    tokenizer: PreTrainedTokenizerBase, documents: Sequence[str], max_seq_length: int
) -> list[dict[str, list[int]]]:
    """The reference's training rows: cut and padded to `max_seq_length`, labels = input ids (padding included)."""
    rows = []
    for document in documents:
        tokens = tokenizer(document, truncation=True, max_length=max_seq_length, padding="max_length")
        rows.append({**tokens, "labels": list(tokens["input_ids"])})
    return rows


def reference_inner_loop(
    server: VLLMServer,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    documents: Sequence[str],
    questions: Sequence[Question],
    inner: InnerConfig,
    seed: int,
    max_seq_length: int,
    reward: RewardConfig,
) -> tuple[float, dict[str, float]]:
    """One inner loop of the reference: the adapted model's mean F1, and the seconds of each phase."""
    prompts = question_prompts(tokenizer, questions)
    stops = end_of_sequence_ids(model, tokenizer)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    server.complete(server.model, prompts, reward.max_new_tokens, stops)
    seconds["baseline answers"] = time.perf_counter() - started

    started = time.perf_counter()
    set_seed(seed)
    folder = Path(tempfile.mkdtemp(prefix="seal-reference-"))
    lora = get_peft_model(
        model,
        LoraConfig(
            r=inner.lora.rank,
            lora_alpha=inner.lora.alpha,
            lora_dropout=inner.lora.dropout,
            target_modules=list(inner.lora.target_modules),
            task_type="CAUSAL_LM",
        ),
    )
    try:
        arguments = TrainingArguments(
            output_dir=str(folder / "trainer"),
            per_device_train_batch_size=inner.batch_size,
            num_train_epochs=inner.epochs,
            learning_rate=inner.lr,
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            remove_unused_columns=False,
            disable_tqdm=True,
            seed=seed,
        )
        dataset = Dataset.from_list(padded_rows(tokenizer, documents, max_seq_length))
        collator = DataCollatorWithPadding(tokenizer)
        trainer = Trainer(model=lora, args=arguments, train_dataset=dataset, data_collator=collator)
        trainer.remove_callback(PrinterCallback)  # its end-of-training summary line, not the procedure
        trainer.train()
        lora.save_pretrained(str(folder / "adapter"))
    finally:
        lora.unload().eval()
    seconds["training"] = time.perf_counter() - started

    started = time.perf_counter()
    name = folder.name
    server.post("load_lora_adapter", {"lora_name": name, "lora_path": str(folder / "adapter")})
    answers = server.complete(name, prompts, reward.max_new_tokens, stops)
    server.post("unload_lora_adapter", {"lora_name": name})
    shutil.rmtree(folder, ignore_errors=True)
    seconds["adapter answers"] = time.perf_counter() - started
    return mean_grade(grade("f1", questions, answers, reward)), seconds
