"""SAFER's latent bound eta (§3.4, Alg. 3 in App. F): the largest box of the latent space whose
labelled points are at most a given fraction unsafe.

- ``eta_deterministic``: the exact O(n log n) variant (the default).
- ``eta_algorithm3``: Alg. 3 as printed, falling back to the exact value when it fails.
- ``in_box_unsafe_fraction``: the quantity both bound.
- ``rollout_bound_check``: does the box keep its bound in rollouts (Fig. 4)? A one-sided binomial
  test of the rollout steps' unsafe share against the bound (``binomial_upper_tail``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "binomial_upper_tail",
    "eta_algorithm3",
    "eta_deterministic",
    "in_box_unsafe_fraction",
    "rollout_bound_check",
]


def in_box_unsafe_fraction(max_abs: np.ndarray, unsafe: np.ndarray, eta: float) -> float:
    """Unsafe fraction of the points with ||z||_inf < eta (0 for an empty box)."""
    inside = np.asarray(max_abs) < eta
    return float(np.asarray(unsafe)[inside].mean()) if inside.any() else 0.0


def eta_deterministic(max_abs: np.ndarray, unsafe: np.ndarray, max_unsafe_fraction: float) -> float:
    """The largest open box (-eta, eta)^d whose unsafe fraction on the data is <= the bound.

    Sort m_i = ||z_i||_inf; among prefixes ending at a change of value (ties go in or out together),
    take the longest whose unsafe fraction is <= ``max_unsafe_fraction``; eta is the next float
    above its largest m: the tightest open box holding those points (any eta up to the next m
    satisfies the bound; the tightest never claims latent space the data did not check, so on an
    identity flow with omega = 1 iff ||a|| >= r, eta stays inside the safe region). O(n log n),
    exact, and monotone non-decreasing in ``max_unsafe_fraction``.
    """
    m = np.asarray(max_abs, dtype=np.float64).reshape(-1)
    bad = np.asarray(unsafe, dtype=np.float64).reshape(-1)
    if m.size == 0:
        raise ValueError("eta_deterministic needs at least one labelled latent")
    order = np.argsort(m, kind="stable")
    m, bad = m[order], bad[order]
    k = np.arange(1, m.size + 1)
    fraction = np.cumsum(bad) / k
    boundary = np.append(m[1:] > m[:-1], True)  # prefix k ends where the value changes
    ok = np.flatnonzero(boundary & (fraction <= max_unsafe_fraction + 1e-12))
    if ok.size == 0:
        return float(m[0] / 2)
    return float(np.nextafter(m[int(ok[-1])], np.inf))


def eta_algorithm3(
    max_abs: np.ndarray,
    unsafe: np.ndarray,
    max_unsafe_fraction: float,
    eta0: float,
    max_iterations: int = 100,
    rng: np.random.Generator | None = None,
) -> tuple[float, list[float], bool]:
    """SAFER Alg. 3 (App. F) on m_i = ||z_i||_inf; returns ``(eta, eta per iteration, satisfied)``.

    With eps = 1 - ``max_unsafe_fraction``: S = points inside (-eta, eta); draw floor(S eps) safe
    and floor(S (1 - eps)) unsafe in-box points (without replacement, at most what the box holds);
    eta <- their largest ||z||_inf; stop once the in-box safe fraction is >= eps. eta never grows
    (a max over points already inside); as printed, the point attaining the new eta falls outside
    the open box, so every iteration drops at least one point and the loop ends. If the cap is hit or a fixed point
    fails the test, the deterministic eta (``eta_deterministic``) is returned and ``satisfied`` is False.
    """
    m = np.asarray(max_abs, dtype=np.float64).reshape(-1)
    bad = np.asarray(unsafe).reshape(-1).astype(bool)
    rng = rng if rng is not None else np.random.default_rng(0)
    eps = 1.0 - max_unsafe_fraction
    eta, history = float(eta0), [float(eta0)]
    for _ in range(int(max_iterations)):
        if in_box_unsafe_fraction(m, bad, eta) <= max_unsafe_fraction + 1e-12:
            return eta, history, True
        inside = m < eta
        safe_in, unsafe_in = np.flatnonzero(inside & ~bad), np.flatnonzero(inside & bad)
        total = safe_in.size + unsafe_in.size
        n_safe = min(int(math.floor(total * eps)), safe_in.size)
        n_unsafe = min(int(math.floor(total * (1.0 - eps))), unsafe_in.size)
        chosen = np.concatenate(
            [rng.choice(safe_in, n_safe, replace=False), rng.choice(unsafe_in, n_unsafe, replace=False)]
        )
        new_eta = float(m[chosen].max()) if chosen.size else 0.0
        history.append(new_eta)
        if new_eta >= eta:  # fixed point that fails the test
            break
        eta = new_eta
    return eta_deterministic(m, bad, max_unsafe_fraction), history, False


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact; no scipy needed)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return float(min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms)))


def rollout_bound_check(
    unsafe_steps: int, steps: int, max_unsafe_fraction: float, confidence: float = 0.95
) -> dict[str, float | bool]:
    """Does a rollout's unsafe share stay within the bound (SAFER Fig. 4)? One-sided binomial test.

    H0: the per-step unsafe probability is <= ``max_unsafe_fraction``. ``holds`` is False only
    when ``unsafe_steps`` out of ``steps`` would be that many or more with probability below
    ``1 - confidence`` under the bound, i.e. the share exceeds the bound by more than a binomial
    margin. Steps of one rollout are correlated, which makes the test reject *more* easily than
    it should: a check that holds is conservative.
    """
    if not (isinstance(steps, (int, np.integer)) and steps > 0) or not 0 <= unsafe_steps <= steps:
        raise ValueError(
            f"steps must be a positive integer and 0 <= unsafe_steps <= steps, got {unsafe_steps!r} of {steps!r}"
        )
    if not 0.0 <= max_unsafe_fraction <= 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError(
            "max_unsafe_fraction must be in [0, 1] and confidence in (0, 1), "
            f"got {max_unsafe_fraction!r}, {confidence!r}"
        )
    p_value = binomial_upper_tail(int(unsafe_steps), int(steps), float(max_unsafe_fraction))
    return {
        "unsafe_steps": int(unsafe_steps),
        "steps": int(steps),
        "share": unsafe_steps / steps,
        "bound": float(max_unsafe_fraction),
        "p_value": p_value,
        "holds": bool(p_value >= 1.0 - confidence),
    }
