"""ARC inner loops whose self-edits chose different learning rates and epochs: one stack per setting (how
the batched inner loop grouped them before adapters had their own lr) against one stack for all.

    bash scripts/run.sh python benchmarks/stacking.py --tasks 4

Each built-in ARC training task gets three tool calls, (lr, epochs) = (1e-4, 1), (5e-4, 2), (1e-3, 1),
each trained as a batched inner loop (`inner.batched=true`, the ARC defaults otherwise) and scored by its
reward (token accuracy). Both sides train the same loops with the same seeds in this process; their
rewards must agree (printed), and the ratio of their wall times is the gain.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from seal_lightning.cli import quiet_libraries
from seal_lightning.configure import load_config
from seal_lightning.models import load_model
from seal_lightning.rounds import round_items
from seal_lightning.runtime import open_domain
from seal_lightning.scorer import SelfEditScorer

SETTINGS = ((1e-4, 1), (5e-4, 2), (1e-3, 1))


def tool_call(lr: float, epochs: int) -> str:
    """The rest of a tool call after the domain's response prefix ('{"augmentations": ["')."""
    return 'basic"], ' + json.dumps({"learning_rate": lr, "epochs": epochs, "loss": "outputs"})[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4, help="built-in ARC training tasks")
    args = parser.parse_args()
    quiet_libraries()
    config = load_config(None, ["domain=arc", "inner.batched=true", f"data.limit={args.tasks}"])
    domain, tokenizer = open_domain(config)
    items = round_items(domain, config.data, 1)[0]
    policy = load_model(config.model)
    jobs = [
        (item, domain.update(item, tool_call(lr, epochs)), config.seed) for item in items for lr, epochs in SETTINGS
    ]
    rejected = [update.error for _, update, _ in jobs if update.error]
    if rejected:
        raise SystemExit(f"tool calls rejected: {rejected}")
    scorer = SelfEditScorer(policy, tokenizer, domain, config.reward)
    for item in items:  # the baselines are computed once, outside the timings
        scorer.baseline(item)

    started = time.perf_counter()
    by_setting: dict[str, list[int]] = defaultdict(list)
    for index, (_, update, _) in enumerate(jobs):
        by_setting[repr(update.inner)].append(index)
    separate: dict[int, float] = {}
    for indices in by_setting.values():
        for index, result in zip(indices, scorer.score_many([jobs[i] for i in indices]), strict=True):
            separate[index] = result.reward
    separate_s = time.perf_counter() - started

    started = time.perf_counter()
    together = [result.reward for result in scorer.score_many(jobs)]
    together_s = time.perf_counter() - started

    largest = max(abs(together[i] - separate[i]) for i in range(len(jobs)))
    print(f"{len(jobs)} ARC inner loops ({len(items)} tasks x {len(SETTINGS)} (lr, epochs) settings), batched")
    print(f"{'side':<40} {'seconds':>8} {'vs one per setting':>19}")
    print(f"{'one stack per (lr, epochs) setting':<40} {separate_s:>8.1f} {1.0:>18.2f}x")
    print(f"{'one stack, lr and epochs per adapter':<40} {together_s:>8.1f} {separate_s / together_s:>18.2f}x")
    print(f"largest reward difference between the sides: {largest:.2e}")


if __name__ == "__main__":
    main()
