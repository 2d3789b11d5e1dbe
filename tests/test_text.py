"""Text: a vocabulary from the training split only, padding and packing, and a model that reads
word order where a bag of words cannot, predicting on new rows with the run's vocabulary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from tests.conftest import compose_cfg
from tests.test_train import QUICK
from trainlab.data import TextDataModule, Vocabulary
from trainlab.errors import ConfigError
from trainlab.nets import RNN
from trainlab.runtime.evaluation import predict
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]


def test_vocabulary_pads_cuts_and_marks_unknown_words(tmp_path: Path) -> None:
    vocab = Vocabulary.build(["The film, the plot!", "the end"], min_freq=1)
    assert vocab.itos[:3] == ["<pad>", "<unk>", "the"]  # most frequent first
    ids = vocab.encode(["the plot was great", "a"], length=3)
    assert ids.tolist() == [[2, vocab.stoi["plot"], 1], [1, 0, 0]]
    assert Vocabulary.build(["a b a"], min_freq=2).itos == ["<pad>", "<unk>", "a"]
    chars = Vocabulary.build(["abba"], level="char")
    assert chars.encode(["abc"], 4).tolist() == [[chars.stoi["a"], chars.stoi["b"], 1, 0]]
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").itos == vocab.itos


def test_the_vocabulary_comes_from_the_training_split_only(tmp_path: Path) -> None:
    rows = [{"text": f"word{i} is good", "label": "pos"} for i in range(40)]
    rows += [{"text": f"word{i} is bad", "label": "neg"} for i in range(40, 80)]
    path = tmp_path / "t.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    dm = TextDataModule(str(path), val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    assert dm.vocab is not None and dm.input_shape == (3,)
    test_ids = dm.tensors("test")[0]
    assert (test_ids[:, 0] == 1).all()  # every test row's own word was never seen in training
    assert (test_ids[:, 1] == dm.vocab.stoi["is"]).all()
    with pytest.raises(ConfigError, match=r"has no column\(s\) \['review'\]"):
        TextDataModule(str(path), text="review").setup()


def test_packing_makes_padding_invisible_to_the_rnn() -> None:
    torch.manual_seed(0)
    net = RNN((6,), 2, cell="gru", vocab_size=10, embed_dim=8).eval()
    padded = torch.tensor([[3, 4, 5, 0, 0, 0], [7, 8, 9, 3, 4, 5]])
    alone = torch.tensor([[3, 4, 5]])
    assert torch.allclose(net(padded)[0], net(alone)[0], atol=1e-6)


@pytest.mark.slow
def test_word_order_beats_a_bag_of_words_and_predicts_new_text(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    cfg = make_cfg("experiment=reviews_lstm", "trainer.max_epochs=12", *QUICK[1:])
    metrics = fit(cfg)
    # "not" and "but" decide the label: counts of words are at chance, the LSTM is not.
    assert metrics["baseline/logistic/test/acc"] < 0.6
    assert metrics["test/acc"] > 0.95
    run_dir = Path(cfg.paths.output_dir)
    assert (run_dir / "vocab.json").is_file()

    rows = tmp_path / "new.csv"
    texts = [
        "the plot was not bad",
        "the acting was great but the ending was dull",
        "the movie was not very fun",
        "the zorblax was wonderful",  # an unknown word
    ]
    pd.DataFrame({"text": texts}).to_csv(rows, index=False)
    out = compose_cfg("predict", [f"run_dir={run_dir}", f"input_csv={rows}"], tmp_path / "p")
    table = pd.read_csv(predict(out))
    assert table["pred"].tolist() == ["positive", "negative", "negative", "positive"]
