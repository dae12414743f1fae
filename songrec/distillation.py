"""ALS as a teacher of the neural model: a second loss that pulls each network's softmax over a step's
candidates towards ALS's ranking of them.

Why: the network's own loss is a softmax over the withheld tracks and a few thousand sampled ones,
which rewards its top ranks. Its ranks 50-500, which NDCG reads, held fewer withheld tracks than
ALS's, mostly tracks of 4-10 training playlists. Each network already starts from the factors of its
own ALS fit; ALS's answer for the same seeds (its fold-in against those factors) costs a few small
matrix products per step, and teaching it lifted the network on every tuning split
(README, The neural model). Only training reads the teacher: the served model and its checkpoint are
the network alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from songrec.config import FOLD_INS, TrainSettings
from songrec.models.network import PAD


@dataclass
class FoldInTeacher:
    """ALS's scores for a seed list, over any tracks: its fold-in against fixed track factors Y.

    factors: (items + 1, dim), row PAD zero (padded seed rows then add nothing); l2 and alpha are the
    ALS fit's own, in the factors' scale. ALS's own fold-in (`exact`, as `songrec.models.als` scores)
    solves (YᵀY + alpha SᵀS + l2 I) u = (1 + alpha) Σ s for each playlist's seed rows S; `shared`
    leaves out the seeds' alpha SᵀS, so one inverse, computed once, serves every playlist: with the
    per-playlist solves the teacher cost 2.5 times as much, and on the tuning splits both taught as well.
    """

    factors: torch.Tensor
    l2: float
    alpha: float
    fold_in: str = "shared"
    _lhs: torch.Tensor = field(init=False, repr=False)
    _inverse: torch.Tensor | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.fold_in not in FOLD_INS:
            raise ValueError(f"fold_in must be one of {', '.join(FOLD_INS)}, not {self.fold_in!r}")
        dim = self.factors.shape[1]
        eye = torch.eye(dim, dtype=self.factors.dtype, device=self.factors.device)
        self._lhs = self.factors.T @ self.factors + self.l2 * eye
        if self.fold_in == "shared":
            self._inverse = torch.linalg.inv(self._lhs)

    def to(self, device: torch.device) -> FoldInTeacher:
        return FoldInTeacher(self.factors.to(device), self.l2, self.alpha, self.fold_in)

    @torch.no_grad()
    def scores(self, seeds: torch.Tensor, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, candidates) ALS scores of each padded seed row (batch, width) for the candidate items
        (every item, PAD included, when None)."""
        seed_rows = self.factors[seeds]
        rhs = (1.0 + self.alpha) * seed_rows.sum(dim=1)
        if self._inverse is not None:
            user = rhs @ self._inverse  # the inverse of a symmetric matrix is symmetric
        else:
            user = torch.linalg.solve(self._lhs + self.alpha * seed_rows.transpose(1, 2) @ seed_rows, rhs)
        table = self.factors if candidates is None else self.factors[candidates]
        return user @ table.T


@dataclass
class Distillation:
    """The teachers of a run (one per network of an ensemble, in member order) and how much they count."""

    teachers: Sequence[FoldInTeacher]
    weight: float
    scale: float
    """The teacher's logits are its scores scaled so that each playlist's largest reads this."""

    @classmethod
    def from_settings(
        cls, teachers: Sequence[FoldInTeacher], settings: TrainSettings, device: torch.device | None = None
    ) -> Distillation | None:
        """The run's distillation as the training settings ask for it, its teachers on `device` (None when
        `distill` is 0: nothing is copied)."""
        if settings.distill <= 0:
            return None
        teachers = [t.to(device) for t in teachers] if device is not None else list(teachers)
        return cls(teachers, settings.distill, settings.distill_scale)

    def loss(
        self,
        member: int,
        log_probs: torch.Tensor,
        seeds: torch.Tensor,
        candidates: torch.Tensor | None = None,
        correction: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """weight x distillation_loss for one network's (batch, candidates) log-probabilities."""
        teacher = self.teachers[member].scores(seeds, candidates)
        has_seeds = (seeds != PAD).any(dim=1)
        return self.weight * distillation_loss(log_probs, teacher, has_seeds, self.scale, correction)


def teacher_logits(
    teacher_scores: torch.Tensor, blocked: torch.Tensor, scale: float, correction: torch.Tensor | None = None
) -> torch.Tensor:
    """The teacher's logits over each playlist's candidates: its scores scaled so that the playlist's
    largest absolute score reads `scale`, less the log-inclusion `correction`; `blocked` ones at -inf."""
    teacher_scores = teacher_scores.masked_fill(blocked, 0.0)
    top = teacher_scores.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
    logits = scale * teacher_scores / top
    if correction is not None:
        logits = logits - correction
    return logits.masked_fill(blocked, float("-inf"))


def distillation_loss(
    log_probs: torch.Tensor,
    teacher_scores: torch.Tensor,
    has_seeds: torch.Tensor,
    scale: float,
    correction: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy from the teacher's softmax to the network's over the same candidates, averaged over
    the playlists with seeds (the teacher has nothing to say about a title alone).

    The teacher's logits are its scores scaled so that the playlist's largest absolute score reads
    `scale` (ALS scores have no temperature of their own; a lower scale is a flatter teacher, which
    says more about the deep list), less the same log-inclusion `correction` as the network's
    sampled logits. Candidates at -inf in `log_probs` (seeds, padding) take no part.
    """
    blocked = torch.isinf(log_probs)
    target = torch.softmax(teacher_logits(teacher_scores, blocked, scale, correction), dim=1)
    per_playlist = -(target * log_probs.masked_fill(blocked, 0.0)).sum(dim=1)
    if not bool(has_seeds.any()):
        return per_playlist.sum() * 0.0
    return per_playlist[has_seeds].mean()
