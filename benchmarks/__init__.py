"""Runnable benchmarks: ``python -m benchmarks.{atari,mujoco}`` (learned vs true reward, side by side)."""
