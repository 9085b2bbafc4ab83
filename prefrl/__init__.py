"""prefrl: the preference-learning core.

Data flows one way: rollout -> segments -> queries -> labels -> reward fit ->
learned reward -> agent. Importing ``prefrl`` pulls in no environment family
(no ALE, no MuJoCo, no language model).
"""

from prefrl.diagnostics import pearson, segment_return_correlation, spearman
from prefrl.export import export_store, iter_rankings, iter_records
from prefrl.label_queue import LabelQueue
from prefrl.loop import LoopConfig, PreferenceLoop, RolloutRecorder
from prefrl.losses import bt_log_probs, bt_loss, bt_probability, disagreement, kwise_ranking_loss, mean_entropy
from prefrl.oracle import Labeler, SyntheticOracle, ranking_to_pairs
from prefrl.queue_labeler import QueueLabeler
from prefrl.queries import QUERY_METHODS, pair_probabilities, select_groups, select_queries
from prefrl.reward_model import MLPEnsemble, ModuleEnsemble, RewardEnsemble
from prefrl.saving import RewardFunction, load_reward, save_reward
from prefrl.schedule import LabelSchedule
from prefrl.segments import Segments, sample_segments, valid_starts
from prefrl.store import PreferenceStore
from prefrl.text_loop import TextLoopConfig, TextPreferenceLoop
from prefrl.trainer import RewardTrainer, TrainerConfig
from prefrl.wrappers import LearnedRewardVecEnv, LearnedRewardVectorEnv, PreferenceCallback, relabel_replay_buffer

__all__ = [
    "LabelQueue", "Labeler", "LabelSchedule", "LearnedRewardVecEnv", "LearnedRewardVectorEnv", "LoopConfig", "MLPEnsemble",
    "ModuleEnsemble", "PreferenceCallback", "PreferenceLoop", "PreferenceStore", "QUERY_METHODS", "QueueLabeler",
    "RewardEnsemble", "RewardFunction", "RewardTrainer", "RolloutRecorder", "Segments", "SyntheticOracle", "TextLoopConfig", "TextPreferenceLoop", "TrainerConfig",
    "bt_log_probs", "bt_loss", "bt_probability", "disagreement", "export_store", "iter_rankings", "iter_records", "kwise_ranking_loss", "load_reward", "mean_entropy",
    "pair_probabilities", "pearson", "ranking_to_pairs", "relabel_replay_buffer", "sample_segments", "save_reward", "segment_return_correlation", "select_groups", "select_queries",
    "spearman", "valid_starts",
]
__version__ = "0.1.0"
