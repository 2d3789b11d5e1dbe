"""Text classification: strings in a CSV column (or generated reviews), a vocabulary built from
the training split only, and padded token ids with 0 as padding.

The vocabulary is saved with the run (``vocab.json``) and read back by ``eval`` and ``predict``,
so new text is encoded exactly as the training text was.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch

from trainlab.data.loader import TensorSplits
from trainlab.data.splits import check_fractions, stratified_indices
from trainlab.data.tables import read_table
from trainlab.errors import ConfigError

PAD, UNK = "<pad>", "<unk>"
LEVELS = ("word", "char")
WORD = re.compile(r"\w+|[^\w\s]")


class Vocabulary:
    """Tokens to ids: 0 is padding, 1 an unknown token, then the training tokens by frequency.

    Args:
        tokens: the known tokens in id order, without the two specials.
        level: ``"word"`` (words and punctuation) or ``"char"``.
        lowercase: lowercase text before splitting it.
    """

    def __init__(self, tokens: Sequence[str], level: str = "word", lowercase: bool = True) -> None:
        if level not in LEVELS:
            raise ConfigError(f"data.tokenizer {level!r} is unknown; use one of {LEVELS}")
        self.level, self.lowercase = level, lowercase
        self.itos = [PAD, UNK, *tokens]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def split(self, text: str) -> list[str]:
        text = text.lower() if self.lowercase else text
        return list(text) if self.level == "char" else WORD.findall(text)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        level: str = "word",
        lowercase: bool = True,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """The tokens of ``texts`` seen at least ``min_freq`` times, the ``max_size`` most
        frequent (ties in alphabetical order)."""
        probe = cls([], level, lowercase)
        counts = Counter(t for text in texts for t in probe.split(text))
        ranked = sorted(
            (t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        return cls(ranked[:max_size], level, lowercase)

    def encode(self, texts: Sequence[str], length: int) -> np.ndarray:
        """``(N, length)`` int64 ids, cut at ``length`` tokens and padded with 0."""
        ids = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = [self.stoi.get(t, 1) for t in self.split(text)][:length]
            ids[row, : len(tokens)] = tokens
        return ids

    def save(self, path: Path) -> None:
        record = {"level": self.level, "lowercase": self.lowercase, "tokens": self.itos[2:]}
        path.write_text(json.dumps(record, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        record = json.loads(path.read_text())
        return cls(record["tokens"], record["level"], record["lowercase"])


def generate_reviews(samples: int, seed: int = 0) -> pd.DataFrame:
    """Short reviews whose sentiment a bag of words cannot read: ``not`` flips an adjective,
    and after ``but`` the second clause decides (``the plot was not bad but the acting was
    dull`` is negative)."""
    rng = np.random.default_rng(seed)
    subjects = ["the movie", "this film", "the plot", "the acting", "the ending", "the cast"]
    verbs = ["was", "is", "felt", "seemed"]
    adjectives = {
        1: ["good", "great", "wonderful", "brilliant", "moving", "fun", "clever"],
        0: ["bad", "boring", "awful", "dull", "weak", "silly", "messy"],
    }
    adverbs = ["", "", "really ", "very ", "quite "]

    def clause() -> tuple[str, int]:
        polarity = int(rng.integers(2))
        negated = rng.random() < 0.5
        word = adjectives[polarity][rng.integers(len(adjectives[polarity]))]
        text = (
            f"{subjects[rng.integers(len(subjects))]} {verbs[rng.integers(len(verbs))]} "
            f"{'not ' if negated else ''}{adverbs[rng.integers(len(adverbs))]}{word}"
        )
        return text, polarity ^ int(negated)

    rows = []
    for _ in range(samples):
        text, label = clause()
        if rng.random() < 0.4:
            second, label = clause()
            text = f"{text} but {second}"
        rows.append(
            {"text": text + rng.choice([".", "!", ""]), "label": ["negative", "positive"][label]}
        )
    return pd.DataFrame(rows)


class TextDataModule(TensorSplits, pl.LightningDataModule):
    """Classify strings: a CSV with a text column and a label column, or generated reviews.

    Args:
        path: the CSV file; None generates ``samples`` reviews (see :func:`generate_reviews`).
        text: the column of strings.
        target: the column of labels (any values; sorted into class names).
        tokenizer: ``"word"`` or ``"char"``.
        max_length: tokens kept per text (longer texts are cut); sequences are padded to the
            longest training text up to this.
        min_freq: a token must occur this often in the training texts to get an id.
        max_vocab: the most frequent tokens kept.
        lowercase: lowercase before splitting.
        vocab_file: a saved vocabulary to use instead of building one (``eval``/``predict``).
        samples, seed: size and seed of the generated reviews.
        batch_size, eval_batch_size, val_fraction, test_fraction, split_seed, shuffle_seed: as
            for the in-memory DataModules.
    """

    modality = "text"
    task = "classification"

    def __init__(
        self,
        path: str | None = None,
        text: str = "text",
        target: str = "label",
        tokenizer: str = "word",
        max_length: int = 64,
        min_freq: int = 1,
        max_vocab: int = 20000,
        lowercase: bool = True,
        vocab_file: str | None = None,
        samples: int = 3000,
        seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        shuffle_seed: int | None = None,
        encoding: str = "utf-8",
    ) -> None:
        super().__init__()
        if tokenizer not in LEVELS:
            raise ConfigError(f"data.tokenizer {tokenizer!r} is unknown; use one of {LEVELS}")
        for name, value in (("max_length", max_length), ("min_freq", min_freq)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{name} must be a positive integer, got {value!r}")
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"data.path: file {path!r} does not exist")
        self.path, self.text, self.target = path, text, target
        self.tokenizer, self.max_length, self.min_freq = tokenizer, max_length, min_freq
        self.max_vocab, self.lowercase, self.vocab_file = max_vocab, lowercase, vocab_file
        self.samples, self.seed = samples, seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.val_fraction, self.test_fraction = check_fractions(val_fraction, test_fraction)
        self.split_seed, self.shuffle_seed = split_seed, shuffle_seed
        self.encoding = encoding
        self.vocab: Vocabulary | None = None
        self.class_names: list[str] | None = None
        self.length = 0
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- what nets and models read ---------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def num_outputs(self) -> int:
        return len(self.class_names or [])

    @property
    def vocab_size(self) -> int:
        assert self.vocab is not None, "call setup() first"
        return len(self.vocab)

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._tensors[split]

    # -- Lightning hooks -------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._tensors:
            return
        frame = self._read()
        where = self.path or "the generated reviews"
        if missing := int(frame[self.target].isna().sum()):
            rows = [int(i) + 2 for i in frame.index[frame[self.target].isna()][:5]]  # file lines
            raise ConfigError(
                f"data.path: {where}: {missing} rows have no {self.target!r} label (lines "
                f"{rows}{' ...' if missing > 5 else ''}); label them or drop them"
            )
        labels = frame[self.target].astype(str)
        self.class_names = sorted(labels.unique())
        if len(self.class_names) < 2:
            raise ConfigError(f"data.target {self.target!r} holds one label only")
        y = labels.map({c: i for i, c in enumerate(self.class_names)}).to_numpy()
        texts = frame[self.text].fillna("").astype(str).to_numpy()
        if not any(t.strip() for t in texts):
            raise ConfigError(f"data.text: column {self.text!r} of {where} is empty in every row")
        split = stratified_indices(
            y, self.val_fraction, self.test_fraction, self.split_seed, self.class_names
        )
        train = split["train"]
        if self.vocab_file is not None:
            self.vocab = Vocabulary.load(Path(self.vocab_file))
        else:  # from the training texts only: val and test words are unknown until seen
            self.vocab = Vocabulary.build(
                texts[train], self.tokenizer, self.lowercase, self.min_freq, self.max_vocab
            )
        longest = max(len(self.vocab.split(t)) for t in texts[train])
        self.length = max(1, min(self.max_length, longest))
        for name, idx in split.items():
            ids = torch.from_numpy(self.vocab.encode(list(texts[idx]), self.length))
            self._tensors[name] = (ids, torch.from_numpy(y[idx].astype(np.int64)))

    def _read(self) -> pd.DataFrame:
        if self.path is None:
            return generate_reviews(self.samples, self.seed)
        frame = read_table(self.path, encoding=self.encoding)
        missing = [c for c in (self.text, self.target) if c not in frame.columns]
        if missing:
            raise ConfigError(
                f"data.path: {self.path} has no column(s) {missing}; its columns: "
                f"{list(frame.columns)} (set data.text and data.target)"
            )
        return frame

    # -- what a run keeps, and new text ----------------------------------------------------
    def save_artifacts(self, run_dir: Path) -> None:
        """Write ``vocab.json`` into the run directory."""
        assert self.vocab is not None
        self.vocab.save(run_dir / "vocab.json")

    def encode_frame(self, frame: pd.DataFrame) -> torch.Tensor:
        """Token ids of new rows (the ``text`` column), encoded with the run's vocabulary."""
        assert self.vocab is not None
        if self.text not in frame.columns:
            raise ConfigError(
                f"input_csv has no column {self.text!r}; its columns: {list(frame.columns)}"
            )
        texts = frame[self.text].fillna("").astype(str).tolist()
        return torch.from_numpy(self.vocab.encode(texts, self.length))

    def example_input(self) -> torch.Tensor:
        """Two short texts of known tokens: what a net is checked with before training."""
        ids = torch.zeros(2, self.length, dtype=torch.long)
        ids[:, 0] = min(2, self.vocab_size - 1)
        return ids
