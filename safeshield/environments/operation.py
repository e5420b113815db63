"""Operation: SAFER's safety-critical grasping suite (PyBullet), rebuilt from the paper's description.

- ``OperationEnv``: a Franka Panda (``pybullet_data/franka_panda``) must lift an object out of a
  container generated to fit it; touching the container is a safety violation.
- ``task_spec`` / ``TaskSpec``: task k -> (object, margin, wall height), seeded by k.
- ``N_TASKS`` (40) and ``EVAL_TASKS``: the 6 hardest tasks (tightest margin per wall height).
- ``ScriptedGrasp``: the noisy scripted data-collection policy (approach, descend, close, lift).

Paper: SAFER §5.1 and Figs. 3, 10 (Slack, Chow, Dai, Wichers (2022), "SAFER: Data-Efficient and Safe Reinforcement
Learning via Skill Acquisition", arXiv:2202.04849):
40 tasks, each one container + one object from the PyBullet package, containers generated to
fit the object with random widths and heights (the size sets the difficulty), reward +1 when the
object is extracted and -1 per step before, omega = 1 when the arm touches the box, 48x48 images
from a fixed camera, data from PARROT's scripted policy plus actuation noise.

Where this differs from the paper, and why:

- Robot and action: the paper's "5DoF arm and gripper" is not named. We use the Panda with
  inverse kinematics and a fixed top-down gripper: the action is (dx, dy, dz, grip) in [-1, 1]^4,
  (dx, dy, dz) scaled by ``max_step`` (2 cm) and ``grip`` setting each finger's target opening
  to 0.03 * (1 - grip) / 2 m (grip = 1 closed, -1 open). No yaw: objects are grasped as they lie.
- Objects: ``pybullet_data/random_urdfs`` meshes picked by the task's seed and scaled to fit the
  gripper (footprint <= 3 cm, height 2.5-5 cm). The Panda's hand is 21 cm wide, so only the
  fingers can enter a container: its inner width leaves room for the open fingers along their
  axis, and the rim is at most where the hand's underside is when grasping.
- omega: any contact between any robot link (fingers included) and the container at *any* of the
  ``substeps`` physics steps of the action. It does not end the episode.
- Success: the object's lowest point rises ``lift_clearance`` (3 cm) above the rim; the episode
  ends with reward +1 there (otherwise -1 per step). Episodes last at most 50 steps (our choice;
  the paper does not give a length).
- Observations: ``obs_mode="state"`` (default) is a 17-vector: end-effector position, finger
  opening, object AABB centre and its offset from the end effector, object AABB half-extents,
  container inner half-widths, rim height and floor height. ``obs_mode="image"`` gives the paper's
  48x48 RGB (uint8) from a fixed camera through the CPU TinyRenderer (slow; see docs/safer.md).
- Difficulty: tasks draw a margin in [0.5, 4] cm and a wall height of 50-100 % of the highest
  clearable rim; difficulty is wall height / margin and ``EVAL_TASKS`` are the 6 largest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["OperationEnv", "TaskSpec", "task_spec", "N_TASKS", "EVAL_TASKS", "ScriptedGrasp"]

N_TASKS = 40
_CONTAINER_CENTER = np.array([0.55, 0.0])
_FLOOR_TOP = 0.01  # container floor thickness (m), the floor rests on z = 0
_WALL = 0.01  # wall thickness (m)
_HOME_JOINTS = (0.0, 0.2, 0.0, -2.2, 0.0, 2.4, 0.785)
_EE_LINK, _FINGERS, _ARM = 11, (9, 10), tuple(range(7))
_DOWN = (1.0, 0.0, 0.0, 0.0)  # quaternion (x, y, z, w): gripper pointing down
_FINGERTIP_BELOW, _HAND_ABOVE = 0.011, 0.035  # fingertips below / hand underside above the end effector (m)
_FINGER_HALF_X, _FINGER_HALF_Y = 0.016, 0.062  # half-span of the open fingers across / along their axis (m)
_MAX_OPENING = 0.03  # per finger (m); the URDF allows 0.04
_WORKSPACE_LOW, _WORKSPACE_HIGH = np.array([0.35, -0.2, 0.0]), np.array([0.75, 0.2, 0.45])


def _data_path() -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath())


@lru_cache(maxsize=None)
def _mesh_extent(index: int) -> np.ndarray:
    """Axis-aligned size (x, y, z) of random_urdfs/<index> at its URDF scale (0.015)."""
    path = _data_path() / "random_urdfs" / f"{index:03d}" / f"{index:03d}.obj"
    vertices = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    points = np.asarray(vertices, dtype=np.float64) * 0.015
    return np.nanmax(points, 0) - np.nanmin(points, 0)


@dataclass(frozen=True)
class TaskSpec:
    """One Operation task: which object at what scale, how much room around it, how tall the walls are."""

    task: int
    object_index: int
    scale: float  # globalScaling of the object so it fits the gripper
    margin: float  # gap between the gripper's (or object's) footprint and each inner wall (m)
    wall_fraction: float  # rim height as a fraction of the highest rim the hand can clear

    @property
    def extent(self) -> np.ndarray:
        return _mesh_extent(self.object_index) * self.scale

    @property
    def radius(self) -> float:
        """Half the footprint's diagonal: the object's reach in the plane at any yaw."""
        return float(np.hypot(*self.extent[:2]) / 2)

    @property
    def grasp_height(self) -> float:
        """Height of the end effector when grasping: the object's centre, fingertips kept off the floor."""
        return max(_FLOOR_TOP + self.extent[2] / 2, _FLOOR_TOP + _FINGERTIP_BELOW + 0.005)

    @property
    def wall_height(self) -> float:
        """Wall height above the container floor; at most where the hand's underside is when grasping."""
        return self.wall_fraction * (self.grasp_height + _HAND_ABOVE - _FLOOR_TOP - 0.005)

    @property
    def inner_half(self) -> np.ndarray:
        """Inner half-widths (x, y): the open fingers span y, so y leaves them room."""
        return np.array([max(self.radius, _FINGER_HALF_X), max(self.radius, _FINGER_HALF_Y)]) + self.margin

    @property
    def difficulty(self) -> float:
        return self.wall_height / self.margin


