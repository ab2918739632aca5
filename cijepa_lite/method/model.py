"""CIJEPA: the whole method as one module whose forward returns (loss, stats) (SPEC 3-4).

Legend: B batch, N patches, N_ctx context tokens, M target blocks, N_tgt tokens per block,
D width, L collected depths, S sampled source rows.

One step: the student encodes only the context tokens; the EMA teacher encodes the full image
(no grad); every sampled source row s runs its own predictor P_s on each target block and its
heads predict all L layer-normed teacher depths; the rows' losses are weighted by w[s, t].
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .. import rng
from ..config import Config
from .encoder import VisionTransformer, init_weights
from .objective import cijepa_loss, depth_weights, teacher_targets
from .predictor import Predictor, run_stacked, stack_params


def depth_key(block: int) -> str:
    """ModuleDict key of the predictor fed by block `block` (e.g. 'd11')."""
    return f"d{block}"


class CIJEPA(nn.Module):
    """Student, EMA teacher and one predictor per source depth that can ever be sampled."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.depths = cfg.collected_depths  # D as block indices
        # Rows other than d_last are only ever sampled with deep supervision; unused predictors aren't built [K].
        sources = self.depths if cfg.intermediate_rows > 0 else self.depths[-1:]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(rng.derive_seed(cfg.seed, rng.INIT))
            self.student = VisionTransformer(cfg)
            self.predictors = nn.ModuleDict({depth_key(d): Predictor(cfg) for d in sources})
            init_weights(self.student)  # the one init, for every Linear/Conv/LayerNorm [IJ]
            init_weights(self.predictors)
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)  # [IJ] starts as a copy
        self.batch_predictors = True  # one vmapped call for the S rows (eager); compile_parts turns it off
        w = depth_weights(cfg.num_depths, cfg.all_to_last_weight, cfg.last_to_last_weight)
        self.register_buffer("weights", w, persistent=False)

    def forward(self, images: torch.Tensor, context: torch.Tensor, targets: torch.Tensor,
                sources: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of one training step.

        Args:
            images: (B, C, H, W).
            context: (B, N_ctx) flat patch indices seen by the student.
            targets: (B, M, N_tgt) flat patch indices of the target blocks.
            sources: sampled source rows as positions in D (from loss.sample_source_depths).
        Returns:
            loss (scalar, fp32) and detached stats: "mse" (S, L) per source row and target depth,
            "teacher" (B, D) mean-pooled last teacher state.
        """
        # Mask lengths change every step: compiled parts trace them as symbols once (no-op in eager).
        torch._dynamo.maybe_mark_dynamic(context, 1)
        torch._dynamo.maybe_mark_dynamic(targets, 2)
        with torch.no_grad():
            teacher_hidden = self.teacher(images)  # depth x (B, N, D)
            y = teacher_targets(teacher_hidden, self.depths, targets)  # (B, M, N_tgt, L, D)
        student_hidden = self.student(images, keep=context)  # depth x (B, N_ctx, D)
        predictions = self.predict(student_hidden, context, targets, sources)  # (S, B, M, N_tgt, L, D)
        loss, mse = cijepa_loss(list(predictions), y, self.weights, sources, self.cfg.loss)
        stats = {"mse": mse.detach(), "teacher": teacher_hidden[-1].mean(1).float()}
        return loss, stats

    def predict(self, hidden: list[torch.Tensor], context: torch.Tensor, targets: torch.Tensor,
                sources: list[int]) -> torch.Tensor:
        """Every sampled row's predictions, (S, B, M, N_tgt, L, D): one batched call over the S predictors."""
        predictors = [self.predictors[depth_key(self.depths[s])] for s in sources]
        zs = [hidden[self.depths[s]] for s in sources]  # S x (B, N_ctx, D)
        if len(predictors) == 1 or not self.batch_predictors:  # one row needs no weight copy
            for z in zs:
                torch._dynamo.maybe_mark_dynamic(z, 1)
            return torch.stack([p(z, context, targets) for p, z in zip(predictors, zs)])  # (S, B, M, N_tgt, L, D)
        z = torch.stack(zs)  # (S, B, N_ctx, D)
        # Any built predictor serves as the template: all share architecture and buffers.
        template = next(iter(self.predictors.values()))
        return run_stacked(template, stack_params(predictors), z, context, targets)  # (S, B, M, N_tgt, L, D)


def compile_parts(model: CIJEPA, backend="inductor") -> None:
    """torch.compile the student, the teacher and every predictor in place (cfg.compile).

    nn.Module.compile keeps the state-dict keys, so checkpoints load either way. The mask lengths
    are marked dynamic in forward, so each part compiles once for every mask size; the predictors
    share one graph (parameters are graph inputs) and run one by one, because Dynamo does not trace
    the vmapped batched call; the loss stays eager so that the sampled source rows never become guards.
    """
    for part in [model.student, model.teacher, *model.predictors.values()]:
        part.compile(backend=backend)
    model.batch_predictors = False  # Dynamo leaves the vmapped call eager; compiled predictors share a graph
