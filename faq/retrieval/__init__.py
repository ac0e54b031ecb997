"""Ranking core of the FAQ matcher: Japanese-aware lexical signals (fugashi lemmas, readings,
character n-grams, synonyms, fuzzy) fused with optional sentence embeddings.

    r = Retriever.build(docs, cache_dir=Path("var/faq-cache"))
    r.rank("空き家ってどこで探せばいい？").ranked[0].id
"""

from .retriever import Retriever
from .values import Document, Ranking, Scored

__all__ = ["Document", "Ranking", "Retriever", "Scored"]
