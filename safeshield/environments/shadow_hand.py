"""ShadowHand cube rotation (MuJoCo, gymnasium-robotics), SQRL's CubeRotate (Srinivasan et al. 2020, seed ``000_...``).

- ``ShadowHandCubeRotateEnv``: the 20-actuator Shadow hand of ``gymnasium-robotics``
  (``HandManipulateBlock``) must turn a block to one of four goal orientations; dropping the
  block is the failure. A flat-``Box`` Gymnasium env (not a ``GoalEnv``), so shields and agents
  take it as it is.

What the paper fixes (§7, App. C, Table 2) and what is chosen here
-------------------------------------------------------------------------------
- Task: PDDM's cube rotation (Nagabandi et al. 2019): pre-training goals are a quarter turn in one
  of four directions, up/down (about the world x axis) and left/right (about the world z axis);
  the fine-tuning task turns 1.5 quarter turns (an extra eighth). Here the goal is
  ``R(axis, +-turn * pi/2) * q_0`` with ``q_0`` the block's orientation after reset and one of
  the four (axis, sign) pairs drawn uniformly per episode; ``turn`` is 1.0 (pre-training) or 1.5
  (target). PDDM's goals are Euler targets of 1.5 rad, so "quarter turn" there is 86 degrees;
  ours is exactly 90.
- Start: the paper says both "from a set of fixed starting positions" and "from a random initial
  orientation". Ours: a fixed orientation (the block axis-aligned in the palm) and
  gymnasium-robotics' position jitter ``N(0, 0.005^2)`` per axis.
- Hand: gymnasium-robotics' MuJoCo Shadow hand, 20 actuators (absolute joint-position control),
  n_substeps 20 (0.04 s per action), instead of PDDM's 24-DoF mujoco_py model with frame skip 40.
- Observation (65, float32): gymnasium-robotics' 61-entry observation (24 hand joint angles, 24
  joint velocities, block velocity (6), block position and quaternion (7)) plus the goal
  quaternion (w, x, y, z).
- Reward: PDDM's ``-7 * ||ori - goal||`` with the orientation error measured as the rotation
  angle between the block's and the goal quaternion (radians; Euler differences wrap around).
  PDDM's ``-1000 * is_fall`` drop penalty is ``drop_penalty`` (default 0, ours: as in the other
  safeshield envs failure is a termination, not a reward, and the shield reads the indicator).
- Failure "the block falls off the hand": the block's centre drops below ``drop_height`` = 0.10 m
  (ours; it rests at about 0.16 m on the palm, PDDM uses 0.1 below its start). Terminates with
  ``info["failure"] = True`` and ``info["cost"] = 1.0``. Episodes of **100** steps (Table 2): the
  registered ``max_episode_steps``.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from safeshield.core.validation import check_finite
from safeshield.environments._quiet import ADROIT_NOTICE, without_notice

with without_notice(ADROIT_NOTICE):
    from gymnasium_robotics.envs.shadow_dexterous_hand.manipulate import quat_from_angle_and_axis
    from gymnasium_robotics.envs.shadow_dexterous_hand.manipulate_block import MujocoHandBlockEnv
    from gymnasium_robotics.utils import rotations

__all__ = ["ShadowHandCubeRotateEnv", "GOAL_AXES"]

# (axis, sign): up, down (about world x), left, right (about world z), as PDDM's four goals
GOAL_AXES = (((1.0, 0.0, 0.0), 1.0), ((1.0, 0.0, 0.0), -1.0), ((0.0, 0.0, 1.0), 1.0), ((0.0, 0.0, 1.0), -1.0))


def rotation_angle(quat_a: np.ndarray, quat_b: np.ndarray) -> float:
    """Angle (radians, in [0, pi]) of the rotation between two unit quaternions (w, x, y, z)."""
    dot = abs(float(np.dot(quat_a, quat_b)))
    return 2.0 * math.acos(min(1.0, dot))


class _QuarterTurnBlockEnv(MujocoHandBlockEnv):
    """gymnasium-robotics' block env whose goal is a turn of ``turn`` quarter turns about one of four axes."""

    def __init__(self, turn: float, **kwargs: Any) -> None:
        self.turn = turn
        self.goal_index = 0
        super().__init__(**kwargs)

    def _sample_goal(self) -> np.ndarray:
        qpos = self._utils.get_joint_qpos(self.model, self.data, "object:joint").copy()
        self.goal_index = int(self.np_random.integers(len(GOAL_AXES)))
        axis, sign = GOAL_AXES[self.goal_index]
        offset = quat_from_angle_and_axis(sign * self.turn * math.pi / 2.0, np.array(axis))
        target = rotations.quat_mul(offset, qpos[3:])
        return np.concatenate([qpos[:3], target / np.linalg.norm(target)])


