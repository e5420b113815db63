"""Laikago forward walking (PyBullet), CSC's "Laikago walk without falling" (Bharadhwaj et al. 2021, seed ``001_...``).

- ``LaikagoEnv``: the 12-joint Laikago quadruped walking forward as fast as it can from a
  standing start; falling is the failure.

What the paper fixes (§5.1) and what is chosen here
----------------------------------------------------------------
- Robot and simulator: Laikago, 18 DoF (12 actuated joints + a 6-DoF floating base), PyBullet,
  "based on Peng et al. 2020". Here ``laikago/laikago_toes_zup.urdf`` from ``pybullet_data`` on a
  flat plane. Episodes of **500** steps (all CSC envs): the registered ``max_episode_steps``.
- Reward "walking as fast as possible": ``r = v_x``, the base's forward velocity in m/s (ours:
  no energy or drift terms, the paper gives none).
- Failure "falling" (no criterion given). Ours: base height < 0.25 m (standing height is about
  0.35 m) or ``|roll| > 0.5`` or ``|pitch| > 0.5`` rad (about 29 degrees). A fall terminates the
  episode with ``info["failure"] = True`` and ``info["cost"] = 1.0``.
- Start: "every method starts from a standing controller" trained by CSC on a standing
  reference motion. We give every episode a standing *start* instead: the robot is placed in
  the standing pose ``(0, 0.67, -1.25)`` per leg (hip, upper leg, lower leg: Peng et al.'s
  initial motor angles for Laikago), joint angles jittered by ``U(-0.02, 0.02)`` rad, and held
  there by the PD targets for 0.5 s before the first action. Action 0 keeps it standing, so an
  agent starts from a standing controller by construction (see ``test_laikago.py``).
- Action (12, in [-1, 1]): PD position targets ``q* = q_stand + action_scale * a`` (ours:
  ``action_scale`` 0.5 rad), tracked by PyBullet position control with a 40 N m torque limit
  (ours) at 200 Hz physics; one action per 0.02 s (4 physics steps, 50 Hz: ours, Peng et al.
  run their policy at 30 Hz).
- Observation (34, float32, ours; the paper gives none): 12 joint angles, 12 joint velocities,
  the base orientation quaternion (x, y, z, w), base angular velocity (3) and linear velocity (3).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from safeshield.core.validation import check_positive
from safeshield.environments._pybullet import QuadrupedEnv

__all__ = ["LaikagoEnv", "STANDING_POSE"]

STANDING_POSE = np.tile([0.0, 0.67, -1.25], 4)  # hip, upper, lower per leg (Peng et al. 2020's Laikago init)
_SETTLE_STEPS = 100  # 0.5 s at 200 Hz


class LaikagoEnv(QuadrupedEnv):
    """Laikago walks forward as fast as it can from a standing start without falling (CSC's Laikago).

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = gym.make("safeshield/Laikago-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info["failure"]
        ((34,), False)
    """

    urdf = "laikago/laikago_toes_zup_lores.urdf"
    start_position = (0.0, 0.0, 0.45)

    def __init__(
        self,
        action_scale: float = 0.5,
        max_torque: float = 40.0,
        min_height: float = 0.25,
        max_tilt: float = 0.5,
        init_noise: float = 0.02,
        time_step: float = 0.005,
        substeps: int = 4,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            time_step=time_step,
            substeps=substeps,
            min_up_z=-1.0,  # tilt is tested on roll and pitch below
            min_height=check_positive("min_height", min_height, allow_zero=True),
            render_mode=render_mode,
        )
        self.action_scale = check_positive("action_scale", action_scale)
        self.max_torque = check_positive("max_torque", max_torque)
        self.max_tilt = check_positive("max_tilt", max_tilt)
        self.init_noise = check_positive("init_noise", init_noise, allow_zero=True)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(12,), dtype=np.float32)
        high = np.concatenate([np.full(24, np.inf), np.ones(4), np.full(6, np.inf)]).astype(np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)

    def _setup_robot(self) -> None:
        client, robot = self.client, self.robot
        self.joint_ids = [
            j for j in range(client.getNumJoints(robot)) if client.getJointInfo(robot, j)[2] == client.JOINT_REVOLUTE
        ]
        if len(self.joint_ids) != 12:
            raise RuntimeError(f"{self.urdf} should have 12 revolute joints, found {len(self.joint_ids)}")

    def _reset_pose(self) -> None:
        noise = self.np_random.uniform(-self.init_noise, self.init_noise, size=12)
        for joint, angle in zip(self.joint_ids, STANDING_POSE + noise):
            self.client.resetJointState(self.robot, joint, float(angle), 0.0)
        for _ in range(_SETTLE_STEPS):
            self._command(STANDING_POSE)
            self.client.stepSimulation()

    def _command(self, targets: np.ndarray) -> None:
        self.client.setJointMotorControlArray(
            self.robot,
            self.joint_ids,
            self.client.POSITION_CONTROL,
            targetPositions=targets.tolist(),
            forces=[self.max_torque] * 12,
        )

    def _apply_action(self, action: np.ndarray) -> None:
        self._command(STANDING_POSE + self.action_scale * action)

    def _observation(self) -> np.ndarray:
        states = self.client.getJointStates(self.robot, self.joint_ids)
        _, orientation = self.client.getBasePositionAndOrientation(self.robot)
        linear, angular = self.client.getBaseVelocity(self.robot)
        return np.concatenate([[s[0] for s in states], [s[1] for s in states], orientation, angular, linear]).astype(
            np.float32
        )

    def _reward(self, action: np.ndarray) -> float:
        return float(self.client.getBaseVelocity(self.robot)[0][0])

    def roll_pitch(self) -> tuple[float, float]:
        _, orientation = self.base_pose()
        roll, pitch, _ = self.client.getEulerFromQuaternion(orientation.tolist())
        return float(roll), float(pitch)

    def is_fallen(self) -> bool:
        position, _ = self.base_pose()
        roll, pitch = self.roll_pitch()
        return bool(position[2] < self.min_height or abs(roll) > self.max_tilt or abs(pitch) > self.max_tilt)

    def _info(self, failure: bool) -> dict[str, Any]:
        info = super()._info(failure)
        info["velocity"] = float(self.client.getBaseVelocity(self.robot)[0][0])
        return info


def _tilt_quaternion(roll: float = 0.0, pitch: float = 0.0) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) of a roll then pitch rotation (tests, constructed states)."""
    cr, sr, cp, sp = math.cos(roll / 2), math.sin(roll / 2), math.cos(pitch / 2), math.sin(pitch / 2)
    return (sr * cp, cr * sp, -sr * sp, cr * cp)
