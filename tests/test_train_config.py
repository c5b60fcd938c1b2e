"""Training options: EncoderConfig nested in TrainConfig/PretrainConfig, stored and read as one flat mapping."""

from __future__ import annotations

import dataclasses

import pytest

from cactus.encoders.config import EncoderConfig
from cactus.training.config import PretrainConfig, TrainConfig, TrainingError, config_from_dict, config_options

#: A model card's ``config`` (and a job's ``train`` parameters) as cactus wrote them when TrainConfig repeated the
#: encoder's fields: flat, in the old field order.
OLD_FLAT = {"backbone": "/models/bert", "mode": "fia", "loss": "bce", "epochs": 3, "batch_size": 2, "lr": 0.0001,
            "weight_decay": 0.01, "grad_clip": 1.0, "seed": 1, "max_tokens": 24, "limit_train": None, "init": None,
            "device": None, "eval_batch_size": 16}


def test_flat_options_written_before_nesting_read_back_into_the_nested_config():
    config = config_from_dict(TrainConfig, OLD_FLAT)
    assert config.encoder == EncoderConfig(backbone="/models/bert", mode="fia", max_tokens=24)
    assert (config.loss, config.epochs, config.seed) == ("bce", 3, 1)
    # cards and job parameters keep the same keys and values; options added since (issue 14) come at defaults
    added = {"mix": "proportional", "wise_ft": None, "freeze_layers": 0, "backbone_lr_scale": 1.0,
             "selfsup_mix": 0.0, "cut": "auto"}
    assert config_options(config) == {**OLD_FLAT, **added}


def test_encoder_options_default_and_nest():
    config = config_from_dict(PretrainConfig, {"mode": "nia", "steps": 5})
    assert config.encoder == EncoderConfig(mode="nia") and config.steps == 5
    assert config_options(config)["backbone"] == "minilm"
    assert not hasattr(config, "mode") and not hasattr(TrainConfig(), "max_tokens")  # one place for them
    assert config_from_dict(PretrainConfig, config_options(config)) == config
    assert TrainConfig().encoder == EncoderConfig()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "full"}, "mode must be one of nia, sia, sia_first, sia_qkey, fia; got 'full'"),
        ({"max_tokens": 1}, "max_tokens must be an integer of at least 2"),
        ({"max_tokens": "32"}, "max_tokens must be an integer, got '32'"),
        ({"backbone": " "}, "backbone must be 'minilm' or a checkpoint folder path"),
        ({"loss": "hinge"}, "unknown loss 'hinge'; choose one of aug_triplet, triplet, structural, bce"),
        ({"encoder": {"mode": "nia"}},
         "unknown training options: encoder; known: backbone, backbone_lr_scale, batch_size"),
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
    ],
)
def test_bad_options_name_the_option(values, message):
    with pytest.raises(TrainingError, match=message):
        config_from_dict(TrainConfig, values)


def test_configs_are_frozen_and_take_an_encoder_config():
    config = TrainConfig(encoder=EncoderConfig(mode="sia_qkey"), epochs=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3  # type: ignore[misc]
    assert dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, mode="nia")).encoder.mode == "nia"
    with pytest.raises(TypeError, match="encoder must be an EncoderConfig"):
        TrainConfig(encoder={"mode": "nia"})  # type: ignore[arg-type]
