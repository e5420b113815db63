"""Risk targets for safety critics: the failure horizon, multi-step targets, failure-balanced sampling.

- ``horizon_gamma``: the safety discount that looks ``horizon`` steps ahead, 1 - 1/H.
- ``horizon_steps``: a horizon given in steps or in seconds (with the env's ``dt``) as steps.
- ``multi_step_target``: the n-step target of the failure indicator along an episode stored in
  a ``TransitionBuffer``, as ``base + coef * Q̄(bootstrap)``; n = 1 is SQRL's TD(0) target,
  n = H with gamma = 1 and no bootstrap at the window's end is the Monte-Carlo label
  "a failure follows within H steps".
- ``balanced_rows``: a minibatch where a fixed share comes from transitions that a failure
  followed within the horizon, with the importance weights that keep the loss (and so the
  risk) an estimate under the uniform buffer distribution.

Why these exist. A per-step discount of 0.7 looks about three control steps ahead while a fall
develops over tens of steps, so the risk only rises once the failure is certain. A horizon
H in steps (or seconds) says how far ahead the shield looks; the window target makes the risk
the probability of the event "a failure follows within H steps", which a user can read, a
threshold can mean and a quality report can check (``safeshield.core.quality``). Following
the episode for H steps propagates a failure label to the H transitions before it in one
update instead of H sweeps of one-step backups through a slow target network. Failures are
rare in a buffer (often one label in 50 or fewer), so a minibatch oversamples the
transitions that preceded one (Recovery RL, Thananjeyan et al. 2021, oversamples
violations) and weights each row by p_uniform / p_sampled: the expected weighted loss is
the uniform one, so the minimiser is still the probability, not an inflated one.

Windows cut before H steps (a time limit, or the episode still running) are bootstrapped
with the target critic at the cut; a terminal without failure ends the window with label 0.
"""

from __future__ import annotations

import numpy as np

from safeshield.core.buffer import TransitionBuffer

__all__ = [
    "SettledTargets",
    "balanced_rows",
    "doubling_lengths",
    "horizon_gamma",
    "horizon_steps",
    "multi_step_target",
    "prefix_targets",
]


def horizon_gamma(horizon: float) -> float:
    """The per-step discount whose effective horizon 1 / (1 - gamma) is ``horizon`` steps."""
    if not horizon >= 1:
        raise ValueError(f"horizon must be >= 1 step, got {horizon!r}")
    return 1.0 - 1.0 / float(horizon)


def horizon_steps(horizon: float | None = None, seconds: float | None = None, dt: float | None = None) -> int:
    """The horizon in env steps: ``horizon`` steps, or ``seconds`` divided by the env's ``dt``.

    ``seconds`` needs ``dt`` (``env.unwrapped.dt`` for MuJoCo envs); the result is rounded and
    at least 1.
    """
    if seconds is not None:
        if dt is None or not dt > 0:
            raise ValueError(
                f"horizon_seconds needs the env's control period dt > 0, got dt={dt!r}; give the horizon in steps"
            )
        if not seconds > 0:
            raise ValueError(f"horizon_seconds must be > 0, got {seconds!r}")
        return max(1, round(seconds / dt))
    if horizon is None or not horizon >= 1:
        raise ValueError(f"horizon must be >= 1 step, got {horizon!r}")
    return round(horizon)


