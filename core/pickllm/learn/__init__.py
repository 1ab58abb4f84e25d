"""Query-aware learned routers: SelectLLM and Zooter, trained offline in numpy.

Online bandits learn which model is best on average; these routers predict, per query,
which model will answer it well, from the query text alone (plus optional tags). They
train in seconds on CPU from recorded outcomes (every model run on every training query),
predict each model's quality and cost, and route by the arg-max of ``q - lam * c`` with
``lam`` fitted to a budget (:mod:`pickllm.costaware`).

* Featurizers: :class:`HashedNgramFeaturizer` (default, nothing external),
  :class:`LangChainEmbeddings`, :class:`LlamaIndexEmbeddings`; :class:`ContextSignals`.
* Learners: :class:`LogisticRegression`, :class:`MLP` (Adam, weight decay, early stopping).
* Routers: :class:`SelectLLM` (subset selection + vote), :class:`Zooter` (distillation).
* :func:`train` / :func:`load_trained` (JSON + npz), :class:`LearnedPolicy` for
  :class:`pickllm.router.Router`, :func:`offline_routers` for ``pickllm bench``.

Importing this package imports neither LangChain nor LlamaIndex.
"""

from pickllm.learn.aggregate import (
    EXTRACTORS,
    Vote,
    VoteResult,
    choice_letter,
    exact_string,
    get_extractor,
    number,
)
from pickllm.learn.api import ROUTER_KINDS, TrainedRouter, load_trained, train
from pickllm.learn.base import CostModel, Prediction, QueryScorer
from pickllm.learn.featurizers import (
    ContextSignals,
    Featurizer,
    HashedNgramFeaturizer,
    LangChainEmbeddings,
    LlamaIndexEmbeddings,
    count_turns,
)
from pickllm.learn.models import MLP, LogisticRegression
from pickllm.learn.offline import LearnedOffline, offline_routers
from pickllm.learn.persist import load_router, save_router
from pickllm.learn.policy import LearnedPolicy
from pickllm.learn.prior import scorer_prior
from pickllm.learn.selectllm import SELECTION_POLICIES, SelectLLM, select_subset
from pickllm.learn.zooter import Zooter, soft_labels

__all__ = [
    "EXTRACTORS",
    "MLP",
    "ROUTER_KINDS",
    "SELECTION_POLICIES",
    "ContextSignals",
    "CostModel",
    "Featurizer",
    "HashedNgramFeaturizer",
    "LangChainEmbeddings",
    "LearnedOffline",
    "LearnedPolicy",
    "LlamaIndexEmbeddings",
    "LogisticRegression",
    "Prediction",
    "QueryScorer",
    "SelectLLM",
    "TrainedRouter",
    "Vote",
    "VoteResult",
    "Zooter",
    "choice_letter",
    "count_turns",
    "exact_string",
    "get_extractor",
    "load_router",
    "load_trained",
    "number",
    "offline_routers",
    "save_router",
    "scorer_prior",
    "select_subset",
    "soft_labels",
    "train",
]
