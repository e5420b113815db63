"""Hallway: the safe-transfer navigation task of Knight & Achiam (Walls -> Poles / Humanoids).

- ``HallwayEnv``: a robot drives down a long hallway past obstacles; reward for forward
  progress, cost for touching an obstacle. Variants ``"walls"`` (low stakes), ``"poles"`` and
  ``"humanoids"`` (high stakes).
- ``VARIANTS`` / ``SENSING``: the accepted ``variant`` and ``sensing`` values.

Paper: Knight & Achiam (2021), "Safely Transferring to Unsafe Environments with Constrained Reinforcement Learning", §3,
§3.1, Figs 2-3,
The paper fixes: a long cluttered hallway, reward for
moving forward, cost for touching an obstacle, at most 1000 steps, partial observation by a
head depth camera (50x50) plus proprioception; Walls = walls perturbed each episode; Poles =
cylinders replace the walls; Humanoids = moving people, cost only on the first touch of each.
Everything else is a choice made here:

- Geometry: hallway along +x, ``length`` m long (default 20) and ``width`` m wide (3); the
  robot starts at x = 0.5 with y ~ U(-0.3, 0.3), heading ~ U(-0.3, 0.3) rad, and the episode
  ends (``terminated``, ``is_success``) when it passes x = length - 0.3. Obstacle slots every
  ``spacing`` m (2.0) from x = 2.0, each slot's x jittered by U(-0.3, 0.3) per episode.
  - walls: a 0.1 m thick wall from one side wall, covering U(0.5, 0.65) of the width, sides
    alternating (first side random): the robot must slalom.
  - poles: ``poles_per_slot`` (3) cylinders of radius U(0.1, 0.15) at random y across the
    whole width (centres at least 0.6 m apart, so gaps exist but are narrow): unlike the
    walls there is no single side to go round, which is what the paper's agent got stuck on.
  - humanoids: one person per slot at a random y, replaying a random mocap clip
    (``hallway_people``), drifting at U(0.1, 0.4) m/s in a random direction and bouncing
    inside its slot's 1.6 m x (width - 0.6) m box.
- Cost (``info["cost"]``): touching an obstacle at the end of a step (the paper's c(s) on
  states). walls/poles: 1 per step of contact. humanoids: 1 the first time the robot touches
  each person in an episode, 0 afterwards (so the episode cost <= number of people). The
  hallway's side walls block the robot but cost nothing (they are the hallway, not obstacles).
- Reward: forward progress ``reward_scale * (x' - x)``, with ``reward_scale = 1000 / length``
  by default so a full traversal returns about 1000, the magnitude of the paper's Table 1.
- Robot: ``"point"`` from ``mujoco_robots`` (action ``[forward, turn]``, the paper's "heading
  and forward speed") or ``"doggo"`` (``doggo.py``: 12 torque motors, 4 legs x (hip z, hip y,
  knee)). 25 physics substeps of 2 ms per action (a 0.05 s control step; our choice, so 1000
  steps = 50 s, enough to traverse 20 m at the point's 1 m/s top speed). Doggo is never
  terminated for falling over (the paper gives no such rule).
- Observation: ``proprio`` = [forward, lateral velocity, yaw rate, cos, sin heading,
  2y/width, x/length] (7 numbers; Doggo adds its 12 joint angles, 12 joint velocities and the
  torso's uprightness), then
  - ``sensing="state"`` (default): ranges to the nearest obstacle or wall along ``n_rays``
    (16) horizontal directions around the robot at its torso height, ``mj_multiRay``,
    normalised to [0, 1] by ``ray_range`` (4 m): shape-agnostic, so a pre-trained agent reads
    poles and people in the same units as walls.
  - ``sensing="depth"``: a head-camera depth image of ``depth_shape`` (default 16x16; the paper
    uses 50x50) over a ``depth_fov`` (90 deg) pinhole view from 0.3 m above the robot,
    pitched 15 deg down, by ``mj_multiRay`` (no OpenGL needed), normalised by ``ray_range``
    and flattened row-major after ``proprio``.
- ``info``: ``cost``, ``failure`` (cost > 0), ``is_success``, ``x``, ``touched`` (people
  touched so far; humanoids only).
- No render mode (headless machines; ``render()`` returns None).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from safeshield.core.validation import check_count, check_positive
from safeshield.environments import hallway_people as people
from safeshield.environments.doggo import DoggoRobot, build_doggo_world_xml
from safeshield.environments.mujoco_robots import SOLID, PlanarRobot, build_world_xml

__all__ = ["HallwayEnv", "VARIANTS", "SENSING", "ROBOTS"]

VARIANTS = ("walls", "poles", "humanoids")
SENSING = ("state", "depth")
ROBOTS = ("point", "doggo")
_HEIGHT = 0.5  # obstacle wall / pole height (m)
_PROPRIO = {"point": 7, "doggo": 7 + 24 + 1}  # doggo adds 12 joint angles, 12 joint velocities, uprightness
_ACTIONS = {"point": 2, "doggo": 12}


class HallwayEnv(gym.Env):
    """Drive a MuJoCo robot down a hallway past walls, poles or moving people without touching them.

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = gym.make("safeshield/PointHallwayWalls-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info["cost"]
        ((23,), 0.0)
    """

    metadata = {"render_modes": [], "render_fps": 20, "safeshield_indicator": "cost"}

    def __init__(
        self,
        variant: str = "walls",
        robot: str = "point",
        length: float = 20.0,
        width: float = 3.0,
        spacing: float = 2.0,
        poles_per_slot: int = 3,
        sensing: str = "state",
        n_rays: int = 16,
        depth_shape: tuple[int, int] = (16, 16),
        depth_fov: float = 90.0,
        ray_range: float = 4.0,
        reward_scale: float | None = None,
        frame_skip: int = 25,
        render_mode: str | None = None,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if robot not in ROBOTS:
            raise ValueError(f"robot must be one of {ROBOTS}, got {robot!r}")
        if sensing not in SENSING:
            raise ValueError(f"sensing must be one of {SENSING}, got {sensing!r}")
        if render_mode is not None:
            raise ValueError(
                f"HallwayEnv has no render modes (headless); render_mode must be None, got {render_mode!r}"
            )
        for name, value in (
            ("length", length),
            ("width", width),
            ("spacing", spacing),
            ("ray_range", ray_range),
            ("depth_fov", depth_fov),
        ):
            check_positive(name, value)
        if length < 3.0 or width < 1.5:
            raise ValueError(f"the hallway needs length >= 3 and width >= 1.5 (m), got {length!r} x {width!r}")
        for name, value in (("n_rays", n_rays), ("frame_skip", frame_skip), ("poles_per_slot", poles_per_slot)):
            check_count(name, value)
        depth_shape = tuple(int(v) for v in depth_shape)
        if len(depth_shape) != 2 or min(depth_shape) < 1:
            raise ValueError(f"depth_shape must be (rows, cols) of positive integers, got {depth_shape!r}")
        if reward_scale is not None and not reward_scale > 0:
            raise ValueError(f"reward_scale must be > 0 or None (1000 / length), got {reward_scale!r}")
        self.variant, self.robot_name, self.sensing = variant, robot, sensing
        self.length, self.width, self.spacing = float(length), float(width), float(spacing)
        self.poles_per_slot, self.n_rays, self.depth_shape = int(poles_per_slot), int(n_rays), depth_shape
        self.depth_fov, self.ray_range, self.frame_skip = float(depth_fov), float(ray_range), int(frame_skip)
        self.reward_scale = 1000.0 / self.length if reward_scale is None else float(reward_scale)
        self.render_mode = render_mode
        self.slots = np.arange(2.0, self.length - 1.0, self.spacing)
        if len(self.slots) == 0:
            raise ValueError(f"no obstacle slot fits a hallway of length {length!r} with spacing {spacing!r}")

        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(_ACTIONS[robot],), dtype=np.float32)
        n_sensed = self.n_rays if sensing == "state" else int(np.prod(depth_shape))
        n_proprio = _PROPRIO[robot]
        low = np.concatenate([np.full(n_proprio, -np.inf), np.zeros(n_sensed)]).astype(np.float32)
        high = np.concatenate([np.full(n_proprio, np.inf), np.ones(n_sensed)]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._ray_dirs_local = self._ray_directions()
        self._ray_geomid = np.zeros(len(self._ray_dirs_local), np.int32)
        self._ray_dist = np.zeros(len(self._ray_dirs_local), np.float64)
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None

    # -- scenery ----------------------------------------------------------------------------------
    def _ray_directions(self) -> np.ndarray:
        """Unit ray directions in the robot frame (x forward, y left, z up), one row per ray."""
        if self.sensing == "state":
            angles = np.arange(self.n_rays) * 2 * math.pi / self.n_rays
            return np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], 1)
        rows, cols = self.depth_shape
        half = math.tan(math.radians(self.depth_fov) / 2)
        u = (np.arange(cols) + 0.5) / cols * 2 - 1  # left (+1) to right (-1) after the sign below
        v = (np.arange(rows) + 0.5) / rows * 2 - 1  # top (+1) to bottom (-1)
        vv, uu = np.meshgrid(-v, -u, indexing="ij")
        pitch = math.radians(-15.0)
        forward = np.array([math.cos(pitch), 0.0, math.sin(pitch)])
        up = np.array([-math.sin(pitch), 0.0, math.cos(pitch)])
        left = np.array([0.0, 1.0, 0.0])
        dirs = forward + half * (uu[..., None] * left + vv[..., None] * up)
        dirs = dirs.reshape(-1, 3)
        return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)

    def _scenery_xml(self) -> str:
        rng = self.np_random
        half_w = self.width / 2
        geoms = [
            f'<geom name="side_left" type="box" size="{self.length / 2 + 0.5} 0.05 {_HEIGHT}" pos="{self.length / 2} '
            f'{half_w + 0.05} {_HEIGHT}" {SOLID} rgba="0.6 0.6 0.7 1"/>',
            f'<geom name="side_right" type="box" size="{self.length / 2 + 0.5} 0.05 {_HEIGHT}" pos="{self.length / 2} '
            f'{-half_w - 0.05} {_HEIGHT}" {SOLID} rgba="0.6 0.6 0.7 1"/>',
            f'<geom name="back" type="box" size="0.05 {half_w} {_HEIGHT}" pos="-0.1 0 {_HEIGHT}" {SOLID} rgba="0.6 '
            '0.6 0.7 1"/>',
        ]
        xs = self.slots + rng.uniform(-0.3, 0.3, len(self.slots))
        self._slot_x = xs
        if self.variant == "walls":
            side = rng.choice([-1.0, 1.0])
            for i, x in enumerate(xs):
                span = rng.uniform(0.5, 0.65) * self.width
                y = side * (half_w - span / 2)
                geoms.append(
                    f'<geom name="obstacle{i}" type="box" size="0.05 {span / 2} {_HEIGHT}" pos="{x} {y} {_HEIGHT}" '
                    f'{SOLID} rgba="0.3 0.4 0.8 1"/>'
                )
                side = -side
        elif self.variant == "poles":
            k = 0
            for x in xs:
                for y in self._spread(self.poles_per_slot, half_w - 0.2, 0.6):
                    radius = rng.uniform(0.1, 0.15)
                    geoms.append(
                        f'<geom name="obstacle{k}" type="cylinder" size="{radius} {_HEIGHT}" pos="{x} {y} {_HEIGHT}" '
                        f'{SOLID} rgba="0.8 0.4 0.3 1"/>'
                    )
                    k += 1
        else:
            geoms += [people.person_xml(i, SOLID) for i in range(len(xs))]
        return "\n    ".join(geoms)

    def _spread(self, n: int, half_range: float, min_gap: float) -> np.ndarray:
        """``n`` values in [-half_range, half_range] at least ``min_gap`` apart (rejection sampling)."""
        for _ in range(1000):
            ys = np.sort(self.np_random.uniform(-half_range, half_range, n))
            if n == 1 or np.min(np.diff(ys)) >= min_gap:
                return ys
        return np.linspace(-half_range, half_range, n)

    def _build(self) -> None:
        scenery = self._scenery_xml()
        if self.robot_name == "doggo":
            self.model = mujoco.MjModel.from_xml_string(
                build_doggo_world_xml(scenery, floor_half_size=self.length + 2.0)
            )
            self.robot = DoggoRobot(self.model)
        else:
            self.model = mujoco.MjModel.from_xml_string(
                build_world_xml(self.robot_name, scenery, floor_half_size=self.length + 2.0)
            )
            self.robot = PlanarRobot(self.model, self.robot_name)
        self.data = mujoco.MjData(self.model)
        self._robot_geom = self.model.body_rootid[self.model.geom_bodyid] == self.robot.body_id
        # obstacle index of each geom (-1: not an obstacle); a person's bones share one index
        self._obstacle_of = np.full(self.model.ngeom, -1, np.int64)
        for g in range(self.model.ngeom):
            name = mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
            if name.startswith("obstacle"):
                self._obstacle_of[g] = int(name[len("obstacle") :])
            elif name.startswith("person"):
                self._obstacle_of[g] = int(name[len("person") :].split("_")[0])

    def _init_people(self) -> None:
        rng = self.np_random
        n = len(self._slot_x)
        self._clips = [str(rng.choice(people.CLIPS)) for _ in range(n)]
        self._phase = rng.uniform(0.0, 5.0, n)
        half_w = self.width / 2 - 0.3
        self._box = np.stack([self._slot_x - 0.8, self._slot_x + 0.8, np.full(n, -half_w), np.full(n, half_w)], 1)
        self._anchor = np.stack([self._slot_x, rng.uniform(-half_w, half_w, n)], 1)
        angle = rng.uniform(-math.pi, math.pi, n)
        self._drift = rng.uniform(0.1, 0.4, n)[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
        self._time = 0.0
        for i in range(n):  # capsule half-lengths are constant per clip: set them once
            _, _, half = people.pose_bones(self._clips[i], 0.0, self._anchor[i], 0.0)
            geoms = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"person{i}_{b[0]}") for b in people.BONES]
            self.model.geom_size[geoms, 1] = half
        self._mocap = np.array(
            [
                [
                    self.model.body_mocapid[
                        mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, f"person{i}_{b[0]}")
                    ]
                    for b in people.BONES
                ]
                for i in range(n)
            ]
        )
        self._move_people(0.0)

    def _move_people(self, dt: float) -> None:
        self._time += dt
        self._anchor += self._drift * dt
        for axis, (lo, hi) in ((0, (0, 1)), (1, (2, 3))):  # bounce off the box edges
            out = (self._anchor[:, axis] < self._box[:, lo]) | (self._anchor[:, axis] > self._box[:, hi])
            self._drift[out, axis] *= -1
            self._anchor[:, axis] = np.clip(self._anchor[:, axis], self._box[:, lo], self._box[:, hi])
        for i, clip in enumerate(self._clips):
            heading = math.atan2(self._drift[i, 1], self._drift[i, 0])
            mid, quat, _ = people.pose_bones(clip, self._time + self._phase[i], self._anchor[i], heading)
            self.data.mocap_pos[self._mocap[i]] = mid
            self.data.mocap_quat[self._mocap[i]] = quat

    # -- gym API ----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._build()
        rng = self.np_random
        self.robot.set_pose(self.data, 0.5, rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3))
        self._touched = np.zeros(len(self._slot_x), bool)
        if self.variant == "humanoids":
            self._init_people()
        mujoco.mj_forward(self.model, self.data)
        self._x = self.robot.pose(self.data)[0]
        return self._observation(), self._info(0.0, False)

    def step(self, action):
        if self.data is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise ValueError(
                f"action must be {self.action_space.shape[0]} finite numbers {self.robot.spec.action_names}, got "
                f"{action!r}"
            )
        self.robot.apply(self.data, action)
        if self.variant == "humanoids":
            self._move_people(self.frame_skip * self.model.opt.timestep)
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        x = self.robot.pose(self.data)[0]
        reward = self.reward_scale * (x - self._x)
        self._x = x
        cost = self._cost()
        success = x >= self.length - 0.3
        return self._observation(), float(reward), bool(success), False, self._info(cost, success)

    def _cost(self) -> float:
        """1 for any obstacle touched now (walls/poles); people: 1 per person touched for the first time."""
        ncon = self.data.ncon
        if ncon == 0:
            return 0.0
        pairs = self.data.contact.geom[:ncon]
        robot = self._robot_geom[pairs]
        other = np.where(robot[:, 0], pairs[:, 1], pairs[:, 0])
        touched = self._obstacle_of[other[robot[:, 0] ^ robot[:, 1]]]
        touched = np.unique(touched[touched >= 0])
        if self.variant != "humanoids":
            return float(len(touched) > 0)
        new = touched[~self._touched[touched]]
        self._touched[new] = True
        return float(len(new))

    def _observation(self) -> np.ndarray:
        x, y, heading = self.robot.pose(self.data)
        c, s = math.cos(heading), math.sin(heading)
        proprio = [*self.robot.velocity(self.data), c, s, 2 * y / self.width, x / self.length]
        if self.robot_name == "doggo":
            proprio = [*proprio, *self.robot.joints(self.data), self.robot.upright(self.data)]
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        dirs = self._ray_dirs_local @ rotation.T
        origin = np.array([x, y, self.data.xpos[self.robot.body_id][2] + (0.0 if self.sensing == "state" else 0.3)])
        mujoco.mj_multiRay(
            self.model,
            self.data,
            origin,
            dirs.reshape(-1),
            None,
            1,
            self.robot.body_id,
            self._ray_geomid,
            self._ray_dist,
            None,
            len(dirs),
            self.ray_range,
        )
        dist = np.where(self._ray_geomid < 0, self.ray_range, np.minimum(self._ray_dist, self.ray_range))
        return np.concatenate([proprio, dist / self.ray_range]).astype(np.float32)

    def _info(self, cost: float, success: bool) -> dict[str, Any]:
        info = {"cost": float(cost), "failure": cost > 0, "is_success": bool(success), "x": float(self._x)}
        if self.variant == "humanoids":
            info["touched"] = int(self._touched.sum())
        return info

    def render(self):
        return None
