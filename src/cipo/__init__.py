"""cipo: GRPO plus CIPO correction episodes, on PyTorch Lightning, Hydra and vLLM."""

__version__ = "0.1.0"
