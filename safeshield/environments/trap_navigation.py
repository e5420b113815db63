"""CSC's Point and Car trap-navigation tasks, rebuilt on MuJoCo.

- ``TrapNavigationEnv``: a robot (``"point"`` or ``"car"``, see ``mujoco_robots``) drives to a
  goal in a walled arena scattered with circular traps; time inside traps drains its health, and
  an empty health bar is a failure that ends the episode.

Paper: Bharadhwaj et al., "Conservative Safety Critics for Exploration" (seed
arXiv:2010.14497), §5.1 and App. A.5: "the agent must reach a goal while avoiding traps;
health starts at 25 and decreases by 1 per step inside a trap; failure when it reaches 0";
episodes of 500 steps (Figs. 3, 4). The robots are Safety-Gym's point and car (Ray et al. 2019).

The task, as built here (the paper gives no layout, trap count, radii or reward,
so each choice below is ours unless cited):

- Arena: ``[-arena, arena]^2`` (2 m) inside solid walls. Each reset draws ``n_traps`` (8) traps of
  radius ``trap_radius`` (0.3 m) apart from each other, a robot start outside every trap, and a
  goal (radius 0.3 m, Safety-Gym's goal size) outside every trap and at least 1 m from the robot.
- Reward (Safety-Gym's goal task): the decrease in distance to the goal each step (weight 1) plus
  1 on reaching it, after which a new goal is drawn (so an episode always lasts 500 steps unless
  it fails).
- Health starts at ``health`` (25, App. A.5) and drops by 1 per step whose end finds the robot's
  centre inside a trap; it never recovers. When it reaches 0 the episode terminates with
  ``info["failure"] = True`` (at most one failure per episode, as CSC assumes).
- Observation (float32): the robot's body-frame (forward, lateral, yaw-rate) velocity, a
  ``lidar_bins`` (16) goal lidar, a 16-bin trap lidar, and the health fraction. A lidar bin covers
  an angle sector around the robot's heading; each object adds ``max(0, 1 - d / lidar_range)`` (d
  to the goal's centre, or to a trap's edge, 0 inside it) split linearly between the two nearest
  bins (Safety-Gym's lidar with aliasing), and a bin keeps the largest value. ``lidar_range``
  (6 m) spans the arena's diagonal, so the goal is always visible (3 m left far goals unseen).
- ``info``: ``failure``, ``cost`` (1.0 on the failing step, the ``"cost"`` indicator convention
  the package uses), ``in_trap``, ``health``, ``goals_reached``, ``position``.
- 10 physics substeps of 2 ms per action (0.02 s), Safety-Gym's control rate.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from safeshield.core.validation import check_count, check_positive
from safeshield.environments.mujoco_robots import GHOST, SOLID, PlanarRobot, build_world_xml

__all__ = ["TrapNavigationEnv"]

_WALL_THICKNESS = 0.05


class TrapNavigationEnv(gym.Env):
    """Drive a MuJoCo point or car to goals while avoiding circular traps (CSC §5.1, App. A.5).

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = gym.make("safeshield/PointTraps-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info["health"]
        ((36,), 25)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50, "safeshield_indicator": "info:failure"}

    def __init__(
        self,
        robot: str = "point",
        n_traps: int = 8,
        trap_radius: float = 0.3,
        arena: float = 2.0,
        health: int = 25,
        goal_radius: float = 0.3,
        lidar_bins: int = 16,
        lidar_range: float = 6.0,
        frame_skip: int = 10,
        render_mode: str | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        check_count("n_traps", n_traps, minimum=0)
        for name, value in (("health", health), ("lidar_bins", lidar_bins), ("frame_skip", frame_skip)):
            check_count(name, value)
        for name, value in (
            ("trap_radius", trap_radius),
            ("arena", arena),
            ("goal_radius", goal_radius),
            ("lidar_range", lidar_range),
        ):
            check_positive(name, value)
        if n_traps * math.pi * (trap_radius + 0.2) ** 2 > 0.5 * (2 * arena) ** 2:
            raise ValueError(f"{n_traps} traps of radius {trap_radius} do not fit an arena of half-size {arena}")
        self.robot_name = robot
        self.n_traps, self.trap_radius, self.arena = int(n_traps), float(trap_radius), float(arena)
        self.max_health, self.goal_radius = int(health), float(goal_radius)
        self.lidar_bins, self.lidar_range, self.frame_skip = int(lidar_bins), float(lidar_range), int(frame_skip)
        self.render_mode = render_mode

        self.model = mujoco.MjModel.from_xml_string(
            build_world_xml(robot, self._scenery_xml(), floor_half_size=arena + 0.5)
        )
        self.data = mujoco.MjData(self.model)
        self.robot = PlanarRobot(self.model, robot)
        self._trap_geoms = [
            mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"trap{i}") for i in range(self.n_traps)
        ]
        self._goal_geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "goal")
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.robot.action_dim,), dtype=np.float32)
        low = np.concatenate([np.full(3, -np.inf), np.zeros(2 * self.lidar_bins + 1)]).astype(np.float32)
        high = np.concatenate([np.full(3, np.inf), np.ones(2 * self.lidar_bins + 1)]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

        self.traps = np.zeros((self.n_traps, 2))
        self.goal = np.zeros(2)
        self.health = self.max_health
        self.goals_reached = 0
        self._goal_distance = 0.0
        self._renderer = None

    # -- scenery ----------------------------------------------------------------------------------
    def _scenery_xml(self) -> str:
        wall = self.arena + _WALL_THICKNESS
        walls = "\n".join(
            f'    <geom name="wall{i}" type="box" size="{sx} {sy} 0.25" pos="{px} {py} 0.25" {SOLID} rgba="0.5 0.5 0.5 '
            '1"/>'
            for i, (sx, sy, px, py) in enumerate(
                [
                    (wall, _WALL_THICKNESS, 0, wall),
                    (wall, _WALL_THICKNESS, 0, -wall),
                    (_WALL_THICKNESS, wall, wall, 0),
                    (_WALL_THICKNESS, wall, -wall, 0),
                ]
            )
        )
        traps = "\n".join(
            f'    <geom name="trap{i}" type="cylinder" size="{self.trap_radius} 0.002" pos="0 0 0.002" {GHOST} '
            'rgba="0.6 0.3 0.9 0.8"/>'
            for i in range(self.n_traps)
        )
        goal = (
            f'    <geom name="goal" type="cylinder" size="{self.goal_radius} 0.003" pos="0 0 0.003" {GHOST} '
            'rgba="0.2 0.8 0.2 0.8"/>'
        )
        return "\n".join([walls, traps, goal])

    def _free_point(self, clearance: float, avoid: np.ndarray | None = None, min_distance: float = 0.0) -> np.ndarray:
        """A uniform point ``clearance`` away from the walls and every trap (and ``min_distance`` from ``avoid``)."""
        margin = self.arena - 0.2
        for _ in range(10_000):
            point = self.np_random.uniform(-margin, margin, size=2)
            if self.n_traps and (np.linalg.norm(self.traps - point, axis=1) < self.trap_radius + clearance).any():
                continue
            if avoid is not None and np.linalg.norm(point - avoid) < min_distance:
                continue
            return point
        raise RuntimeError("could not place an object clear of the traps; use fewer or smaller traps")

    def _place_traps(self) -> None:
        margin = self.arena - self.trap_radius
        placed: list[np.ndarray] = []
        while len(placed) < self.n_traps:
            point = self.np_random.uniform(-margin, margin, size=2)
            if all(np.linalg.norm(point - other) >= 2 * self.trap_radius + 0.1 for other in placed):
                placed.append(point)
        self.traps = np.array(placed).reshape(self.n_traps, 2)
        for geom, centre in zip(self._trap_geoms, self.traps):
            self.model.geom_pos[geom, :2] = centre

    def _place_goal(self, robot_xy: np.ndarray) -> None:
        self.goal = self._free_point(self.goal_radius, avoid=robot_xy, min_distance=1.0)
        self.model.geom_pos[self._goal_geom, :2] = self.goal
        self._goal_distance = float(np.linalg.norm(self.goal - robot_xy))

    # -- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self._place_traps()
        start = self._free_point(self.robot.spec.radius + 0.1)
        self.robot.set_pose(self.data, start[0], start[1], float(self.np_random.uniform(-math.pi, math.pi)))
        self._place_goal(start)
        self.health = self.max_health
        self.goals_reached = 0
        return self._observation(), self._info(False, False)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape or not np.isfinite(action).all():
            raise ValueError(f"action must be a finite array of shape {self.action_space.shape}, got {action!r}")
        self.robot.apply(self.data, action)
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        x, y, _ = self.robot.pose(self.data)
        position = np.array([x, y])
        distance = float(np.linalg.norm(self.goal - position))
        reward = self._goal_distance - distance
        self._goal_distance = distance
        if distance <= self.goal_radius:
            reward += 1.0
            self.goals_reached += 1
            self._place_goal(position)
        in_trap = bool(self.n_traps) and bool((np.linalg.norm(self.traps - position, axis=1) <= self.trap_radius).any())
        if in_trap:
            self.health -= 1
        failure = self.health <= 0
        return self._observation(), float(reward), failure, False, self._info(in_trap, failure)

    def _info(self, in_trap: bool, failure: bool) -> dict[str, Any]:
        x, y, _ = self.robot.pose(self.data)
        return {
            "failure": failure,
            "cost": 1.0 if failure else 0.0,
            "in_trap": in_trap,
            "health": self.health,
            "goals_reached": self.goals_reached,
            "position": np.array([x, y]),
        }

    # -- observation --------------------------------------------------------------------------------
    def _lidar(self, targets: np.ndarray, distances: np.ndarray, x: float, y: float, heading: float) -> np.ndarray:
        bins = np.zeros(self.lidar_bins)
        if len(targets) == 0:
            return bins
        angles = (np.arctan2(targets[:, 1] - y, targets[:, 0] - x) - heading) % (2 * math.pi)
        position = angles / (2 * math.pi) * self.lidar_bins
        lower = np.floor(position).astype(int) % self.lidar_bins
        upper = (lower + 1) % self.lidar_bins
        weight_upper = position - np.floor(position)
        value = np.clip(1.0 - distances / self.lidar_range, 0.0, 1.0)
        np.maximum.at(bins, lower, value * (1.0 - weight_upper))
        np.maximum.at(bins, upper, value * weight_upper)
        return bins

    def _observation(self) -> np.ndarray:
        x, y, heading = self.robot.pose(self.data)
        here = np.array([x, y])
        goal_distance = np.linalg.norm(self.goal - here)[None]
        trap_distance = np.maximum(np.linalg.norm(self.traps - here, axis=1) - self.trap_radius, 0.0)
        return np.concatenate(
            [
                self.robot.velocity(self.data),
                self._lidar(self.goal[None], goal_distance, x, y, heading),
                self._lidar(self.traps, trap_distance, x, y, heading),
                [self.health / self.max_health],
            ]
        ).astype(np.float32)

    # -- rendering ----------------------------------------------------------------------------------
    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 480, 480)
        camera = mujoco.MjvCamera()
        camera.lookat[:] = (0.0, 0.0, 0.0)
        camera.distance, camera.elevation, camera.azimuth = 3.2 * self.arena, -90.0, 90.0
        self._renderer.update_scene(self.data, camera)
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
