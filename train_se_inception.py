"""Train SE-Inception-v4 or SE-Inception-ResNet-v2 (``--network``).

Defaults are the original repository's for these networks: 224x224 crops, a total batch of 384 over
the devices and the shared ImageNet schedule, with dropout 0.2 before the classifier (TF-slim's).
Both networks need inputs of at least 75x75 pixels; smaller images are resized up by the data
iterator.

Examples::

    python train_se_inception.py --network se-inception-v4 --gpus 0,1,2,3 --data-dir ./data/imagenet/
    python train_se_inception.py --network se-inception-resnet-v2 --data-type fashion-mnist \\
        --batch-size 32
"""
import sys

from senet import threads

threads.configure(sys.argv[1:])

from senet import fit  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)

NETWORKS = ('se-inception-v4', 'se-inception-resnet-v2')
"""The registry networks this trainer offers as --network."""

PRESETS = dict(network='se-inception-v4', batch_size=384, drop_out=0.2)
"""Defaults of this trainer, applied before parsing (the other flags are the shared trainer's)."""


def main(argv=None):
    return fit.main(argv, description=__doc__, networks=NETWORKS, **PRESETS)


if __name__ == '__main__':
    sys.exit(main())
