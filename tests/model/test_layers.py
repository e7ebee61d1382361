"""twostep_jax.model.layers: the backbones' convolutions and the decoder's output."""

import numpy as np

from tests.fixtures import SMALL, forward
from twostep_jax import abstract_variables, create_model


def test_atrous_backbone_is_dilated_5x5():
    params = abstract_variables(create_model("atrous_ap", "paper"))["params"]["encoder"]
    kernels = [v["ConvBNReLU_0"]["Conv_0"]["kernel"].shape for v in params.values()]
    assert kernels == [(5, 5, 1, 64), (5, 5, 64, 128), (5, 5, 128, 256)]


def test_linear_decoder_output_can_be_negative(x_small):
    _, relu_out = forward(create_model("2apae", "test_tiny", **SMALL), x_small, train=True)
    _, lin_out = forward(create_model("2apae", "test_tiny", decoder_output="linear", **SMALL), x_small,
                         train=True)
    assert np.all(np.asarray(relu_out["reconstruction"]) >= 0)
    assert np.any(np.asarray(lin_out["reconstruction"]) < 0)
