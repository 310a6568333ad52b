"""What the training recipe does to a batch: label smoothing, mixup, CutMix and random erasing.

The batch transforms of GluonCV's and timm's ImageNet recipes, applied to each training batch
between the iterator and the network (the iterator's own augmentation comes first):

* random erasing (Zhong et al., "Random Erasing Data Augmentation", 2017; timm's ``--reprob``):
  each image, with probability P, gets one box of 2-33 % of its area and aspect ratio 0.3-3.3
  replaced by per-pixel noise. The network takes raw pixels, so the noise has the batch's
  per-channel mean and standard deviation, which is timm's ``pixel`` mode (standard normal noise on
  normalised images) in raw pixel space;
* mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019), timm's batch mode: the batch is paired
  with itself reversed and mixed by one lambda ~ Beta(alpha, alpha) per batch; with both on, each
  batch uses one of them with probability 1/2. CutMix pastes a box of side ratio sqrt(1 - lambda),
  centred uniformly and clipped at the border, and takes lambda from the pasted area;
* label smoothing (Szegedy et al., 2016): targets 1 - eps + eps/K for the true class and eps/K for
  the others, as GluonCV and timm define it.

With smoothing, mixup or CutMix the network is trained on (N, K) target distributions:
``SoftmaxOutput`` accepts them as its label and back-propagates ``softmax - target``, the gradient
of the soft-target cross-entropy; the metrics keep the batch's hard labels.

Every random draw of a batch comes from a generator seeded by (``--seed``, epoch, batch), so a run
resumed inside an epoch sees the same batches as an uninterrupted one.
"""
import collections
import math

import numpy as np

ERASE_AREA = (0.02, 1.0 / 3.0)
"""Random erasing: the box's share of the image area (timm's and the paper's defaults)."""
ERASE_ASPECT = (0.3, 1.0 / 0.3)
"""Random erasing: the box's aspect ratio, drawn log-uniformly."""
ERASE_ATTEMPTS = 10
"""Draws of a box that fits the image before an image is left as it is."""
SWITCH_PROB = 0.5
"""With both --mixup and --cutmix, the probability that a batch uses CutMix."""

Mix = collections.namedtuple('Mix', 'kind lam box')
"""The mixing of one batch: ``kind`` 'mixup', 'cutmix' or None, the targets' weight ``lam`` of each
image's own label, and CutMix's box (top, left, bottom, right) or None."""

NO_MIX = Mix(None, 1.0, None)


def smooth_targets(labels, num_classes, eps):
    """(N, K) targets of class indices ``labels``: 1 - eps + eps/K on the class, eps/K elsewhere."""
    labels = np.asarray(labels).astype(np.int64)
    targets = np.full((len(labels), num_classes), eps / num_classes, dtype=np.float32)
    targets[np.arange(len(labels)), labels] += 1.0 - eps
    return targets


