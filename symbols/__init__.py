"""Network registry: CLI name -> builder module with ``get_symbol(num_classes, num_layers, ...)``.

A family with several depths lists them in its module's ``IMAGENET_UNITS``; a fixed-depth network
declares its one ``DEPTH`` and accepts ``num_layers`` equal to it or None (:func:`fixed_depth`).
"""
import inspect

from symbols import se_inception_resnet_v2, se_inception_v4, se_resnet, se_resnext, senet_154
from symbols.cpu_fast import textbook_graph, training_graph
from symbols.layers import SMALL_IMAGE_MAX_SIDE, parse_image_shape

__all__ = ['NETWORKS', 'SMALL_IMAGE_MAX_SIDE', 'builder_options', 'fixed_depth', 'get_symbol',
           'min_image_size', 'parse_image_shape', 'textbook_graph', 'training_graph']

NETWORKS = {
    'se-inception-resnet-v2': se_inception_resnet_v2,
    'se-inception-v4': se_inception_v4,
    'se-resnet': se_resnet,
    'se-resnext': se_resnext,
    'senet-154': senet_154,
}


def builder_options(network):
    """Names of the keyword arguments that ``network``'s builder accepts (besides num_classes)."""
    if network not in NETWORKS:
        raise ValueError('unknown network %r; choose one of: %s'
                         % (network, ', '.join(sorted(NETWORKS))))
    params = inspect.signature(NETWORKS[network].get_symbol).parameters
    return [name for name, param in params.items()
            if name != 'num_classes' and param.kind is param.POSITIONAL_OR_KEYWORD]


def get_symbol(network, num_classes, **kwargs):
    """Build the registered ``network``; an unknown name raises ValueError listing the known ones."""
    builder_options(network)
    return NETWORKS[network].get_symbol(num_classes, **kwargs)


def min_image_size(network):
    """Smallest input height and width ``network`` accepts: its module's ``MIN_IMAGE_SIZE``, else 1.

    Trainers resize smaller images (e.g. the 32x32 Fashion-MNIST records) up to this size.
    """
    builder_options(network)
    return getattr(NETWORKS[network], 'MIN_IMAGE_SIZE', 1)


def fixed_depth(network):
    """The one depth of a fixed-depth ``network`` (its module's ``DEPTH``), or None for a family
    built at several depths. Trainers name a run after its depth only when this is None."""
    builder_options(network)
    return getattr(NETWORKS[network], 'DEPTH', None)
