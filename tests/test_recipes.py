"""Tests of the training recipes: valid parameters, overrides, a pipeline that learns."""

import numpy as np
import pytest

from sklearn_birdaudio import AttentionCNNClassifier, load_model, make_birdsong, save_model
from sklearn_birdaudio.recipes import make_small_data_pipeline, small_data_recipe


def test_recipe_is_a_fresh_dict_of_classifier_parameters():
    recipe = small_data_recipe()
    recipe["lr"] = 1.0
    assert small_data_recipe()["lr"] != 1.0
    params = AttentionCNNClassifier(**small_data_recipe()).get_params()
    assert all(params[key] == value for key, value in small_data_recipe().items())


def test_pipeline_applies_the_recipe_and_the_overrides():
    pipeline = make_small_data_pipeline(max_epochs=3, random_state=7, verbose=0)
    cnn = pipeline.named_steps["cnn"]
    assert cnn.max_epochs == 3 and cnn.random_state == 7 and cnn.verbose == 0
    assert cnn.module__subtract_band_median is True and cnn.crops_per_recording == 6
    assert pipeline.named_steps["mel"].duration is None


def test_recipe_pipeline_learns_synthetic_species(tmp_path):
    waveforms, Y, _ = make_birdsong(
        n_samples=48, n_classes=2, duration=2.0, n_labels=1.0, distractors=0.0,
        random_state=0, as_frame=True,
    )  # fmt: skip
    pipeline = make_small_data_pipeline(
        memory=tmp_path, random_state=0, verbose=0, max_epochs=6, crops_per_recording=2
    )
    pipeline.fit(waveforms[:32], Y[:32])
    probabilities = pipeline.predict_proba(waveforms[32:])
    truth = np.asarray(Y[32:])
    assert probabilities.shape == (16, 2)
    # Better than chance on unseen clips: each species' present clips score higher.
    for column in range(2):
        present = truth[:, column] == 1
        assert probabilities[present, column].mean() > probabilities[~present, column].mean()
    # The safe format keeps the recipe's front end (stride, median subtraction).
    with pytest.warns(UserWarning, match="mel__memory"):  # the cache is not saved
        save_model(pipeline, tmp_path / "recipe.safetensors")
    loaded = load_model(tmp_path / "recipe.safetensors")
    assert loaded.named_steps["cnn"].module_.subtract_band_median
    np.testing.assert_allclose(loaded.predict_proba(waveforms[32:]), probabilities, atol=1e-6)
