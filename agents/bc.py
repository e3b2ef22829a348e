"""Behaviour cloning of the real athletes' own sessions (seed TRD §6.4 baseline 4, "imitate
historical user actions"; DESIGN §8).

Data. A day of a real user is one example: its input is that morning's observation, computed by
`simulator.observation.observations_from_table` (the very features the simulator shows a policy),
and its label is that day's `session` (the action the athlete took that day, after the morning's
reading). Days whose session is `unknown` or missing are dropped. Only the training athletes of
`physiology_model.data.splits.user_split` (seed 0 and 20 % test users by default, over every user_id
of the frame) are used for fitting; the held-out athletes give the reported scores.

Model. A multinomial logistic regression on standardised features (mean and SD of the training
days; constant features get SD 1), with its L2 strength chosen by grouped cross-validation over
the training athletes (log loss, athletes never split across folds). Why this model:

- it estimates p(action | observation), which is what a cloned policy must sample from.
  Class weighting ("balanced", `BCConfig.balanced_classes`) was measured and rejected: on the
  shipped data (seed 0) it cut held-out accuracy from 0.494 to 0.383 and macro-F1 from 0.335 to
  0.318, and raised log loss from 1.40 to 1.68, worse than predicting the class frequencies
  (1.57), because it makes rare sessions (HIIT, 2 % of labelled training days) many times
  likelier than the athletes chose them;
- in a one-off comparison during development a 64-unit MLP (sklearn, early stopping) was no
  better on the held-out athletes (accuracy 0.47, macro-F1 0.32, log loss 1.38) and is harder
  to inspect;
- its fitted state is a few arrays, saved as `.npz` without pickle and evaluated in numpy.

`BCPolicy` samples from the predicted probabilities restricted to the mask (or takes their
argmax, `greedy=True`).

Result on the shipped data, `train_bc(load_exports(["data/real"]).frame, seed=0).report`: 14,592
labelled days; 70 training athletes (9,567 days) and 24 held-out athletes (5,025 days; the other
33 held-out ids have no labelled session); C = 0.01; held-out accuracy 0.494 against 0.311 for
the majority action (Z2 aerobic), macro-F1 0.335 against 0.079, log loss 1.40 against 1.57 for
the training class frequencies.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss
from sklearn.model_selection import GroupKFold

from agents.policy import check_batch, masked_choice, masked_sample
from physiology_model.data.splits import user_split
from physiology_model.data.table import ACTIONS, N_ACTIONS
from physiology_model.features.batch import FEATURE_NAMES
from simulator.observation import observation_matrix, observations_from_table

FORMAT_VERSION = 1
"""Version of the saved `.npz` layout."""


@dataclass(frozen=True)
class BCConfig:
    """Split and classifier settings of `train_bc`."""

    test_fraction: float = 0.2
    """Share of athletes held out (`physiology_model.data.splits.user_split`)."""
    c_grid: tuple[float, ...] = (0.001, 0.01, 0.1)
    """Inverse L2 strengths tried; the one with the lowest grouped-CV log loss is refitted."""
    cv_folds: int = 3
    """Folds of the grouped cross-validation over training athletes (fewer when there are
    fewer athletes; with a single training athlete the first `c_grid` value is used)."""
    balanced_classes: bool = False
    """Weight classes inversely to their frequency (off: see the module docstring)."""
    max_iter: int = 2000
    """L-BFGS iterations of each fit."""

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}")
        if not self.c_grid or any(not c > 0 for c in self.c_grid):
            raise ValueError(f"c_grid must hold positive numbers, got {self.c_grid!r}")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be at least 2, got {self.cv_folds!r}")


@dataclass(frozen=True)
class BCReport:
    """How the cloned policy did on athletes it never saw (and on what it was fitted)."""

    split_seed: int
    train_user_ids: tuple[str, ...]
    """Training athletes with at least one labelled day (the only ones the fit saw)."""
    test_user_ids: tuple[str, ...]
    """Held-out athletes with at least one labelled day (the reported scores)."""
    train_days: int
    test_days: int
    train_counts: dict[str, int]
    """Labelled training days per action."""
    test_counts: dict[str, int]
    """Labelled held-out days per action."""
    c: float
    """The chosen inverse L2 strength."""
    cv_log_loss: dict[str, float]
    """Mean grouped-CV log loss per tried C (keys are `repr(C)`); empty when not run."""
    accuracy: float
    """Held-out accuracy of the argmax action (NaN without held-out days)."""
    macro_f1: float
    """Held-out macro-F1 over the six actions (absent actions count as 0, as sklearn does)."""
    log_loss: float
    """Held-out mean negative log-likelihood of the athletes' actions, nats."""
    majority_action: str
    """The most frequent training action: the trivial baseline."""
    majority_accuracy: float
    majority_macro_f1: float
    majority_log_loss: float
    """Log loss of predicting the training action frequencies for every day."""

    def describe(self) -> str:
        """The report as a few human-readable lines."""
        return "\n".join([
            (f"behaviour cloning, user split seed {self.split_seed}: "
             f"{len(self.train_user_ids)} training athletes ({self.train_days} days), "
             f"{len(self.test_user_ids)} held-out athletes ({self.test_days} days); C = {self.c:g}"),
            (f"held-out accuracy {self.accuracy:.3f} (majority '{self.majority_action}' "
             f"{self.majority_accuracy:.3f}), macro-F1 {self.macro_f1:.3f} "
             f"({self.majority_macro_f1:.3f}), log loss {self.log_loss:.3f} "
             f"({self.majority_log_loss:.3f})"),
            "training days per action: " + ", ".join(f"{a} {n}"
                                                     for a, n in self.train_counts.items()),
            "held-out days per action: " + ", ".join(f"{a} {n}"
                                                     for a, n in self.test_counts.items()),
        ])


