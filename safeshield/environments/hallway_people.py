"""Moving people for the Hallway Humanoids variant: real motion-capture clips on a capsule skeleton.

- ``CLIPS``: the clip names used (files ``humanoid3d_<name>.txt`` shipped with ``pybullet_data``).
- ``load_clip(name)``: a clip's frames as ``(duration[F], root_pos[F,3], quats[F,J,4])``, z-up, metres.
- ``BONES``: the capsule segments drawn for one person (name, from-joint, to-joint, radius).
- ``person_xml(index)``: MJCF of one person: one mocap body + capsule geom per bone.
- ``pose_bones(clip, t, anchor, heading)``: bone midpoints and orientations at time ``t``.

Knight & Achiam (2021), "Safely Transferring to Unsafe Environments with Constrained Reinforcement Learning" drive their
humanoids with CMU motion-capture
clips. That database cannot be downloaded here (dm_control fetches it at run time), so the
people replay the DeepMimic clips that the ``pybullet`` wheel ships in
``pybullet_data/data/motions/`` (walk, run, dance, punch, kick, spin, jump): real motion capture,
retargeted here onto a capsule skeleton whose joint offsets are those of
``pybullet_data/humanoid/humanoid.urdf`` scaled by 0.25 (the scale the clips are recorded at).

Retargeting, and where it differs from the paper:
- A frame is ``[duration, root xyz, root quat, chest, neck, r-hip (quats), r-knee (angle),
  r-ankle, r-shoulder (quats), r-elbow (angle), l-hip, l-knee, l-ankle, l-shoulder, l-elbow]``
  (44 numbers, quaternions w-x-y-z, y-up). Forward kinematics over the URDF's tree gives joint
  positions, rotated to z-up.
- The clip's horizontal root travel is removed (the person moves "in place"), and the whole
  person drifts slowly across the hallway instead (see ``hallway.py``), so looping clips never
  teleport.
- Kinematic replay (MuJoCo mocap bodies): people push the robot away but cannot fall on it
  (the paper's people are simulated and can fall).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["CLIPS", "BONES", "load_clip", "person_xml", "pose_bones", "N_BONES"]

CLIPS = ("walk", "run", "dance_a", "dance_b", "punch", "kick", "spin", "jump")
SCALE = 0.25  # humanoid.urdf is 4x the clips' metric scale

# joints: name -> (parent, offset in the parent's frame (URDF, y-up), index of its rotation in the frame)
# rotation index: ("q", offset into the frame) for a quaternion, ("z", offset) for a revolute angle about z
_JOINTS = {
    "root": (None, (0.0, 0.0, 0.0), ("q", 4)),
    "chest": ("root", (0.0, 0.944604, 0.0), ("q", 8)),
    "neck": ("chest", (0.0, 0.895576, 0.0), ("q", 12)),
    "head": ("neck", (0.0, 0.7, 0.0), None),
    "r_hip": ("root", (0.0, 0.0, 0.339548), ("q", 16)),
    "r_knee": ("r_hip", (0.0, -1.686184, 0.0), ("z", 20)),
    "r_ankle": ("r_knee", (0.0, -1.63948, 0.0), ("q", 21)),
    "r_toe": ("r_ankle", (0.36, -0.09, 0.0), None),
    "r_shoulder": ("chest", (-0.0962, 0.974, 0.73244), ("q", 25)),
    "r_elbow": ("r_shoulder", (0.0, -1.099152, 0.0), ("z", 29)),
    "r_wrist": ("r_elbow", (0.0, -1.035788, 0.0), None),
    "l_hip": ("root", (0.0, 0.0, -0.339548), ("q", 30)),
    "l_knee": ("l_hip", (0.0, -1.686184, 0.0), ("z", 34)),
    "l_ankle": ("l_knee", (0.0, -1.63948, 0.0), ("q", 35)),
    "l_toe": ("l_ankle", (0.36, -0.09, 0.0), None),
    "l_shoulder": ("chest", (-0.0962, 0.974, -0.73244), ("q", 39)),
    "l_elbow": ("l_shoulder", (0.0, -1.099152, 0.0), ("z", 43)),
    "l_wrist": ("l_elbow", (0.0, -1.035788, 0.0), None),
}
_NAMES = tuple(_JOINTS)

# (name, from joint, to joint, capsule radius in metres)
BONES = (
    ("pelvis", "r_hip", "l_hip", 0.09),
    ("torso", "root", "neck", 0.11),
    ("head", "neck", "head", 0.09),
    ("r_thigh", "r_hip", "r_knee", 0.06),
    ("r_shin", "r_knee", "r_ankle", 0.05),
    ("r_foot", "r_ankle", "r_toe", 0.04),
    ("l_thigh", "l_hip", "l_knee", 0.06),
    ("l_shin", "l_knee", "l_ankle", 0.05),
    ("l_foot", "l_ankle", "l_toe", 0.04),
    ("r_upper_arm", "r_shoulder", "r_elbow", 0.045),
    ("r_forearm", "r_elbow", "r_wrist", 0.04),
    ("l_upper_arm", "l_shoulder", "l_elbow", 0.045),
    ("l_forearm", "l_elbow", "l_wrist", 0.04),
)
N_BONES = len(BONES)
_BONE_FROM = np.array([_NAMES.index(b[1]) for b in BONES])
_BONE_TO = np.array([_NAMES.index(b[2]) for b in BONES])
_Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # (x, y, z)_yup -> (x, -z, y)


def _clip_path(name: str) -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "data" / "motions" / f"humanoid3d_{name}.txt"


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices of quaternions ``q[..., 4]`` (w, x, y, z), normalised first."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def _rot_z(angle: np.ndarray) -> np.ndarray:
    c, s, zero, one = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2)


@lru_cache(maxsize=None)
def load_clip(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(times[F], joints[F, J, 3])``: frame start times (s) and joint positions (z-up, metres).

    Joint positions are relative to the root's ground point: horizontal root travel removed,
    root height kept.
    """
    if name not in CLIPS:
        raise ValueError(f"clip must be one of {CLIPS}, got {name!r}")
    frames = np.asarray(json.loads(_clip_path(name).read_text())["Frames"], dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != 44:
        raise ValueError(f"motion file for {name!r} has frames of shape {frames.shape}, expected (F, 44)")
    n = len(frames)
    rotation = {}
    position = {}
    for joint, (parent, offset, rot) in _JOINTS.items():
        if rot is None:
            local = np.broadcast_to(np.eye(3), (n, 3, 3))
        elif rot[0] == "q":
            local = _quat_to_matrix(frames[:, rot[1] : rot[1] + 4])
        else:
            local = _rot_z(frames[:, rot[1]])
        if parent is None:
            position[joint] = np.zeros((n, 3))
            position[joint][:, 1] = frames[:, 2]  # root height (y-up); horizontal travel removed
            rotation[joint] = local
        else:
            step = np.einsum("fij,j->fi", rotation[parent], np.asarray(offset) * SCALE)
            position[joint] = position[parent] + step
            rotation[joint] = rotation[parent] @ local
    joints = np.stack([position[name] for name in _NAMES], axis=1) @ _Y_UP_TO_Z_UP.T
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    return times, joints


def person_xml(index: int, solid: str) -> str:
    """MJCF for person ``index``: one mocap body per bone, named ``person{index}_{bone}``."""
    bodies = []
    for name, _, _, radius in BONES:
        bodies.append(
            f'    <body name="person{index}_{name}" mocap="true" pos="0 0 -5">'
            f'<geom name="person{index}_{name}" type="capsule" size="{radius} 0.1" rgba="0.85 0.65 0.5 1" '
            f"{solid}/></body>"
        )
    return "\n".join(bodies)


def pose_bones(clip: str, t: float, anchor: np.ndarray, heading: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bone ``(midpoints[B, 3], quats[B, 4] (w, x, y, z), half_lengths[B])`` at time ``t`` (looped).

    The person stands on ``anchor = (x, y)`` and is turned by ``heading`` (rad) about z.
    Each quaternion turns the capsule's local z axis onto its bone.
    """
    times, joints = load_clip(clip)
    period = times[-1] if times[-1] > 0 else 1.0
    frame = min(int(np.searchsorted(times, t % period, side="right")) - 1, len(times) - 1)
    c, s = np.cos(heading), np.sin(heading)
    points = joints[max(frame, 0)] @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T
    points = points + np.array([anchor[0], anchor[1], 0.0])
    start, end = points[_BONE_FROM], points[_BONE_TO]
    vector = end - start
    length = np.maximum(np.linalg.norm(vector, axis=1), 1e-6)
    direction = vector / length[:, None]
    # shortest-arc quaternion from +z to direction: (1 + d_z, -d_y, d_x, 0), normalised
    quats = np.stack([1.0 + direction[:, 2], -direction[:, 1], direction[:, 0], np.zeros(len(direction))], 1)
    flipped = quats[:, 0] < 1e-6  # direction ≈ −z: turn about x by pi
    quats[flipped] = (0.0, 1.0, 0.0, 0.0)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return (start + end) / 2, quats, length / 2
