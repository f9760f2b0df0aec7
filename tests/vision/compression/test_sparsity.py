"""Joint training and pruning: the group regulariser drives a redundant channel group to zero, and pruning the
zeroed groups removes exactly that group, leaving what the model computes unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from core.spec.deployment import SparseTraining
from core.spec.training import Optimizer, Scheduler, TrainSection
from tests.conftest import TINY_CLASSES, tiny_split_data
from vision.compression.pruning import rebuild_pruned
from vision.compression.sparsity import prune_zeroed, sparse_train
from vision.data.dataset import to_tensor
from vision.training.fit import fit
from vision.training.model import predict_logits

pytestmark = pytest.mark.slow
SIZE = 16
WIDTH = 6
DEAD = 4
"""The channel of `stem` made redundant: its output is zero on every image, so nothing the loss sees uses it."""


class SmallNet(nn.Module):
    """A convolution and a linear head, with timm's `num_classes` and `get_classifier` (what fit expects): one
    family of channel groups (a stem channel with the head weights that read it), so which groups the training
    zeroes is plain to see."""

    def __init__(self, num_classes: int = len(TINY_CLASSES)):
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Conv2d(3, WIDTH, 3, padding=1)
        self.head = nn.Linear(WIDTH, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.stem(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def splits(tiny_digits: Path):
    return tiny_split_data(tiny_digits, SIZE)


def test_sparse_training_zeroes_the_redundant_group_and_pruning_removes_exactly_it(splits) -> None:
    train, val, test = splits
    torch.manual_seed(0)
    model = SmallNet()
    settings = TrainSection(epochs=6, batch_size=16, optimizer=Optimizer(name="sgd", lr=0.05, weight_decay=0.0),
                             scheduler=Scheduler(name="none"))
    fit(model, train, val, settings, 0, progress=False)
    with torch.no_grad():  # silence one stem channel on every image (input is normalised to about [-2.2, 2.7])
        model.stem.weight[DEAD] = -0.02  # small weights, as a channel that learned nothing has ...
        model.stem.bias[DEAD] = -10.0  # ... and an output always below zero, so ReLU gives 0 ...
        model.head.weight[:, DEAD] *= 0.1  # ... which the head barely reads
    live = torch.arange(WIDTH) != DEAD

    def norms(net: SmallNet) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.linalg.vector_norm(net.stem.weight.detach().flatten(1), dim=1),
                torch.linalg.vector_norm(net.head.weight.detach().transpose(0, 1), dim=1))

    stem_before, _ = norms(model)
    assert stem_before[DEAD] > 0.1 * stem_before.max()  # five times above the pruning threshold to begin with
    sparsity = SparseTraining(epochs=30, regularisation=0.2, weakest_pressure=1.0)
    sparse = sparse_train(model, train, val, settings, sparsity, 0)
    stem_norms, head_norms = norms(sparse)
    assert stem_norms[DEAD] < 0.02 * stem_norms.max()  # driven to zero ...
    assert head_norms[DEAD] < 0.02 * head_norms.max()  # ... with every weight that reads it
    assert (stem_norms[live] > 0.1 * stem_norms.max()).all()  # the useful channels stay

    x = to_tensor(test.images[:])
    expected = predict_logits(sparse, x)
    pruned = prune_zeroed(sparse, SIZE, zero_below=0.02)
    assert pruned.removed == {"stem": 1}
    assert (pruned.model.stem.out_channels, pruned.model.head.in_features) == (WIDTH - 1, WIDTH - 1)
    torch.testing.assert_close(predict_logits(pruned.model, x), expected, atol=1e-3, rtol=1e-3)
    rebuilt = rebuild_pruned(SmallNet(), pruned.history, SIZE)  # the history replays on a fresh model
    rebuilt.load_state_dict(pruned.model.state_dict())
    torch.testing.assert_close(predict_logits(rebuilt, x), expected)
