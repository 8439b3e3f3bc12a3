"""Subcommands: `fit` (ReST-EM training), `evaluate` (the paper's table), `continual` (sequential
self-edits under forgetting strategies) and `compare` (those strategies side by side, from MLflow).

    python -m seal_lightning fit --config conf/demo.yaml outer.rounds=2 inner.lora.rank=16
    python -m seal_lightning fit domain=arc
    python -m seal_lightning evaluate domain=arc evaluate.policy=runs/arc/round_1/policy
    python -m seal_lightning evaluate --compare runs/eval_base runs/eval_round2
    python -m seal_lightning continual --config conf/continual.yaml continual.strategy=naive,replay
    python -m seal_lightning compare --config conf/continual.yaml --experiment continual-builtin
    python -m seal_lightning track runs/demo     # MLflow logging kept while its server did not answer

Input problems (config, files, model names) end in one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from seal_lightning.config import SealConfig
from seal_lightning.configure import load_config, to_flat_dict, to_yaml
from seal_lightning.domains.registry import domain_spec
from seal_lightning.errors import ConfigError, DataError, SealError
from seal_lightning.store import RunStore

if TYPE_CHECKING:  # imported lazily at run time: `--help` and config errors stay instant
    from seal_lightning.tracking import Tracker


class OneLineParser(argparse.ArgumentParser):
    """Argument errors end as every input problem does: one line, exit status 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"seal-lightning: error: {message} (see: python -m seal_lightning --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="seal-lightning", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, help_text in (
        (
            "fit",
            "ReST-EM: sample self-edits, score them with LoRA updates, fine-tune the policy on the best.",
        ),
        ("evaluate", "Score a model or saved policy under the paper's conditions (no update, passage, ...)."),
        ("continual", "Apply self-edits one after another under forgetting strategies; accuracy matrix per strategy."),
        ("compare", "Print and plot the continual strategies logged in an MLflow experiment side by side."),
        ("track", "Send the MLflow logging calls a run kept while its MLflow server did not answer."),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        if name == "track":
            command.add_argument("run_dir", help="the run directory whose tracking_outbox.jsonl to send")
            command.add_argument("--uri", help="send them to this MLflow store instead of the run's own")
            continue
        command.add_argument("--config", help="YAML file (see conf/); schema defaults when omitted")
        command.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        command.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. outer.rounds=2 model.name=PATH")
        if name == "evaluate":
            command.add_argument(
                "--compare",
                nargs=2,
                metavar=("A", "B"),
                help="print B - A per row and metric, paired by item with 95%% intervals (evaluation folders or "
                "run directories), instead of evaluating",
            )
        if name == "compare":
            command.add_argument(
                "--experiment",
                help="MLflow experiments to read, comma-separated, for settings side by side "
                "(default: tracking.experiment)",
            )
            command.add_argument("--reference", help="a matrix JSON in the paper's layout to plot beside ours")
    return parser


class Terminated(Exception):
    """SIGTERM (`kill`, a scheduler's scancel), raised where the process is, as Ctrl-C raises KeyboardInterrupt.
    Lightning's own SIGTERM handler only sets a flag that its loops read at the next batch, then exits with
    status 0 as if the command had finished; an Exception also passes Lightning's interrupt handling, which
    turns KeyboardInterrupt into exit status 1."""


