"""Train state and the pure train/eval steps, plus their single pmap wrappers.

`train_step(state, batch, rng)` is a pure function of its inputs. Under `jax.pmap(...,
axis_name="batch")` the state is passed unmapped (one logical replicated copy, `in_axes=None`)
and the batch is mapped over local devices; gradients, loss terms and BatchNorm statistics are
averaged over the axis, so N devices compute exactly the single-device step on the global batch.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state

from twostep_jax.losses import sed_loss
from twostep_jax.model.models import SEDModel

AXIS = "batch"


class TrainState(train_state.TrainState):
    """params + Adam state (with the learning rate as a hyperparameter) + BatchNorm statistics,
    and optionally `ema`: an exponential moving average of {"params", "batch_stats"} (Polyak
    averaging) that validation, model selection and evaluation use instead of the raw weights.
    `ema_decay` is static (part of the tree structure): 0 means no average (`ema` is None)."""

    batch_stats: Any = None
    ema: Any = None
    ema_decay: float = struct.field(pytree_node=False, default=0.0)

    def eval_variables(self) -> dict:
        """What inference runs: the averaged weights when the state keeps them, else the raw."""
        if self.ema is not None:
            return self.ema
        return {"params": self.params, "batch_stats": self.batch_stats}


def ema_decay_at(step: jax.Array, decay: float) -> jax.Array:
    """The decay used at update number `step` (0-based): min(decay, (1 + step) / (10 + step)).

    The warm-up of tf.train.ExponentialMovingAverage(num_updates=...): early averages are not
    dominated by the random initialisation, which a 400-step CPU run would still feel at the
    first validations with a fixed decay (0.99 keeps 61 % of it after 50 steps).
    """
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def make_optimizer(learning_rate: float | optax.Schedule) -> optax.GradientTransformation:
    """Adam with the learning rate as a hyperparameter in the optimizer state: a float, which
    ReduceLROnPlateau changes between epochs without recompiling, or a schedule of the step
    count (optax evaluates it at every update). Either way the current value is checkpointed
    with the state, and the state's tree is the same."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def learning_rate_schedule(kind: str, peak: float, total_steps: int) -> float | optax.Schedule:
    """`plateau`: the constant `peak` (the loop lowers it on plateaus); `cosine`: cosine decay
    from `peak` to 0 over `total_steps` (SGDR without restarts), a pure function of the step."""
    if kind == "plateau":
        return peak
    if kind == "cosine":
        return optax.cosine_decay_schedule(peak, decay_steps=max(int(total_steps), 1))
    raise ValueError(f"unknown learning-rate schedule {kind!r}")


def create_train_state(model: SEDModel, rng: jax.Array,
                       learning_rate: float | optax.Schedule, ema_decay: float = 0.0) -> TrainState:
    """Initialise parameters and BatchNorm statistics (float32) and Adam; with `ema_decay` in
    (0, 1) also their moving average, starting at the initial values."""
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    x = jnp.zeros((1,) + model.input_shape, jnp.float32)
    # Init under jit: one compiled program instead of op-by-op dispatch.
    variables = jax.jit(functools.partial(model.init, train=False))(rng, x)
    ema = None
    if ema_decay > 0:
        # A copy, not an alias: the train step donates the state's buffers.
        ema = jax.tree.map(jnp.copy, {"params": variables["params"], "batch_stats": variables["batch_stats"]})
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        tx=make_optimizer(learning_rate),
        ema=ema,
        ema_decay=float(ema_decay),
    )


def learning_rate_of(state: TrainState) -> jax.Array:
    return state.opt_state.hyperparams["learning_rate"]


def with_learning_rate(state: TrainState, lr: float) -> TrainState:
    hyper = dict(state.opt_state.hyperparams)
    hyper["learning_rate"] = jnp.asarray(lr, jnp.float32)
    return state.replace(opt_state=state.opt_state._replace(hyperparams=hyper))


