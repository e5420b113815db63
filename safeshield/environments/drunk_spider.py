"""DrunkSpider: the 2-D lava-bridge navigation task of SQRL (Srinivasan et al. 2020, "Learning to be Safe").

- ``DrunkSpiderEnv``: a pure-numpy Gymnasium (>= 1.0) environment.
- ``classify_path``: label a trajectory ``"failed"``, ``"bridge"``, ``"around"`` or ``"none"``
  (used to reproduce the paper's Fig. 5).

What the paper fixes and what is chosen here
---------------------------------------------
The paper (§7 "Environments", Table 2, §7.3) says: a 2-D point navigates to a fixed goal under
stochastic dynamics given by action noise; a narrow bridge runs straight from start to goal with a
lava pit on each side; falling into a pit is a failure that ends the episode; going around both
pits is safe but longer. Table 2 gives **episode length 30**, **action scale 1**, **action noise
0.1**; §7.3 runs the risk/reward trade-off with **action noise 0.2**. Everything else below is a
choice of this rebuild (the paper gives no layout, reward, observation or action dimensions):

- Layout (defaults): start ``(0, 0)`` jittered by ``U(-0.1, 0.1)`` per axis at reset, goal ``(10, 0)``
  reached within ``goal_radius = 0.7``. Two closed axis-aligned pits,
  ``x in [2, 8]`` and ``y in [0.4, 6]`` / ``y in [-6, -0.4]``; the bridge is ``|y| < 0.4`` between
  them (0.8 wide, 6 long). The width sets the risk of crossing: 0.4 = 4 sigma at noise 0.1
  (crossing is safe in pre-training) and 2 sigma at noise 0.2 (about 4.6 % per step on the
  bridge, so Q_safe at the bridge entry is about 0.08 with gamma_safe 0.65: between the
  eps_safe values 0.05 and 0.2 of the paper's Fig. 5, which should then go around and across).
  The arena is ``[-2, 12] x [-8, 8]``, so there is room (2 units) to
  walk around the pits above ``y = 6`` or below ``y = -6``.
- Observation: float32 ``[x, y]``, bounded by the arena. The goal is fixed per task and not
  observed, as in the paper's fixed-goal task: the target variant changes the goal, so a
  policy must re-learn it from reward while a safety critic, which only needs the position,
  sees exactly the inputs it was pre-trained on (an observed goal would put every target-task
  input outside the critic's training data).
- Action: ``Box(-1, 1, (2,), float32)``, a displacement command. Dynamics:
  ``p' = clip(p + action_scale * clip(a, -1, 1) + N(0, noise_std^2 I), arena_low, arena_high)``
  with the noise drawn from ``self.np_random``. The noise is added to the displacement ("action
  noise" in the paper), so its scale is independent of the action.
  The per-axis clip lets a diagonal step move up to ``sqrt(2) * action_scale``.
- Reward per step: ``(d_prev - d_new) - step_penalty`` (potential-based progress minus a constant
  per-step cost, 0.1), plus ``goal_bonus`` (10) on reaching the goal. The progress terms telescope,
  so the return is ``d_0 - d_T - step_penalty * T (+ goal_bonus)``: the longer "around" path costs
  about ``0.1 * 12`` more than the bridge, which is the paper's "takes longer (i.e. costs more)".
  **There is no pit penalty**: as in the paper, failure is encoded only as termination (losing the
  remaining reward and the bonus); keeping the agent out of the pits is the shield's job.
- Termination: ``terminated=True`` when the new position is in a pit (failure) or within
  ``goal_radius`` of the goal (success). If both hold, failure wins (``is_success`` is False).
  The env never truncates; the 30-step limit is the registered ``max_episode_steps``
  (see ``safeshield.environments``). An env built directly has no time limit.
- Failure check: only the **end position** of each step is tested (closed rectangles, so the pit
  border counts as lava). A step whose segment clips a pit corner but lands outside is not a
  failure. With steps of length <= ``sqrt(2)`` and pits 6 x 5.5 units, a step can never jump over
  a pit, so this matches "falling into a pit".
- ``info`` (at reset and at every step): ``{"failure": bool, "cost": 1.0 if failure else 0.0,
  "is_success": bool, "position": copy of (x, y) as float64}``. ``cost`` follows the
  Safety-Gymnasium/CSC convention so the ``"cost"`` and ``"info:failure"`` indicators both work.
- Variants: the paper does not state how the pre-training and target tasks differ. The registered
  target variant keeps the layout and raises ``noise_std`` to 0.2 (§7.3's drunker spider): the
  safety structure is unchanged and only the dynamics get riskier, like Minitaur's friction change.
- Stepping past termination is not prevented in the unwrapped env (Gymnasium's OrderEnforcing /
  the user's loop handles that); ``step`` before the first ``reset`` raises ``ResetNeeded``.
- ``render_mode="rgb_array"`` only (the package is used headless); ``render()`` draws with numpy:
  white background, red pits, grey bridge, green goal disk, blue trail of the current episode and a
  black agent dot. The longest arena side maps to 160 pixels (10 pixels per unit by default), so
  the default image is 160 x 140 (H x W); the trail is kept only when a render mode is set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from safeshield.core.validation import check_finite, check_pair, check_positive

__all__ = ["DrunkSpiderEnv", "classify_path"]

_IMAGE_LONG_SIDE = 160  # longest image side, in pixels


def _in_pit(positions: np.ndarray, x_lo: float, x_hi: float, inner: float, outer: float) -> np.ndarray:
    """Boolean array over ``positions[..., :2]``: inside one of the two closed pit rectangles."""
    x = positions[..., 0]
    ay = np.abs(positions[..., 1])
    return (x >= x_lo) & (x <= x_hi) & (ay >= inner) & (ay <= outer)


def _box_meets_pits(
    center: tuple[float, float], half: float, x_lo: float, x_hi: float, inner: float, outer: float
) -> bool:
    """Whether the closed square ``center +- half`` intersects either closed pit rectangle."""
    cx, cy = center
    if cx + half < x_lo or cx - half > x_hi:
        return False
    y_lo, y_hi = cy - half, cy + half
    # Upper pit [inner, outer] or lower pit [-outer, -inner].
    return not (y_hi < inner or y_lo > outer) or not (y_hi < -outer or y_lo > -inner)


class DrunkSpiderEnv(gym.Env):
    """2-D point navigation to a goal across a narrow bridge between two lava pits (SQRL's DrunkSpider).

    See the module docstring for the full specification and which numbers come from the paper.
    """

    # "safeshield_indicator": the failure signal a shield should read here (terminated also
    # means success, so "terminated" would be wrong).
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10, "safeshield_indicator": "info:failure"}

    def __init__(
        self,
        noise_std: float = 0.1,
        action_scale: float = 1.0,
        goal: Sequence[float] = (10.0, 0.0),
        goal_radius: float = 0.7,
        start: Sequence[float] = (0.0, 0.0),
        start_jitter: float = 0.1,
        pit_x: Sequence[float] = (2.0, 8.0),
        bridge_half_width: float = 0.4,
        pit_outer_y: float = 6.0,
        arena_low: Sequence[float] = (-2.0, -8.0),
        arena_high: Sequence[float] = (12.0, 8.0),
        step_penalty: float = 0.1,
        goal_bonus: float = 10.0,
        render_mode: str | None = None,
    ) -> None:
        self.noise_std = check_positive("noise_std", noise_std, allow_zero=True)
        self.action_scale = check_positive("action_scale", action_scale)
        self.goal_radius = check_positive("goal_radius", goal_radius)
        self.start_jitter = check_positive("start_jitter", start_jitter, allow_zero=True)
        self.bridge_half_width = check_positive("bridge_half_width", bridge_half_width)
        self.pit_outer_y = check_finite("pit_outer_y", pit_outer_y)
        if self.pit_outer_y <= self.bridge_half_width:
            raise ValueError(
                f"pit_outer_y must be a finite number > bridge_half_width ({self.bridge_half_width:g}), "
                f"got {pit_outer_y!r}"
            )
        self.step_penalty = check_finite("step_penalty", step_penalty)
        self.goal_bonus = check_finite("goal_bonus", goal_bonus)
        self.goal = check_pair("goal", goal)
        self.start = check_pair("start", start)
        self.pit_x = check_pair("pit_x", pit_x, "(x_low, x_high)")
        if not self.pit_x[0] < self.pit_x[1]:
            raise ValueError(f"pit_x must be a pair (x_low, x_high) with x_low < x_high, got {pit_x!r}")
        self.arena_low = check_pair("arena_low", arena_low)
        self.arena_high = check_pair("arena_high", arena_high)
        if not (self.arena_low[0] < self.arena_high[0] and self.arena_low[1] < self.arena_high[1]):
            raise ValueError(
                f"arena_low must be below arena_high on both axes, got arena_low={arena_low!r}, "
                f"arena_high={arena_high!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode

        pits = (self.pit_x[0], self.pit_x[1], self.bridge_half_width, self.pit_outer_y)
        lo, hi = self.arena_low, self.arena_high
        gx, gy = self.goal
        if not (lo[0] <= gx <= hi[0] and lo[1] <= gy <= hi[1]):
            raise ValueError(f"goal must lie inside the arena [arena_low, arena_high], got {goal!r}")
        if _box_meets_pits(self.goal, 0.0, *pits):
            raise ValueError(f"goal must not lie inside a pit, got {goal!r}")
        sx, sy, j = self.start[0], self.start[1], self.start_jitter
        if not (lo[0] <= sx - j and sx + j <= hi[0] and lo[1] <= sy - j and sy + j <= hi[1]):
            raise ValueError(f"start must lie inside the arena with start_jitter ({j:g}) to spare, got {start!r}")
        if _box_meets_pits(self.start, j, *pits):
            raise ValueError(
                f"start must be at least start_jitter ({j:g}) away from the pits on each axis, got {start!r}"
            )
        if math.hypot(sx - gx, sy - gy) <= self.goal_radius + j * math.sqrt(2.0):
            raise ValueError(
                f"start must be farther than goal_radius + start_jitter * sqrt(2) from goal, got {start!r}"
            )

        low = np.array(lo, dtype=np.float32)
        high = np.array(hi, dtype=np.float32)
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

        # Plain Python floats: on 2-vectors scalar arithmetic is faster than numpy calls.
        self._pits = pits
        self._x: float | None = None
        self._y = 0.0
        self._dist = 0.0
        self._trail: list[tuple[float, float]] = []
        self._background: np.ndarray | None = None  # render layer, built on first render()

    # ------------------------------------------------------------------ state

    @property
    def position(self) -> np.ndarray:
        """Current ``(x, y)`` as a float64 copy. Settable (tests, constructed states); must be in the arena."""
        if self._x is None:
            raise gym.error.ResetNeeded("call reset() before reading position")
        return np.array((self._x, self._y), dtype=np.float64)

    @position.setter
    def position(self, value: Sequence[float]) -> None:
        x, y = check_pair("position", value)
        lo, hi = self.arena_low, self.arena_high
        if not (lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1]):
            raise ValueError(f"position must lie inside the arena [arena_low, arena_high], got {value!r}")
        self._x, self._y = x, y
        self._dist = math.hypot(self.goal[0] - x, self.goal[1] - y)
        if self.render_mode is not None:
            self._trail = [(x, y)]

    def in_pit(self, positions: np.ndarray) -> np.ndarray:
        """Boolean array of shape ``positions.shape[:-1]``: which ``(..., 2)`` positions lie in a pit."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim == 0 or positions.shape[-1] != 2:
            raise ValueError(f"positions must have shape (..., 2), got {positions.shape}")
        return _in_pit(positions, *self._pits)

    def _point_in_pit(self, x: float, y: float) -> bool:
        x_lo, x_hi, inner, outer = self._pits
        return x_lo <= x <= x_hi and inner <= abs(y) <= outer

    def _obs(self) -> np.ndarray:
        return np.array((self._x, self._y), dtype=np.float32)

    # -------------------------------------------------------------- gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        j = self.start_jitter
        if j > 0.0:
            dx, dy = self.np_random.uniform(-j, j, size=2)
            x, y = self.start[0] + float(dx), self.start[1] + float(dy)
        else:
            x, y = self.start
        self._x, self._y = x, y
        self._dist = math.hypot(self.goal[0] - x, self.goal[1] - y)
        if self.render_mode is not None:
            self._trail = [(x, y)]
        info = {
            "failure": False,
            "cost": 0.0,
            "is_success": False,
            "position": np.array((x, y), dtype=np.float64),
        }
        return self._obs(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._x is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,):
            raise ValueError(f"action must have shape (2,), got {a.shape}")
        ax, ay = float(a[0]), float(a[1])
        if not (math.isfinite(ax) and math.isfinite(ay)):
            raise ValueError(f"action must be finite, got {action!r}")
        scale = self.action_scale
        x = self._x + scale * min(max(ax, -1.0), 1.0)
        y = self._y + scale * min(max(ay, -1.0), 1.0)
        if self.noise_std > 0.0:
            nx, ny = self.np_random.normal(0.0, self.noise_std, 2)
            x += float(nx)
            y += float(ny)
        lo, hi = self.arena_low, self.arena_high
        x = min(max(x, lo[0]), hi[0])
        y = min(max(y, lo[1]), hi[1])
        self._x, self._y = x, y
        if self.render_mode is not None:
            self._trail.append((x, y))

        d_new = math.hypot(self.goal[0] - x, self.goal[1] - y)
        reward = (self._dist - d_new) - self.step_penalty
        self._dist = d_new
        failure = self._point_in_pit(x, y)
        success = (not failure) and d_new <= self.goal_radius
        if success:
            reward += self.goal_bonus
        info = {
            "failure": failure,
            "cost": 1.0 if failure else 0.0,
            "is_success": success,
            "position": np.array((x, y), dtype=np.float64),
        }
        return self._obs(), float(reward), failure or success, False, info

    # ------------------------------------------------------------- render

    def _pixel_scale(self) -> tuple[float, int, int]:
        width = self.arena_high[0] - self.arena_low[0]
        height = self.arena_high[1] - self.arena_low[1]
        ppu = _IMAGE_LONG_SIDE / max(width, height)
        return ppu, max(1, math.ceil(height * ppu)), max(1, math.ceil(width * ppu))

    def _world_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates of the pixel centres: ``(X, Y)`` each of shape ``(H, W)``."""
        ppu, h, w = self._pixel_scale()
        xs = self.arena_low[0] + (np.arange(w) + 0.5) / ppu
        ys = self.arena_high[1] - (np.arange(h) + 0.5) / ppu
        return np.meshgrid(xs, ys)

    def _build_background(self) -> np.ndarray:
        X, Y = self._world_grid()
        image = np.full(X.shape + (3,), 255, dtype=np.uint8)
        x_lo, x_hi, inner, outer = self._pits
        span = (X >= x_lo) & (X <= x_hi)
        image[span & (np.abs(Y) < inner)] = (150, 150, 150)  # bridge
        image[_in_pit(np.stack((X, Y), axis=-1), *self._pits)] = (220, 40, 30)  # lava
        goal = np.hypot(X - self.goal[0], Y - self.goal[1]) <= self.goal_radius
        image[goal] = (40, 180, 60)
        return image

    def _to_pixel(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ppu, h, w = self._pixel_scale()
        cols = np.clip(((xy[..., 0] - self.arena_low[0]) * ppu).astype(np.int64), 0, w - 1)
        rows = np.clip(((self.arena_high[1] - xy[..., 1]) * ppu).astype(np.int64), 0, h - 1)
        return rows, cols

    def render(self) -> np.ndarray | None:
        """``rgb_array``: a uint8 ``(H, W, 3)`` top-down image; with ``render_mode=None`` warns, returns None."""
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; build the env with render_mode='rgb_array'")
            return None
        if self._background is None:
            self._background = self._build_background()
        image = self._background.copy()
        if self._x is None:
            return image
        ppu = self._pixel_scale()[0]
        trail = np.asarray(self._trail, dtype=np.float64)
        if len(trail) > 1:
            # Sample each segment at about one point per pixel.
            seg = np.diff(trail, axis=0)
            n = max(2, int(math.ceil(np.abs(seg).max() * ppu)) + 1)
            t = np.linspace(0.0, 1.0, n)[None, :, None]
            points = (trail[:-1, None, :] + t * seg[:, None, :]).reshape(-1, 2)
            rows, cols = self._to_pixel(points)
            image[rows, cols] = (40, 90, 220)
        # Agent: a disk of radius ~0.25 units.
        X, Y = self._world_grid()
        image[np.hypot(X - self._x, Y - self._y) <= max(0.25, 1.5 / ppu)] = (0, 0, 0)
        return image


def _pit_geometry(env: Any) -> tuple[float, float, float, float]:
    """``(x_lo, x_hi, inner, outer)`` from a DrunkSpiderEnv (wrapped or not), a mapping, or None."""
    if env is None:
        env = {}
    if isinstance(env, Mapping):
        defaults = {"pit_x": (2.0, 8.0), "bridge_half_width": 0.4, "pit_outer_y": 6.0}
        params = {**defaults, **{k: env[k] for k in defaults if k in env}}
        x_lo, x_hi = check_pair("pit_x", params["pit_x"], "(x_low, x_high)")
        return (
            x_lo,
            x_hi,
            check_finite("bridge_half_width", params["bridge_half_width"]),
            check_finite("pit_outer_y", params["pit_outer_y"]),
        )
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, DrunkSpiderEnv):
        raise ValueError(
            f"env must be a DrunkSpiderEnv (wrapped or not), a mapping with pit_x / bridge_half_width / "
            f"pit_outer_y, or None, got {type(env).__name__}"
        )
    return base._pits


def classify_path(positions: np.ndarray, env: Any = None) -> str:
    """Label a trajectory of ``(T, 2)`` positions by how it passed the pits.

    ``env`` is a ``DrunkSpiderEnv`` (wrapped or not), a mapping with any of ``pit_x``,
    ``bridge_half_width``, ``pit_outer_y`` (missing keys take the defaults), or None (defaults).

    - ``"failed"``: some position lies in a pit (the env's own failure test).
    - ``"none"``: the path never reaches the pits' x-span ``[pit_x[0], pit_x[1]]``.
    - ``"bridge"``: within that span it comes within ``|y| < pit_outer_y``, i.e. between the pits
      (since it did not fail, that means along the bridge).
    - ``"around"``: within that span it always has ``|y| >= pit_outer_y`` (outside both pits).

    The path is read as straight segments between consecutive positions, so a step that crosses
    the span without a sample inside it still counts; ``|y|`` on such a segment is taken at its
    minimum over the part inside the span.
    """
    x_lo, x_hi, inner, outer = _pit_geometry(env)
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) == 0:
        raise ValueError(f"positions must have shape (T, 2) with T >= 1, got {p.shape}")
    if bool(_in_pit(p, x_lo, x_hi, inner, outer).any()):
        return "failed"
    min_abs_y = math.inf
    inside = (p[:, 0] >= x_lo) & (p[:, 0] <= x_hi)
    if inside.any():
        min_abs_y = float(np.abs(p[inside, 1]).min())
    # Segments: parameter interval where x is within the span.
    a, b = p[:-1], p[1:]
    dx = b[:, 0] - a[:, 0]
    moving = dx != 0.0
    if moving.any():
        a, b, dx = a[moving], b[moving], dx[moving]
        t1 = (x_lo - a[:, 0]) / dx
        t2 = (x_hi - a[:, 0]) / dx
        t_in = np.clip(np.minimum(t1, t2), 0.0, 1.0)
        t_out = np.clip(np.maximum(t1, t2), 0.0, 1.0)
        hit = t_in < t_out
        if hit.any():
            dy = b[hit, 1] - a[hit, 1]
            y_in = a[hit, 1] + t_in[hit] * dy
            y_out = a[hit, 1] + t_out[hit] * dy
            crosses_zero = np.sign(y_in) != np.sign(y_out)
            seg_min = np.where(crosses_zero, 0.0, np.minimum(np.abs(y_in), np.abs(y_out)))
            min_abs_y = min(min_abs_y, float(seg_min.min()))
    if min_abs_y == math.inf:
        return "none"
    return "bridge" if min_abs_y < outer else "around"
