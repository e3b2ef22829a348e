"""Interpretability: a policy distilled into a shallow decision tree (seed §10.4).

The tree is fitted on the (observation → executed session) pairs of an evaluation run and its
fidelity (share of days on which it picks the policy's session) is measured on athletes it was
not fitted on: half of the cohort's athletes fit it, the other half score it. A tree of depth 3-4
over a few features is something a coach can read and argue with; a low fidelity says the policy
uses more than those few rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from physiology_model.data.table import ACTIONS
from physiology_model.features.batch import FEATURE_NAMES


@dataclass(frozen=True)
class DistilledTree:
    policy: str
    depth: int
    fidelity: float
    """Share of held-out athlete-days on which the tree picks the policy's session."""
    majority_fidelity: float
    """The same for always picking the policy's most frequent session (the floor)."""
    rules: str
    """The tree as indented text (sklearn.tree.export_text)."""
    model: object


def distill(run, depth: int = 3, seed: int = 0) -> DistilledTree:
    """Fit and score a depth-`depth` tree on a `PolicyRun` (with `extra["obs"]`)."""
    from sklearn.tree import DecisionTreeClassifier, export_text

    obs = np.asarray(run.extra["obs"])  # (days, N, F)
    actions = np.asarray(run.actions, dtype=int)  # (days, N)
    n = obs.shape[1]
    rng = np.random.default_rng(seed)
    fit_athletes = np.zeros(n, bool)
    fit_athletes[rng.permutation(n)[: max(1, n // 2)]] = True
    if fit_athletes.all():  # a single athlete: score in-sample (said by fidelity on 1 athlete)
        test = fit_athletes
    else:
        test = ~fit_athletes
    x_fit = obs[:, fit_athletes].reshape(-1, obs.shape[2])
    y_fit = actions[:, fit_athletes].ravel()
    x_test = obs[:, test].reshape(-1, obs.shape[2])
    y_test = actions[:, test].ravel()
    tree = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=20, random_state=seed)
    tree.fit(x_fit, y_fit)
    fidelity = float(np.mean(tree.predict(x_test) == y_test))
    majority = float(np.mean(y_test == np.bincount(y_fit).argmax()))
    names = [ACTIONS[c] for c in tree.classes_]
    rules = export_text(tree, feature_names=list(FEATURE_NAMES), class_names=names,
                        decimals=1)
    return DistilledTree(run.name, depth, fidelity, majority, rules, tree)
