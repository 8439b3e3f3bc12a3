"""One command's shared pieces, built once per command and closed once: the domain and tokenizer, the run
directory, the MLflow tracker, the models it loads, the sampler and the scorer.

`fit`, `evaluate` and `continual` take a `Runtime` and their own settings, so none of them builds a
sampler or a scorer its own way. The sampler starts on the first policy that writes and is told of each
new one after that (a vLLM engine loads the new weights in place; a second engine in one process costs
far more), and it is closed when the command ends, however it ends.

Under a launcher (`torchrun`, `srun`) every process builds its own runtime as one data-parallel rank
(`distributed.py`): its own sampler and scorer on its own device, a store that appends to its own files,
and a tracker that talks to MLflow on the main rank only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import SealConfig
from seal_lightning.configure import to_flat_dict, to_yaml
from seal_lightning.distributed import Ranks, start_ranks, stop_ranks
from seal_lightning.domains import Domain, build_domain
from seal_lightning.domains.registry import registered
from seal_lightning.errors import ConfigError, SealError
from seal_lightning.models import load_model, load_tokenizer, resolve_device, resolve_model_path
from seal_lightning.profiling import libraries_frozen
from seal_lightning.sampling import Sampler, build_sampler
from seal_lightning.scorer import SelfEditScorer
from seal_lightning.store import RunStore
from seal_lightning.tracking import Tracker

# Keys that may change between runs on the same directory (or a moved copy) without invalidating finished work.
RESUMABLE_CHANGES = (
    "run_dir", "outer.rounds", "tracking.", "evaluate.", "sampler.batch_size", "reward.batch_size",
    "continual.strategy", "continual.sequences", "heldout.", "data.heldout", "outer.strategy",
)  # fmt: skip


def open_domain(config: SealConfig) -> tuple[Domain, PreTrainedTokenizerBase]:
    """The configured domain and the model's tokenizer: built before any run directory is touched, so that a
    bad model or data file writes nothing."""
    tokenizer = load_tokenizer(config.model)
    return build_domain(config, tokenizer), tokenizer


@dataclass
class Runtime:
    config: SealConfig
    domain: Domain
    tokenizer: PreTrainedTokenizerBase
    store: RunStore
    tracker: Tracker
    ranks: Ranks = field(default_factory=Ranks)
    sampler: Sampler | None = field(default=None, init=False)

    def model_path(self, round_index: int = 0) -> str:
        """Where the policy that fit's round `round_index` ends with is saved (round 0: the starting model)."""
        if round_index == 0:
            return resolve_model_path(self.config.model.name)
        return str(self.store.path(f"round_{round_index}/policy"))

    def load_model(self, path: str | None = None) -> PreTrainedModel:
        """The model at `path` (default: the starting model) in the configured dtype and device."""
        return load_model(self.config.model, path)

    def sampler_on(self, policy: PreTrainedModel, policy_path: str) -> Sampler:
        """The command's one sampler, sampling from `policy` (saved at `policy_path`) from now on."""
        if self.sampler is None:
            self.sampler = build_sampler(self.config.sampler, policy, self.tokenizer, policy_path, self.config.seed)
        self.sampler.update_policy(policy, policy_path)
        return self.sampler

    def scorer(
        self, model: PreTrainedModel, baselines: dict[str, float] | None = None, sampler_answers: bool = False
    ) -> SelfEditScorer:
        """Adapt-then-score on `model`. With `sampler_answers`, and stacked inner loops, generated answers come
        from the sampler where its backend serves adapters: only where the sampler holds `model` itself."""
        answerer = None
        if sampler_answers and self.sampler is not None and self.config.inner.batched:
            answerer = self.sampler.answerer(self.config.reward.max_new_tokens)
        return SelfEditScorer(model, self.tokenizer, self.domain, self.config.reward, baselines, answerer)

    def close_sampler(self) -> None:
        """Release the sampler (a vLLM engine's memory) when the command needs no more samples."""
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None


@contextmanager
def open_runtime(
    config: SealConfig, domain: Domain, tokenizer: PreTrainedTokenizerBase, command: str, resumable: bool = True
) -> Iterator[Runtime]:
    """The runtime of one command, with the run directory held by it alone. With `resumable`, the run
    directory must hold this config's run or none."""
    if config.sampler.backend == "vllm":  # fail before any work, not at the first sample
        from seal_lightning.sampling.vllm import require_vllm

        require_vllm()
    ranks = start_ranks(resolve_device(config.model.device))
    try:
        store = RunStore(config.run_dir, ranks.rank)
        with ExitStack() as held:
            held.enter_context(libraries_frozen())  # the phases' collections skip the libraries' objects
            refused: SealError | None = None
            if ranks.main:  # the main rank holds the run directory for all ranks
                try:
                    held.enter_context(store.hold(command))
                    if resumable:
                        check_resumable(store, config)
                except SealError as exc:
                    refused = exc
            refused = ranks.broadcast(refused)  # every rank stops with the main rank's one-line error
            if refused is not None:
                raise refused
            runtime = Runtime(config, domain, tokenizer, store, Tracker(config.tracking, store), ranks)
            try:
                yield runtime
            finally:
                runtime.close_sampler()
    finally:
        stop_ranks(ranks)


def check_resumable(store: RunStore, config: SealConfig) -> None:
    """A run directory holds one experiment: refuse to mix its finished work with another config."""
    current = to_flat_dict(config)
    saved = store.read_json("config.json")
    if saved is None:
        store.write_json("config.json", current)
        store.write_text("config.yaml", to_yaml(config))
        return
    # Another domain's section never shapes this domain's results (older runs saved every domain's).
    other_domains = tuple(f"{name}." for name in registered() if name != config.domain)
    # A setting added to the schema after the run started, left at its default, is what that run did.
    defaults = to_flat_dict(SealConfig())
    added_at_default = {key for key in set(defaults) - set(saved) if current.get(key) == defaults[key]}
    for key in sorted(set(saved) | set(current)):
        if key.startswith(RESUMABLE_CHANGES) or key.startswith(other_domains) or key in added_at_default:
            continue
        if saved.get(key) != current.get(key):
            raise ConfigError(
                f"run_dir {store.root} holds a run with {key}={saved.get(key)!r}, not {current.get(key)!r}; "
                "use another run_dir or the same settings to resume"
            )
    store.write_json("config.json", current)
