"""Train SE-ResNet: --version 1 post-activation (the paper, default), 2 pre-activation (the original).

Examples::

    python train_se_resnet.py --data-type fashion-mnist --depth 20
    python train_se_resnet.py --gpus 0,1,2,3 --data-dir ./data/imagenet/ --depth 50 --version 1
"""
import sys

from senet import threads

threads.configure(sys.argv[1:])

from senet import fit  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)


def main(argv=None):
    return fit.main(argv, description=__doc__, network='se-resnet', version=1)


if __name__ == '__main__':
    sys.exit(main())
