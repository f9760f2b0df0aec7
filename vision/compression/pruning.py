"""Structured pruning to a budget with torch-pruning (DepGraph), fine-tuned with or without distillation.

torch-pruning finds the coupled channels (a conv, its BatchNorm, the residual
add and every consumer) and removes them together; this module only drives it:
prune a step, fine-tune, measure, stop at the first step within the budget or
before the first step that would break the accuracy floor. The rounds are the
same for every task (`prune_rounds`); a task gives its pruner, its fine-tuning
and its validation score (`RoundHooks`): classification here (`prune_to_budget`),
detection in vision.detection.compression.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch_pruning as tp

from core.spec.deployment import CompressSection
from core.spec.training import AugmentSection, TrainSection
from vision.compression.scoring import Scoring
from vision.data.dataset import SplitData, to_tensor
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training.model import task_score

if TYPE_CHECKING:
    from vision.training.fit import Teacher

IMPORTANCE: dict[str, Callable[[], tp.importance.Importance]] = {
    "group_magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "group_taylor": lambda: tp.importance.GroupTaylorImportance(),
    "lamp": lambda: tp.importance.LAMPImportance(p=2),
    "random": lambda: tp.importance.RandomImportance(),
}
ROUND_TO = 8
"""Channel counts stay multiples of 8: int8 and SIMD kernels run fastest on them."""
GLOBAL_LAYER_CAP = 0.9
"""With global allocation no layer loses more than this share of its channels (or `max_prune_ratio` when
larger): ranked across layers, a layer whose channels all score low would otherwise vanish."""


def finetune_epochs(compression: CompressSection, training: TrainSection, train_images: int) -> int:
    """`compress.finetune_epochs`, or more when that many epochs would not reach `finetune_min_steps`."""
    steps_per_epoch = max(1, math.ceil(train_images / training.batch_size))
    return max(compression.finetune_epochs, math.ceil(compression.finetune_min_steps / steps_per_epoch))


@dataclass(frozen=True)
class Size:
    params: int
    macs: int


def measure_size(model: torch.nn.Module, size_px: int) -> Size:
    macs, params = tp.utils.count_ops_and_params(model.eval(), torch.zeros(1, 3, size_px, size_px))
    return Size(int(params), int(macs))


@dataclass(frozen=True)
class PruneRound:
    step: int
    params: int
    macs: int
    score: float
    """The task's validation score after the round's fine-tuning (Scoring.field names it)."""
    within_budget: bool
    above_floor: bool

    def row(self, scoring: Scoring) -> dict[str, Any]:
        """The round as a table row, its score under the task's own name (`val_accuracy`, `val_map`)."""
        return {"step": self.step, "params": self.params, "macs": self.macs, scoring.field: self.score,
                "within_budget": self.within_budget, "above_floor": self.above_floor}


PruningStep = tuple[str, bool, list[int]]
"""(module name, output channels or not, removed channel indices): one entry of torch-pruning's history."""


@dataclass(frozen=True)
class PruneResult:
    model: torch.nn.Module
    """The last model above the accuracy floor (the input model when even the first step breaks it)."""
    rounds: list[PruneRound]
    budget_met: bool
    history: list[PruningStep]
    """torch-pruning's record of the channels removed from `model`, to rebuild its architecture later."""
    floor: float = 0.0
    """The validation score below which a round was undone."""
    searched: bool = False
    """The budget set no size limit: rounds went on to the smallest model above the floor."""

    @property
    def kept_steps(self) -> int:
        """Rounds whose result was kept; 0 means `model` is the trained model unchanged."""
        return sum(r.above_floor for r in self.rounds)

    @property
    def stopped_by(self) -> str:
        """Why pruning ended: 'budget' (within it), 'accuracy_floor' (the next round fell below the floor) or
        'steps' (every round kept, the budget still not met)."""
        if self.budget_met and not self.searched:
            return "budget"
        return "accuracy_floor" if self.rounds and not self.rounds[-1].above_floor else "steps"