@dataclass(eq=False)
class BCPolicy:
    """A cloned policy: softmax(W·(obs − mean)/scale + b) over the actions seen in training.

    Actions never seen in training get probability 0. `act` samples from the probabilities
    restricted to the mask with its own generator (`reset(seed)` reseeds it), or takes the
    allowed argmax when `greedy`. Build one with `train_bc` or `BCPolicy.load`.
    """

    mean: np.ndarray
    """(F,) feature means of the training days."""
    scale: np.ndarray
    """(F,) feature SDs of the training days (1 for constant features)."""
    coef: np.ndarray
    """(K, F) weights of the K actions in `classes`, on standardised features."""
    intercept: np.ndarray
    """(K,) intercepts."""
    classes: np.ndarray
    """(K,) int: the action indices (into `ACTIONS`) the model knows."""
    report: BCReport | None = None
    greedy: bool = False
    """Take the most probable allowed action instead of sampling."""
    name: str = "behaviour_cloning"
    _rng: np.random.Generator = field(default_factory=np.random.default_rng, init=False,
                                      repr=False)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=float)
        self.scale = np.asarray(self.scale, dtype=float)
        self.coef = np.asarray(self.coef, dtype=float)
        self.intercept = np.asarray(self.intercept, dtype=float)
        self.classes = np.asarray(self.classes, dtype=np.int64)
        n_features, k = len(FEATURE_NAMES), len(self.classes)
        shapes = {"mean": (self.mean.shape, (n_features,)),
                  "scale": (self.scale.shape, (n_features,)),
                  "coef": (self.coef.shape, (k, n_features)),
                  "intercept": (self.intercept.shape, (k,))}
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"{name} must have shape {want}, got {got}")
        if k == 0 or len(np.unique(self.classes)) != k or self.classes.min() < 0 \
                or self.classes.max() >= N_ACTIONS:
            raise ValueError(f"classes must be distinct action indices 0-{N_ACTIONS - 1}, got "
                             f"{self.classes.tolist()}")
        if not (self.scale > 0).all():
            raise ValueError("scale must be positive")
        for name in ("mean", "scale", "coef", "intercept"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name} has non-finite values")

    def reset(self, seed: int | None = None) -> None:
        """Reseed the sampling generator when `seed` is given (there is no other state)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def probabilities(self, obs: np.ndarray) -> np.ndarray:
        """p(action | observation) → (N, 6); 0 for actions unseen in training."""
        o = np.asarray(obs, dtype=float)
        logits = ((o - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        out = np.zeros((o.shape[0], N_ACTIONS))
        out[:, self.classes] = p
        return out

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """A draw (or the argmax) of the cloned distribution over the allowed actions → (N,)."""
        o, m = check_batch(obs, mask)
        p = self.probabilities(o)
        if self.greedy:
            # log p: an allowed action the model never saw (p = 0) stays below every seen one
            with np.errstate(divide="ignore"):
                return masked_choice(np.log(p), m)
        return masked_sample(p, m, self._rng)

    def save(self, path: str | Path) -> Path:
        """Write the policy to an `.npz` file (arrays plus a JSON header; no pickle)."""
        path = Path(path)
        header = {"format_version": FORMAT_VERSION, "feature_names": list(FEATURE_NAMES),
                  "actions": list(ACTIONS), "greedy": self.greedy, "name": self.name,
                  "report": None if self.report is None else asdict(self.report)}
        with path.open("wb") as f:
            np.savez(f, mean=self.mean, scale=self.scale, coef=self.coef,
                     intercept=self.intercept, classes=self.classes,
                     header=np.array(json.dumps(header)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> BCPolicy:
        """Read a policy written by `save`. Raises `ValueError` naming the file when it is not
        one, or when its features or actions differ from this code's."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in ("mean", "scale", "coef", "intercept", "classes")}
                header = json.loads(str(data["header"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a saved BCPolicy ({exc})") from None
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format version {header.get('format_version')!r}, "
                             f"expected {FORMAT_VERSION}")
        if header.get("feature_names") != list(FEATURE_NAMES) or \
                header.get("actions") != list(ACTIONS):
            raise ValueError(f"{path}: saved for other features or actions than this code's")
        report = header.get("report")
        try:
            if report is not None:
                report = BCReport(**{**report,
                                     "train_user_ids": tuple(report["train_user_ids"]),
                                     "test_user_ids": tuple(report["test_user_ids"])})
            return cls(**arrays, report=report,
                       greedy=bool(header["greedy"]), name=str(header["name"]))
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: invalid BCPolicy ({exc})") from None


def label_observations(frame: pd.DataFrame) -> pd.DataFrame:
    """The labelled examples of a daily table: `observations_from_table(frame)` rows that have an
    action as `session`, with an `action` column (index into `ACTIONS`).

    One row per (user_id, date) of the table whose `session` is one of `ACTIONS`; `unknown`,
    missing sessions and calendar days absent from the table are dropped. Raises `ValueError`
    when the frame has no `session` column.
    """
    if "session" not in frame.columns:
        raise ValueError("the frame has no 'session' column to clone")
    labels = pd.DataFrame({
        "user_id": frame["user_id"].astype(str).to_numpy(),
        "date": pd.to_datetime(frame["date"]).dt.normalize().astype("datetime64[ns]").to_numpy(),
        "action": frame["session"].map({a: i for i, a in enumerate(ACTIONS)}).to_numpy(),
    }).dropna(subset=["action"])
    obs = observations_from_table(frame)
    obs = obs.assign(date=obs["date"].astype("datetime64[ns]"))
    rows = obs.merge(labels, on=["user_id", "date"], how="inner", validate="one_to_one")
    return rows.assign(action=rows["action"].astype(np.int64))


def _counts(actions: np.ndarray) -> dict[str, int]:
    n = np.bincount(actions, minlength=N_ACTIONS)
    return {a: int(c) for a, c in zip(ACTIONS, n)}


def _fit(x: np.ndarray, y: np.ndarray, c: float, config: BCConfig) -> LogisticRegression:
    # lbfgs with several classes fits the multinomial (softmax) model
    model = LogisticRegression(C=c, max_iter=config.max_iter,
                               class_weight="balanced" if config.balanced_classes else None)
    return model.fit(x, y)


def _softmax_parameters(model: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
    """(coef (K, F), intercept (K,)) whose softmax is the model's `predict_proba`.

    With two classes sklearn stores one logit a for the second class (p = sigmoid(a)); the
    softmax of (−a/2, a/2) is the same probability.
    """
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:
        coef = np.vstack([-coef / 2.0, coef / 2.0])
        intercept = np.concatenate([-intercept / 2.0, intercept / 2.0])
    return coef, intercept


def _choose_c(x: np.ndarray, y: np.ndarray, users: np.ndarray,
              config: BCConfig) -> tuple[float, dict[str, float]]:
    """The C of `config.c_grid` with the lowest mean grouped-CV log loss."""
    n_folds = min(config.cv_folds, len(np.unique(users)))
    if n_folds < 2 or len(config.c_grid) == 1:
        return config.c_grid[0], {}
    folds = list(GroupKFold(n_splits=n_folds).split(x, y, groups=users))
    scores: dict[str, float] = {}
    for c in config.c_grid:
        losses = []
        for fit_rows, score_rows in folds:
            if len(np.unique(y[fit_rows])) < 2:
                continue  # a fold whose athletes did one kind of session cannot be fitted
            model = _fit(x[fit_rows], y[fit_rows], c, config)
            p = _expand(model.predict_proba(x[score_rows]), model.classes_)
            losses.append(_log_loss(y[score_rows], p))
        if losses:
            scores[repr(c)] = float(np.mean(losses))
    if not scores:
        return config.c_grid[0], {}
    best = min((c for c in config.c_grid if repr(c) in scores), key=lambda c: scores[repr(c)])
    return best, scores


def _expand(p: np.ndarray, classes: np.ndarray) -> np.ndarray:
    out = np.zeros((p.shape[0], N_ACTIONS))
    out[:, classes] = p
    return out


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean −ln p(y), probabilities floored at 1e-15 (an action the model never saw)."""
    return float(log_loss(y, np.clip(p, 1e-15, None), labels=np.arange(N_ACTIONS)))


def _scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """(accuracy, macro-F1, log loss) of probabilities p (n, 6) for actions y; NaN when n = 0."""
    if len(y) == 0:
        return np.nan, np.nan, np.nan
    pred = p.argmax(axis=1)
    return (float(np.mean(pred == y)),
            float(f1_score(y, pred, labels=np.arange(N_ACTIONS), average="macro",
                           zero_division=0)),
            _log_loss(y, p))


def train_bc(frame: pd.DataFrame, seed: int = 0, config: BCConfig = BCConfig()) -> BCPolicy:
    """Clone the athletes' own sessions from a daily table (module docstring) → `BCPolicy`.

    `seed` is the user-split seed (0 = the project's split); fitting itself is deterministic.
    The held-out scores are in `policy.report`. Raises `ValueError` when the training athletes
    have no labelled day or only one kind of session.
    """
    rows = label_observations(frame)
    train_ids, _ = user_split(frame["user_id"].astype(str).unique(), config.test_fraction, seed)
    is_train = rows["user_id"].isin(train_ids).to_numpy()
    x_all = observation_matrix(rows).astype(float)
    y_all = rows["action"].to_numpy()
    users = rows["user_id"].to_numpy()
    x, y = x_all[is_train], y_all[is_train]
    if len(y) == 0:
        raise ValueError("the training athletes have no day with a known session")
    if len(np.unique(y)) < 2:
        raise ValueError(f"the training athletes did only one kind of session "
                         f"({ACTIONS[int(y[0])]}); nothing to clone")

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    c, cv = _choose_c(z, y, users[is_train], config)
    model = _fit(z, y, c, config)

    counts = np.bincount(y, minlength=N_ACTIONS)
    majority = int(np.argmax(counts))
    y_test = y_all[~is_train]
    coef, intercept = _softmax_parameters(model)
    policy = BCPolicy(mean, scale, coef, intercept, model.classes_)
    accuracy, macro_f1, loss = _scores(y_test, policy.probabilities(x_all[~is_train]))
    prior = np.broadcast_to(counts / counts.sum(), (len(y_test), N_ACTIONS))
    one_hot = np.broadcast_to(np.eye(N_ACTIONS)[majority], (len(y_test), N_ACTIONS))
    majority_accuracy, majority_f1, _ = _scores(y_test, one_hot)
    policy.report = BCReport(
        split_seed=seed,
        train_user_ids=tuple(sorted(set(users[is_train]))),
        test_user_ids=tuple(sorted(set(users[~is_train]))),
        train_days=len(y), test_days=len(y_test),
        train_counts=_counts(y), test_counts=_counts(y_test),
        c=float(c), cv_log_loss=cv,
        accuracy=accuracy, macro_f1=macro_f1, log_loss=loss,
        majority_action=ACTIONS[majority], majority_accuracy=majority_accuracy,
        majority_macro_f1=majority_f1,
        majority_log_loss=_scores(y_test, prior)[2],
    )
    return policy