def train_step(state: TrainState, batch: dict, rng: jax.Array, *, model: SEDModel, alpha: float,
               axis_name: str | None = AXIS) -> tuple[TrainState, dict]:
    """One Adam step on `batch` = {"logmel": [b, T, F], "target": [b, K]} (b = per-device batch).

    `model.axis_name` must equal `axis_name` so BatchNorm uses the global batch statistics.
    Returns the new state and scalar metrics (already averaged over devices).
    """
    rng = jax.random.fold_in(rng, state.step)
    if axis_name is not None:
        # Distinct randomness per device (the models have none today, but any augmentation or
        # dropout added later must not repeat across shards).
        rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))

    def loss_fn(params):
        outputs, updates = model.apply(
            {"params": params, "batch_stats": state.batch_stats}, batch["logmel"],
            train=True, mutable=["batch_stats"], rngs={"dropout": rng},
        )
        loss, terms = sed_loss(outputs, batch["target"], batch["logmel"], alpha)
        return loss, (terms, updates["batch_stats"])

    grads, (terms, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        terms = jax.lax.pmean(terms, axis_name)
        # Already equal across devices (BatchNorm synced its batch statistics); averaging makes
        # the replication exact to the last bit.
        batch_stats = jax.lax.pmean(batch_stats, axis_name)
    new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    if state.ema is not None:
        # After the update, as tf.train.ExponentialMovingAverage: the average includes it.
        d = ema_decay_at(state.step, state.ema_decay)
        current = {"params": new_state.params, "batch_stats": new_state.batch_stats}
        new_state = new_state.replace(ema=jax.tree.map(
            lambda e, x: (d * e + (1.0 - d) * x).astype(e.dtype), state.ema, current))
    # The new state holds the rate this update used (with a schedule, the old one's lags a step).
    metrics = dict(terms, grad_norm=optax.tree.norm(grads), learning_rate=learning_rate_of(new_state))
    return new_state, metrics


def eval_step(state_or_variables: Any, batch: dict, *, model: SEDModel) -> dict:
    """Forward pass in inference mode: {"clip_probs": [b, K], "frame_probs": [b, T, K],
    "frame_outputs": {name: [b, T, K]}} (the head's candidate frame-level read-outs).
    A TrainState runs its `eval_variables()` (the moving average when it keeps one)."""
    if isinstance(state_or_variables, TrainState):
        variables = state_or_variables.eval_variables()
    else:
        variables = state_or_variables
    outputs = model.apply(variables, batch["logmel"], train=False)
    return {"clip_probs": outputs["clip_probs"], "frame_probs": outputs["frame_probs"],
            "frame_outputs": outputs["frame_outputs"]}


def make_train_step(model: SEDModel, alpha: float, axis_name: str | None = AXIS):
    """The train step, compiled once: pmapped over local devices when `axis_name` is set
    (`batch` leaves are `[devices, b, ...]`), else jitted on one device (`[b, ...]`).

    The state argument is donated: its buffers are reused for the new state.
    """
    if (model.axis_name or None) != axis_name:
        raise ValueError(f"model.axis_name={model.axis_name!r} but the step uses axis_name={axis_name!r}")
    step = functools.partial(train_step, model=model, alpha=alpha, axis_name=axis_name)
    if axis_name is None:
        return jax.jit(step, donate_argnums=(0,))
    # Multi-process pmap (jax 0.10) returns an unmapped output that still refers to the donated
    # input's buffers, and the next step finds them deleted: donate within one process only.
    donate = (0,) if jax.process_count() == 1 else ()
    return jax.pmap(step, axis_name=axis_name, in_axes=(None, 0, None), out_axes=(None, None),
                    donate_argnums=donate)


def make_eval_step(model: SEDModel, pmapped: bool = True):
    """Inference step: pmapped (`[devices, b, ...]` in and out) or jitted (`[b, ...]`)."""
    eval_model = model.clone(axis_name=None)
    step = functools.partial(eval_step, model=eval_model)
    if not pmapped:
        return jax.jit(step)
    return jax.pmap(step, in_axes=(None, 0), out_axes=0)