def multi_step_target(
    buffer: TransitionBuffer,
    rows: np.ndarray,
    n: int,
    gamma: float,
    bootstrap_end: bool = True,
    absorbing: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n-step target of each row as ``(base, coef, boot_rows)``: target = base + coef * Q̄.

    Following transition t_0 = ``rows`` and its episode's next transitions t_1, t_2, ... with
    failure labels c_k (the next state's indicator, in [0, 1]) and termination flags d_k,

        target = sum_{k<m} gamma^(k+1) w_k c_k  +  gamma^m w_m Q̄(s'_{m-1}, a'_{m-1}),
        w_k = prod_{j<k} (1 - c_j)(1 - d_j)    (absorbing: a failure ends what the target counts),
        w_k = prod_{j<k} (1 - d_j)             (``absorbing=False``: every failure step counts),

    where m = n, or the number of steps followed before the chain is cut (a time limit, an
    episode still running, an evicted transition) with steps of the window still to come.
    ``Q̄`` is evaluated by the caller on the next observation and next action of row
    ``boot_rows`` (the last transition followed). With
    ``bootstrap_end=False`` a chain that runs the full n steps gets no bootstrap term (the
    Monte-Carlo window label); cut chains are always bootstrapped. n = 1 gives SQRL's
    gamma (c' + (1 - c')(1 - d') Q̄(s', a')). With targets Q̄ in [0, 1] the target is in [0, 1];
    counting (``absorbing=False``), with Q̄ in [0, gamma / (1 - gamma)] it is in that range too.
    Where every failure terminates its episode the two are the same target.
    """
    _check_chain(n, gamma)
    return _multi_step(buffer, np.asarray(rows, dtype=np.int64), int(n), gamma, bootstrap_end, absorbing)[:3]


def _check_chain(n: int, gamma: float) -> None:
    """The chain length and discount every multi-step target needs, else a ValueError naming them."""
    if int(n) < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")


def _multi_step(
    buffer: TransitionBuffer, rows: np.ndarray, n: int, gamma: float, bootstrap_end: bool, absorbing: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``multi_step_target``'s ``(base, coef, boot)`` and the number of steps each chain followed."""
    chains, irregular = _contiguous_chains(buffer, rows, n)
    base, coef, boot, length = _along_chains(buffer, rows, chains, n, gamma, bootstrap_end, absorbing)
    if irregular.any():  # episodes interleaved in the ring (vector envs): follow their links one by one
        slow = np.flatnonzero(irregular)
        base[slow], coef[slow], boot[slow], length[slow] = _followed_step_by_step(
            buffer, rows[slow], n, gamma, bootstrap_end, absorbing
        )
    return base, coef, boot, length


def doubling_lengths(horizon: int) -> list[int]:
    """1, 2, 4, ... below ``horizon``, then ``horizon``: the chain lengths ``prefix_targets`` compares."""
    return sorted({min(2**i, int(horizon)) for i in range(int(horizon).bit_length() + 1)})


def prefix_targets(
    buffer: TransitionBuffer, rows: np.ndarray, lengths: list[int], gamma: float, absorbing: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``multi_step_target`` (always bootstrapped) for every chain length in ``lengths``, from one chain.

    Returns ``(base, coef, boot)``, each ``(len(lengths), B)``: row ``j`` is the ``lengths[j]``-step
    target of every row. The chain is followed once, for the longest length; a shorter target is
    its prefix (a chain cut earlier bootstraps at the cut, as ``multi_step_target`` does).
    """
    lengths = [int(k) for k in lengths]
    if not lengths or lengths != sorted(lengths) or lengths[0] < 1:
        raise ValueError(f"lengths must be ascending positive integers, got {lengths!r}")
    _check_chain(lengths[-1], gamma)
    rows = np.asarray(rows, dtype=np.int64)
    chains, irregular = _contiguous_chains(buffer, rows, lengths[-1])
    terms, surviving, discount, length = _chain_terms(buffer, chains, gamma, absorbing)
    counted, line = np.cumsum(terms, axis=1), np.arange(rows.size)
    stops = np.minimum(np.asarray(lengths)[:, None], length[None, :]) - 1  # (L, B): last step of each prefix
    base, coef, boot = counted[line, stops], discount[stops] * surviving[line, stops], chains[line, stops]
    slow = np.flatnonzero(irregular)
    for j, k in enumerate(lengths if slow.size else ()):  # episodes interleaved in the ring (vector envs)
        linked = _followed_step_by_step(buffer, rows[slow], k, gamma, True, absorbing)
        base[j, slow], coef[j, slow], boot[j, slow] = linked[:3]
    return base, coef, boot


class SettledTargets:
    """``multi_step_target`` that remembers each row's ``(base, coef, boot)`` until its chain can change.

    A chain changes only when its last followed transition gets a successor, which happens once,
    when the next step of a running episode is stored. A chain that followed all n steps, or whose
    weight fell to 0 at a failure or a terminal, is settled for as long as its row lives; a cut one
    is recomputed once its last row is linked onward. Only the bootstrap value ``Q̄`` is then left
    to compute per update: following 256 chains of 62 steps (0.5 s of Walker2d) cost about a third
    of an update before.
    """

    SETTLED = -2  # ``boot_next`` of a chain that no later link can change

    def __init__(self, buffer: TransitionBuffer):
        self.buffer = buffer
        self.key: tuple | None = None
        capacity = buffer.capacity
        self.row_id = np.full(capacity, -1, dtype=np.int64)  # transition id each entry was computed for
        self.base = np.zeros(capacity, dtype=np.float64)
        self.coef = np.zeros(capacity, dtype=np.float64)
        self.boot = np.zeros(capacity, dtype=np.int64)
        self.boot_id = np.full(capacity, -1, dtype=np.int64)
        self.boot_next = np.full(capacity, -1, dtype=np.int64)  # boot row's link then, or SETTLED

    def __call__(
        self, rows: np.ndarray, n: int, gamma: float, bootstrap_end: bool = True, absorbing: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exactly ``multi_step_target(buffer, rows, n, gamma, bootstrap_end, absorbing)``."""
        buffer = self.buffer
        key = (int(n), float(gamma), bool(bootstrap_end), bool(absorbing), buffer.clears)
        if key != self.key:  # other targets, or a cleared buffer whose ids start again at 0
            _check_chain(n, gamma)
            self.row_id.fill(-1)
            self.key = key
        rows = np.asarray(rows, dtype=np.int64)
        boot = self.boot[rows]
        link = self.boot_next[rows]
        known = (self.row_id[rows] == buffer.ids[rows]) & (buffer.ids[boot] == self.boot_id[rows])
        known &= (link == self.SETTLED) | (buffer.next_id[boot] == link)
        if not known.all():
            self._compute(rows[~known], int(n), gamma, bootstrap_end, absorbing)
        return self.base[rows], self.coef[rows], self.boot[rows]

    def _compute(self, rows: np.ndarray, n: int, gamma: float, bootstrap_end: bool, absorbing: bool) -> None:
        buffer = self.buffer
        base, coef, boot, length = _multi_step(buffer, rows, n, gamma, bootstrap_end, absorbing)
        settled = (length >= n) | (coef == 0.0)
        self.row_id[rows] = buffer.ids[rows]
        self.base[rows], self.coef[rows], self.boot[rows] = base, coef, boot
        self.boot_id[rows] = buffer.ids[boot]
        self.boot_next[rows] = np.where(settled, self.SETTLED, buffer.next_id[boot])


def _contiguous_chains(buffer: TransitionBuffer, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The next ``n`` rows of each chain where its episode is stored in consecutive rows (one env).

    Returns ``(chains, irregular)``: ``chains`` is ``(B, n)`` with -1 past the end of each chain
    (no next transition yet, a time limit, an evicted row); ``irregular`` flags rows whose episode
    continues elsewhere than the next row, which ``_followed_step_by_step`` handles instead.
    """
    offsets = np.arange(n)
    chains = (rows[:, None] + offsets) % buffer.capacity
    expected = buffer.ids[rows][:, None] + offsets
    following = buffer.next_id[chains[:, :-1]]
    linked = (following == expected[:, 1:]) & (buffer.ids[chains[:, 1:]] == expected[:, 1:])
    unbroken = linked.all(axis=1)
    length = 1 + (np.where(unbroken, n - 1, np.argmin(linked, axis=1)) if n > 1 else np.zeros(rows.size, np.int64))
    last = chains[np.arange(rows.size), length - 1]
    irregular = (length < n) & (buffer.row_of(buffer.next_id[last]) >= 0)
    chains[offsets >= length[:, None]] = -1
    return chains, irregular


def _chain_terms(
    buffer: TransitionBuffer, chains: np.ndarray, gamma: float, absorbing: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Along the ``(B, n)`` chains (-1: not followed): each step's counted failure gamma^(k+1) w_k c_k,
    the survival w_{k+1}, the discounts gamma^(k+1) and the steps each chain followed."""
    followed = chains >= 0
    c = np.where(followed, buffer.failure[chains], 0.0).astype(np.float64)
    d = np.where(followed, buffer.terminated[chains], 0.0).astype(np.float64)
    ends = 1.0 - d if not absorbing else (1.0 - c) * (1.0 - d)
    surviving = np.cumprod(ends, axis=1)  # w_{k+1}: no termination (nor, absorbing, failure) up to k
    before = np.concatenate([np.ones((chains.shape[0], 1)), surviving[:, :-1]], axis=1)  # w_k
    discount = gamma ** np.arange(1, chains.shape[1] + 1, dtype=np.float64)
    return discount * before * c, surviving, discount, followed.sum(axis=1)


def _along_chains(
    buffer: TransitionBuffer,
    rows: np.ndarray,
    chains: np.ndarray,
    n: int,
    gamma: float,
    bootstrap_end: bool,
    absorbing: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(base, coef, boot, length)`` of ``_multi_step`` from the ``(B, n)`` chains, all steps at once."""
    terms, surviving, discount, length = _chain_terms(buffer, chains, gamma, absorbing)
    base = terms.sum(axis=1)
    stop = length - 1
    line = np.arange(rows.size)
    bootstrap = (length < n) | bootstrap_end
    coef = np.where(bootstrap, discount[stop] * surviving[line, stop], 0.0)
    return base, coef, chains[line, stop], length


def _followed_step_by_step(
    buffer: TransitionBuffer, rows: np.ndarray, n: int, gamma: float, bootstrap_end: bool = True, absorbing: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``_multi_step`` by following each chain one link at a time (any buffer layout)."""
    rows = np.asarray(rows, dtype=np.int64)
    length = np.zeros(rows.size, dtype=np.int64)
    base = np.zeros(rows.size, dtype=np.float64)
    coef = np.zeros(rows.size, dtype=np.float64)
    boot = rows.copy()
    current = rows.copy()
    weight = np.ones(rows.size, dtype=np.float64)  # probability the chain is still running
    alive = np.ones(rows.size, dtype=bool)
    discount = 1.0
    for k in range(int(n)):
        discount *= gamma
        index = np.flatnonzero(alive)
        here = current[index]
        length[index] += 1
        c = buffer.failure[here].astype(np.float64)
        d = buffer.terminated[here].astype(np.float64)
        base[index] += discount * weight[index] * c
        weight[index] *= (1.0 - d) if not absorbing else (1.0 - c) * (1.0 - d)
        following = buffer.row_of(buffer.next_id[here])
        cut = following < 0
        last = k == int(n) - 1
        stop = cut | last
        bootstrap = (cut & (not last)) | (last & bootstrap_end)
        coef[index[bootstrap]] = discount * weight[index[bootstrap]]
        boot[index[stop]] = here[stop]
        alive[index[stop | (weight[index] == 0.0)]] = False
        current[index] = np.where(stop, here, following)
        if not alive.any():
            break
    return base, coef, boot, length


def balanced_rows(
    buffer: TransitionBuffer, batch_size: int, fraction: float, horizon: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sample rows, ``fraction`` of them among transitions a failure followed within ``horizon``.

    Returns ``(rows, weights)``; ``weights[i] = p_uniform(row) / p_mixture(row)`` so that a
    weighted mean over the batch estimates the uniform mean without bias. ``weights`` is None
    (uniform sample) when ``fraction`` is 0 or no transition has been followed by a failure yet.
    """
    size = len(buffer)
    if size == 0:
        raise ValueError("cannot sample from an empty buffer")
    near = np.flatnonzero(buffer.steps_to_failure[:size] < horizon) if fraction > 0 else np.zeros(0, np.int64)
    if near.size == 0 or near.size == size:
        return rng.integers(0, size, size=int(batch_size)), None
    n_near = round(batch_size * fraction)
    rows = np.concatenate(
        [near[rng.integers(0, near.size, size=n_near)], rng.integers(0, size, size=int(batch_size) - n_near)]
    )
    is_near = buffer.steps_to_failure[rows] < horizon
    p_mixture = (1.0 - fraction) / size + fraction * is_near / near.size
    return rows, (1.0 / size) / p_mixture
