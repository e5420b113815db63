"""What the two PyBullet quadrupeds (Minitaur, Laikago) share.

- ``QuadrupedEnv``: a Gymnasium env base that owns one headless PyBullet client (``DIRECT``
  mode, its own physics server, so several envs live in one process), loads a plane and a robot
  URDF from ``pybullet_data`` once, resets by teleporting the robot (no reload), steps
  ``substeps`` physics steps per action, exposes the fall test and renders ``rgb_array`` with
  the software TinyRenderer.
- ``direct_client``: a headless ``BulletClient`` made without PyBullet's ``argv[0]=`` line on stdout,
  disconnected at interpreter exit if its env was never closed.
- ``fallen``: the fall test of the Minitaur code the SQRL paper cites (``is_fallen``: the base's
  up-vector has z-component < ``min_up_z`` or the base is lower than ``min_height``).

Subclasses say which URDF, how to pose the robot, what the action does and what the reward is.
Failure is exposed like every safeshield env: ``terminated=True`` and ``info["failure"] = True``
with ``info["cost"] = 1.0`` on the step the robot falls (both are also present, false and 0.0, on
every other step and at reset); ``metadata["safeshield_indicator"] = "info:failure"``.
"""

from __future__ import annotations

import atexit
import weakref
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet
import pybullet_data
from pybullet_utils import bullet_client

from safeshield.core.validation import check_positive
from safeshield.environments._quiet import quiet_stdout

__all__ = ["QuadrupedEnv", "direct_client", "fallen", "up_z"]


_OPEN_CLIENTS: weakref.WeakSet = weakref.WeakSet()  # clients of envs not closed yet


def direct_client() -> bullet_client.BulletClient:
    """A ``DIRECT`` (headless) client. PyBullet's C code prints ``argv[0]=`` on stdout for every
    new physics server, one line per env in a user's log: it connects under ``quiet_stdout``."""
    with quiet_stdout():
        client = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
    _OPEN_CLIENTS.add(client)
    return client


@atexit.register
def _disconnect_open_clients() -> None:
    """Disconnect, at interpreter exit, the clients of envs nobody closed, while ``pybullet`` is still
    importable: ``BulletClient.__del__`` run during the interpreter's teardown prints an "Exception
    ignored ... TypeError" traceback instead (with some other modules loaded, e.g. gymnasium-robotics)."""
    for client in list(_OPEN_CLIENTS):
        if getattr(client, "_client", -1) >= 0:
            try:
                client.disconnect()
            except pybullet.error:
                pass
            client._client = -1  # BulletClient.__del__ then has nothing to do


def up_z(quaternion) -> float:
    """z-component of the body's up-vector (third column of its rotation matrix)."""
    x, y, z, w = quaternion
    return 1.0 - 2.0 * (x * x + y * y)


def fallen(quaternion, height: float, min_up_z: float, min_height: float) -> bool:
    """Minitaur's ``is_fallen``: tilted (up·z < ``min_up_z``) or too low (height < ``min_height``)."""
    return up_z(quaternion) < min_up_z or height < min_height


