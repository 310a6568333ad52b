"""Network registry: CLI name -> builder module with ``get_symbol(num_classes, num_layers, ...)``."""
from symbols import se_resnext

NETWORKS = {
    'se-resnext': se_resnext,
}


def get_symbol(network, num_classes, **kwargs):
    """Build the registered ``network``; an unknown name raises ValueError listing the known ones."""
    if network not in NETWORKS:
        raise ValueError('unknown network %r; choose one of: %s'
                         % (network, ', '.join(sorted(NETWORKS))))
    return NETWORKS[network].get_symbol(num_classes, **kwargs)
