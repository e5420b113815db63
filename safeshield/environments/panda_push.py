"""Panda block pushing (robosuite, MuJoCo), CSC's "Panda push" tasks (Bharadhwaj et al. 2021, seed ``001_...``).

- ``PandaPushEnv``: a 7-DoF Franka Panda pushes an upright 5 x 5 x 10 cm block across a
  20 x 40 cm workspace to a goal. Variant ``failure="topple"``: the block toppling is the failure;
  variant ``failure="boundary"``: the block's centre leaving a 15 x 35 cm region is.
  A flat-``Box`` Gymnasium env around a small robosuite task (``PandaPushTask``).

What the paper fixes (§5.1) and what is chosen here
----------------------------------------------------------------
- Robot, simulator, controller: Panda in robosuite with an operational-space controller on the
  end effector (robosuite's ``OSC_POSITION``: the action is a bounded end-effector displacement
  per control step, 20 Hz). The gripper stays closed (ours: pushing needs no grasp), so the action
  is 3-D in [-1, 1]. Episodes of **500** steps (all CSC envs): the registered
  ``max_episode_steps``.
- Block 5 x 5 x 10 cm (half-sizes 0.025, 0.025, 0.05), standing upright on the table.
- Workspace 20 x 40 cm: ours is ``|x| <= 0.10``, ``|y| <= 0.20`` around the table centre. The block
  starts at ``x ~ U(-0.03, 0.03)``, ``y ~ U(-0.10, -0.06)``, the goal is at
  ``x ~ U(-0.03, 0.03)``, ``y ~ U(0.06, 0.10)`` (ours: the paper gives no start or goal
  distribution; this makes every episode a 12-20 cm push across the middle).
- Topple failure (no threshold given): the block's own z-axis is tilted more than 45 degrees
  from vertical (ours). Boundary failure: ``|x| > 0.075`` or ``|y| > 0.175`` for the block's
  centre (the paper's 15 x 35 cm, centred like the workspace). Either terminates with
  ``info["failure"] = True`` and ``info["cost"] = 1.0``. Both are reported in ``info``
  (``toppled``, ``out_of_bounds``) whatever the variant, only the variant's one is the failure.
- Reward (the paper's is unstated): ``-(d_block_goal + 0.5 * d_gripper_block)`` in metres, plus
  1 per step with the block within 3 cm of the goal (``info["is_success"]``; ours, a dense
  shaping in the style of robosuite's Lift).
- Observation (float32): robosuite's ``robot0_proprio-state`` (joint cos/sin, joint velocities,
  end-effector position and quaternion, gripper state) and ``object-state`` (block position,
  quaternion, gripper-to-block vector), then the goal's (x, y) on the table.
- Start: the arm starts at robosuite's Panda home pose without initialization noise (ours: the
  episode's randomness is the block and the goal, drawn from the env's seeded ``np_random``).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from robosuite.controllers import load_part_controller_config
from robosuite.controllers.composite.composite_controller_factory import refactor_composite_controller_config
from robosuite.environments.manipulation.lift import Lift
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.arenas import TableArena
from robosuite.models.objects import BoxObject
from robosuite.models.tasks import ManipulationTask

__all__ = ["PandaPushEnv", "PandaPushTask", "tilt_angle"]

BLOCK_HALF_SIZE = (0.025, 0.025, 0.05)  # 5 x 5 x 10 cm (CSC §5.1)
BOUNDARY_HALF = (0.075, 0.175)  # 15 x 35 cm region (CSC §5.1)
START_X, START_Y = (-0.03, 0.03), (-0.10, -0.06)  # ours
GOAL_X, GOAL_Y = (-0.03, 0.03), (0.06, 0.10)  # ours
SUCCESS_RADIUS = 0.03  # ours
TOPPLE_ANGLE = math.radians(45.0)  # ours


def tilt_angle(quat_wxyz: np.ndarray) -> float:
    """Angle (radians) between a body's z-axis and the world's z-axis, from its (w, x, y, z) quaternion."""
    w, x, y, z = quat_wxyz
    up_z = 1.0 - 2.0 * (x * x + y * y)
    return math.acos(max(-1.0, min(1.0, up_z)))


class PandaPushTask(Lift):
    """robosuite task: Lift's table and Panda with a tall block placed by ``place_block`` instead of a cube.

    Lift's references and observables (``cube_pos``, ``cube_quat``, ``gripper_to_cube_pos``) are
    reused as they are: the block is stored under Lift's name ``self.cube``.
    """

    def _load_model(self) -> None:
        ManipulationEnv._load_model(self)
        xpos = self.robots[0].robot_model.base_xpos_offset["table"](self.table_full_size[0])
        self.robots[0].robot_model.set_base_xpos(xpos)
        arena = TableArena(
            table_full_size=self.table_full_size, table_friction=self.table_friction, table_offset=self.table_offset
        )
        arena.set_origin([0, 0, 0])
        self.cube = BoxObject(name="block", size=list(BLOCK_HALF_SIZE), rgba=[0.2, 0.4, 0.9, 1.0], density=500.0)
        self.model = ManipulationTask(
            mujoco_arena=arena, mujoco_robots=[robot.robot_model for robot in self.robots], mujoco_objects=self.cube
        )
        self.block_start = np.zeros(2)

    def _reset_internal(self) -> None:
        ManipulationEnv._reset_internal(self)  # robot and sim; Lift's random placement is skipped
        x, y = self.block_start
        position = self.table_offset + np.array([x, y, BLOCK_HALF_SIZE[2] + 0.001])
        self.sim.data.set_joint_qpos(self.cube.joints[0], np.concatenate([position, [1.0, 0.0, 0.0, 0.0]]))

    def reward(self, action=None) -> float:
        return 0.0  # the Gymnasium env computes the reward (it knows the goal)

    def block_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Block position relative to the table centre (x, y, z above the table) and quaternion (w, x, y, z)."""
        position = np.array(self.sim.data.body_xpos[self.cube_body_id]) - self.table_offset
        return position, np.array(self.sim.data.body_xquat[self.cube_body_id])


