"""PyTorch CPU reference of the released 2APAE architecture, for side-by-side speed comparison.

Used only by ``python -m twostep_jax.benchmark --compare-torch`` (optional ``torch`` extra:
``pip install torch==2.13.0``). ``torch`` is imported inside the functions, so importing this
module (and the package) works without it.

The network follows the released code (reference doc §1.3–1.8) in its own NCHW layout, eager
mode, as the authors ran it:

* Block = [conv3×3 (no bias) → BatchNorm2d → ReLU] ×2 → AvgPool2d(3, stride 1, pad 1,
    count_include_pad=True); the maps stay T×F.
* Encoder 1→32→64→128→256, class conv 1×1 256→K with bias, no activation.
* Two-step attention: Linear(F, F) ×2 over mel (sigmoid "prob" × softmax "att", summed over mel),
    then Linear(T, T) ×2 over time likewise, clamped to [0, 1].
* Decoder from the 256-channel map: blocks 128→64→32→1, squeezed to (B, T, F).
* Loss = BCE(mean) + alpha · MSE(mean) against the (z-scored) input; Adam(lr).

At the paper's sizes (T=311, F=64, K=41) the parameter count is 1,967,366, as the released model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def _require_torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the PyTorch reference needs the optional `torch` extra: "
                                            "pip install torch==2.13.0 (CPU build)") from e
    import torch
    return torch


def build_model(frames: int = 311, mels: int = 64, classes: int = 41,
                                channels: Sequence[int] = (32, 64, 128, 256),
                                decoder_channels: Sequence[int] = (128, 64, 32)) -> Any:
    """The released 2APAE as a ``torch.nn.Module``: (B, T, F) log-mel -> dict of outputs.

    Outputs: ``y_pred`` (B, K) clip probabilities and ``x_rec`` (B, T, F) reconstruction.
    """
    torch = _require_torch()
    nn = torch.nn

    def he_uniform_(conv):
        # The released init_layer: U(±sqrt(2/fan_in)·sqrt(3)), bias 0.
        fan_in = conv.weight[0].numel()
        bound = math.sqrt(2.0 / fan_in) * math.sqrt(3.0)
        nn.init.uniform_(conv.weight, -bound, bound)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        return conv

    def block(cin, cout):
        return nn.Sequential(
                he_uniform_(nn.Conv2d(cin, cout, 3, padding=1, bias=False)), nn.BatchNorm2d(cout),
                nn.ReLU(),
                he_uniform_(nn.Conv2d(cout, cout, 3, padding=1, bias=False)), nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.AvgPool2d(3, stride=1, padding=1))  # count_include_pad=True (PyTorch default)

    def chain(widths):
        return nn.Sequential(*[block(a, b) for a, b in zip(widths[:-1], widths[1:])])

    class TwoStepAttention(nn.Module):
        def __init__(self):
            super().__init__()
            # PyTorch default Linear init, as released.
            self.fc_mel_prob, self.fc_mel_att = nn.Linear(mels, mels), nn.Linear(mels, mels)
            self.fc_time_prob, self.fc_time_att = nn.Linear(frames, frames), nn.Linear(frames, frames)

        def forward(self, class_x):  # (B, K, T, F)
            mel_x = (torch.sigmoid(self.fc_mel_prob(class_x))
                              * torch.softmax(self.fc_mel_att(class_x), dim=-1)).sum(-1)  # (B, K, T)
            time_x = (torch.sigmoid(self.fc_time_prob(mel_x))
                                * torch.softmax(self.fc_time_att(mel_x), dim=-1)).sum(-1)  # (B, K)
            return torch.clamp(time_x, 0.0, 1.0)

    class TwoStepAPAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = chain((1, *channels))
            self.class_conv = he_uniform_(nn.Conv2d(channels[-1], classes, 1, bias=True))
            self.attention = TwoStepAttention()
            self.decoder = chain((channels[-1], *decoder_channels, 1))

        def forward(self, logmel):  # (B, T, F)
            x = self.encoder(logmel[:, None])
            return {"y_pred": self.attention(self.class_conv(x)), "x_rec": self.decoder(x)[:, 0]}

    return TwoStepAPAE()


def model_from_config(config: Any) -> Any:
    """The torch reference at a ``twostep_jax.ModelConfig``'s sizes (2APAE, released form only)."""
    if (config.backbone, config.head, config.decoder) != ("vgg_pooled", "two_step", True) or (
            config.attention_form != "released_code" or config.decoder_output != "relu"):
        raise ValueError(f"the torch reference implements the released 2APAE only, not {config.name!r} "
                                          f"({config.backbone}/{config.head}/{config.attention_form})")
    return build_model(config.frames, config.mels, config.classes, config.channels,
                                          config.decoder_channels)


def count_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def make_train_step(model: Any, alpha: float = 0.001, learning_rate: float = 1e-3) -> Callable:
    """Adam step of BCE(y_pred, target) + alpha·MSE(x_rec, logmel); returns step(logmel, target).

    The step returns the loss as a Python float (a host sync, as the released training loop's
    ``loss.item()``), so timing it measures completed work.
    """
    torch = _require_torch()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    bce, mse = torch.nn.BCELoss(), torch.nn.MSELoss()
    model.train()

    def step(logmel, target) -> float:
        out = model(logmel)
        loss = bce(out["y_pred"], target) + alpha * mse(out["x_rec"], logmel)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def make_eval_step(model: Any) -> Callable:
    """Inference-mode forward (running BN statistics, no autograd): step(logmel) -> (B, K) probs."""
    torch = _require_torch()

    def step(logmel):
        model.eval()
        with torch.inference_mode():
            return model(logmel)["y_pred"]

    return step
