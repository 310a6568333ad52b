"""Write the symbol JSON of every ImageNet network to ``pretrained/imagenet/<name>-symbol.json``.

Run from the repository root: ``python -m pretrained.make_symbols``. The files are what the
builders produce for 1000 classes at the networks' native input size; ``tests/test_pretrained.py``
fails when a builder's output no longer matches its file (rerun this script after a deliberate
change). Networks whose family is not in the registry (``symbols.NETWORKS``) are skipped.
"""
import json
import logging
import os

import symbols
from symbols import textbook_graph

DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'imagenet')

NUM_CLASSES = 1000

IMAGENET_NETWORKS = {
    'se-resnext-50-32x4d': ('se-resnext', dict(num_layers=50, num_group=32)),
    'se-resnext-101-32x4d': ('se-resnext', dict(num_layers=101, num_group=32)),
    'se-resnet-50': ('se-resnet', dict(num_layers=50)),
    'se-resnet-101': ('se-resnet', dict(num_layers=101)),
    'se-resnet-152': ('se-resnet', dict(num_layers=152)),
    'se-inception-v4': ('se-inception-v4', dict(image_shape=(3, 299, 299))),
    'se-inception-resnet-v2': ('se-inception-resnet-v2', dict(image_shape=(3, 299, 299))),
    'senet-154': ('senet-154', {}),
}
"""File name -> (registry network, builder arguments); the builders' defaults for the rest."""


def available():
    """The entries of :data:`IMAGENET_NETWORKS` whose network is registered."""
    return {name: spec for name, spec in IMAGENET_NETWORKS.items()
            if spec[0] in symbols.NETWORKS}


def symbol_path(name, directory=DIRECTORY):
    return os.path.join(directory, name + '-symbol.json')


def symbol_json(name):
    """The JSON text the builder produces for ``name`` (MXNet's ``Symbol.tojson``), in the textbook
    form that checkpoints hold (symbols.textbook_graph)."""
    network, kwargs = IMAGENET_NETWORKS[name]
    with textbook_graph():
        return symbols.get_symbol(network, NUM_CLASSES, **kwargs).tojson()


def main(directory=DIRECTORY):
    os.makedirs(directory, exist_ok=True)
    networks = available()
    for stale in sorted(os.listdir(directory)):
        if stale.endswith('-symbol.json') and stale[:-len('-symbol.json')] not in networks:
            os.remove(os.path.join(directory, stale))
            logging.info('removed %s (no such network)', stale)
    for name in networks:
        text = symbol_json(name)
        nodes = json.loads(text)['nodes']
        with open(symbol_path(name, directory), 'w') as stream:
            stream.write(text + '\n')
        logging.info('%s: %d nodes', symbol_path(name, directory), len(nodes))
    return 0


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    raise SystemExit(main())
