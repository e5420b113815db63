"""Minitaur goal-velocity locomotion (PyBullet), SQRL's Minitaur tasks (Srinivasan et al. 2020, seed ``000_...``).

- ``MinitaurEnv``: an 8-motor Minitaur quadruped that must walk forward at a goal velocity;
  falling is the failure. Written for Gymnasium on ``pybullet`` + ``pybullet_data`` directly
  (``pybullet_envs`` needs the old ``gym``).

What the paper fixes (App. C, Table 2) and what is chosen here
---------------------------------------------------------------------------
- Robot and simulator: Minitaur in PyBullet (Tan et al. 2018), ``quadruped/minitaur.urdf``
  from ``pybullet_data``, on a flat plane. Episode length **500** (Table 2): the registered
  ``max_episode_steps``.
- Action: 8 numbers in [-1, 1] in the *leg model* of the cited Minitaur code: for leg ``i``
  (front-left, back-left, front-right, back-right) ``a[i]`` is the leg's extension and
  ``a[4 + i]`` its swing; the two motors of a leg get the angles
  ``pi - (pi/4)(a[4+i] + 1.5) +- (pi/4) a[i]`` (signs per motor as upstream), times the motor
  direction, and track them with PyBullet position control (gains ``kp`` 1.0, ``kd`` 0.02,
  torque limit 3.5 N m: the cited code's defaults).
- Observation (28, float32): 8 motor angles, 8 motor velocities, 8 applied motor torques (all
  signed by the motor direction), the base orientation quaternion (x, y, z, w): the cited code's
  observation.
- Reward: App. C prints ``r = vel_g + |vel_g - vel_cur| - 0.01 acc``; that rewards running *away*
  from the goal velocity (a sign typo) and ``acc`` is a vector. Implemented:
  ``r = vel_g - |vel_g - vel_cur| - 0.01 ||a_t - 2 a_{t-1} + a_{t-2}||_2``, with ``vel_cur`` the
  base's forward (x) velocity in m/s and actions in the leg model's [-1, 1] units (the first two
  steps of an episode use ``a_{-1} = a_{-2} = 0``).
- Failure (the paper gives none): the cited code's ``is_fallen``, up-vector·z < 0.85 or base
  height < 0.13 m. A fall terminates the episode with ``info["failure"] = True`` and
  ``info["cost"] = 1.0``. There is no fall penalty beyond losing the remaining reward.
- Variants (registered in ``safeshield.environments``): pre-training at ``goal_velocity`` 0.3 m/s
  and foot friction 1.0; MinitaurVelocity target 0.4 m/s; MinitaurFriction target friction 1.25;
  a randomised-dynamics variant (App. E names foot friction, base and leg masses, no ranges):
  ours draw, every reset, foot friction from ``U(0.8, 1.25)`` and scale the base and each leg
  link mass by ``U(0.8, 1.2)`` (the cited code's randomiser uses +-20 % on masses).
- Timing: one action every 0.01 s (the cited code's ``time_step``), simulated as ``substeps``
  (2) PyBullet steps of 0.005 s with the default solver, instead of one 0.01 s step with 300
  solver iterations: about 10x faster for a CPU budget, and stable on flat ground.
- Reset: the robot is teleported to the standing pose (legs at pi/2, knees at the cited code's
  -2.1834 rad), joint angles jittered by ``U(-init_noise, init_noise)`` (ours: 0.02 rad, so
  seeds matter), then held there for 50 physics steps so it settles; the URDF is loaded once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from safeshield.core.validation import check_positive
from safeshield.environments._pybullet import QuadrupedEnv

__all__ = ["MinitaurEnv", "MOTOR_NAMES"]

MOTOR_NAMES = (
    "motor_front_leftL_joint",
    "motor_front_leftR_joint",
    "motor_back_leftL_joint",
    "motor_back_leftR_joint",
    "motor_front_rightL_joint",
    "motor_front_rightR_joint",
    "motor_back_rightL_joint",
    "motor_back_rightR_joint",
)
_LEGS = ("front_left", "back_left", "front_right", "back_right")
_MOTOR_DIRECTION = np.array([-1, -1, -1, -1, 1, 1, 1, 1], dtype=np.float64)
_KNEE_ANGLE = -2.1834  # rad, the cited code's resting knee angle
_KNEE_POINT_RIGHT, _KNEE_POINT_LEFT = (0.0, 0.005, 0.2), (0.0, 0.01, 0.2)  # closed-chain knee constraint
_SETTLE_STEPS = 50


def leg_model_to_motor_angles(action: np.ndarray) -> np.ndarray:
    """Leg-model actions (8, in [-1, 1]) to motor angles (before the motor directions)."""
    quarter_pi = math.pi / 4.0
    leg = np.arange(8) // 2
    swing = -quarter_pi * (action[leg + 4] + 1.5)
    extension = quarter_pi * action[leg] * np.where(np.arange(8) % 2 == 0, 1.0, -1.0)
    extension = np.where(np.arange(8) >= 4, -extension, extension)
    return math.pi + swing + extension


class MinitaurEnv(QuadrupedEnv):
    """Minitaur must walk forward at ``goal_velocity`` m/s without falling (SQRL's Minitaur).

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = gym.make("safeshield/Minitaur-v0")          # pre-training: 0.3 m/s, friction 1
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info["failure"]
        ((28,), False)
    """

    urdf = "quadruped/minitaur.urdf"
    start_position = (0.0, 0.0, 0.2)

    def __init__(
        self,
        goal_velocity: float = 0.3,
        foot_friction: float = 1.0,
        randomize_dynamics: bool = False,
        friction_range: tuple[float, float] = (0.8, 1.25),
        mass_scale_range: tuple[float, float] = (0.8, 1.2),
        acceleration_weight: float = 0.01,
        init_noise: float = 0.02,
        kp: float = 1.0,
        kd: float = 0.02,
        max_torque: float = 3.5,
        time_step: float = 0.005,
        substeps: int = 2,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            time_step=time_step, substeps=substeps, min_up_z=0.85, min_height=0.13, render_mode=render_mode
        )
        try:
            self.goal_velocity = float(goal_velocity)
        except (TypeError, ValueError) as error:
            raise ValueError(f"goal_velocity must be a finite number (m/s), got {goal_velocity!r}") from error
        if not math.isfinite(self.goal_velocity):
            raise ValueError(f"goal_velocity must be a finite number (m/s), got {goal_velocity!r}")
        self.foot_friction = check_positive("foot_friction", foot_friction)
        self.randomize_dynamics = bool(randomize_dynamics)
        self.friction_range = self._range("friction_range", friction_range)
        self.mass_scale_range = self._range("mass_scale_range", mass_scale_range)
        self.acceleration_weight = check_positive("acceleration_weight", acceleration_weight, allow_zero=True)
        self.init_noise = check_positive("init_noise", init_noise, allow_zero=True)
        self.kp = check_positive("kp", kp)
        self.kd = check_positive("kd", kd, allow_zero=True)
        self.max_torque = check_positive("max_torque", max_torque)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(8,), dtype=np.float32)
        high = np.concatenate([np.full(24, np.inf), np.ones(4)]).astype(np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self._previous_actions = np.zeros((2, 8))

    @staticmethod
    def _range(name: str, value: Any) -> tuple[float, float]:
        try:
            low, high = (float(v) for v in value)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{name} must be a pair (low, high) of numbers with 0 < low <= high, got {value!r}"
            ) from error
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
            raise ValueError(f"{name} must be a pair (low, high) of numbers with 0 < low <= high, got {value!r}")
        return (low, high)

    # ------------------------------------------------------------------ robot
    def _setup_robot(self) -> None:
        client, robot = self.client, self.robot
        names = {client.getJointInfo(robot, j)[1].decode(): j for j in range(client.getNumJoints(robot))}
        self.motor_ids = [names[name] for name in MOTOR_NAMES]
        self.knee_ids = [names[f"knee_{leg}{side}_link"] for leg in _LEGS for side in "LR"]
        self.foot_ids = list(self.knee_ids)  # the lower legs touch the ground
        link_names = {j: client.getJointInfo(robot, j)[12].decode() for j in range(client.getNumJoints(robot))}
        self._leg_of_link = {
            link: leg_index for link, name in link_names.items() for leg_index, leg in enumerate(_LEGS) if leg in name
        }
        for leg in _LEGS:
            client.createConstraint(
                robot,
                names[f"knee_{leg}R_link"],
                robot,
                names[f"knee_{leg}L_link"],
                client.JOINT_POINT2POINT,
                [0, 0, 0],
                _KNEE_POINT_RIGHT,
                _KNEE_POINT_LEFT,
            )
        for knee in self.knee_ids:  # free knees (no default velocity motor)
            client.setJointMotorControl2(robot, knee, client.VELOCITY_CONTROL, targetVelocity=0, force=0)
        self._base_masses = {link: client.getDynamicsInfo(robot, link)[0] for link in [-1, *self._leg_of_link]}
        self._set_foot_friction(self.foot_friction)

    def _set_foot_friction(self, friction: float) -> None:
        for foot in self.foot_ids:
            self.client.changeDynamics(self.robot, foot, lateralFriction=friction)

    def foot_frictions(self) -> list[float]:
        """Current lateral friction of each foot link (tests, randomised variant)."""
        return [self.client.getDynamicsInfo(self.robot, foot)[1] for foot in self.foot_ids]

    def _randomize(self) -> None:
        if not self.randomize_dynamics:
            return
        self._set_foot_friction(float(self.np_random.uniform(*self.friction_range)))
        base_scale = self.np_random.uniform(*self.mass_scale_range)
        self.client.changeDynamics(self.robot, -1, mass=self._base_masses[-1] * base_scale)
        leg_scales = self.np_random.uniform(*self.mass_scale_range, size=4)
        for link, leg in self._leg_of_link.items():
            self.client.changeDynamics(self.robot, link, mass=self._base_masses[link] * leg_scales[leg])

    def _reset_pose(self) -> None:
        client, robot = self.client, self.robot
        noise = self.np_random.uniform(-self.init_noise, self.init_noise, size=8)
        for leg_index, _leg in enumerate(_LEGS):
            for side_index, _side in enumerate("LR"):
                motor = 2 * leg_index + side_index
                direction = _MOTOR_DIRECTION[motor]
                client.resetJointState(robot, self.motor_ids[motor], direction * (math.pi / 2 + noise[motor]), 0.0)
                client.resetJointState(robot, self.knee_ids[motor], direction * _KNEE_ANGLE, 0.0)
        standing = np.full(8, math.pi / 2)
        for _ in range(_SETTLE_STEPS):
            self._command_motors(standing)
            client.stepSimulation()
        self._previous_actions[:] = 0.0

    def _command_motors(self, angles: np.ndarray) -> None:
        self.client.setJointMotorControlArray(
            self.robot,
            self.motor_ids,
            self.client.POSITION_CONTROL,
            targetPositions=(angles * _MOTOR_DIRECTION).tolist(),
            positionGains=[self.kp] * 8,
            velocityGains=[self.kd] * 8,
            forces=[self.max_torque] * 8,
        )

    def _apply_action(self, action: np.ndarray) -> None:
        self._command_motors(leg_model_to_motor_angles(action))

    def _observation(self) -> np.ndarray:
        states = self.client.getJointStates(self.robot, self.motor_ids)
        angles = np.array([s[0] for s in states]) * _MOTOR_DIRECTION
        velocities = np.array([s[1] for s in states]) * _MOTOR_DIRECTION
        torques = np.array([s[3] for s in states]) * _MOTOR_DIRECTION
        _, orientation = self.client.getBasePositionAndOrientation(self.robot)
        return np.concatenate([angles, velocities, torques, orientation]).astype(np.float32)

    def forward_velocity(self) -> float:
        """The base's x velocity in m/s."""
        return float(self.client.getBaseVelocity(self.robot)[0][0])

    def _reward(self, action: np.ndarray) -> float:
        velocity = self.forward_velocity()
        acceleration = action - 2.0 * self._previous_actions[0] + self._previous_actions[1]
        self._previous_actions[1] = self._previous_actions[0]
        self._previous_actions[0] = action
        tracking = self.goal_velocity - abs(self.goal_velocity - velocity)
        return tracking - self.acceleration_weight * float(np.linalg.norm(acceleration))

    def _info(self, failure: bool) -> dict[str, Any]:
        info = super()._info(failure)
        info["velocity"] = self.forward_velocity()
        return info
