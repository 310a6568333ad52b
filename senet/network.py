"""The network a run trains and the one it checkpoints, built from the parsed flags.

Checkpoints hold the textbook graph (``symbols.textbook_graph``). On the CPU training binds the
default fast forms, which avoid oneDNN's slow paths in MXNet 1.9.1, with the same parameters;
with ``--gpus`` it binds the textbook graph as well, since those paths do not exist there.
"""
import symbols
from symbols import textbook_graph, training_graph

NETWORK_FLAGS = {'num_layers': 'depth', 'image_shape': 'image_shape', 'num_group': 'num_group',
                 'drop_out': 'drop_out', 'bn_mom': 'bn_mom', 'workspace': 'workspace',
                 'version': 'version', 'widen_factor': 'widen_factor'}
"""Builder keyword -> attribute of the parsed arguments; each network gets those it accepts."""


def build_symbol(args):
    """The symbol of ``args.network`` from the flags its builder accepts (symbols.builder_options)."""
    accepted = symbols.builder_options(args.network)
    kwargs = {key: getattr(args, flag) for key, flag in NETWORK_FLAGS.items()
              if key in accepted and getattr(args, flag, None) is not None}
    return symbols.get_symbol(args.network, args.num_classes, **kwargs)


def training_symbols(args, saved=None):
    """The graph to train and the graph to checkpoint, with the same parameters.

    Parameters
    ----------
    args : argparse.Namespace
        Resolved flags: the network, its options, ``image_shape`` and ``gpus``.
    saved : mx.sym.Symbol, optional
        A textbook graph to use instead of ``args.network``'s (fine-tune.py: a checkpoint's
        network with a new classifier).

    Returns
    -------
    tuple
        (training graph, textbook graph).

    Raises
    ------
    ValueError
        When the builder rejects the flags (an unsupported depth, groups that do not divide...).
    """
    if saved is not None:
        if args.gpus:
            return saved, saved
        return training_graph(saved, (1,) + tuple(args.image_shape)), saved
    with textbook_graph():
        saved = build_symbol(args)
    return (saved if args.gpus else build_symbol(args)), saved
