"""The bad inputs of `tests/test_bad_inputs.py`, one per row: the arguments that give the input (built
under the test's tmp_path) and a distinctive part of the one error line each must end with."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seal_lightning.models import builtin_model_folder

GOOD = {"title": "T", "context": "C.", "questions": [{"question": "Q?", "answer": "A"}]}
PAIR = {"input": [[1, 0], [0, 1]], "output": [[2]]}


def write(tmp: Path, name: str, content: object) -> str:
    """`content` as the file `name` under `tmp`: bytes as they are, a str as text, anything else as JSON."""
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def config_file(content: bytes) -> Callable[[Path], list[str]]:
    return lambda tmp: ["fit", "--config", write(tmp, "broken.yaml", content)]


def knowledge_file(content: object, command: str = "fit") -> Callable[[Path], list[str]]:
    key = "data.path" if command == "fit" else "data.heldout"
    return lambda tmp: [command, f"{key}={write(tmp, 'data.json', content)}"]


def arc_file(task: dict) -> Callable[[Path], list[str]]:
    return lambda tmp: ["fit", "domain=arc", "arc.tasks=null", f"data.path={write(tmp, 'tasks.json', {'t1': task})}"]


def fifty_megabytes(tmp: Path) -> list[str]:
    """About 50 MB of good passages, the last of which has a question without its answer."""
    context = "Odrava is a town in Wynae, famous for its lanterns. " * 20
    passages = [{**GOOD, "title": f"T{i}", "context": context} for i in range(50_000)]
    passages[-1] = {**passages[-1], "questions": [{"question": "Q?"}]}
    path = write(tmp, "big.json", passages)
    assert Path(path).stat().st_size >= 50 * 2**20
    return ["fit", f"data.path={path}"]


def model_folder(files: dict[str, str | None]) -> Callable[[Path], list[str]]:
    """A model folder with these files: None links the built-in model's file, a str is the file's text."""

    def build(tmp: Path) -> list[str]:
        folder = tmp / "model"
        folder.mkdir()
        for name, text in files.items():
            if text is None:
                (folder / name).symlink_to(builtin_model_folder() / name)
            else:
                (folder / name).write_text(text)
        return ["evaluate", f"model.name={folder}"]

    return build


BUILTIN = {"config.json": None, "tokenizer.json": None, "tokenizer_config.json": None, "model.safetensors": None}


def judge_refusing_the_key(tmp: Path) -> list[str]:
    return [
        "evaluate",
        "data.heldout_limit=1",
        "evaluate.conditions=[no_update]",
        "evaluate.metrics=[llm_judge]",
        "reward.max_new_tokens=4",
        "reward.judge.api_key_env=SEAL_BAD_INPUT_KEY",
        "reward.judge.base_url={judge}",
    ]


@dataclass(frozen=True)
class Bad:
    # The arguments (built under the test's tmp_path); run_dir=tmp_path/run is added unless they set one.
    argv: Callable[[Path], list[str]]
    # A distinctive part of the one error line.
    expected: str
    # Run as `python -m seal_lightning` (what a C library or a child process writes reaches stderr too).
    subprocess: bool = False
    # Fails once work has started: a progress bar may precede the error and the run directory may exist.
    after_start: bool = False
    env: tuple[tuple[str, str], ...] = ()


def args(*argv: str) -> Callable[[Path], list[str]]:
    return lambda tmp: list(argv)


CASES: dict[str, Bad] = {
    # The command line and the top-level settings.
    "override-without-equals": Bad(args("fit", "rounds"), "override 'rounds' is not of the form key=value"),
    "override-broken-yaml": Bad(args("fit", "outer.rounds=[1"), "override 'outer.rounds=[1' is not valid YAML"),
    "top-unknown-key": Bad(args("fit", "foo.bar=1"), "Key 'foo' not in 'SealConfig'"),
    "top-wrong-type": Bad(args("fit", "seed=abc"), "seed: Value 'abc' of type 'str' could not be converted"),
    "top-unknown-domain": Bad(args("fit", "domain=vision"), "domain='vision' is not one of: knowledge, arc"),
    "top-run-dir-is-a-file": Bad(
        lambda tmp: ["fit", f"run_dir={write(tmp, 'taken', 'a file')}"], "cannot be made a folder: it is a file"
    ),
    "top-run-dir-under-a-file": Bad(
        lambda tmp: ["evaluate", f"run_dir={write(tmp, 'taken', 'a file')}/run"], "Not a directory"
    ),
    # model
    "model-unknown-key": Bad(args("fit", "model.nope=1"), "model.nope: Key 'nope' not in 'ModelConfig'"),
    "model-wrong-type": Bad(args("fit", "model.trust_remote_code=maybe"), "model.trust_remote_code: Value 'maybe'"),
    "model-out-of-choices": Bad(args("fit", "model.dtype=int8"), "model.dtype='int8' is not one of: auto"),
    # data
    "data-unknown-key": Bad(args("fit", "data.paths=x.json"), "data.paths: Key 'paths' not in 'DataConfig'"),
    "data-out-of-range": Bad(args("fit", "data.limit=0"), "data.limit must be positive, got 0"),
    "data-conflict-rounds-and-path": Bad(
        args("fit", "data.rounds=[a.json]", "data.path=b.json"), "set data.rounds or data.path, not both"
    ),
    "data-conflict-reuse-and-per-round": Bad(
        args("fit", "data.reuse_items=true", "data.per_round=3"), "cannot be combined with rounds/per_round"
    ),
    # sampler
    "sampler-wrong-type": Bad(args("fit", "sampler.temperature=hot"), "sampler.temperature: Value 'hot'"),
    "sampler-out-of-range-k": Bad(args("fit", "sampler.k=0"), "sampler.k must be positive, got 0"),
    "sampler-out-of-range-top-p": Bad(args("fit", "sampler.top_p=1.5"), "sampler.top_p must be in (0, 1], got 1.5"),
    "sampler-negative-temperature": Bad(args("fit", "sampler.temperature=-1"), "sampler.temperature must be >= 0"),
    "sampler-unknown-backend": Bad(args("fit", "sampler=tpu"), "sampler.backend='tpu' is not one of: hf, vllm"),
    "sampler-vllm-memory-share": Bad(
        args("fit", "sampler.vllm.gpu_memory_utilization=1.5"),
        "sampler.vllm.gpu_memory_utilization must be in (0, 1], got 1.5",
    ),
    "sampler-vllm-unknown-key": Bad(args("fit", "sampler.vllm.tp=2"), "sampler.vllm.tp: Key 'tp' not in"),
    # inner
    "inner-out-of-range-lr": Bad(args("fit", "inner.lr=-1"), "inner.lr must be positive, got -1.0"),
    "inner-lora-dropout": Bad(args("fit", "inner.lora.dropout=1"), "inner.lora.dropout must be in [0, 1), got 1.0"),
    "inner-lora-no-modules": Bad(args("fit", "inner.lora.target_modules=[]"), "inner.lora.target_modules is empty"),
    "inner-lora-unknown-key": Bad(args("fit", "inner.lora.nope=1"), "inner.lora.nope: Key 'nope' not in"),
    # reward and its judge
    "reward-unknown-metric": Bad(args("fit", "reward.name=bleu"), "reward.name='bleu' is not one of: answer_loglik"),
    "reward-judge-timeout": Bad(args("fit", "reward.judge.timeout_s=0"), "reward.judge.timeout_s must be positive"),
    "reward-judge-retries": Bad(args("fit", "reward.judge.retries=-1"), "reward.judge.retries must be >= 0, got -1"),
    "reward-judge-backoff-type": Bad(args("fit", "reward.judge.backoff_s=slow"), "reward.judge.backoff_s: Value"),
    # outer
    "outer-out-of-range-rounds": Bad(args("fit", "outer.rounds=0"), "outer.rounds must be positive, got 0"),
    "outer-micro-batch-zero": Bad(
        args("fit", "outer.memory.micro_batch_size=0"), "outer.memory.micro_batch_size must be positive or null, got 0"
    ),
    "outer-negative-anchor": Bad(args("fit", "outer.anchor=-1"), "outer.anchor must be >= 0, got -1.0"),
    "outer-wrong-type": Bad(args("fit", "outer.min_gain=abc"), "outer.min_gain: Value 'abc' of type 'str'"),
    "outer-lora-alpha": Bad(args("fit", "outer.lora.alpha=0"), "outer.lora.alpha must be positive, got 0"),
    # evaluate
    "evaluate-external-row-without-file": Bad(
        args("evaluate", "evaluate.conditions=[passage_external]"),
        "evaluate.conditions has passage_external but evaluate.external_selfedits is not set",
    ),
    "evaluate-unknown-metric": Bad(args("evaluate", "evaluate.metrics=[bleu]"), "evaluate.metrics contains 'bleu'"),
    "evaluate-cpt-on-arc": Bad(
        args("evaluate", "domain=arc", "evaluate.cpt_passages=4"), "evaluate.cpt_passages (continued pretraining)"
    ),
    # heldout
    "heldout-no-metrics": Bad(args("fit", "heldout.metrics=[]"), "heldout.metrics is empty"),
    "heldout-out-of-range": Bad(args("fit", "heldout.resamples=0"), "heldout.resamples must be positive, got 0"),
    # continual
    "continual-unknown-strategy": Bad(
        args("continual", "continual.strategy=naive,magic"), "continual.strategy names 'magic'; valid strategies"
    ),
    "continual-out-of-range": Bad(args("continual", "continual.passages=1"), "continual.passages must be at least 2"),
    "continual-conflict-ewc": Bad(
        args("continual", "continual.ewc.mode=separate"), "continual.ewc.decay_factor must be set for mode=online"
    ),
    "continual-negative-penalty": Bad(
        args("continual", "continual.olora.orthogonality=-1"), "continual.olora.orthogonality must be >= 0, got -1.0"
    ),
    "continual-no-bisection": Bad(
        args("continual", "continual.gate_search.steps=0"), "continual.gate_search.steps must be positive, got 0"
    ),
    "continual-mixed-replay-policy": Bad(
        args("continual", "continual.replay_mix.policy=fifo"),
        "continual.replay_mix.policy='fifo' is not one of: balanced, reservoir",
    ),
    "continual-on-arc": Bad(args("continual", "domain=arc"), "continual streams self-edits as documents to learn"),
    "continual-strategy-file-missing": Bad(
        args("continual", "continual.strategy=ewc", "continual.strategy_dir=/no/such/dir"),
        "strategy file not found: /no/such/dir/ewc.yaml",
    ),
    # arc
    "arc-conflict-lr-range": Bad(
        args("fit", "domain=arc", "arc.min_lr=0.1", "arc.max_lr=0.01"), "arc.min_lr=0.1 is above arc.max_lr=0.01"
    ),
    "arc-standard-bad-loss": Bad(args("fit", "domain=arc", "arc.standard.loss=everything"), "arc.standard: ARC choice"),
    "arc-standard-not-a-section": Bad(args("fit", "domain=arc", "arc.standard=not json"), "arc.standard"),
    "arc-train-and-eval-overlap": Bad(
        args("fit", "domain=arc", "arc.tasks=[6150a2bd,66e6c45b]", "arc.eval_tasks=[66e6c45b]"),
        "arc.tasks and arc.eval_tasks share 66e6c45b",
    ),
    # tracking
    "tracking-unknown-key": Bad(args("fit", "tracking.nope=1"), "tracking.nope: Key 'nope' not in 'TrackingConfig'"),
    "tracking-wrong-type": Bad(args("fit", "tracking.experiment=[a]"), "tracking.experiment: Cannot convert"),
    "tracking-uri-unknown-scheme": Bad(
        args("fit", "tracking.tracking_uri=ftp://host/db"), "got unsupported URI 'ftp://host/db'", after_start=True
    ),
    "tracking-uri-sqlite-folder": Bad(
        lambda tmp: ["fit", f"tracking.tracking_uri=sqlite:///{tmp}"], "is a folder; check tracking", after_start=True
    ),
    # YAML config files
    "yaml-config-is-a-folder": Bad(lambda tmp: ["fit", "--config", str(tmp)], "is a folder, not a file"),
    "yaml-unclosed-bracket": Bad(
        config_file(b"outer: [unclosed\n"), "is not valid YAML: did not find expected ',' or ']' (line 2, column 1)"
    ),
    "yaml-tab": Bad(config_file(b"outer:\n  rounds: 1\n\tepochs: 2\n"), "is not valid YAML: found a tab character"),
    "yaml-list": Bad(config_file(b"- outer\n- inner\n"), "must hold a mapping of sections (key: value), not a list"),
    "yaml-not-utf8": Bad(config_file(b"\xff\xfe\x00outer"), "is not UTF-8 text"),
    "yaml-unknown-nested-key": Bad(config_file(b"outer:\n  roundz: 2\n"), "outer.roundz"),
    "yaml-missing-file": Bad(args("fit", "--config", "/no/such/config.yaml"), "config file not found"),
    # knowledge data files
    "data-not-json": Bad(knowledge_file("{not json"), "not valid JSON (Expecting property name"),
    "data-empty-file": Bad(knowledge_file(""), "not valid JSON (Expecting value: line 1 column 1"),
    "data-wrong-shape": Bad(knowledge_file({"title": "x"}), "expected a JSON list of passages, got dict"),
    "data-no-passages": Bad(knowledge_file([]), "holds no passages"),
    "data-missing-answer": Bad(
        knowledge_file([GOOD, {**GOOD, "questions": [{"question": "Q?"}]}]),
        "item 1: field 'questions[0].answer' must be a non-empty string",
    ),
    "data-50-megabytes": Bad(fifty_megabytes, "item 49999: field 'questions[0].answer' must be a non-empty string"),
    "data-utf16": Bad(
        knowledge_file(json.dumps([GOOD]).encode("utf-16")), "not valid JSON ('utf-8' codec can't decode byte 0xff"
    ),
    "data-nested-10000-deep": Bad(knowledge_file("[" * 10_000 + "]" * 10_000), "not valid JSON (maximum recursion"),
    "data-5000-digit-number": Bad(knowledge_file("[" + "9" * 5_000 + "]"), "not valid JSON (Exceeds the limit"),
    "data-missing-file": Bad(args("fit", "data.path=/no/such/file.json"), "data file not found: /no/such/file.json"),
    "data-path-is-a-folder": Bad(lambda tmp: ["fit", f"data.path={tmp}"], "is a folder, not a file"),
    "heldout-not-json": Bad(knowledge_file("[{", "evaluate"), "not valid JSON"),
    "rounds-missing-file": Bad(
        args("fit", "outer.rounds=1", "data.rounds=[/no/such/r1.json]"), "data file not found: /no/such/r1.json"
    ),
    # ARC data files
    "arc-cell-outside-0-9": Bad(
        arc_file({"train": [PAIR], "test": [{"input": [[1, 12]], "output": [[1]]}]}),
        "task t1: test[0].input: row 0, column 1: 12 is not a colour 0-9",
    ),
    "arc-ragged-rows": Bad(
        arc_file({"train": [{"input": [[1]], "output": [[1, 2, 3], [4, 5]]}], "test": [PAIR]}),
        "task t1: train[0].output: row 1 has 2 cells, row 0 has 3",
    ),
    "arc-no-solution": Bad(
        arc_file({"train": [PAIR], "test": [{"input": [[1]]}]}), "test[0].output: missing, and arc.solutions is not set"
    ),
    # model folders
    "model-folder-missing": Bad(args("evaluate", "model.name=/no/such/model"), "model.name '/no/such/model': no such"),
    "model-folder-no-config": Bad(model_folder({"tokenizer.json": None}), "holds no config.json"),
    "model-folder-no-tokenizer": Bad(model_folder({"config.json": None}), "holds no tokenizer"),
    "model-folder-no-weights": Bad(
        model_folder({"config.json": None, "tokenizer.json": None}), "holds no weights (*.safetensors)"
    ),
    "model-folder-pickle-weights": Bad(
        model_folder({"config.json": None, "tokenizer.json": None, "pytorch_model.bin": "pickle"}),
        "holds only pickle weights (pytorch_model.bin), which are never loaded",
    ),
    "model-folder-corrupt-weights": Bad(
        model_folder({**BUILTIN, "model.safetensors": "garbage" * 10}),
        "model.safetensors is not a readable safetensors file",
    ),
    "model-folder-broken-tokenizer": Bad(
        model_folder({**BUILTIN, "tokenizer.json": "{}"}), "cannot load the tokenizer of"
    ),
    "model-folder-config-not-json": Bad(
        model_folder({**BUILTIN, "config.json": "{not json"}), "config.json' is not a valid JSON file"
    ),
    "policy-folder-missing": Bad(args("evaluate", "evaluate.policy=/no/such/policy"), "'/no/such/policy': no such"),
    "model-hub-id-offline": Bad(
        args("evaluate", "model.name=nobody/no-such-model"),
        "cannot load model 'nobody/no-such-model': not 'builtin', not a local folder",
        subprocess=True,
        env=(("HF_HUB_OFFLINE", "1"),),
    ),
    # external self-edits
    "external-selfedits-without-completions": Bad(
        lambda tmp: [
            "evaluate",
            "evaluate.conditions=[passage_external]",
            f"evaluate.external_selfedits={write(tmp, 'external.json', [GOOD])}",
        ],
        "no passage has 'completions' (needed by passage_external)",
    ),
    "external-selfedits-missing-file": Bad(
        args("evaluate", "evaluate.conditions=[passage_external]", "evaluate.external_selfedits=/no/such.json"),
        "data file not found: /no/such.json",
    ),
    # other commands' inputs
    "compare-missing-folders": Bad(args("evaluate", "--compare", "/no/such/a", "/no/such/b"), "/no/such/a"),
    "compare-file-of-no-results": Bad(
        lambda tmp: ["evaluate", "--compare", *[write(tmp, "notes.txt", "not JSON\n")] * 2],
        "notes.txt holds no evaluation results",
    ),
    "compare-records-of-another-kind": Bad(
        lambda tmp: ["evaluate", "--compare", *[write(tmp, "results.jsonl", '{"loss": 1.0}\n')] * 2],
        "holds lines that are not evaluation results",
    ),
    "compare-run-dir-without-a-store": Bad(
        args("compare", "--experiment", "continual-builtin"), "holds no MLflow store (mlflow.db) for compare to read"
    ),
    # services that refuse: the judge, the vLLM engine
    "judge-refuses-the-key": Bad(
        judge_refusing_the_key, "failed: HTTP 401, the API key was refused (reward.judge.api_key_env)", after_start=True
    ),
    "vllm-cannot-start": Bad(
        args(
            "evaluate",
            "sampler=vllm",
            "sampler.vllm.max_model_len=1000000",
            "data.heldout_limit=1",
            "evaluate.conditions=[passage_selfedit]",
        ),
        "vLLM did not start on ",
        subprocess=True,
        after_start=True,
    ),
}
