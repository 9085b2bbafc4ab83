"""What "better" means for a person who labels clips of an environment (shown on the labeling page).

The paper's annotators got a short written description of each task's goal (Christiano et al. 2017,
appendix B: e.g. "the cheetah should run forward as fast as possible"); these are ours. A person judges
behaviour toward the goal, never the score, which the page does not show.
"""

from __future__ import annotations

import re

__all__ = ["labeling_instructions", "GENERIC"]

GENERIC = ("Pick the clip in which the agent makes more progress toward the goal of the task. Judge what the "
           "agent does, not how the clip looks.")

_TASKS = {
    "HalfCheetah": "The cheetah should run forward (to the right) as fast as possible. Prefer the clip that moves "
                   "right faster; flipping over or running backward is worse.",
    "Hopper": "The one-legged hopper should hop forward (to the right) as fast as it can without falling. Prefer "
              "steady forward hops; falling over is worse than standing still.",
    "Walker2d": "The two-legged walker should walk forward (to the right) as fast as it can without falling.",
    "Ant": "The four-legged ant should move forward (to the right) as fast as it can without flipping over.",
    "Swimmer": "The swimmer should swim forward (to the right) as fast as possible.",
    "Humanoid": "The humanoid should move forward (to the right) without falling.",
    "Reacher": "The arm's tip should reach the target dot and stay on it. Prefer the clip whose tip gets closer, "
               "sooner.",
    "InvertedPendulum": "The cart should keep the pole upright. Prefer the clip where the pole stays up longer and "
                        "straighter.",
    "InvertedDoublePendulum": "The cart should keep both poles upright and balanced. Prefer the clip where they "
                              "stay up longer and straighter.",
    "Pendulum": "The pendulum should swing up and stay upright. Prefer the clip where it is upright for longer.",
    "Seaquest": "Play Seaquest well: shoot sharks and enemy subs, rescue divers, and surface for air before the "
                "oxygen runs out. Prefer the clip that scores more without losing the sub.",
    "Breakout": "Play Breakout well: keep the ball in play with the paddle and break bricks. Prefer the clip that "
                "breaks more bricks; missing the ball is bad.",
    "Pong": "Play Pong well: the agent is the paddle on the right. Prefer the clip in which it returns the ball "
            "and scores; letting the ball past is bad.",
    "Qbert": "Play Q*bert well: hop on cubes to change their colour while avoiding enemies and not jumping off the "
             "pyramid.",
    "SpaceInvaders": "Play Space Invaders well: shoot the invaders and avoid their shots.",
    "BeamRider": "Play Beam Rider well: shoot enemy ships and dodge their shots.",
    "Enduro": "Play Enduro well: drive fast and pass as many cars as possible without crashing.",
}


def labeling_instructions(env_id: str) -> str:
    """The instructions for labeling clips of ``env_id``.

    Args:
        env_id: a gymnasium id (``"HalfCheetah-v5"``, ``"ALE/Seaquest-v5"``) or an Atari game name
            (``"Seaquest"``, ``"SeaquestNoFrameskip-v4"``).

    Returns:
        One or two sentences on what a better clip does; :data:`GENERIC` for an environment not listed.
    """
    name = re.sub(r"^ALE/|(NoFrameskip)?-v\d+$", "", str(env_id))
    return _TASKS.get(name, GENERIC)