class ShadowHandCubeRotateEnv(gym.Env):
    """Turn a block held in a Shadow hand by ``turn`` quarter turns without dropping it (SQRL's CubeRotate).

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = gym.make("safeshield/ShadowHandCubeRotate-v0")        # quarter turns; Target: 1.5
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info["failure"]
        ((65,), False)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25, "safeshield_indicator": "info:failure"}

    def __init__(
        self,
        turn: float = 1.0,
        drop_height: float = 0.10,
        reward_scale: float = 7.0,
        drop_penalty: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        for name, value in (
            ("turn", turn),
            ("drop_height", drop_height),
            ("reward_scale", reward_scale),
            ("drop_penalty", drop_penalty),
        ):
            check_finite(name, value)
        if turn <= 0:
            raise ValueError(f"turn must be > 0 (quarter turns), got {turn!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.turn, self.drop_height = float(turn), float(drop_height)
        self.reward_scale, self.drop_penalty = float(reward_scale), float(drop_penalty)
        self.render_mode = render_mode
        self.hand = _QuarterTurnBlockEnv(
            turn=self.turn,
            target_position="ignore",
            target_rotation="fixed",
            reward_type="dense",
            randomize_initial_rotation=False,
            render_mode=render_mode,
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=self.hand.action_space.shape, dtype=np.float32)
        size = self.hand.observation_space["observation"].shape[0] + 4
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        self._needs_reset = True

    @property
    def goal(self) -> np.ndarray:
        """Goal quaternion (w, x, y, z) of the current episode."""
        return self.hand.goal[3:].copy()

    @property
    def goal_index(self) -> int:
        """Which of ``GOAL_AXES`` the current goal turns about."""
        return self.hand.goal_index

    def _flatten(self, obs: dict) -> np.ndarray:
        return np.concatenate([obs["observation"], obs["desired_goal"][3:]]).astype(np.float32)

    def block_pose(self) -> np.ndarray:
        """Block position and quaternion (7, float64)."""
        return self.hand._utils.get_joint_qpos(self.hand.model, self.hand.data, "object:joint").copy()

    def set_block_pose(self, pose) -> None:
        """Place the block (tests, constructed states); its velocity is zeroed."""
        utils = self.hand._utils
        utils.set_joint_qpos(self.hand.model, self.hand.data, "object:joint", np.asarray(pose, dtype=np.float64))
        utils.set_joint_qvel(self.hand.model, self.hand.data, "object:joint", np.zeros(6))
        self.hand._mujoco.mj_forward(self.hand.model, self.hand.data)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self.hand.reset(seed=seed)
        self._needs_reset = False
        return self._flatten(obs), self._info(obs, False)

    def step(self, action: Any):
        if self._needs_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        array = np.asarray(action, dtype=np.float64)
        if array.shape != self.action_space.shape or not np.all(np.isfinite(array)):
            raise ValueError(f"action must be a finite array of shape {self.action_space.shape}, got {action!r}")
        obs, _, _, _, _ = self.hand.step(np.clip(array, -1.0, 1.0))
        failure = bool(obs["achieved_goal"][2] < self.drop_height)
        error = rotation_angle(obs["achieved_goal"][3:], obs["desired_goal"][3:])
        reward = -self.reward_scale * error - (self.drop_penalty if failure else 0.0)
        return self._flatten(obs), float(reward), failure, False, self._info(obs, failure, error)

    def _info(self, obs: dict, failure: bool, error: float | None = None) -> dict[str, Any]:
        if error is None:
            error = rotation_angle(obs["achieved_goal"][3:], obs["desired_goal"][3:])
        return {
            "failure": failure,
            "cost": 1.0 if failure else 0.0,
            "rotation_error": float(error),
            "is_success": bool(error < self.hand.rotation_threshold),
            "goal_index": self.goal_index,
        }

    def render(self):
        return self.hand.render() if self.render_mode is not None else None

    def close(self) -> None:
        self.hand.close()
        super().close()