class QuadrupedEnv(gym.Env):
    """Base of the PyBullet quadruped envs: one DIRECT client, soft resets, fall-as-failure.

    Subclasses set ``urdf``, ``start_position``, ``start_orientation``, ``action_space`` and
    ``observation_space`` and implement ``_setup_robot`` (once, after loading), ``_reset_pose``
    (every reset, may use ``self.np_random``), ``_apply_action``, ``_observation`` and
    ``_reward``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50, "safeshield_indicator": "info:failure"}
    urdf: str = ""
    start_position: tuple[float, float, float] = (0.0, 0.0, 0.3)
    start_orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    urdf_flags: int = 0

    def __init__(
        self,
        *,
        time_step: float,
        substeps: int,
        min_up_z: float,
        min_height: float,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.time_step = check_positive("time_step", time_step)
        if isinstance(substeps, bool) or not isinstance(substeps, (int, np.integer)) or substeps < 1:
            raise ValueError(f"substeps must be an int >= 1, got {substeps!r}")
        self.substeps = int(substeps)
        self.min_up_z = float(min_up_z)
        self.min_height = float(min_height)
        self.client: bullet_client.BulletClient | None = direct_client()
        self.robot: int | None = None
        self._needs_reset = True

    @property
    def dt(self) -> float:
        """Seconds of simulated time per action (``time_step`` x ``substeps``), as MuJoCo envs declare it:
        a shield's ``horizon_seconds`` becomes steps with it."""
        return self.time_step * self.substeps

    # ------------------------------------------------------------------ subclass hooks
    def _setup_robot(self) -> None:
        """Once, after the URDF is loaded: joint ids, constraints, dynamics changes."""

    def _reset_pose(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_action(self, action: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _observation(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reward(self, action: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _randomize(self) -> None:
        """Every reset, before the pose: per-episode dynamics changes (randomised variants)."""

    # ------------------------------------------------------------------ state
    def _load(self) -> None:
        client = self.client
        client.setAdditionalSearchPath(pybullet_data.getDataPath())
        client.setGravity(0.0, 0.0, -9.8)
        client.setTimeStep(self.time_step)
        # Without a fixed broadphase pair order, contacts resolve in an order that depends on
        # the previous episodes, and a seed no longer reproduces an episode (measured).
        client.setPhysicsEngineParameter(deterministicOverlappingPairs=1)
        self.plane = client.loadURDF("plane.urdf")
        self.robot = client.loadURDF(self.urdf, self.start_position, self.start_orientation, flags=self.urdf_flags)
        self._setup_robot()
        # Restoring a saved state (not only the poses) also clears contact and solver caches,
        # which is what makes episodes reproducible under a seed.
        self._initial_state = client.saveState()

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Base position (x, y, z) and orientation quaternion (x, y, z, w), float64."""
        position, orientation = self.client.getBasePositionAndOrientation(self.robot)
        return np.asarray(position, dtype=np.float64), np.asarray(orientation, dtype=np.float64)

    def set_base_pose(self, position, orientation=None) -> None:
        """Teleport the base (tests and constructed states); velocities are zeroed."""
        if self.robot is None:
            raise gym.error.ResetNeeded("call reset() before set_base_pose()")
        orientation = self.start_orientation if orientation is None else orientation
        self.client.resetBasePositionAndOrientation(self.robot, list(position), list(orientation))
        self.client.resetBaseVelocity(self.robot, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])

    def is_fallen(self) -> bool:
        position, orientation = self.base_pose()
        return fallen(orientation, float(position[2]), self.min_up_z, self.min_height)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.client is None:
            raise gym.error.Error("the env was closed; make a new one")
        if self.robot is None:
            self._load()
        self.client.restoreState(self._initial_state)
        self._randomize()
        self._reset_pose()
        self._needs_reset = False
        return self._observation(), self._info(False)

    def _check_action(self, action: Any) -> np.ndarray:
        array = np.asarray(action, dtype=np.float64)
        shape = self.action_space.shape
        if array.shape != shape:
            raise ValueError(f"action must have shape {shape}, got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"action must be finite, got {array!r}")
        return np.clip(array, self.action_space.low, self.action_space.high)

    def step(self, action: Any):
        if self._needs_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        action = self._check_action(action)
        for _ in range(self.substeps):
            self._apply_action(action)
            self.client.stepSimulation()
        reward = self._reward(action)
        failure = self.is_fallen()
        return self._observation(), float(reward), failure, False, self._info(failure)

    def _info(self, failure: bool) -> dict[str, Any]:
        position, _ = self.base_pose()
        return {"failure": bool(failure), "cost": 1.0 if failure else 0.0, "base_position": position}

    def render(self):
        if self.render_mode != "rgb_array" or self.robot is None:
            return None
        position, _ = self.base_pose()
        view = self.client.computeViewMatrixFromYawPitchRoll(position.tolist(), 1.0, 30.0, -25.0, 0.0, 2)
        projection = self.client.computeProjectionMatrixFOV(60.0, 4.0 / 3.0, 0.1, 10.0)
        _, _, rgba, _, _ = self.client.getCameraImage(160, 120, view, projection, renderer=pybullet.ER_TINY_RENDERER)
        return np.asarray(rgba, dtype=np.uint8).reshape(120, 160, 4)[:, :, :3].copy()

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.disconnect()
            except pybullet.error:
                pass
            self.client = None
            self.robot = None
        super().close()
