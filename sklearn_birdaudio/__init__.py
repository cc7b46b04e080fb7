"""Bird-sound classification with the scikit-learn API.

The public API is re-exported here. Submodules are imported on first use, so
``import sklearn_birdaudio`` stays fast (torch and librosa load only when needed).
"""

from importlib import import_module

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "AudioError": "audio",
    "AudioInfo": "audio",
    "audio_files": "audio",
    "audio_info": "audio",
    "load_audio": "audio",
    "stream_audio": "audio",
    "stream_windows": "windows",
    "AudioSpec": "spec",
    "Spectrograms": "spec",
    "get_audio_spec": "spec",
    "MelSpectrogramTransformer": "features",
    "LogMelSpectrogram": "log_mel",
    "valid_frames": "log_mel",
    "AttentionCNN": "modules",
    "MaskedBCEWithLogitsLoss": "losses",
    "SoftenedBCEWithLogitsLoss": "losses",
    "AttentionCNNClassifier": "classifier",
    "AcceleratedAttentionCNNClassifier": "accelerated",
    "VotingClassifier": "ensemble",
    "DistilledClassifier": "distillation",
    "small_data_recipe": "recipes",
    "make_small_data_pipeline": "recipes",
    "BirdNETEmbedder": "embeddings",
    "BirdNETClassifier": "embeddings",
    "EmbeddingLogisticRegression": "linear",
    "detect": "detection",
    "set_torch_threads": "distributed",
    "window_scores": "detection",
    "WindowScores": "detection",
    "Detections": "detections",
    "mean_average_precision": "metrics",
    "padded_cmap": "metrics",
    "f1_at_threshold": "metrics",
    "top1_accuracy": "metrics",
    "get_scorer": "metrics",
    "plot_detections": "plotting",
    "plot_training_curves": "plotting",
    "plot_precision_recall": "plotting",
    "plot_calibration": "plotting",
    "ScoreCalibrator": "calibration",
    "decided_reviews": "calibration",
    "write_detections": "table_writers",
    "write_detections_per_file": "table_files",
    "read_detections": "table_readers",
    "sample_for_review": "review",
    "export_review": "review",
    "read_review": "review",
    "SkippedClipsWarning": "review",
    "make_birdsong": "datasets",
    "load_folder": "datasets",
    "load_manifest": "datasets",
    "reviewed_training_data": "reviewed",
    "save_model": "persistence",
    "load_model": "persistence",
    "model_lineage": "persistence",
    "model_saved_at": "persistence",
    "DroppedParameterWarning": "persistence",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