class PandaPushEnv(gym.Env):
    """A Panda pushes an upright block to a goal without toppling it (or without leaving a region).

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = gym.make("safeshield/PandaPushNoTopple-v0")     # or PandaPushBoundary-v0
        >>> obs, info = env.reset(seed=0)
        >>> env.action_space.shape, info["failure"]
        ((3,), False)
    """

    metadata = {"render_modes": [], "render_fps": 20, "safeshield_indicator": "info:failure"}
    FAILURES = ("topple", "boundary")

    def __init__(self, failure: str = "topple", render_mode: str | None = None) -> None:
        if failure not in self.FAILURES:
            raise ValueError(f"failure must be one of {self.FAILURES}, got {failure!r}")
        if render_mode is not None:
            raise ValueError(f"render_mode must be None (PandaPushEnv renders nothing headless), got {render_mode!r}")
        self.failure = failure
        self.render_mode = None
        self.task = PandaPushTask(
            robots="Panda",
            controller_configs=refactor_composite_controller_config(
                load_part_controller_config(default_controller="OSC_POSITION"), "Panda", ["right"]
            ),
            initialization_noise=None,
            use_camera_obs=False,
            has_renderer=False,
            has_offscreen_renderer=False,
            ignore_done=True,
            hard_reset=False,
            horizon=10**9,  # the Gymnasium TimeLimit ends episodes
        )
        self.goal = np.zeros(2)
        self._needs_reset = True
        obs = self.task.reset()
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        size = self._flatten(obs).shape[0]
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)

    def _flatten(self, obs: dict) -> np.ndarray:
        return np.concatenate([obs["robot0_proprio-state"], obs["object-state"], self.goal]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self.task.block_start = np.array([rng.uniform(*START_X), rng.uniform(*START_Y)])
        self.goal = np.array([rng.uniform(*GOAL_X), rng.uniform(*GOAL_Y)])
        obs = self.task.reset()
        self._needs_reset = False
        return self._flatten(obs), self._info(obs)[0]

    def set_block_pose(self, position, quat_wxyz=(1.0, 0.0, 0.0, 0.0)) -> None:
        """Place the block at ``position`` relative to the table centre (tests, constructed states)."""
        world = self.task.table_offset + np.asarray(position, dtype=np.float64)
        self.task.sim.data.set_joint_qpos(self.task.cube.joints[0], np.concatenate([world, quat_wxyz]))
        self.task.sim.data.set_joint_qvel(self.task.cube.joints[0], np.zeros(6))
        self.task.sim.forward()

    def step(self, action: Any):
        if self._needs_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        array = np.asarray(action, dtype=np.float64)
        if array.shape != (3,) or not np.all(np.isfinite(array)):
            raise ValueError(f"action must be a finite array of shape (3,), got {action!r}")
        obs, _, _, _ = self.task.step(np.concatenate([np.clip(array, -1.0, 1.0), [1.0]]))  # gripper closed
        info, reward = self._info(obs)
        return self._flatten(obs), reward, info["failure"], False, info

    def _info(self, obs: dict) -> tuple[dict[str, Any], float]:
        position, quat = self.task.block_pose()
        toppled = tilt_angle(quat) > TOPPLE_ANGLE
        out_of_bounds = abs(position[0]) > BOUNDARY_HALF[0] or abs(position[1]) > BOUNDARY_HALF[1]
        failure = bool(toppled if self.failure == "topple" else out_of_bounds)
        to_goal = float(np.linalg.norm(position[:2] - self.goal))
        to_block = float(np.linalg.norm(obs["gripper_to_cube_pos"]))
        success = to_goal < SUCCESS_RADIUS
        reward = -(to_goal + 0.5 * to_block) + (1.0 if success else 0.0)
        info = {
            "failure": failure,
            "cost": 1.0 if failure else 0.0,
            "toppled": bool(toppled),
            "out_of_bounds": bool(out_of_bounds),
            "is_success": bool(success),
            "block_position": position,
        }
        return info, float(reward)

    def close(self) -> None:
        self.task.close()
        super().close()
