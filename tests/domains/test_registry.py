"""The domain registry, and a third domain (tests/domains/toy_arithmetic.py) added without touching src/."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seal_lightning.config import TEACHER_FORCED_METRICS
from seal_lightning.domains.registry import DomainSpec, domain_spec, grader, register, registered
from seal_lightning.errors import ConfigError

TOY = Path(__file__).with_name("toy_arithmetic.py")


def test_the_built_in_domains_are_registered_with_their_sections_and_graders():
    specs = registered()
    assert list(specs) == ["knowledge", "arc"]
    assert specs["arc"].section.__name__ == "ArcConfig" and specs["knowledge"].section is None
    assert grader("f1")("the Odrava", "Odrava") == 1.0 and grader("grid_match")("01\n23", "01\n23") == 1.0
    assert specs["knowledge"].documents and not specs["arc"].documents


def test_unknown_names_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="domain='vision' is not one of: knowledge, arc"):
        domain_spec("vision")
    with pytest.raises(ConfigError, match="no registered domain grades the metric 'bleu'"):
        grader("bleu")


def test_a_second_domain_of_the_same_name_is_refused():
    twin = DomainSpec(
        "knowledge", factory=lambda config, tokenizer: None, conditions=(), metrics=TEACHER_FORCED_METRICS
    )
    with pytest.raises(ValueError, match="already registered"):
        register(twin)


def run_with_toy(argv: list[str]) -> subprocess.CompletedProcess:
    """The toy domain registered in a process of its own, as a user's script would (the registry is global)."""
    code = f"import sys; import toy_arithmetic; from seal_lightning.cli import main; sys.exit(main({argv!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=TOY.parent, capture_output=True, text=True, env=None, timeout=1200
    )


def test_the_toy_domains_own_section_is_checked():
    result = run_with_toy(["fit", "domain=arithmetic", "arithmetic.facts=1"])
    assert result.returncode == 2
    assert result.stderr.strip().endswith("arithmetic.facts must be at least 2, got 1"), result.stderr


@pytest.mark.slow
def test_a_third_domain_runs_fit_and_evaluate_without_touching_src(tmp_path):
    tiny = ["sampler.k=2", "sampler.max_new_tokens=12", "inner.epochs=1", "inner.seeds=1", "reward.max_new_tokens=4"]
    fit = run_with_toy(["fit", "domain=arithmetic", f"run_dir={tmp_path / 'fit'}", "outer.rounds=1",
                        "outer.epochs=1", "heldout.metrics=[answer_loglik,starts_with_sum]", *tiny])  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert "1 rounds on 4 arithmetic items" in fit.stdout
    summary = json.loads((tmp_path / "fit" / "round_1" / "summary.json").read_text())
    assert summary["items"] == 4 and summary["selfedits"] == 8
    assert "held-out starts_with_sum" in fit.stdout and "fact_selfedit" in fit.stdout
    evaluate = run_with_toy(["evaluate", "domain=arithmetic", f"run_dir={tmp_path / 'evaluate'}", *tiny])
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    (results,) = (tmp_path / "evaluate").glob("evaluate/*/results.jsonl")
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert {(r["condition"], r["item"]) for r in records} == {
        (row, key) for row in ("no_update", "fact_selfedit") for key in ("3+4", "12+20")
    }
    assert all({"answer_loglik", "starts_with_sum"} <= set(r) for r in records)