def task_spec(task: int) -> TaskSpec:
    """Task ``task`` (0..N_TASKS-1), seeded by ``task``: an object scaled to fit the gripper (footprint
    <= 3 cm, height in [2.5, 5] cm), margin U[0.5, 4] cm, wall height U[0.5, 1] of the clearable rim."""
    if not isinstance(task, (int, np.integer)) or not 0 <= task < N_TASKS:
        raise ValueError(f"task must be an integer in [0, {N_TASKS}), got {task!r}")
    rng = np.random.default_rng(1000 + int(task))
    while True:
        index = int(rng.integers(1000))
        extent = _mesh_extent(index)
        if np.all(np.isfinite(extent)) and np.all(extent > 1e-3):
            scale = min(0.03 / max(extent[0], extent[1]), 0.05 / extent[2])
            if extent[2] * scale >= 0.025:
                break
    return TaskSpec(int(task), index, float(scale), float(rng.uniform(0.005, 0.04)), float(rng.uniform(0.5, 1.0)))


def _hardest(n: int) -> tuple[int, ...]:
    return tuple(sorted(range(N_TASKS), key=lambda k: -task_spec(k).difficulty)[:n])


EVAL_TASKS: tuple[int, ...] = _hardest(6)


class OperationEnv(gym.Env):
    """Lift an object out of a tight container without touching it (SAFER's Operation suite).

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = gym.make("safeshield/Operation-v0", task=3)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> sorted(k for k in info if k in ("cost", "failure", "success"))
        ['cost', 'failure', 'success']
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30, "safeshield_indicator": "info:failure"}

    def __init__(
        self,
        task: int = 0,
        obs_mode: str = "state",
        image_size: int = 48,
        max_step: float = 0.02,
        substeps: int = 8,
        lift_clearance: float = 0.03,
        render_mode: str | None = None,
    ):
        if obs_mode not in ("state", "image"):
            raise ValueError(f"obs_mode must be 'state' or 'image', got {obs_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if not (max_step > 0 and substeps >= 1 and lift_clearance > 0 and image_size >= 8):
            raise ValueError("max_step > 0, substeps >= 1, lift_clearance > 0 and image_size >= 8 are required")
        self.spec_task = task_spec(task)
        self.obs_mode, self.image_size, self.render_mode = obs_mode, int(image_size), render_mode
        self.max_step, self.substeps, self.lift_clearance = float(max_step), int(substeps), float(lift_clearance)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        if obs_mode == "state":
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (17,), np.float32)
        else:
            self.observation_space = gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        from safeshield.environments._pybullet import direct_client

        self._p = direct_client()  # without PyBullet's argv[0]= line
        self._build()

    # -- scene -----------------------------------------------------------------------------------
    def _build(self) -> None:
        p, spec = self._p, self.spec_task
        p.setAdditionalSearchPath(str(_data_path()))
        p.setGravity(0, 0, -9.81)
        p.setTimeStep(1.0 / 240.0)
        p.loadURDF("plane.urdf")
        self.robot = p.loadURDF("franka_panda/panda.urdf", useFixedBase=True)
        self.inner_half = spec.inner_half
        self.rim = _FLOOR_TOP + spec.wall_height
        self.container = self._make_container(self.inner_half, spec.wall_height)
        urdf = _data_path() / "random_urdfs" / f"{spec.object_index:03d}" / f"{spec.object_index:03d}.urdf"
        self.object = p.loadURDF(str(urdf), [*_CONTAINER_CENTER, 0.1], globalScaling=spec.scale)
        for finger in _FINGERS:
            p.changeDynamics(self.robot, finger, lateralFriction=1.5)

    def _make_container(self, inner_half: np.ndarray, height: float) -> int:
        p = self._p
        hx, hy, w = float(inner_half[0]), float(inner_half[1]), _WALL
        boxes = [  # (half extents, centre) of the floor and the four walls
            ((hx + 2 * w, hy + 2 * w, _FLOOR_TOP / 2), (0, 0, _FLOOR_TOP / 2)),
            ((w / 2, hy + w, height / 2), (hx + w / 2, 0, _FLOOR_TOP + height / 2)),
            ((w / 2, hy + w, height / 2), (-hx - w / 2, 0, _FLOOR_TOP + height / 2)),
            ((hx, w / 2, height / 2), (0, hy + w / 2, _FLOOR_TOP + height / 2)),
            ((hx, w / 2, height / 2), (0, -hy - w / 2, _FLOOR_TOP + height / 2)),
        ]
        halves, centres = [b[0] for b in boxes], [b[1] for b in boxes]
        collision = p.createCollisionShapeArray([p.GEOM_BOX] * 5, halfExtents=halves, collisionFramePositions=centres)
        visual = p.createVisualShapeArray(
            [p.GEOM_BOX] * 5, halfExtents=halves, visualFramePositions=centres, rgbaColors=[[0.6, 0.4, 0.2, 1]] * 5
        )
        return p.createMultiBody(0, collision, visual, [*_CONTAINER_CENTER, 0.0])

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        p = self._p
        for joint, angle in zip(_ARM, _HOME_JOINTS):
            p.resetJointState(self.robot, joint, angle)
        for finger in _FINGERS:
            p.resetJointState(self.robot, finger, _MAX_OPENING)
        jitter = self.np_random.uniform(-1, 1, 2) * self.spec_task.margin / 2  # an aligned gripper still fits
        yaw = self.np_random.uniform(-math.pi, math.pi)
        half_z = self.spec_task.extent[2] / 2
        p.resetBasePositionAndOrientation(
            self.object,
            [*(_CONTAINER_CENTER + jitter), _FLOOR_TOP + half_z + 0.01],
            p.getQuaternionFromEuler([0, 0, yaw]),
        )
        p.resetBaseVelocity(self.object, [0, 0, 0], [0, 0, 0])
        start = np.array([*(_CONTAINER_CENTER + self.np_random.uniform(-0.04, 0.04, 2)), self.rim + 0.07])
        self._target = np.clip(start, _WORKSPACE_LOW, _WORKSPACE_HIGH)
        self._grip_target = _MAX_OPENING
        self._place_arm(self._target)
        for _ in range(40):  # let the object settle
            p.stepSimulation()
        self._steps = 0
        return self._observation(), {"task": self.spec_task.task}

    def _place_arm(self, target: np.ndarray) -> None:
        angles = self._ik(target)
        for joint, angle in zip(_ARM, angles):
            self._p.resetJointState(self.robot, joint, angle)
        self._command(angles)

    def _ik(self, target: np.ndarray) -> list[float]:
        return list(
            self._p.calculateInverseKinematics(self.robot, _EE_LINK, target.tolist(), _DOWN, maxNumIterations=20)
        )[:7]

    def _command(self, angles: list[float]) -> None:
        p = self._p
        p.setJointMotorControlArray(
            self.robot, list(_ARM), p.POSITION_CONTROL, targetPositions=angles, forces=[87.0] * 4 + [12.0] * 3
        )
        p.setJointMotorControlArray(
            self.robot, list(_FINGERS), p.POSITION_CONTROL, targetPositions=[self._grip_target] * 2, forces=[40.0, 40.0]
        )

    def step(self, action: Any):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (4,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be 4 finite numbers (dx, dy, dz, grip) in [-1, 1], got {action!r}")
        a = np.clip(a, -1.0, 1.0)
        p = self._p
        # relative to where the hand is (not to the last target), so commands never wind up
        ee = np.asarray(p.getLinkState(self.robot, _EE_LINK)[0])
        self._target = np.clip(ee + self.max_step * a[:3], _WORKSPACE_LOW, _WORKSPACE_HIGH)
        self._grip_target = _MAX_OPENING * (1.0 - a[3]) / 2.0
        self._command(self._ik(self._target))
        touched = False
        for _ in range(self.substeps):
            p.stepSimulation()
            touched = touched or len(p.getContactPoints(self.robot, self.container)) > 0
        self._steps += 1
        low, _ = p.getAABB(self.object)
        success = low[2] > self.rim + self.lift_clearance
        reward = 1.0 if success else -1.0
        info = {
            "failure": float(touched),
            "cost": float(touched),
            "success": bool(success),
            "task": self.spec_task.task,
        }
        return self._observation(), reward, bool(success), False, info

    # -- observations ----------------------------------------------------------------------------
    def state_vector(self) -> np.ndarray:
        p = self._p
        ee = np.asarray(p.getLinkState(self.robot, _EE_LINK)[0])
        opening = sum(p.getJointState(self.robot, f)[0] for f in _FINGERS)
        low, high = (np.asarray(x) for x in p.getAABB(self.object))
        centre = (low + high) / 2
        return np.concatenate(
            [ee, [opening], centre, centre - ee, (high - low) / 2, self.inner_half, [self.rim, _FLOOR_TOP]]
        ).astype(np.float32)

    def _observation(self) -> np.ndarray:
        return self.state_vector() if self.obs_mode == "state" else self._image()

    def _image(self) -> np.ndarray:
        p, size = self._p, self.image_size
        view = p.computeViewMatrix([0.95, 0.0, 0.55], [*_CONTAINER_CENTER, 0.05], [0, 0, 1])
        projection = p.computeProjectionMatrixFOV(40, 1.0, 0.05, 3.0)
        _, _, rgba, _, _ = p.getCameraImage(size, size, view, projection, renderer=p.ER_TINY_RENDERER)
        return np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)[:, :, :3].copy()

    def render(self) -> np.ndarray | None:
        return self._image() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if getattr(self, "_p", None) is not None:
            try:
                self._p.disconnect()
            except Exception:  # already disconnected
                pass
            self._p = None


class ScriptedGrasp:
    """PARROT-style scripted grasp with actuation noise: approach, descend, close, lift.

    Reads the state vector (``OperationEnv.state_vector``), so it works for image envs too via
    ``env.unwrapped.state_vector()``. ``noise`` is the std of Gaussian actuation noise added to the
    command before a tanh squash (the clean command c in [-1, 1] maps to tanh(atanh(c tanh 1.5) + noise),
    so a clean +-1 stays +-0.905); SAFER's data come from this policy at several noise levels.
    """

    def __init__(self, noise: float = 0.3, close_steps: int = 6, hover: float = 0.05):
        self.noise, self.close_steps, self.hover = float(noise), int(close_steps), float(hover)
        self.reset()

    def reset(self) -> None:
        self.phase, self.closed_for = "approach", 0

    def __call__(self, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``act``: a ScriptedGrasp is a ``policy(obs, rng)`` for
        ``safeshield.shields.safer.dataset.collect_episodes``."""
        return self.act(state, rng)

    def act(self, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ee, offset, half = state[0:3], state[7:10], state[10:13]
        rim, floor = state[15], state[16]
        centre_z = ee[2] + offset[2]
        grasp_z = max(centre_z, floor + _FINGERTIP_BELOW + 0.005)
        action = np.zeros(4)
        if self.phase == "approach":
            hover_z = max(rim, centre_z + half[2]) + _FINGERTIP_BELOW + self.hover
            action[:2] = offset[:2] / 0.02
            action[2] = (hover_z - ee[2]) / 0.02
            action[3] = -1.0
            if np.linalg.norm(offset[:2]) < 0.004 and ee[2] > hover_z - 0.02:
                self.phase = "descend"
        if self.phase == "descend":
            action[:2] = offset[:2] / 0.02
            action[2] = (grasp_z - ee[2]) / 0.02
            action[3] = -1.0
            if ee[2] - grasp_z < 0.006:
                self.phase = "close"
        if self.phase == "close":
            action[:3] = 0.0
            action[3] = 1.0
            self.closed_for += 1
            if self.closed_for >= self.close_steps:
                self.phase = "lift"
        if self.phase == "lift":
            action[:3] = (0.0, 0.0, 1.0)
            action[3] = 1.0
        # noise enters before a tanh squash, so actions stay inside the box without piling up on
        # its faces (a prior's f^{-1} is singular there); 1.5 * tanh keeps the clean command near +-1
        raw = np.arctanh(np.clip(action, -1.0, 1.0) * np.tanh(1.5)) + self.noise * rng.standard_normal(4)
        return np.tanh(raw).astype(np.float32)
