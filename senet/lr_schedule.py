"""The learning-rate schedule of every trainer, in a module of its own.

With a ``dist_*`` kvstore the optimizer, and this scheduler with it, is pickled to the parameter
servers. A server process runs the trainer's command and blocks inside its first ``import mxnet``,
which happens while ``fit`` is still half-imported; a class defined in ``fit`` then cannot be
unpickled there, and the server would run without an optimizer (storing gradients as weights). This
module imports nothing from MXNet, so a server imports it whole when it unpickles the scheduler.
"""
import math


class EpochStepScheduler:
    """Learning rate as a pure function of the update count: linear warm-up, then steps in epochs.

    Being stateless, a resumed run (which starts counting at ``begin_epoch * epoch_size``) gets the
    learning rate an uninterrupted run would have at every batch.
    """

    def __init__(self, base_lr, epoch_size, step_epochs=(), factor=0.1, warmup_epochs=0.0):
        self.base_lr = base_lr
        self.epoch_size = epoch_size
        self.step_updates = [int(round(epoch * epoch_size)) for epoch in step_epochs]
        self.factor = factor
        self.warmup_updates = int(round(warmup_epochs * epoch_size))

    def __call__(self, num_update):
        """Learning rate of update ``num_update`` (1 for the first batch)."""
        if num_update <= self.warmup_updates:
            return self.base_lr * num_update / self.warmup_updates
        passed = sum(1 for step in self.step_updates if num_update > step)
        return self.base_lr * self.factor ** passed


class CosineScheduler:
    """Learning rate as a pure function of the update count: linear warm-up, then a half cosine
    from ``base_lr`` down to ``final_lr`` at the end of epoch ``num_epochs`` (GluonCV's ``cosine``
    mode). Stateless like :class:`EpochStepScheduler`, so a resumed run gets the same rates."""

    def __init__(self, base_lr, epoch_size, num_epochs, warmup_epochs=0.0, final_lr=0.0):
        self.base_lr = base_lr
        self.final_lr = final_lr
        self.warmup_updates = int(round(warmup_epochs * epoch_size))
        self.total_updates = max(self.warmup_updates + 1, int(round(num_epochs * epoch_size)))

    def __call__(self, num_update):
        """Learning rate of update ``num_update`` (1 for the first batch)."""
        if num_update <= self.warmup_updates:
            return self.base_lr * num_update / self.warmup_updates
        done = min(1.0, (num_update - self.warmup_updates)
                   / float(self.total_updates - self.warmup_updates))
        return self.final_lr + (self.base_lr - self.final_lr) * 0.5 * (1 + math.cos(math.pi * done))