BudgetCheck = Callable[[torch.nn.Module, Size], bool]


def _taylor_gradients(model: torch.nn.Module, train: SplitData, task: Task, batch: int = 128) -> None:
    """GroupTaylor scores channels by weight x gradient: one backward pass of the task's loss on a training batch
    provides it."""
    model.zero_grad()
    x, y = to_tensor(train.images[:batch]), torch.from_numpy(train.labels[:batch])
    task.loss(model.train()(x), y, 0.0, None).backward()


@dataclass(frozen=True)
class RoundHooks:
    """What a task gives the pruning rounds: how a pruned model is fine-tuned, measured and scored."""

    fine_tune: Callable[[torch.nn.Module, int], torch.nn.Module]
    """(the model just pruned, the round's number) -> the fine-tuned model."""
    measure: Callable[[torch.nn.Module], Size]
    score: Callable[[torch.nn.Module], float]
    """The validation score the floor is judged on."""
    before_step: Callable[[torch.nn.Module], None] | None = None
    """Run before each pruning step (group_taylor importance needs gradients)."""


# Eight parameters: the model and its pruner, how many rounds, the task's hooks, and the stop rules.
def prune_rounds(trained: torch.nn.Module, pruner_for: Callable[[torch.nn.Module], tp.pruner.MetaPruner],
                 steps: int, hooks: RoundHooks, within_budget: BudgetCheck, floor: float, *, smallest: bool = False,
                 progress: Callable[[PruneRound], None] | None = None) -> PruneResult:
    """Prune -> fine-tune rounds until `within_budget` holds or the next round would fall below `floor`;
    `smallest` goes on past the budget to the smallest model above the floor (for budgets with no size limit).
    Callers seed torch first: the pruner's importance and the fine-tuning draw from it."""
    model = copy.deepcopy(trained).eval()
    pruner = pruner_for(model)
    kept, kept_history, rounds = copy.deepcopy(model), [], []
    for step in range(1, steps + 1):
        if hooks.before_step is not None:
            hooks.before_step(model)
        pruner.step()
        model.zero_grad(set_to_none=True)
        model = hooks.fine_tune(model, step)
        size = hooks.measure(model)
        score = hooks.score(model)
        result = PruneRound(step, size.params, size.macs, round(score, 6), within_budget(model, size),
                            score >= floor)
        rounds.append(result)
        if progress:
            progress(result)
        if not result.above_floor:
            met = smallest and any(r.above_floor for r in rounds)
            return PruneResult(kept, rounds, budget_met=met, history=kept_history, floor=floor, searched=smallest)
        kept, kept_history = copy.deepcopy(model), _history(pruner)
        if result.within_budget and not smallest:
            return PruneResult(kept, rounds, budget_met=True, history=kept_history, floor=floor)
    return PruneResult(kept, rounds, budget_met=smallest and bool(rounds), history=kept_history, floor=floor,
                       searched=smallest)


