"""The shared planar MuJoCo robots: they build, move as documented, and walls block them."""

import math

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")  # the [mujoco] extra

from safeshield.environments.mujoco_robots import (  # noqa: E402  (after the importorskip)
    ROBOTS,
    SOLID,
    PlanarRobot,
    build_world,
    build_world_xml,
    robot_spec,
)


def _drive(robot: str, action, steps: int, extra: str = "", start=(0.0, 0.0, 0.0)):
    model = build_world(robot, extra)
    data = mujoco.MjData(model)
    handle = PlanarRobot(model, robot)
    handle.set_pose(data, *start)
    for _ in range(steps):
        handle.apply(data, action)
        mujoco.mj_step(model, data)
    return handle, data


@pytest.mark.parametrize("robot", ROBOTS)
def test_full_forward_moves_along_heading_at_about_one_metre_per_second(robot):
    heading = 0.7
    handle, data = _drive(robot, [1.0, 0.0] if robot == "point" else [1.0, 1.0], 1000, start=(0.0, 0.0, heading))
    x, y, final_heading = handle.pose(data)
    forward, lateral, _ = handle.velocity(data)
    assert 0.7 < forward < 1.2 and abs(lateral) < 0.05
    assert abs(math.atan2(y, x) - heading) < 0.05 and abs(final_heading - heading) < 0.05
    assert 1.0 < math.hypot(x, y) < 2.4


@pytest.mark.parametrize("robot", ROBOTS)
def test_turn_action_rotates_in_place(robot):
    handle, data = _drive(robot, [0.0, 1.0] if robot == "point" else [-1.0, 1.0], 100)
    x, y, heading = handle.pose(data)
    assert heading > 0.2  # counter-clockwise
    assert math.hypot(x, y) < 0.2


@pytest.mark.parametrize("robot", ROBOTS)
def test_solid_wall_blocks_the_robot(robot):
    wall = f'<geom type="box" size="0.05 3 0.3" pos="1 0 0.3" {SOLID}/>'
    handle, data = _drive(robot, [1.0, 0.0] if robot == "point" else [1.0, 1.0], 1500, extra=wall)
    assert handle.pose(data)[0] < 1.0 - 0.05


@pytest.mark.parametrize("robot", ROBOTS)
def test_set_pose_places_the_robot_at_rest(robot):
    model = build_world(robot)
    data = mujoco.MjData(model)
    handle = PlanarRobot(model, robot)
    handle.set_pose(data, 1.25, -0.5, -2.0)
    assert np.allclose(handle.pose(data), (1.25, -0.5, -2.0), atol=1e-9)
    assert np.allclose(handle.velocity(data), 0.0)
    assert handle.sensors(data).shape == (12,)


def test_bad_names_and_actions_fail_clearly():
    with pytest.raises(ValueError, match="robot must be one of"):
        robot_spec("tank")
    model = build_world("point")
    with pytest.raises(ValueError, match="2 values"):
        PlanarRobot(model, "point").apply(mujoco.MjData(model), [1.0])
    with pytest.raises(ValueError, match="actuators"):
        PlanarRobot(model, "car")
    assert "<freejoint" in build_world_xml("car") and "<freejoint" not in build_world_xml("point")
