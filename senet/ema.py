"""An exponential moving average of a training Module's weights (``--ema DECAY``).

As timm's ``ModelEmaV2``: after every optimizer update, ``ema = decay * ema + (1 - decay) * value``
for every parameter and every BatchNorm moving statistic, starting from the weights training starts
from. The average is kept in float32 on the Module's first device whatever the training precision;
with several devices it follows the first device's parameters (all hold the same) and the mean of
the devices' BatchNorm statistics, as ``Module.get_params`` does. It is validated each epoch and
saved beside the raw weights (:mod:`senet.checkpoint`: ``<prefix>-ema-NNNN.params``).
"""
import numpy as np


class ModelEma:
    """The moving average of a Module's parameters.

    Parameters
    ----------
    decay : float
        Weight of the old average, in [0, 1).
    arg_params, aux_params : dict of str to NDArray
        The starting values (copied).
    context : mx.Context, optional
        Where the average lives; default the CPU.
    """

    def __init__(self, decay, arg_params, aux_params, context=None):
        import mxnet as mx
        self.decay = decay
        self.context = context or mx.cpu()
        self.arg_params = {name: self._float32_copy(value) for name, value in arg_params.items()}
        self.aux_params = {name: self._float32_copy(value) for name, value in aux_params.items()}

    def update(self, mod):
        """Move the average towards the current weights of the bound Module ``mod``."""
        import mxnet as mx
        # oneDNN's BatchNorm writes its moving statistics outside the engine's dependency
        # tracking in MXNet 1.9.1 (see checkpoint.current_params): wait before reading them.
        mx.nd.waitall()
        group = mod._exec_group
        for name, copies in zip(group.param_names, group.param_arrays):
            self._blend(self.arg_params[name], copies[0].as_in_context(self.context))
        for name, copies in zip(group.aux_names, group.aux_arrays):
            mean = sum(copy.as_in_context(self.context) for copy in copies) / len(copies) \
                if len(copies) > 1 else copies[0].as_in_context(self.context)
            self._blend(self.aux_params[name], mean)

    def _blend(self, average, value):
        if value.dtype != np.float32:
            value = value.astype(np.float32)
        average *= self.decay
        average += (1.0 - self.decay) * value

    def params(self):
        """(arg_params, aux_params) of the average."""
        return self.arg_params, self.aux_params

    def _float32_copy(self, value):
        return value.as_in_context(self.context).astype(np.float32, copy=True)
