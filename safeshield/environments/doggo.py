"""Doggo: a 12-joint MuJoCo quadruped for the Hallway (Knight & Achiam's second robot).

- ``DOGGO``: its ``mujoco_robots.RobotSpec`` (body, 12 torque motors, the four site sensors).
- ``build_doggo_world_xml``: a flat world with Doggo and the caller's extra geoms.
- ``DoggoRobot``: ``mujoco_robots.PlanarRobot``'s pose / velocity / placement / action helpers
  for Doggo, plus ``joints`` (12 angles, 12 velocities) and ``upright`` (torso z-axis height).

The paper (Knight & Achiam (2021), "Safely Transferring to Unsafe Environments with Constrained Reinforcement Learning",
§3) uses Safety Gym's Doggo: "a quadruped that must
learn to walk", 4 legs x (hip z, hip y, knee), torque actions in [-1, 1]^12. This
one is written here from that description (no file copied): a 0.4 m x 0.24 m torso, legs of two
0.15 m capsules at the torso's corners, hip yaw +-30 deg, hip pitch +-60 deg, knee 0-120 deg,
motors of 2 N m per unit action. Its geoms collide with the floor and with ``SOLID`` obstacles.
"""

from __future__ import annotations

import mujoco
import numpy as np

from safeshield.environments.mujoco_robots import SENSORS, PlanarRobot, RobotSpec, build_world_xml

__all__ = ["DOGGO", "build_doggo_world_xml", "DoggoRobot"]

_LEGS = {"fl": (0.17, 0.1), "fr": (0.17, -0.1), "bl": (-0.17, 0.1), "br": (-0.17, -0.1)}
_GEOM = 'contype="1" conaffinity="1" condim="3" friction="1 0.01 0.01"'


def _leg(name: str, x: float, y: float) -> str:
    return f"""
      <body name="hip_{name}" pos="{x} {y} 0">
        <joint name="hip_z_{name}" type="hinge" axis="0 0 1" range="-30 30" damping="0.05" armature="0.01"/>
        <joint name="hip_y_{name}" type="hinge" axis="0 1 0" range="-60 60" damping="0.05" armature="0.01"/>
        <geom name="thigh_{name}" type="capsule" fromto="0 0 0 0 0 -0.15" size="0.03" mass="0.15" {_GEOM} rgba="0.3 0.3
        0.35 1"/>
        <body name="shin_{name}" pos="0 0 -0.15">
          <joint name="knee_{name}" type="hinge" axis="0 1 0" range="0 120" damping="0.05" armature="0.01"/>
          <geom name="shin_{name}" type="capsule" fromto="0 0 0 -0.05 0 -0.14" size="0.025" mass="0.1" {_GEOM} rgba="0.3
          0.3 0.35 1"/>
        </body>
      </body>"""


_BODY = (
    """
    <body name="robot" pos="{x} {y} {z}">
      <freejoint name="robot"/>
      <geom name="robot" type="box" size="0.2 0.12 0.04" mass="1.5" """
    + _GEOM
    + """ rgba="0.74 0.04 0.18 1"/>
      <geom name="doggo_head" type="sphere" size="0.05" pos="0.22 0 0.03" mass="0.1" """
    + _GEOM
    + """ rgba="0.95 0.6 0.1 1"/>
      <site name="robot" size="0.032" rgba="1 0 0 0.1"/>"""
    + "".join(_leg(name, x, y) for name, (x, y) in _LEGS.items())
    + """
    </body>"""
)
_JOINTS = tuple(f"{kind}_{leg}" for leg in _LEGS for kind in ("hip_z", "hip_y", "knee"))
_ACTUATORS = "".join(
    f'\n    <motor name="{joint}" joint="{joint}" gear="2" ctrllimited="true" ctrlrange="-1 1"/>' for joint in _JOINTS
)
_SENSOR_XML = "\n".join(f'    <{kind} name="{kind}" site="robot"/>' for kind in SENSORS)

DOGGO = RobotSpec("doggo", _BODY, _ACTUATORS, _SENSOR_XML, _JOINTS, radius=0.3, height=0.3, free_joint=True)


def build_doggo_world_xml(extra_worldbody: str = "", *, floor_half_size: float = 5.0, timestep: float = 0.002) -> str:
    """MJCF text of a flat world with Doggo at the origin and ``extra_worldbody`` pasted in."""
    return build_world_xml(DOGGO, extra_worldbody, floor_half_size=floor_half_size, timestep=timestep)


class DoggoRobot(PlanarRobot):
    """``PlanarRobot`` for Doggo (``pose``, ``velocity``, ``sensors``, ``set_pose``, ``apply``) plus joint readers."""

    def __init__(self, model: mujoco.MjModel):
        super().__init__(model, DOGGO)
        joints = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name) for name in DOGGO.action_names]
        self._joint_qpos = model.jnt_qposadr[joints]
        self._joint_qvel = model.jnt_dofadr[joints]

    def joints(self, data: mujoco.MjData) -> np.ndarray:
        """The 12 joint angles (rad) then the 12 joint velocities (rad/s), in ``action_names`` order."""
        return np.concatenate([data.qpos[self._joint_qpos], data.qvel[self._joint_qvel]])

    def upright(self, data: mujoco.MjData) -> float:
        """z component of the torso's up axis: 1 standing level, 0 on its side, -1 upside down."""
        return float(data.xmat[self.body_id][8])
