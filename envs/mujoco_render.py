"""Headless rendering of MuJoCo simulator states (e.g. for a labelling UI).

Part of :mod:`envs.mujoco`, which re-exports everything public here
(:func:`gl_backend`, :func:`render_states`, :func:`close_renderers`,
:class:`RenderingUnavailableError`); import them from either module.

Headless rendering: before MuJoCo is first imported, :func:`gl_backend` picks
``MUJOCO_GL`` (unless the user already set it): ``egl`` if ``libEGL`` is found,
else ``osmesa`` if ``libOSMesa`` is found, else nothing (rendering then raises
:class:`RenderingUnavailableError`). On Debian/Ubuntu EGL software rendering
(Mesa llvmpipe, no GPU needed) comes from ``libegl1 libegl-mesa0
libgl1-mesa-dri``; OSMesa from ``libosmesa6``. A wrong ``MUJOCO_GL`` breaks
``import mujoco`` itself, which is why the backend is probed, not assumed.

:func:`render_states` re-renders the ``info["sim_state"]`` rows (qpos then
qvel) that every env from :mod:`envs.mujoco` reports, using one cached
``rgb_array`` env per ``(env_id, width, height)``.

This module imports only numpy and gymnasium at import time (mujoco is loaded
by ``gym.make`` when the first renderer is built). It imports
:mod:`envs.mujoco` lazily, inside :func:`render_states`, because
:mod:`envs.mujoco` imports this module.
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import threading

import gymnasium as gym
import numpy as np

from envs.mujoco_tasks import check_task

__all__ = [
    "RenderingUnavailableError",
    "close_renderers",
    "frame_rate",
    "gl_backend",
    "render_states",
    "segment_renderer",
]


class RenderingUnavailableError(RuntimeError):
    """Raised by :func:`render_states` when no headless OpenGL backend exists."""


# --------------------------------------------------------------------------
# Headless GL selection (must run before the first ``import mujoco``).
# --------------------------------------------------------------------------

_GL_LOCK = threading.Lock()
_GL_CHOSEN = False


def gl_backend() -> str | None:
    """Chooses (once) and returns the MuJoCo OpenGL backend for this process.

    If ``MUJOCO_GL`` is already set it is respected. Otherwise ``egl`` is used
    when ``libEGL`` is installed, else ``osmesa`` when ``libOSMesa`` is, else
    the variable is left unset (no headless rendering; physics still works).
    Must be called before ``mujoco`` is imported to have any effect; all
    factories in :mod:`envs.mujoco` and :func:`render_states` call it first.

    Returns:
        The value of ``MUJOCO_GL`` after the choice, or ``None`` if unset.
    """
    global _GL_CHOSEN
    with _GL_LOCK:
        if not _GL_CHOSEN and "MUJOCO_GL" not in os.environ:
            if ctypes.util.find_library("EGL"):
                os.environ["MUJOCO_GL"] = "egl"
            elif ctypes.util.find_library("OSMesa"):
                os.environ["MUJOCO_GL"] = "osmesa"
        _GL_CHOSEN = True
    return os.environ.get("MUJOCO_GL")


# --------------------------------------------------------------------------
# Rendering simulator states.
# --------------------------------------------------------------------------

# Renderer envs are expensive to create (~0.5 s for a GL context and model),
# so one per (env_id, width, height) is kept. Not thread-safe: render from one
# thread, or call close_renderers() in between.
_RENDERERS: dict[tuple[str, int, int], gym.Env] = {}
_SHADOW_SIZE = 1024


def close_renderers() -> None:
    """Closes the cached rendering environments used by :func:`render_states`."""
    while _RENDERERS:
        _, env = _RENDERERS.popitem()
        env.close()


def _renderer(env_id: str, width: int, height: int) -> gym.Env:
    key = (env_id, width, height)
    if key not in _RENDERERS:
        backend = gl_backend()
        if backend is None:
            raise RenderingUnavailableError(
                "No headless OpenGL backend: neither libEGL nor libOSMesa was "
                "found and MUJOCO_GL is unset (install e.g. Debian's libegl1 "
                "libegl-mesa0 libgl1-mesa-dri, or libosmesa6)."
            )
        env = gym.make(env_id, render_mode="rgb_array", width=width, height=height)
        # MuJoCo's default 4096^2 shadow map dominates software (llvmpipe)
        # rendering time; 1024^2 looks the same at these sizes and is ~3x
        # faster (0.17 -> 0.06 s per 240x240 frame on 2 CPU cores). It must be
        # set before the first render() creates the GL context.
        quality = env.unwrapped.model.vis.quality
        quality.shadowsize = min(int(quality.shadowsize), _SHADOW_SIZE)
        env.reset(seed=0)
        try:
            env.render()
        except Exception as err:  # GL libraries present but unusable
            env.close()
            raise RenderingUnavailableError(
                f"MuJoCo rendering with MUJOCO_GL={backend!r} failed: {err!r}"
            ) from err
        _RENDERERS[key] = env
    return _RENDERERS[key]


def _follow_camera(sim):
    """The renderer's free camera and the body it should follow (the task's ``trackbodyid``, else the root).

    gymnasium renders these tasks with a free camera whose ``lookat`` stays where
    the episode started (HalfCheetah and Ant have no tracking config; the free
    camera ignores ``trackbodyid`` in any case), so a trained runner leaves the
    picture after a few seconds. ``render_states`` moves ``lookat`` with the body
    in x and y instead. Returns (None, 0) if this gymnasium's renderer differs.
    """
    try:
        viewer = sim.mujoco_renderer._get_viewer("rgb_array")
        body = int((sim.mujoco_renderer.default_cam_config or {}).get("trackbodyid", 1))
        return viewer.cam, min(max(body, 1), sim.model.nbody - 1)
    except (AttributeError, TypeError):
        return None, 0


def render_states(
    env_id: str, states: np.ndarray, width: int = 240, height: int = 240
) -> np.ndarray:
    """Renders simulator states (e.g. a segment's ``info["sim_state"]``) to RGB.

    Uses the task's default ``rgb_array`` camera (the tracking cameras follow
    the body, as in the live env). Each state is set with ``set_state`` (which
    runs ``mj_forward``) and drawn independently.

    Args:
        env_id: One of :data:`envs.mujoco.MUJOCO_TASKS`.
        states: ``[L, nq + nv]`` (or a single ``[nq + nv]``) qpos/qvel rows.
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        uint8 ``[L, height, width, 3]`` frames (``[height, width, 3]`` for a
        single 1-D state).

    Raises:
        ValueError: On an unsupported id or states of the wrong width.
        RenderingUnavailableError: If no headless GL backend works here.
    """
    check_task(env_id)
    states = np.asarray(states, dtype=np.float64)
    single = states.ndim == 1
    if single:
        states = states[None]
    nq, nv = _dims(env_id)
    if states.ndim != 2 or states.shape[1] != nq + nv:
        raise ValueError(
            f"{env_id} states must have shape [L, {nq + nv}] (nq={nq}, nv={nv}), "
            f"got {states.shape}"
        )
    env = _renderer(env_id, int(width), int(height))
    sim = env.unwrapped
    cam, body = _follow_camera(sim)
    frames = np.empty((states.shape[0], height, width, 3), dtype=np.uint8)
    for i, state in enumerate(states):
        sim.set_state(state[:nq], state[nq:])
        if cam is not None:  # the free camera follows the body, so a runner never leaves the frame
            cam.lookat[:2] = sim.data.xpos[body][:2]
        frames[i] = env.render()
    return frames[0] if single else frames


@functools.lru_cache(maxsize=None)
def _dims(env_id: str) -> tuple[int, int]:
    """``(nq, nv)`` of a task's model (no renderer needed)."""
    env = gym.make(env_id)
    try:
        return int(env.unwrapped.model.nq), int(env.unwrapped.model.nv)
    finally:
        env.close()


