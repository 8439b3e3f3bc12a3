import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from seal_lightning.cli import main
from seal_lightning.config import ModelConfig
from seal_lightning.errors import SealError
from seal_lightning.models import (
    builtin_model_folder,
    chat_prompt,
    fingerprint,
    load_model,
    resolve_dtype,
    resolve_model_path,
)


def test_builtin_is_a_cached_safetensors_folder(policy):
    folder = builtin_model_folder()
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert not hasattr(policy.config, "quantization_config")
    assert 130e6 < sum(p.numel() for p in policy.parameters()) < 140e6
    assert next(policy.parameters()).dtype == torch.float32


def test_chat_template_is_used(tokenizer):
    prompt = chat_prompt(tokenizer, "Where is Odrava?")
    assert prompt.endswith("<|im_start|>assistant\n") and "Where is Odrava?" in prompt


def test_half_precision_only_on_gpu():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16


def test_local_folder_without_config_is_refused(tmp_path):
    with pytest.raises(SealError, match=r"holds no config\.json"):
        load_model(ModelConfig(name=str(tmp_path)))


def test_unreachable_hub_id_is_one_line_exit_2(tmp_path):
    """Through `python -m seal_lightning`, as a user runs it (offline, so it fails fast)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "seal_lightning", "evaluate", "model.name=nobody/no-such-model", f"run_dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("seal-lightning: error: cannot load model 'nobody/no-such-model'")
    assert result.stderr.count("\n") == 1


def test_fingerprint_follows_the_weights_not_the_folder(tmp_path):
    """Evaluation results are cached under it: a folder overwritten by a new fit must not reuse old results."""
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    save_file({"weight": torch.zeros(2)}, folder / "model.safetensors")  # round one's weights
    first = fingerprint(str(folder))
    assert fingerprint(str(folder)) == first
    save_file({"weight": torch.ones(2)}, folder / "model.safetensors")  # round two's
    assert fingerprint(str(folder)) != first
    assert fingerprint("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "holds no config.json"),
        ({"config.json": "{}"}, "holds no tokenizer"),
        ({"config.json": "{}", "tokenizer.json": "{}"}, "holds no weights (*.safetensors)"),
        (
            {"config.json": "{}", "tokenizer.json": "{}", "pytorch_model.bin": "pickle"},
            "holds only pickle weights (pytorch_model.bin), which are never loaded",
        ),
    ],
)
def test_an_incomplete_model_folder_is_named_at_start(tmp_path, files, expected, capsys):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(SealError, match=re.escape(expected)):
        resolve_model_path(str(tmp_path))
    assert main(["evaluate", f"model.name={tmp_path}", f"run_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_missing_model_folder_is_not_looked_up_on_the_hub():
    with pytest.raises(SealError, match=r"model.name '/no/such/model': no such folder"):
        resolve_model_path("/no/such/model")
