"""seal-lightning: self-adapting language models (SEAL) with Lightning, PEFT, vLLM and MLflow."""

__version__ = "0.1.0"
