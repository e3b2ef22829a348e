"""The simulator: safety constraints, rewards, synthetic cohorts, `PeriodizationEnv` and the
batched env (DESIGN §6-7). Registers `Periodization-v0` with Gymnasium (lazy entry point: the
shipped world model is loaded only when the env is made)."""

import gymnasium as gym

if "Periodization-v0" not in gym.registry:
    gym.register(id="Periodization-v0", entry_point="simulator.env:PeriodizationEnv",
                 max_episode_steps=None)
