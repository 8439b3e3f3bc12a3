"""Subcommands: `fit` (ReST-EM training), `evaluate` (the paper's table), `continual` (sequential
self-edits under forgetting strategies) and `compare` (those strategies side by side, from MLflow).

    python -m seal_lightning fit --config conf/demo.yaml outer.rounds=2 inner.lora.rank=16
    python -m seal_lightning fit domain=arc
    python -m seal_lightning evaluate domain=arc evaluate.policy=runs/arc/round_1/policy
    python -m seal_lightning continual --config conf/continual.yaml continual.strategy=naive,replay
    python -m seal_lightning compare --config conf/continual.yaml --experiment continual-builtin

Input problems (config, files, model names) end in one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from seal_lightning.config import SealConfig, load_config, to_flat_dict, to_yaml
from seal_lightning.errors import ConfigError, SealError
from seal_lightning.store import RunStore

if TYPE_CHECKING:  # imported lazily at run time: `--help` and config errors stay instant
    from transformers import PreTrainedTokenizerBase

    from seal_lightning.domains import Domain, Item
    from seal_lightning.tracking import Tracker

# Keys that may change between runs on the same directory (or a moved copy) without invalidating finished work.
RESUMABLE_CHANGES = (
    "run_dir", "outer.rounds", "tracking.", "evaluate.", "sampler.batch_size", "reward.batch_size",
    "continual.strategy", "continual.sequences",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seal-lightning", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        (
            "fit",
            "ReST-EM: sample self-edits, score them with LoRA updates, fine-tune the policy on the best.",
        ),
        ("evaluate", "Score a model or saved policy under the paper's conditions (no update, passage, ...)."),
        ("continual", "Apply self-edits one after another under forgetting strategies; accuracy matrix per strategy."),
        ("compare", "Print and plot the continual strategies logged in an MLflow experiment side by side."),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", help="YAML file (see conf/); schema defaults when omitted")
        command.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        command.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. outer.rounds=2 model.name=PATH")
        if name == "compare":
            command.add_argument("--experiment", help="MLflow experiment to read (default: tracking.experiment)")
            command.add_argument("--reference", help="a matrix JSON in the paper's layout to plot beside ours")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # evaluate reads the built-in corpus's held-out split unless told otherwise.
        defaults = ["data.builtin_split=test"] if args.command == "evaluate" else []
        config = load_config(args.config, args.overrides, defaults=defaults, strategy_files=args.command == "continual")
        if args.print_config:
            print(to_yaml(config), end="")
            return 0
        quiet_libraries()
        if args.command == "compare":
            return compare(config, args.experiment or config.tracking.experiment, args.reference)
        return {"fit": fit, "evaluate": evaluate, "continual": continual}[args.command](config)
    except SealError as exc:
        print(f"seal-lightning: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seal-lightning: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def open_run(
    config: SealConfig, resumable: bool = True
) -> tuple[Domain, list[Item], PreTrainedTokenizerBase, RunStore, Tracker]:
    """What the model commands start from: the domain and its items, tokenizer, run directory and MLflow
    tracker. With `resumable`, the run directory must hold this config's run or none."""
    from seal_lightning.domains import build_domain
    from seal_lightning.models import load_tokenizer
    from seal_lightning.tracking import Tracker

    tokenizer = load_tokenizer(config.model)
    domain = build_domain(config, tokenizer)
    items = list(domain.load())
    store = RunStore(config.run_dir)
    if resumable:
        check_resumable(store, config)
    return domain, items, tokenizer, store, Tracker(config.tracking, store)


def fit(config: SealConfig) -> int:
    from seal_lightning.outer import ReSTEM, format_table

    domain, items, tokenizer, store, tracker = open_run(config)
    print(f"seal-lightning fit: {len(items)} {domain.name} items, {config.outer.rounds} rounds, run dir {store.root}")
    summaries = ReSTEM(config, domain, items, tokenizer, store, tracker).fit()
    print(format_table(summaries))
    print(f"policy of the last round: {store.path(f'round_{config.outer.rounds}/policy')}")
    print(f"MLflow store: {tracker.uri}   (mlflow ui --backend-store-uri {tracker.uri})")
    return 0


def evaluate(config: SealConfig) -> int:
    from seal_lightning.evaluation import Evaluator, format_table
    from seal_lightning.models import load_model

    domain, items, tokenizer, store, tracker = open_run(config, resumable=False)
    model = load_model(config.model)
    evaluator = Evaluator(config, domain, model, tokenizer, store, tracker)
    print(
        f"seal-lightning evaluate: {config.model.name} on {len(items)} {domain.name} items -> "
        f"{store.path(evaluator.folder)}"
    )
    left_out = [name for name in config.evaluate.conditions if name not in evaluator.conditions]
    if left_out:
        print(f"rows left out: {', '.join(left_out)} (set evaluate.policy to a trained policy folder)")
    table = evaluator.run(items)
    if len(items) <= 20:
        print(store.path(f"{evaluator.folder}/per_item.txt").read_text(), end="")
    print(format_table(table, config.evaluate.metrics))
    print(f"MLflow store: {tracker.uri}")
    return 0


def continual(config: SealConfig) -> int:
    from seal_lightning.continual.experiment import ContinualExperiment, format_summary

    if config.domain != "knowledge":
        raise ConfigError(f"continual streams passages: it needs domain=knowledge, not domain={config.domain}")
    domain, passages, tokenizer, store, tracker = open_run(config)
    experiment = ContinualExperiment(config, domain, passages, tokenizer, store, tracker)
    print(
        f"seal-lightning continual: {config.continual.passages} passages x {config.continual.sequences} orders, "
        f"strategies {', '.join(config.continual.strategies)}, run dir {store.root}"
    )
    results = experiment.run()
    print(format_summary({r.strategy: r.summary for r in results}, {r.strategy: r.step_seconds for r in results}))
    print(f"metric: {config.continual.metric}; matrices and heatmaps in {store.path('continual')}")
    print(
        f"MLflow store: {tracker.uri}   (compare: python -m seal_lightning compare --experiment "
        f"{config.tracking.experiment} ...)"
    )
    return 0


def compare(config: SealConfig, experiment: str, reference: str | None) -> int:
    from seal_lightning.continual.compare import compare as compare_strategies
    from seal_lightning.tracking import Tracker

    store = RunStore(config.run_dir)
    config.tracking.experiment = experiment
    tracker = Tracker(config.tracking, store)
    table, figure = compare_strategies(tracker, store, experiment, reference)
    print(table)
    print(f"figure: {figure}")
    return 0


def check_resumable(store: RunStore, config: SealConfig) -> None:
    """A run directory holds one experiment: refuse to mix its finished work with another config."""
    current = to_flat_dict(config)
    saved = store.read_json("config.json")
    if saved is None:
        store.write_json("config.json", current)
        store.write_text("config.yaml", to_yaml(config))
        return
    for key in sorted(set(saved) | set(current)):
        if key.startswith(RESUMABLE_CHANGES):
            continue
        if saved.get(key) != current.get(key):
            raise ConfigError(
                f"run_dir {store.root} holds a run with {key}={saved.get(key)!r}, not {current.get(key)!r}; "
                "use another run_dir or the same settings to resume"
            )
    store.write_json("config.json", current)


def quiet_libraries() -> None:
    """Keep the terminal for our progress lines: library chatter goes, warnings that matter stay."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Both set their loggers' levels when imported, so import them before ours.
    import lightning  # noqa: F401
    import mlflow  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as transformers_logging

    hub_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