def cutmix_box(rng, height, width, lam):
    """(top, left, bottom, right) of a CutMix box of side ratio sqrt(1 - ``lam``), clipped."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    center_y, center_x = rng.randint(0, height), rng.randint(0, width)
    top, bottom = np.clip([center_y - cut_h // 2, center_y + cut_h // 2], 0, height)
    left, right = np.clip([center_x - cut_w // 2, center_x + cut_w // 2], 0, width)
    return int(top), int(left), int(bottom), int(right)


def mix_batch(images, labels, num_classes, rng, mixup=0.0, cutmix=0.0, eps=0.0):
    """Mix a batch with its reverse by mixup or CutMix.

    Parameters
    ----------
    images : mx.nd.NDArray
        (N, C, H, W) images.
    labels : array-like
        N class indices.
    num_classes : int
        K, the targets' width.
    rng : np.random.RandomState
        The batch's random draws.
    mixup, cutmix : float
        The Beta parameters alpha of each; 0 turns one off.
    eps : float
        Label smoothing of both targets.

    Returns
    -------
    tuple
        (mixed images, (N, K) targets, :class:`Mix`).
    """
    import mxnet as mx
    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.rand() < SWITCH_PROB)
    lam = float(rng.beta(cutmix, cutmix) if use_cutmix else rng.beta(mixup, mixup))
    reversed_images = mx.nd.flip(images, axis=0)
    if use_cutmix:
        box = cutmix_box(rng, images.shape[2], images.shape[3], lam)
        top, left, bottom, right = box
        mixed = images.copy()
        if bottom > top and right > left:
            mixed[:, :, top:bottom, left:right] = reversed_images[:, :, top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / float(images.shape[2] * images.shape[3])
        mix = Mix('cutmix', lam, box)
    else:
        mixed = images * lam + reversed_images * (1.0 - lam)
        mix = Mix('mixup', lam, None)
    own = smooth_targets(labels, num_classes, eps)
    targets = own * lam + own[::-1] * (1.0 - lam)
    return mixed, targets, mix


def erase_boxes(rng, count, height, width, probability):
    """For each of ``count`` images, its erased box (top, left, bottom, right), or None."""
    boxes = []
    area = height * width
    for _ in range(count):
        box = None
        if rng.rand() < probability:
            for _ in range(ERASE_ATTEMPTS):
                target = rng.uniform(*ERASE_AREA) * area
                aspect = math.exp(rng.uniform(math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1])))
                box_h = int(round(math.sqrt(target * aspect)))
                box_w = int(round(math.sqrt(target / aspect)))
                if 0 < box_h < height and 0 < box_w < width:
                    top = rng.randint(0, height - box_h + 1)
                    left = rng.randint(0, width - box_w + 1)
                    box = (top, left, top + box_h, left + box_w)
                    break
        boxes.append(box)
    return boxes


def random_erase(images, rng, probability):
    """Erase one random box of each image of ``images`` (N, C, H, W) with ``probability``.

    Returns (erased images, list of each image's box or None).
    """
    import mxnet as mx
    count, channels, height, width = images.shape
    boxes = erase_boxes(rng, count, height, width, probability)
    if not any(boxes):
        return images, boxes
    pixels = images.asnumpy()
    mean = pixels.mean(axis=(0, 2, 3))
    std = pixels.std(axis=(0, 2, 3))
    for index, box in enumerate(boxes):
        if box is None:
            continue
        top, left, bottom, right = box
        noise = rng.standard_normal((channels, bottom - top, right - left))
        pixels[index, :, top:bottom, left:right] = mean[:, None, None] + std[:, None, None] * noise
    return mx.nd.array(pixels, ctx=images.context, dtype=images.dtype), boxes


class BatchRecipe:
    """The batch transforms a run's flags ask for (:func:`from_args`).

    Parameters
    ----------
    num_classes : int
        K, the width of soft targets.
    label_smoothing, mixup, cutmix, random_erasing : float
        ``--label-smoothing``, ``--mixup``, ``--cutmix``, ``--random-erasing`` (0: off).
    mixup_off_epoch : int
        The 0-based epoch from which mixup and CutMix stop (0: never).
    seed : int
        ``--seed``.
    """

    def __init__(self, num_classes, label_smoothing=0.0, mixup=0.0, cutmix=0.0, random_erasing=0.0,
                 mixup_off_epoch=0, seed=0):
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.mixup, self.cutmix = mixup, cutmix
        self.random_erasing = random_erasing
        self.mixup_off_epoch = mixup_off_epoch
        self.seed = seed

    @classmethod
    def from_args(cls, args):
        """The recipe of the resolved flags ``args``."""
        return cls(args.num_classes, label_smoothing=args.label_smoothing, mixup=args.mixup,
                   cutmix=args.cutmix, random_erasing=args.random_erasing,
                   mixup_off_epoch=args.mixup_off_epoch, seed=args.seed)

    @property
    def soft_labels(self):
        """Whether the network trains on (N, K) targets instead of class indices."""
        return bool(self.label_smoothing or self.mixup or self.cutmix)

    @property
    def active(self):
        """Whether batches are changed at all."""
        return self.soft_labels or bool(self.random_erasing)

    def mixing(self, epoch):
        """Whether mixup or CutMix applies in ``epoch`` (0-based)."""
        return bool(self.mixup or self.cutmix) and not (
            self.mixup_off_epoch and epoch >= self.mixup_off_epoch)

    def rng(self, epoch, batch):
        """The random generator of batch ``batch`` of ``epoch``."""
        return np.random.RandomState([self.seed % 2 ** 32, epoch, batch])

    def apply(self, batch, epoch, nbatch):
        """(batch to train on, :class:`Mix`) for the iterator's ``batch`` number ``nbatch``."""
        import mxnet as mx
        if not self.active:
            return batch, NO_MIX
        rng = self.rng(epoch, nbatch)
        images, labels = batch.data[0], batch.label[0]
        if self.random_erasing:
            images, _ = random_erase(images, rng, self.random_erasing)
        mix = NO_MIX
        if self.mixing(epoch):
            images, targets, mix = mix_batch(images, labels.asnumpy(), self.num_classes, rng,
                                             self.mixup, self.cutmix, self.label_smoothing)
        elif self.soft_labels:
            targets = smooth_targets(labels.asnumpy(), self.num_classes, self.label_smoothing)
        if self.soft_labels:
            labels = mx.nd.array(targets, ctx=labels.context)
        return mx.io.DataBatch(data=[images], label=[labels], pad=batch.pad, index=batch.index), mix
