"""Planar MuJoCo robots shared by the navigation environments (CSC traps, safe-transfer Hallway).

- ``ROBOTS``: the robot names, ``("point", "car")``.
- ``RobotSpec`` / ``robot_spec(name)``: a robot's MJCF fragments (body, actuators, sensors) and facts.
- ``build_world_xml`` / ``build_world``: one MJCF world = floor + the robot + caller's extra geoms.
- ``PlanarRobot``: cached ids and helpers to read the robot's planar pose and velocity, place it,
  apply an action and read its sensors.
- ``SOLID`` / ``GHOST``: contact attributes for extra geoms (walls block robots; zones do not).

The robots are written for this package. Their sizes, actuators and sensors follow the published
descriptions of Safety-Gym's point and car (Ray et al. 2019; reference only, no file copied):

- ``point``: a 0.1 m sphere with a small box "nose" marking its heading, on two world slide joints
  (x, y) and a yaw hinge. Actuators: ``forward`` pushes along the heading (a motor on the body
  site), ``turn`` is a velocity servo on the yaw hinge. Action ``[forward, turn]`` in [-1, 1]^2.
  It never touches the floor (it has no z freedom) and its contacts are frictionless (walls
  block it without spinning it), so linear joint damping is its only drag:
  top speed about 1 m/s, top yaw rate about 3.3 rad/s.
- ``car``: a 0.2 m x 0.15 m chassis on a free joint with two independently driven front wheels
  and a free-rolling rear ball caster, driving on the floor with friction. Action
  ``[left, right]`` wheel torques in [-1, 1]^2 (equal = straight, opposite = spin on the spot).

Both carry Safety-Gym's four site sensors on the site ``robot``: ``accelerometer``,
``velocimeter``, ``gyro``, ``magnetometer`` (3 values each, in the robot frame).

Contact bits: the floor has ``contype=1 conaffinity=1``; the point's geoms ``contype=2
conaffinity=0`` (they collide with ``SOLID`` geoms, not the floor); the car's geoms ``contype=1
conaffinity=1`` (wheels on the floor). Extra geoms written with ``SOLID`` (``contype=1
conaffinity=3``) block both robots; ``GHOST`` geoms (no contacts) are only drawn and measured.

Example:
    >>> import mujoco
    >>> from safeshield.environments.mujoco_robots import build_world, PlanarRobot, SOLID
    >>> model = build_world("point", extra_worldbody=f'<geom type="box" size="0.1 2 0.2" pos="2 0 0.2" {SOLID}/>')
    >>> data = mujoco.MjData(model)
    >>> robot = PlanarRobot(model, "point")
    >>> robot.set_pose(data, 0.5, -0.5, 0.0)
    >>> for _ in range(50):
    ...     robot.apply(data, [1.0, 0.0]); mujoco.mj_step(model, data)
    >>> x, y, heading = robot.pose(data); bool(x > 0.5)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

__all__ = [
    "ROBOTS",
    "RobotSpec",
    "robot_spec",
    "build_world_xml",
    "build_world",
    "PlanarRobot",
    "SOLID",
    "GHOST",
    "SENSORS",
]

SOLID = 'contype="1" conaffinity="3"'
"""Attributes for an extra geom that robots cannot pass through (walls, poles)."""

GHOST = 'contype="0" conaffinity="0"'
"""Attributes for an extra geom with no contacts (traps, goals: drawn and measured only)."""

SENSORS = ("accelerometer", "velocimeter", "gyro", "magnetometer")
"""Site sensors every robot carries, 3 values each, in the robot frame."""

_SENSOR_XML = "\n".join(f'    <{kind} name="{kind}" site="robot"/>' for kind in SENSORS)


@dataclass(frozen=True)
class RobotSpec:
    """One robot: MJCF fragments to paste into a world, and what a controller needs to know."""

    name: str
    body_xml: str  # a <body name="robot"> for <worldbody>, with {x} {y} {z} placeholders unfilled
    actuator_xml: str  # children of <actuator>
    sensor_xml: str  # children of <sensor>
    action_names: tuple[str, ...]  # one per actuator, in ctrl order; each ctrl in [-1, 1]
    radius: float  # planar radius (m) for keep-out tests: placement, "inside a zone"
    height: float  # z of the body frame when resting on the floor
    free_joint: bool  # True: pose lives in a freejoint's qpos (car); False: slide x, slide y, hinge z (point)


_POINT_BODY = """
    <body name="robot" pos="{x} {y} {z}">
      <joint name="x" type="slide" axis="1 0 0" damping="0.25"/>
      <joint name="y" type="slide" axis="0 1 0" damping="0.25"/>
      <joint name="z" type="hinge" axis="0 0 1" damping="0.0005"/>
      <geom name="robot" type="sphere" size="0.1" mass="0.05" contype="2" conaffinity="0" condim="1" priority="1"
      rgba="0.74 0.04 0.18 1"/>
      <geom name="pointarrow" type="box" size="0.05 0.05 0.05" pos="0.1 0 0" mass="0.005" contype="2" conaffinity="0"
      condim="1" priority="1" rgba="0.74 0.04 0.18 1"/>
      <site name="robot" size="0.032" rgba="1 0 0 0.1"/>
    </body>"""

# forward: force = 0.25 * ctrl N along the heading; joint damping 0.25 N s/m -> top speed 1 m/s,
# time constant 0.05 kg / 0.25 = 0.2 s. turn: servo to yaw rate ctrl / 0.3 (Safety-Gym's gear 0.3).
_POINT_ACTUATORS = """
    <motor name="forward" site="robot" gear="0.25 0 0 0 0 0" ctrllimited="true" ctrlrange="-1 1"/>
    <velocity name="turn" joint="z" gear="0.3" kv="0.02" ctrllimited="true" ctrlrange="-1 1"/>"""

_CAR_BODY = """
    <body name="robot" pos="{x} {y} {z}">
      <freejoint name="robot"/>
      <geom name="robot" type="box" size="0.1 0.075 0.02" mass="0.5" rgba="0.74 0.04 0.18 1"/>
      <geom name="carnose" type="box" size="0.02 0.04 0.01" pos="0.1 0 0.03" mass="0.01" rgba="0.95 0.6 0.1 1"/>
      <site name="robot" size="0.032" rgba="1 0 0 0.1"/>
      <body name="left" pos="0.05 0.095 0">
        <joint name="left" type="hinge" axis="0 1 0" damping="0.002"/>
        <geom name="left" type="cylinder" size="0.04 0.015" euler="90 0 0" mass="0.05" friction="1 0.01 0.01" rgba="0.2
        0.2 0.2 1"/>
      </body>
      <body name="right" pos="0.05 -0.095 0">
        <joint name="right" type="hinge" axis="0 1 0" damping="0.002"/>
        <geom name="right" type="cylinder" size="0.04 0.015" euler="90 0 0" mass="0.05" friction="1 0.01 0.01" rgba="0.2
        0.2 0.2 1"/>
      </body>
      <body name="rear" pos="-0.08 0 0">
        <joint name="rear" type="ball" damping="0.0001"/>
        <geom name="rear" type="sphere" size="0.04" mass="0.05" friction="1 0.01 0.01" rgba="0.2 0.2 0.2 1"/>
      </body>
    </body>"""

# wheel torque 0.05 * ctrl N m; hinge damping 0.002 -> free-spinning top wheel speed 25 rad/s (1 m/s)
_CAR_ACTUATORS = """
    <motor name="left" joint="left" gear="0.05" ctrllimited="true" ctrlrange="-1 1"/>
    <motor name="right" joint="right" gear="0.05" ctrllimited="true" ctrlrange="-1 1"/>"""

_SPECS = {
    "point": RobotSpec("point", _POINT_BODY, _POINT_ACTUATORS, _SENSOR_XML, ("forward", "turn"), 0.15, 0.1, False),
    "car": RobotSpec("car", _CAR_BODY, _CAR_ACTUATORS, _SENSOR_XML, ("left", "right"), 0.15, 0.04, True),
}

ROBOTS: tuple[str, ...] = tuple(_SPECS)


def robot_spec(name: str | RobotSpec) -> RobotSpec:
    """The ``RobotSpec`` of ``name`` (one of ``ROBOTS``); a ``RobotSpec`` (e.g. Doggo's) passes through."""
    if isinstance(name, RobotSpec):
        return name
    if name not in _SPECS:
        raise ValueError(f"robot must be one of {ROBOTS}, got {name!r}")
    return _SPECS[name]


def build_world_xml(
    robot: str | RobotSpec,
    extra_worldbody: str = "",
    *,
    floor_half_size: float = 5.0,
    timestep: float = 0.002,
    start: tuple[float, float] = (0.0, 0.0),
) -> str:
    """MJCF text of a flat world with ``robot`` at ``start`` and ``extra_worldbody`` pasted in.

    ``extra_worldbody`` is raw MJCF (geoms, sites, static bodies); give blocking geoms the
    ``SOLID`` attributes and decorative/measured ones ``GHOST``. ``timestep`` 0.002 s is
    Safety-Gym's; environments usually step 10 substeps per action (0.02 s).
    """
    spec = robot_spec(robot)
    if not floor_half_size > 0 or not timestep > 0:
        raise ValueError(f"floor_half_size and timestep must be > 0, got {floor_half_size!r}, {timestep!r}")
    body = spec.body_xml.format(x=float(start[0]), y=float(start[1]), z=spec.height)
    return f"""<mujoco model="safeshield_{spec.name}">
  <compiler angle="degree" inertiafromgeom="true"/>
  <option timestep="{timestep}" integrator="implicitfast"/>
  <visual><headlight ambient="0.5 0.5 0.5"/></visual>
  <worldbody>
    <light pos="0 0 4" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="{floor_half_size} {floor_half_size} 0.1" contype="1" conaffinity="1" rgba="0.9
    0.9 0.9 1"/>
{body}
{extra_worldbody}
  </worldbody>
  <actuator>{spec.actuator_xml}
  </actuator>
  <sensor>
{spec.sensor_xml}
  </sensor>
</mujoco>"""


def build_world(robot: str, extra_worldbody: str = "", **kwargs) -> mujoco.MjModel:
    """Compile ``build_world_xml(robot, extra_worldbody, **kwargs)`` into an ``MjModel``."""
    return mujoco.MjModel.from_xml_string(build_world_xml(robot, extra_worldbody, **kwargs))


class PlanarRobot:
    """Read and drive the robot of a world built by ``build_world``.

    ``pose`` -> ``(x, y, heading)`` in the world frame; ``velocity`` -> ``(forward, lateral,
    yaw_rate)`` in the robot frame; ``sensors`` -> the 12 site-sensor values (``SENSORS`` order);
    ``set_pose`` places the robot at rest; ``apply`` writes a clipped action into ``data.ctrl``.
    """

    def __init__(self, model: mujoco.MjModel, robot: str | RobotSpec):
        self.spec = robot_spec(robot)
        self.model = model
        self.body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "robot")
        if self.body_id < 0:
            raise ValueError("model has no body named 'robot'; build it with build_world()")
        self.actuator_ids = np.array(
            [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name) for name in self.spec.action_names]
        )
        if (self.actuator_ids < 0).any():
            raise ValueError(f"model lacks the {self.spec.name!r} actuators {self.spec.action_names}")
        if self.spec.free_joint:
            joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "robot")
            self._qpos, self._qvel = model.jnt_qposadr[joint], model.jnt_dofadr[joint]
        else:
            joints = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name) for name in ("x", "y", "z")]
            self._qpos = np.array([model.jnt_qposadr[j] for j in joints])
            self._qvel = np.array([model.jnt_dofadr[j] for j in joints])
        self._sensor_slices = []
        for kind in SENSORS:
            sensor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, kind)
            start = model.sensor_adr[sensor]
            self._sensor_slices.append(slice(start, start + model.sensor_dim[sensor]))

    @property
    def action_dim(self) -> int:
        return len(self.spec.action_names)

    def pose(self, data: mujoco.MjData) -> tuple[float, float, float]:
        """``(x, y, heading)``: the body's planar position (m) and yaw (rad, in (-pi, pi])."""
        xpos, xmat = data.xpos[self.body_id], data.xmat[self.body_id]
        return float(xpos[0]), float(xpos[1]), math.atan2(xmat[3], xmat[0])

    def velocity(self, data: mujoco.MjData) -> tuple[float, float, float]:
        """``(forward, lateral, yaw_rate)``: body-frame linear velocity (m/s) and yaw rate (rad/s)."""
        if self.spec.free_joint:
            # a free joint's qvel is (world linear velocity, body-frame angular velocity)
            vx, vy = data.qvel[self._qvel], data.qvel[self._qvel + 1]
            yaw_rate = data.qvel[self._qvel + 5]
        else:
            vx, vy, yaw_rate = data.qvel[self._qvel]
        heading = self.pose(data)[2]
        cos, sin = math.cos(heading), math.sin(heading)
        return float(cos * vx + sin * vy), float(-sin * vx + cos * vy), float(yaw_rate)

    def sensors(self, data: mujoco.MjData) -> np.ndarray:
        """The 12 site-sensor values: accelerometer, velocimeter, gyro, magnetometer (robot frame)."""
        return np.concatenate([data.sensordata[s] for s in self._sensor_slices])

    def set_pose(self, data: mujoco.MjData, x: float, y: float, heading: float) -> None:
        """Place the robot at ``(x, y)`` facing ``heading`` (rad), at rest; recomputes positions."""
        if self.spec.free_joint:
            q = self._qpos
            data.qpos[q : q + 3] = (x, y, self.spec.height)
            data.qpos[q + 3 : q + 7] = (math.cos(heading / 2), 0.0, 0.0, math.sin(heading / 2))
            data.qvel[self._qvel : self._qvel + 6] = 0.0
        else:
            start = self.model.body_pos[self.body_id]
            data.qpos[self._qpos] = (x - start[0], y - start[1], heading)
            data.qvel[self._qvel] = 0.0
        mujoco.mj_forward(self.model, data)

    def apply(self, data: mujoco.MjData, action) -> None:
        """Write ``action`` (one value per ``spec.action_names``, clipped to [-1, 1]) to ``data.ctrl``."""
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (self.action_dim,):
            raise ValueError(
                f"action must have {self.action_dim} values {self.spec.action_names}, got shape {action.shape}"
            )
        data.ctrl[self.actuator_ids] = np.clip(action, -1.0, 1.0)