# Many parameters, kept flat on purpose: the three callers (compress, its benchmark, the tests) pass different
# budgets, floors, teachers and progress hooks, and each is a plain value a reader can see at the call.
def prune_to_budget(trained: torch.nn.Module, train: SplitData, val: SplitData, compression: CompressSection,
                    finetune: TrainSection, seed: int, within_budget: BudgetCheck, floor: float, *,
                    teacher: Teacher | None = None, augment: AugmentSection | None = None,
                    progress: Callable[[PruneRound], None] | None = None, smallest: bool = False,
                    task: Task = CLASSIFICATION) -> PruneResult:
    """An image-level task's pruning rounds (prune_rounds): its classifier layer kept, each round fine-tuned on the
    training split (imitating `teacher` when given) and scored by the task's validation score."""
    torch.manual_seed(seed)
    size_px = int(train.images.shape[1])
    spread = compression.allocation == "global"

    def pruner_for(model: torch.nn.Module) -> tp.pruner.MetaPruner:
        return tp.pruner.MetaPruner(
            model, torch.zeros(1, 3, size_px, size_px), importance=IMPORTANCE[compression.importance](),
            pruning_ratio=compression.max_prune_ratio, iterative_steps=compression.prune_steps,
            ignored_layers=[model.get_classifier()], round_to=ROUND_TO, global_pruning=spread,
            max_pruning_ratio=max(GLOBAL_LAYER_CAP, compression.max_prune_ratio) if spread else 1.0)

    def fine_tune(model: torch.nn.Module, step: int) -> torch.nn.Module:
        # imported here: the stages that only rebuild or describe a pruned model need no Lightning (2-3 s to import)
        from vision.training.fit import fit

        fit(model, train, val, finetune, seed + step, augment, teacher=teacher, progress=progress is not None,
            task=task, label=f"compress: pruning round {step} fine-tuning")
        return model

    taylor = compression.importance == "group_taylor"
    hooks = RoundHooks(fine_tune, lambda model: measure_size(model, size_px),
                       lambda model: task_score(model, val, task),
                       (lambda model: _taylor_gradients(model, train, task)) if taylor else None)
    return prune_rounds(trained, pruner_for, compression.prune_steps, hooks, within_budget, floor,
                        smallest=smallest, progress=progress)


def track_record(result: PruneResult, compression: CompressSection, scoring: Scoring) -> dict[str, Any]:
    """How a pruning track ended, for export's message when no variant meets the budget."""
    last = result.rounds[-1] if result.rounds else None
    return {"budget_met": result.budget_met, "stopped_by": result.stopped_by, "kept_steps": result.kept_steps,
            "floor": round(result.floor, 6), "finetune_epochs": compression.finetune_epochs,
            "prune_steps": compression.prune_steps, "last_round": last.row(scoring) if last else None}


def track_line(name: str, record: dict[str, Any], scoring: Scoring) -> str:
    """One sentence on how a pruning track ended."""
    last = record["last_round"]
    if record["stopped_by"] == "accuracy_floor":
        head = (f"{name} undone: its first round" if not record["kept_steps"]
                else f"{name} stopped after {record['kept_steps']} round(s): round {last['step']}")
        return (f"{head} reached {scoring.label} {last[scoring.field]:.4f} ({last['params']:,} params, "
                f"{last['macs']:,} MACs), below the accuracy floor {record['floor']:.4f} after "
                f"{record['finetune_epochs']} fine-tuning epoch(s)"
                + ("; this track is the trained model, not a candidate of its own" if not record["kept_steps"] else ""))
    if record["stopped_by"] == "steps":
        outcome = "the smallest it could reach" if record["budget_met"] else "without meeting the budget"
        return (f"{name} kept all {record['kept_steps']} rounds, {outcome} (compress.prune_steps and "
                "compress.max_prune_ratio limit how far it prunes)")
    return f"{name} within the budget after {record['kept_steps']} round(s)"


def _history(pruner: tp.pruner.MetaPruner) -> list[PruningStep]:
    return [(str(name), bool(out), [int(i) for i in idxs]) for name, out, idxs in pruner.DG.pruning_history()]


def rebuild_pruned(model: torch.nn.Module, history: list[PruningStep], size_px: int) -> torch.nn.Module:
    """Replay a pruning history on a freshly built model of the same backbone, so pruned weights load into it.

    Saving the weights as safetensors plus this history (instead of pickling the pruned module) keeps the
    files byte-for-byte reproducible and free of pickle.
    """
    graph = tp.DependencyGraph().build_dependency(model.eval(), torch.zeros(1, 3, size_px, size_px), verbose=False)
    graph.load_pruning_history([(name, out, list(idxs)) for name, out, idxs in history])
    return model
