"""SAFER in four steps: collect labelled data, train the prior (Alg. 2), bound the latent box
(Alg. 3), and let an agent act inside it through the remap shield.

Run ``python examples/safer_operation.py`` (about a minute on one CPU core; tiny sizes).
"""

import gymnasium as gym
import numpy as np
import torch

import safeshield
from safeshield.environments.operation import EVAL_TASKS, ScriptedGrasp
from safeshield.shields.safer.dataset import OfflineDataset, collect_episodes
from safeshield.shields.safer import SAFER, SAFERConfig

torch.set_num_threads(1)
task = EVAL_TASKS[0]
env = gym.make(f"safeshield/Operation{task:02d}-v0")

# 1. labelled data from a noisy scripted grasp (omega and success per step), in the documented format
data = collect_episodes(env, ScriptedGrasp(noise=0.5), episodes=20, seed=0)
data.save("runs/safer_example/data.h5")
print(f"{len(data)} steps, {data.violations.mean():.1%} violations, D_safe {data.safe_rows().size}, D_unsafe {data.unsafe_rows().size}")

# 2. the prior (Alg. 2) and 3. the latent bound for <= 15 % unsafe (Alg. 3, exact variant)
prior = SAFER(env.observation_space, env.action_space, SAFERConfig(flow_hidden=(64, 64), batch_size=64), seed=0)
prior.fit(OfflineDataset.load("runs/safer_example/data.h5"), steps=200, progress=False)
print("eta =", prior.calibrate(data, max_unsafe_fraction=0.15))
prior.save("runs/safer_example/prior")

# 4. any agent now acts in Box(-1, 1)^4; the shield executes a = f(eta * u; s, E[c | window])
shielded = safeshield.load("runs/safer_example/prior", gym.make(f"safeshield/Operation{task:02d}-v0"))
obs, _ = shielded.reset(seed=0)
rng = np.random.default_rng(0)
violations = 0
for _ in range(50):
    obs, reward, terminated, truncated, info = shielded.step(rng.uniform(-1, 1, 4).astype(np.float32))
    violations += info["shield"]["failure"]
    if terminated or truncated:
        break
print("random latent actions:", "success" if info["success"] else "no success", f"{violations:.0f} violations;",
      "last step:", {k: info["shield"][k] for k in ("risk", "intervened", "neg_log_prob")})
