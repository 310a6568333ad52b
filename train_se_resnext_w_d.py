"""Train SE-ResNeXt ("w_d": with dropout before the classifier, --drop-out).

Examples::

    python train_se_resnext_w_d.py --data-type fashion-mnist --depth 29 --num-group 8
    python train_se_resnext_w_d.py --gpus 0,1,2,3 --data-dir ./data/imagenet/ --batch-size 256
"""
import sys

from senet import threads

threads.configure(sys.argv[1:])

from senet import fit  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)


def main(argv=None):
    return fit.main(argv, description=__doc__, network='se-resnext')


if __name__ == '__main__':
    sys.exit(main())