def terminate(signum: int, frame: object) -> NoReturn:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        if args.command == "track":
            return track(args.run_dir, args.uri)
        config = load_config(args.config, args.overrides, strategy_files=args.command == "continual")
        if args.print_config:
            print(to_yaml(config), end="")
            return 0
        quiet_libraries()
        if args.command == "compare":
            return compare(config, args.experiment or config.tracking.experiment, args.reference)
        if args.command == "evaluate" and args.compare:
            return compare_evaluations(config, *args.compare)
        if launched_rank() > 0:  # under torchrun or srun the main rank prints for all; errors still show
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
        return {"fit": fit, "evaluate": evaluate, "continual": continual}[args.command](config)
    except SealError as exc:
        print(f"seal-lightning: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seal-lightning: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Terminated:
        print("seal-lightning: stopped by SIGTERM; run the same command again to resume", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


def launched_rank() -> int:
    """This process's rank as the launcher set it (0 without a launcher), read before any process group."""
    from seal_lightning.distributed import cluster_environment

    environment = cluster_environment()
    return 0 if environment is None else environment.global_rank()


def fit(config: SealConfig) -> int:
    from seal_lightning.anchor import AnswerAnchor
    from seal_lightning.callbacks import ReSTEMCallback
    from seal_lightning.heldout import HeldOutEvaluation
    from seal_lightning.outer import ReSTEM, format_table
    from seal_lightning.rounds import check_heldout, round_items
    from seal_lightning.runtime import open_domain, open_runtime

    domain, tokenizer = open_domain(config)
    rounds = round_items(domain, config.data, config.outer.rounds)
    heldout = list(domain.load_heldout()) if config.heldout.enabled else []
    check_heldout(heldout, {item.key for items in rounds for item in items}, "the rounds train on")
    with open_runtime(config, domain, tokenizer, "fit") as runtime:
        store, tracker = runtime.store, runtime.tracker
        evaluation = HeldOutEvaluation(runtime, config.heldout, heldout) if heldout else None
        callbacks: list[ReSTEMCallback] = [evaluation] if evaluation else []
        if config.outer.anchor > 0:
            callbacks.append(AnswerAnchor(config.outer.anchor, config.outer.batch_size, domain, tokenizer, config.seed))
        sizes = ", ".join(str(len(items)) for items in rounds)
        print(f"seal-lightning fit: {len(rounds)} rounds on {sizes} {domain.name} items, run dir {store.root}")
        summaries = ReSTEM(runtime, config.outer, rounds, callbacks).fit()
        print("training rounds (each on its own items; not evidence of generalisation):")
        print(format_table(summaries))
        if evaluation:
            print(evaluation.table())
        print(f"policy of the last round: {store.path(f'round_{config.outer.rounds}/policy')}")
        print(f"MLflow store: {tracker.uri}   (mlflow ui --backend-store-uri {tracker.uri})")
        return 0


def evaluate(config: SealConfig) -> int:
    from seal_lightning.evaluation import EvaluationSettings, Evaluator, Roles, evaluation_id
    from seal_lightning.knowledge.data import external_selfedits
    from seal_lightning.models import resolve_model_path
    from seal_lightning.rounds import check_heldout, trained_keys
    from seal_lightning.runtime import open_domain, open_runtime

    domain, tokenizer = open_domain(config)
    items = list(domain.load_heldout())
    policy = config.evaluate.policy
    for name, key in ((config.model.name, "model.name"), (policy, "evaluate.policy")):
        check_heldout(items, trained_keys(name), f"{key}={name} was trained or selected on")
    available = domain.conditions()
    conditions = {name: available[name] for name in config.evaluate.conditions}
    if policy is None:
        conditions = {name: c for name, c in conditions.items() if "policy" not in c.roles}
        left_out = [name for name in config.evaluate.conditions if name not in conditions]
        if left_out:
            print(f"rows left out: {', '.join(left_out)} (set evaluate.policy to a trained policy folder)")
    paths = {"model": resolve_model_path(config.model.name)} | ({"policy": policy} if policy else {})
    folder = f"evaluate/{evaluation_id(to_flat_dict(config), 'evaluate', list(paths.values()))}"
    external = config.evaluate.external_selfedits
    settings = EvaluationSettings(
        metrics=list(config.evaluate.metrics),
        seed=config.seed,
        chunk=config.inner.max_adapters if config.inner.batched else 1,
        cpt_passages=config.evaluate.cpt_passages,
        external=external_selfedits(external) if "passage_external" in conditions and external else {},
        external_path=external,
    )
    with open_runtime(config, domain, tokenizer, "evaluate", resumable=False) as runtime:
        store, tracker = runtime.store, runtime.tracker
        cpt = f", continued pretraining on {settings.cpt_passages} at once" if settings.cpt_passages else ""
        print(f"seal-lightning evaluate: {config.model.name} on {len(items)} held-out {domain.name} items{cpt} -> "
              f"{store.path(folder)}")  # fmt: skip
        with tracker.run(folder, "evaluate", to_flat_dict(config)):
            records = Evaluator(runtime, settings, folder).run(conditions, items, Roles(runtime, paths))
            text, per_item = report_evaluation(records, config, store, tracker, folder)
    if len(items) <= 20:
        print(per_item)
    print(text)
    print(f"MLflow store: {tracker.uri}")
    return 0


def report_evaluation(
    records: list[dict], config: SealConfig, store: RunStore, tracker: Tracker, folder: str
) -> tuple[str, str]:
    """Write the table (with each row's step over the row above it) and the per-item view, log them; both texts."""
    from seal_lightning.report import format_per_item, format_steps, format_table, summarize

    metrics = config.evaluate.metrics
    table = summarize(records, metrics)
    steps = format_steps(records, metrics, config.heldout.resamples)
    text = "\n".join(filter(None, [format_table(table, metrics), steps]))
    store.write_text(f"{folder}/table.txt", text + "\n")
    per_item = format_per_item(records, metrics)
    store.write_text(f"{folder}/per_item.txt", per_item + "\n")
    tracker.log_metrics({f"{row}/{m}": mean for row, values in table.items() for m, (mean, _) in values.items()})
    results = sorted(file.name for file in store.path(folder).glob("results*.jsonl"))  # one per rank under several
    for name in ("table.txt", "per_item.txt", *results):
        tracker.log_artifact(store.path(f"{folder}/{name}"))
    return text, per_item


def compare_evaluations(config: SealConfig, first: str, second: str) -> int:
    from seal_lightning.report import compare_results, load_results

    print(f"A: {first}\nB: {second}")
    print(compare_results(load_results(first), load_results(second), config.heldout.resamples))
    return 0


def continual(config: SealConfig) -> int:
    from seal_lightning.continual.experiment import ContinualExperiment, format_summary
    from seal_lightning.runtime import open_domain, open_runtime

    if not domain_spec(config.domain).documents:
        raise ConfigError(
            f"continual streams self-edits as documents to learn: domain={config.domain}'s are not (use knowledge)"
        )
    domain, tokenizer = open_domain(config)
    passages = list(domain.load())
    with open_runtime(config, domain, tokenizer, "continual") as runtime:
        store, tracker = runtime.store, runtime.tracker
        experiment = ContinualExperiment(runtime, config.continual, passages)
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


def compare(config: SealConfig, experiments: str, reference: str | None) -> int:
    from seal_lightning.continual.compare import compare as compare_strategies
    from seal_lightning.tracking import Tracker, default_store

    names = [name.strip() for name in experiments.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"--experiment names no MLflow experiment: {experiments!r}")
    store_file = default_store(Path(config.run_dir))
    if config.tracking.tracking_uri is None and not store_file.is_file():
        raise DataError(  # reading it would create an empty store there
            f"run_dir {config.run_dir} holds no MLflow store ({store_file.name}) for compare to read: "
            "run continual there first, or set tracking.tracking_uri to the store it logged to"
        )
    store = RunStore(config.run_dir)
    config.tracking.experiment = names[0]  # the compare run is logged in the first one
    tracker = Tracker(config.tracking, store)
    table, figures = compare_strategies(tracker, store, names, reference, config.heldout.resamples)
    print(table)
    for figure in figures:
        print(f"figure: {figure}")
    return 0


def track(run_dir: str, uri: str | None) -> int:
    from seal_lightning.config import TrackingConfig
    from seal_lightning.tracking import SETTINGS, Tracker

    if not os.path.isfile(os.path.join(run_dir, SETTINGS)):
        raise DataError(f"{run_dir} has no {SETTINGS}: no command has logged from that run directory")
    store = RunStore(run_dir)
    with store.hold("track"):
        saved = store.read_json(SETTINGS)
        if not (isinstance(saved, dict) and {"tracking_uri", "experiment"} <= saved.keys()):
            raise DataError(f"{store.path(SETTINGS)} is not what a command writes (tracking_uri and experiment)")
        tracker = Tracker(
            TrackingConfig(tracking_uri=uri or saved["tracking_uri"], experiment=saved["experiment"]), store
        )
        waiting = tracker.waiting_calls()
        if not tracker.flush():
            raise SealError(
                f"MLflow at {tracker.uri} stopped answering; {tracker.waiting_calls()} of {waiting} logging calls "
                "still wait: run the same command again"
            )
    print(f"sent {waiting} waiting MLflow logging calls to {tracker.uri}")
    return 0


def quiet_libraries() -> None:
    """Keep the terminal for our progress lines: library chatter goes, warnings that matter stay."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # compare reads many small artifacts
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
