"""Rank and decide in stages, so that most queries never pay for e5 (~30 ms on one core,
against ~4 ms for lexical + USE): the first stage ranks without e5 and its calibrated
confidence either settles the query (clearly answer, or clearly not) or, in its uncertain
zone, hands it to the full hybrid, which reuses the analysis and signals already computed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .confidence import Band, ConfidenceModel, load_models, model_for_models
from .retriever import Retriever
from .selfcal import Calibration
from .values import Ranking


@dataclass(frozen=True)
class Decision:
    ranking: Ranking
    band: Band
    confidence: float  # estimated probability that the top entry is the right answer
    models: tuple[str, ...]  # the dense models that were computed for this query


class Cascade:
    """`staged=False` (or a set-up without e5, or without a calibrated first stage) is one
    stage: every loaded model on every query. Threshold overrides apply to the last stage."""

    def __init__(
        self,
        retriever: Retriever,
        *,
        staged: bool = True,
        answer_threshold: float | None = None,
        suggest_threshold: float | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.retriever = retriever
        self.answer_threshold = answer_threshold
        self.suggest_threshold = suggest_threshold
        self.calibration = calibration
        load_models()  # read the calibration now: answering must do no I/O

        def model(models: tuple[str, ...]) -> ConfidenceModel | None:
            # recalibrated for this index (selfcal.py) when given, else as shipped
            own = calibration.model_for(models) if calibration is not None else None
            return own or model_for_models(models)

        full = retriever.models
        self.stages: list[tuple[tuple[str, ...], ConfidenceModel | None]] = [(full, model(full))]
        if staged and "e5" in full and len(full) > 1:
            cheap = tuple(m for m in full if m != "e5")
            first = model(cheap)
            if first is not None and first.cascade is not None:
                self.stages.insert(0, (cheap, first))

    def decide(self, query: str, top: int = 5) -> Decision:
        prepared = self.retriever.prepare(query)
        for models, model in self.stages[:-1]:
            assert model is not None and model.cascade is not None
            ranking = self.retriever.rank_stage(prepared, models, top)
            p = model.probability(ranking.features)
            low, high = model.cascade
            if p >= high:
                return Decision(ranking, Band.ANSWER, p, models)
            if p < low:  # clearly not sure enough: this stage's suggest / don't-know band
                return Decision(ranking, model.band_of(min(p, model.answer - 1e-9)), p, models)
        models, model = self.stages[-1]
        ranking = self.retriever.rank_stage(prepared, models, top)
        band, p = self._last(model, ranking.features)
        return Decision(ranking, band, p, models)

    def _last(
        self, model: ConfidenceModel | None, features: Mapping[str, float]
    ) -> tuple[Band, float]:
        if model is None:
            return Band.SUGGEST, 0.0  # an uncalibrated set-up never answers outright
        p = model.probability(features)
        answer = model.answer if self.answer_threshold is None else self.answer_threshold
        suggest = model.suggest if self.suggest_threshold is None else self.suggest_threshold
        if p >= answer:
            return Band.ANSWER, p
        if p >= suggest:
            return Band.SUGGEST, p
        return Band.UNKNOWN, p