def frame_rate(env_id: str) -> float:
    """Simulated steps per second of a task, ``1 / env.dt`` (InvertedPendulum 25, HalfCheetah 20, Hopper 125)."""
    env = gym.make(env_id)
    try:
        return 1.0 / float(env.unwrapped.dt)
    finally:
        env.close()


def segment_renderer(env_id: str, width: int = 160, height: int = 160, max_fps: float = 50.0):
    """What a person sees of MuJoCo segments: a function ``segments -> list of gif_media``, one looping GIF each.

    Each clip is rendered from the segment's simulator states (``Segments.state``
    [N, L, nq + nv], recorded when ``LoopConfig.keep_render_state`` is on) and
    plays in real time: at the task's frame rate ``1 / env.dt``, or, where that
    is above ``max_fps`` (GIF players show at most 50 frames/s), every k-th state
    at ``1 / (k * dt)``. Only the segments passed in are rendered.

    Args:
        env_id: one of :data:`envs.mujoco.MUJOCO_TASKS`.
        width, height: pixels of each clip (160 x 160: ~30 ms a frame with software GL).
        max_fps: the highest frame rate to play at.

    Returns:
        ``render(segments) -> [{"kind": "gif", "data": bytes}] * N``; it raises
        ValueError for segments without states (the fix: ``keep_render_state=True``).
    """
    from prefrl.media import gif_media

    dt = 1.0 / frame_rate(env_id)
    stride = max(1, int(np.ceil(1.0 / (dt * max_fps) - 1e-9)))
    fps = 1.0 / (dt * stride)

    def render(segments) -> list[dict]:
        if segments.state is None:
            raise ValueError("these segments carry no simulator states to render; record them with "
                             "LoopConfig(keep_render_state=True) on an env from envs.mujoco (info['sim_state'])")
        states = segments.state.cpu().numpy() if hasattr(segments.state, "cpu") else np.asarray(segments.state)
        return [gif_media(render_states(env_id, s[::stride], width, height), fps=fps) for s in states]

    render.fps = fps
    return render
