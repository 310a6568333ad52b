"""Training and inference speed of this project's graphs against peers, in one run.

Measured on the CPU, each a median over timed batches after warm-up batches. OpenMP reads its thread
count when MXNet loads, so every configuration that needs another thread count than the run's
``--threads`` is measured in a child interpreter started with that ``OMP_NUM_THREADS``:

* SE-ResNeXt-50 32x4d, 224x224, batch 16: this project's graph (``Module``; training with NAG
  updates, inference bound ``for_training=False`` so that oneDNN fuses it) against GluonCV's
  ``se_resnext50_32x4d`` (random init, hybridized with static memory; ``Trainer`` with NAG), both on
  ``--threads`` threads; this project's graph split over ``--threads`` CPU contexts of one
  thread each (the trainers' ``--cpus``); and, training only, this project's graph in the
  grouped-convolution form that this CPU's 'auto' does not pick (:func:`other_conv_form`): without
  the plain-layout boundaries around its narrow grouped convolutions where oneDNN runs AVX-512
  kernels, with them elsewhere.
* SE-ResNet-50 against GluonCV's ``se_resnet50_v1``, the same way.
* The ``make train`` configuration (SE-ResNeXt-14 at 28x28, batch 128 over 2 CPU contexts of one
  thread) against its plain formulation: the same network built the textbook way
  (``symbols.cpu_fast.se_implementation('broadcast')`` and ``grouped_conv_implementation('grouped')``)
  on one context of ``--threads`` threads.
* SE-ResNeXt-29 with 8 groups at 32x32, batch 128 (the grouped small-image network), the same way.
* Scaling: the ``make train`` network's img/s against batch size (8, 16, 32, 64) on 1 and 2 threads
  and on 2 contexts of one thread.
* INT8: this project's SE-ResNeXt-50 (the trained parameters of its training row) quantized as
  ``quantize.py`` does it (``senet.quantization``, naive calibration on synthetic batches) and bound as
  ``score.py`` binds it, against its float32 inference.
* PyTorch: timm's ``seresnext50_32x4d`` (random init) in a child interpreter on ``--threads``
  threads (``torch.set_num_threads``), training (SGD with Nesterov momentum, the same step) and
  inference (``torch.inference_mode``) in float32 NCHW, float32 channels-last and bfloat16 autocast
  (channels-last): the framework a user would pick instead. Every SE-ResNeXt-50 row of this project,
  INT8 included, gets its ratio to each PyTorch row.

This project's rows do what its trainers do: training binds the fast graph (``'fast'`` SE, grouped
convolutions in the 'auto' form: between plain-layout boundaries where oneDNN runs AVX-512 kernels)
and inference binds the textbook graph that
checkpoints hold, with the same parameters (its forward pass is shorter, and oneDNN fuses it).

Each row gives img/s, the ratio to its peer, the achieved GFLOP/s (convolution and fully-connected
multiply-adds of the network x 2, and x 3 for a training step: forward, backward to the data and
to the weights) and that as a fraction of a dense 3x3 convolution's speed measured in the same run
(forward for inference rows, forward + backward for training rows).

Usage::

    python -m benchmarks.bench [--threads 2] [--output log/bench.json] [--quick] [--no-gluoncv] \\
        [--no-pytorch]

``make bench`` installs the peers (GluonCV from requirements-bench.txt; torch and timm from
requirements-test.txt, which includes it) and runs this.
"""
import argparse
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import time

import numpy as np

LOG = logging.getLogger('bench')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {
    'imagenet': dict(network='se-resnext', num_layers=50, num_group=32, image_shape=(3, 224, 224),
                     batch=16, classes=1000),
    'se-resnet-50': dict(network='se-resnet', num_layers=50, image_shape=(3, 224, 224), batch=16,
                         classes=1000),
    'make-train': dict(network='se-resnext', num_layers=14, num_group=32, image_shape=(3, 28, 28),
                       batch=128, classes=10),
    'small': dict(network='se-resnext', num_layers=29, num_group=8, image_shape=(3, 32, 32),
                  batch=128, classes=10),
}
"""SE-ResNeXt-50 32x4d at 224, SE-ResNet-50, the ``make train`` network (Makefile TRAIN_ARGS: trained
over 2 CPU contexts) and the grouped 32x32 SE-ResNeXt-29."""
IMAGENET = CONFIGS['imagenet']
SMALL = CONFIGS['small']
MAKE_TRAIN_CONTEXTS = 2
SCALING_BATCHES = (8, 16, 32, 64)

PEAK_CONV = dict(batch=16, channels=128, size=28)
"""Dense 3x3 convolution (same padding) whose speed is the reference 'peak' of the machine."""

FULL_RUN = dict(warmup=2, train_batches=5, infer_batches=10, calib_batches=2)
QUICK_RUN = dict(warmup=1, train_batches=2, infer_batches=2, calib_batches=1)
"""Batches per timing; ``calib_batches`` synthetic batches calibrate the INT8 row."""

PYTORCH_MODEL = 'seresnext50_32x4d'
"""timm's name of the peer of this project's SE-ResNeXt-50 32x4d (the same network)."""

PYTORCH_MODES = {
    'fp32': dict(channels_last=False, autocast=False, title='float32, NCHW'),
    'fp32-channels-last': dict(channels_last=True, autocast=False, title='float32, channels-last'),
    'bf16': dict(channels_last=True, autocast=True, title='bfloat16 autocast, channels-last'),
}
"""PyTorch configurations timed: memory format and ``torch.autocast('cpu', torch.bfloat16)``."""


def conv_fc_flops(sym, data_shape):
    """Multiply-adds x 2 of every Convolution and FullyConnected of ``sym`` for one forward pass."""
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=data_shape)
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(sym.tojson())['nodes']
    flops = 0
    for node in nodes:
        op, attrs = node['op'], node.get('attrs', {})
        if op not in ('Convolution', 'FullyConnected'):
            continue
        out_shape = shapes[node['name'] + '_output']
        source_id, output_index = node['inputs'][0][:2]
        source = nodes[source_id]
        if source['op'] == 'null':
            in_shape = shapes[source['name']]
        else:
            in_shape = shapes.get('%s_output' % source['name'],
                                  shapes.get('%s_output%d' % (source['name'], output_index)))
        if op == 'Convolution':
            kernel = [int(k) for k in attrs['kernel'].strip('()').split(',') if k.strip()]
            groups = int(attrs.get('num_group', 1))
            flops += 2 * int(np.prod(out_shape)) * in_shape[1] // groups * int(np.prod(kernel))
        else:
            flops += 2 * int(np.prod(out_shape)) * int(np.prod(in_shape[1:]))
    return flops


def median_time(step, warmup, batches, sync=None):
    """Median seconds of ``step()`` over ``batches`` calls after ``warmup`` calls; ``sync()`` waits
    for the work to finish (default MXNet's ``waitall``: its operators run asynchronously)."""
    if sync is None:
        import mxnet as mx
        sync = mx.nd.waitall
    times = []
    for index in range(warmup + batches):
        sync()
        tic = time.perf_counter()
        step()
        sync()
        if index >= warmup:
            times.append(time.perf_counter() - tic)
    return float(np.median(times))


def measure_peak(run):
    """GFLOP/s of a dense 3x3 convolution: forward (inference) and forward + backward."""
    import mxnet as mx
    spec = PEAK_CONV
    shape = (spec['batch'], spec['channels'], spec['size'], spec['size'])
    data = mx.sym.Variable('data')
    conv = mx.sym.Convolution(data=data, num_filter=spec['channels'], kernel=(3, 3), pad=(1, 1),
                              no_bias=True, name='peak_conv')
    flops = conv_fc_flops(conv, shape)
    rng = np.random.RandomState(0)
    infer = conv.simple_bind(mx.cpu(), grad_req='null', data=shape)
    train = conv.simple_bind(mx.cpu(), grad_req='write', data=shape)
    for exe in (infer, train):
        for array in exe.arg_dict.values():
            array[:] = rng.normal(0, 1, array.shape)
    out_grad = mx.nd.array(rng.normal(0, 1, train.outputs[0].shape))

    def train_step():
        train.forward(is_train=True)
        train.backward([out_grad])

    batches = max(run['infer_batches'], 5)
    forward = median_time(lambda: infer.forward(is_train=False), run['warmup'], batches)
    both = median_time(train_step, run['warmup'], batches)
    return {'forward_gflops': flops / forward / 1e9, 'train_gflops': 3 * flops / both / 1e9,
            'shape': list(shape)}


GRAPHS = {'fast': ('fast', 'auto'), 'broadcast': ('broadcast', 'grouped'),
          'fast-plain-layout': ('fast', 'plain-layout'), 'fast-grouped': ('fast', 'grouped')}
"""Graph name -> (SE formulation, grouped-convolution implementation) in symbols.cpu_fast: the
project's training graph, the textbook graph, and the training graph with and without the
plain-layout boundaries around narrow grouped convolutions (to measure what 'auto' picks)."""


def other_conv_form():
    """(graph name, row label) of the training graph in the grouped-convolution form that 'auto'
    does not pick on this CPU (:data:`GRAPHS`)."""
    from symbols import cpu_fast
    if cpu_fast.grouped_conv_form() == 'plain-layout':
        return 'fast-grouped', 'without layout boundaries'
    return 'fast-plain-layout', 'with layout boundaries'


def build_symbol(config, graph):
    """The network of ``config`` as the graph named ``graph`` (:data:`GRAPHS`)."""
    import symbols
    from symbols import cpu_fast
    se_impl, conv_impl = GRAPHS[graph]
    options = symbols.builder_options(config['network'])
    kwargs = {key: config[key] for key in ('num_layers', 'image_shape', 'num_group')
              if key in options and key in config}
    with cpu_fast.se_implementation(se_impl), cpu_fast.grouped_conv_implementation(conv_impl):
        return symbols.get_symbol(config['network'], config['classes'], **kwargs)


def synthetic_batch(config, seed=0):
    import mxnet as mx
    rng = np.random.RandomState(seed)
    shape = (config['batch'],) + tuple(config['image_shape'])
    return (mx.nd.array(rng.uniform(0, 255, shape)),
            mx.nd.array(rng.randint(0, config['classes'], config['batch'])))


def time_module(config, run, train_impl='fast', infer_impl='broadcast', contexts=1, int8=False):
    """(training s/batch, inference s/batch, INT8 inference s/batch) of ``config``'s network
    through ``Module``, each batch split over ``contexts`` CPU contexts. Training binds the graph
    built with ``train_impl``, inference the one built with ``infer_impl`` (:func:`build_symbol`;
    None: not timed), with the trained parameters: the defaults are what the trainers do, training
    the fast graph and checkpointing the textbook one. The INT8 time (:func:`time_int8`) is None
    unless ``int8``."""
    import mxnet as mx
    data, label = synthetic_batch(config)
    batch = mx.io.DataBatch(data=[data], label=[label])
    data_shapes = [('data', data.shape)]
    label_shapes = [('softmax_label', label.shape)]
    devices = [mx.cpu(i) for i in range(contexts)]
    mx.random.seed(0)
    train = mx.mod.Module(build_symbol(config, train_impl), context=devices)
    train.bind(data_shapes=data_shapes, label_shapes=label_shapes)
    train.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2))
    train.init_optimizer(optimizer='nag', optimizer_params=dict(
        learning_rate=0.01, momentum=0.9, wd=1e-4, rescale_grad=1.0 / config['batch']))

    def train_step():
        train.forward_backward(batch)
        train.update()

    train_time = median_time(train_step, run['warmup'], run['train_batches'])
    if infer_impl is None:
        return train_time, None, None
    arg_params, aux_params = train.get_params()
    infer = mx.mod.Module(build_symbol(config, infer_impl), context=devices)
    infer.bind(data_shapes=data_shapes, label_shapes=label_shapes, for_training=False)
    infer.set_params(arg_params, aux_params)
    infer_time = median_time(lambda: infer.forward(batch, is_train=False), run['warmup'],
                             run['infer_batches'])
    int8_time = time_int8(config, run, arg_params, aux_params) if int8 else None
    return train_time, infer_time, int8_time


def time_int8(config, run, arg_params, aux_params):
    """Inference s/batch of ``config``'s textbook graph with these parameters, quantized to INT8 as
    quantize.py does it (:func:`senet.quantization.quantize`, naive calibration on
    ``run['calib_batches']`` synthetic batches) and bound as score.py and predict.py bind it."""
    import mxnet as mx

    from senet import inference, quantization
    calib = np.concatenate([synthetic_batch(config, seed)[0].asnumpy()
                            for seed in range(1, 1 + run['calib_batches'])])
    qsym, qarg, qaux = quantization.quantize(build_symbol(config, 'broadcast'), arg_params,
                                             aux_params, calib, config['batch'])
    data, _ = synthetic_batch(config)
    mod = inference.inference_module(qsym, qarg, qaux, data.shape)
    batch = mx.io.DataBatch([data])
    return median_time(lambda: mod.forward(batch, is_train=False), run['warmup'],
                       run['infer_batches'])


def import_timm():
    """timm, beside the CPU build of torch. PyPI's torchvision cannot register its compiled
    operators next to it ("operator torchvision::nms does not exist"); timm imports torchvision,
    which skips the registration when these two modules exist."""
    import types
    for name in ('torchvision._meta_registrations', 'torchvision._autograd_registrations'):
        sys.modules.setdefault(name, types.ModuleType(name))
    import timm
    return timm


def time_pytorch(config, run, threads, modes=tuple(PYTORCH_MODES)):
    """[{mode: (training s/batch, inference s/batch)}, torch version] of timm's
    :data:`PYTORCH_MODEL` on ``threads`` threads, for each of :data:`PYTORCH_MODES` in ``modes``."""
    import torch
    torch.set_num_threads(threads)
    rng = np.random.RandomState(0)
    shape = (config['batch'],) + tuple(config['image_shape'])
    images = torch.from_numpy(rng.uniform(0, 1, shape).astype(np.float32))
    labels = torch.from_numpy(rng.randint(0, config['classes'], config['batch']))
    times = {mode: time_pytorch_mode(config, run, PYTORCH_MODES[mode], images, labels)
             for mode in modes}
    return times, torch.__version__


def time_pytorch_mode(config, run, spec, images, labels):
    """(training s/batch, inference s/batch) of a fresh :data:`PYTORCH_MODEL` with the same random
    initialisation in the configuration ``spec`` (:data:`PYTORCH_MODES`). Training is the step of
    this project's rows: forward, cross-entropy, backward, SGD with Nesterov momentum 0.9 and
    weight decay 1e-4; inference runs the model in eval mode under ``torch.inference_mode``."""
    import torch
    torch.manual_seed(0)
    model = import_timm().create_model(PYTORCH_MODEL, pretrained=False,
                                       num_classes=config['classes'])
    if spec['channels_last']:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def autocast():
        return torch.autocast('cpu', dtype=torch.bfloat16, enabled=spec['autocast'])

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.inference_mode(), autocast():
            model(images)

    model.train()
    train_time = median_time(train_step, run['warmup'], run['train_batches'], sync=_no_sync)
    model.eval()
    infer_time = median_time(infer_step, run['warmup'], run['infer_batches'], sync=_no_sync)
    return train_time, infer_time


def _no_sync():
    """PyTorch's CPU operators return when done: nothing to wait for."""


def time_in_child(threads, config_name, run, contexts=1, train_impl='fast', infer_impl='broadcast',
                  batch=None, framework='mxnet'):
    """:func:`time_module` of ``CONFIGS[config_name]`` (``batch`` overriding its batch size) in a
    child interpreter whose OpenMP has ``threads`` threads; with ``framework='pytorch'``,
    :func:`time_pytorch` there instead (PyTorch and MXNet bring their own OpenMP runtimes, which
    should not share a process)."""
    spec = dict(config=config_name, run=run, contexts=contexts, train_impl=train_impl,
                infer_impl=infer_impl, batch=batch, framework=framework, threads=threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    result = subprocess.run([sys.executable, '-m', 'benchmarks.bench', '--measure',
                             json.dumps(spec)], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr.strip() or 'no output').splitlines()
        raise RuntimeError('measuring %s in a child process failed: %s' % (spec, lines[-1]))
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_spec(spec):
    """The child's side of :func:`time_in_child`: [training s/batch, inference s/batch], or for
    PyTorch [{mode: [training s/batch, inference s/batch]}, torch version]."""
    config = dict(CONFIGS[spec['config']])
    if spec.get('batch'):
        config['batch'] = spec['batch']
    if spec.get('framework') == 'pytorch':
        return list(time_pytorch(config, spec['run'], spec['threads']))
    return list(time_module(config, spec['run'], spec['train_impl'], spec['infer_impl'],
                            contexts=spec['contexts'])[:2])


def import_gluoncv():
    """The gluoncv package. GluonCV 0.10 raises RuntimeError on import beside torch >= 2
    (gluoncv/check.py), which make test installs; it needs only MXNet, so torch is hidden while it
    imports."""
    saved = sys.modules.get('torch')
    sys.modules['torch'] = None
    try:
        import gluoncv
    finally:
        if saved is None:
            del sys.modules['torch']
        else:
            sys.modules['torch'] = saved
    return gluoncv


def time_gluoncv(config, run, model='se_resnext50_32x4d'):
    """(training s/batch, inference s/batch, forward FLOPs) of GluonCV's ``model``."""
    import mxnet as mx
    get_model = import_gluoncv().model_zoo.get_model
    data, label = synthetic_batch(config)
    mx.random.seed(0)
    net = get_model(model, pretrained=False, classes=config['classes'])
    net.initialize(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2))
    flops = conv_fc_flops(net(mx.sym.Variable('data')), data.shape)
    net.hybridize(static_alloc=True, static_shape=True)
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = mx.gluon.Trainer(net.collect_params(), 'nag',
                               dict(learning_rate=0.01, momentum=0.9, wd=1e-4))

    def train_step():
        with mx.autograd.record():
            loss = loss_fn(net(data), label)
        loss.backward()
        trainer.step(config['batch'])

    train_time = median_time(train_step, run['warmup'], run['train_batches'])
    infer_time = median_time(lambda: net(data), run['warmup'], run['infer_batches'])
    return train_time, infer_time, flops


def row(name, config, seconds, flops, peak, peer=None):
    """One result: img/s, GFLOP/s and its fraction of ``peak``, ratio to ``peer`` (seconds)."""
    result = {'network': name, 'batch': config['batch'],
              'input': 'x'.join(map(str, config['image_shape'][1:])),
              'img_per_sec': config['batch'] / seconds, 'seconds_per_batch': seconds,
              'gflops': flops / seconds / 1e9, 'fraction_of_peak': flops / seconds / 1e9 / peak}
    if peer is not None:
        result['speedup_vs_peer'] = peer / seconds
    return result


def run_benchmarks(args):
    import mxnet as mx
    run = QUICK_RUN if args.quick else FULL_RUN
    configs = {name: dict(config, batch=2 if config['classes'] == 1000 else 16) if args.quick
               else config for name, config in CONFIGS.items()}
    threads = args.threads
    results = {'threads': threads, 'mxnet': mx.__version__, 'python': platform.python_version(),
               'machine': platform.machine(), 'quick': args.quick, 'run': run}
    LOG.info('peak: dense 3x3 convolution %s', PEAK_CONV)
    peak = measure_peak(run)
    results['peak'] = peak
    rows = {'train': [], 'infer': [], 'scaling': []}
    ours, theirs = [], []  # this project's SE-ResNeXt-50 rows and PyTorch's, compared at the end

    def add(kind, name, config, seconds, flops, peer=None):
        reference = peak['train_gflops'] if kind == 'train' else peak['forward_gflops']
        rows[kind].append(row(name, config, seconds, (3 if kind == 'train' else 1) * flops,
                              reference, peer))
        return kind, rows[kind][-1]

    def add_pair(name, config, times, flops, peer=None):
        return [add(kind, name, config, times[index], flops,
                    peer[index] if peer is not None else None)
                for index, kind in enumerate(('train', 'infer')) if times[index] is not None]

    split = '%d contexts x 1 thread' % threads
    # ImageNet-sized networks against GluonCV's.
    for key, gluon_model, title in (('imagenet', 'se_resnext50_32x4d', 'SE-ResNeXt-50 32x4d'),
                                    ('se-resnet-50', 'se_resnet50_v1', 'SE-ResNet-50')):
        config = configs[key]
        flops = conv_fc_flops(build_symbol(config, 'broadcast'),
                              (config['batch'],) + config['image_shape'])
        gluon = None
        if args.gluoncv:
            LOG.info('GluonCV %s, batch %d', gluon_model, config['batch'])
            gluon = time_gluoncv(config, run, gluon_model)
            add_pair('GluonCV %s (hybridized)' % gluon_model, config, gluon, gluon[2])
        LOG.info('this project %s, batch %d%s', title, config['batch'],
                 ', float32 and INT8' if key == 'imagenet' else '')
        times = time_module(config, run, int8=key == 'imagenet')
        compared = add_pair('%s (this project)' % title, config, times, flops, gluon)
        if threads > 1:
            LOG.info('this project %s, %s', title, split)
            compared += add_pair('%s (this project, %s)' % (title, split), config,
                                 time_in_child(1, key, run, contexts=threads), flops, gluon)
        if key != 'imagenet':
            continue
        other, label = other_conv_form()
        LOG.info('this project %s %s, training', title, label)
        add('train', '%s (this project %s)' % (title, label), config,
            time_module(config, run, train_impl=other, infer_impl=None)[0], flops,
            gluon[0] if gluon is not None else None)
        compared.append(add('infer', '%s INT8 (this project, quantize.py; peer: its float32)'
                            % title, config, times[2], flops, times[1]))
        ours.extend(compared)
        if args.pytorch:
            LOG.info('PyTorch timm %s, batch %d, %s', PYTORCH_MODEL, config['batch'],
                     ', '.join(PYTORCH_MODES))
            torch_times, version = time_in_child(threads, key, run, framework='pytorch')
            results['pytorch'] = dict(version=version, model=PYTORCH_MODEL, threads=threads)
            for mode, mode_times in torch_times.items():
                for kind, item in add_pair('PyTorch %s timm %s (%s)' % (
                        version, PYTORCH_MODEL, PYTORCH_MODES[mode]['title']), config,
                        mode_times, flops):
                    theirs.append((kind, mode, item))

    # Small-image networks against their plain formulation on one context of --threads threads.
    for key, title in (('make-train', 'make-train SE-ResNeXt-14'),
                       ('small', 'SE-ResNeXt-29 8 groups')):
        config = configs[key]
        flops = conv_fc_flops(build_symbol(config, 'broadcast'),
                              (config['batch'],) + config['image_shape'])
        LOG.info('%s, textbook graph, batch %d', title, config['batch'])
        plain = time_module(config, run, train_impl='broadcast')
        add_pair('%s (textbook graph)' % title, config, plain, flops)
        LOG.info('%s, this project, batch %d', title, config['batch'])
        add_pair('%s (this project)' % title, config, time_module(config, run), flops, plain)
        if threads > 1:
            LOG.info('%s, this project, %s', title, split)
            add_pair('%s (this project, %s)' % (title, split), config,
                     time_in_child(1, key, run, contexts=threads), flops, plain)

    # Scaling of the make-train network with batch size, threads and contexts.
    for batch in SCALING_BATCHES[:2] if args.quick else SCALING_BATCHES:
        for setup, omp, contexts in (('1 thread', 1, 1), ('2 threads', 2, 1),
                                     ('2 contexts x 1 thread', 1, 2)):
            LOG.info('scaling: make-train network, batch %d, %s', batch, setup)
            train_time, infer_time = time_in_child(omp, 'make-train', run, contexts=contexts,
                                                   batch=batch)
            rows['scaling'].append({'batch': batch, 'setup': setup,
                                    'train_img_per_sec': batch / train_time,
                                    'infer_img_per_sec': batch / infer_time})
    results.update(rows)
    results['versus_pytorch'] = versus(ours, theirs)
    return results


def versus(ours, theirs):
    """This project's rows against each PyTorch row of the same kind: [{kind, network,
    img_per_sec, ratios: {PyTorch mode: this row's img/s / PyTorch's}}]."""
    return [dict(kind=kind, network=item['network'], img_per_sec=item['img_per_sec'],
                 ratios={mode: item['img_per_sec'] / peer['img_per_sec']
                         for peer_kind, mode, peer in theirs if peer_kind == kind})
            for kind, item in ours if any(peer_kind == kind for peer_kind, _, _ in theirs)]


def format_table(results):
    lines = ['threads %d, MXNet %s; peak dense 3x3 conv %s: forward %.0f GFLOP/s, forward + '
             'backward %.0f GFLOP/s' % (results['threads'], results['mxnet'],
                                        'x'.join(map(str, results['peak']['shape'])),
                                        results['peak']['forward_gflops'],
                                        results['peak']['train_gflops'])]
    width = max([60] + [len(item['network']) for kind in ('train', 'infer')
                        for item in results[kind]])
    header = '%-*s %5s %7s %9s %8s %8s %7s' % (width, 'network', 'batch', 'input', 'img/s',
                                                'vs peer', 'GFLOP/s', 'of peak')
    for kind, title in (('train', 'training (forward + backward + update)'),
                        ('infer', 'inference')):
        lines += ['', title, header, '-' * len(header)]
        for item in results[kind]:
            ratio = item.get('speedup_vs_peer')
            lines.append('%-*s %5d %7s %9.2f %8s %8.1f %6.1f%%' % (
                width, item['network'], item['batch'], item['input'], item['img_per_sec'],
                '%.2fx' % ratio if ratio else '', item['gflops'], 100 * item['fraction_of_peak']))
    if results.get('versus_pytorch'):
        modes = list(dict.fromkeys(mode for item in results['versus_pytorch']
                                   for mode in item['ratios']))
        torch = results.get('pytorch', {})
        lines += ['', 'against PyTorch %s timm %s: img/s of the row / img/s of PyTorch in %s' % (
            torch.get('version', '?'), torch.get('model', PYTORCH_MODEL), '; '.join(
                '%s = %s' % (mode, PYTORCH_MODES[mode]['title']) for mode in modes)),
            '%-*s %s' % (width + 6, '', ' '.join('%18s' % mode for mode in modes))]
        for item in results['versus_pytorch']:
            lines.append('%-5s %-*s %s' % (item['kind'], width, item['network'], ' '.join(
                '%18s' % ('%.2fx' % item['ratios'][mode] if mode in item['ratios'] else '')
                for mode in modes)))
    if results.get('scaling'):
        lines += ['', 'scaling: make-train network, img/s (training / inference)',
                  '%-24s %s' % ('setup', ' '.join('%15s' % ('batch %d' % b) for b in
                                                  sorted({r['batch'] for r in results['scaling']})))]
        for setup in dict.fromkeys(item['setup'] for item in results['scaling']):
            cells = ['%7.1f / %5.0f' % (item['train_img_per_sec'], item['infer_img_per_sec'])
                     for item in results['scaling'] if item['setup'] == setup]
            lines.append('%-24s %s' % (setup, ' '.join('%15s' % cell for cell in cells)))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2, help='OpenMP threads (OMP_NUM_THREADS)')
    parser.add_argument('--output', default=os.path.join('log', 'bench.json'),
                        help='JSON file for the results (its directory is created)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny batches and few repetitions: checks that the script works')
    parser.add_argument('--no-gluoncv', dest='gluoncv', action='store_false',
                        help='skip the GluonCV peer (needs requirements-bench.txt)')
    parser.add_argument('--no-pytorch', dest='pytorch', action='store_false',
                        help='skip the PyTorch peer (torch and timm, from requirements-test.txt)')
    parser.add_argument('--measure', help=argparse.SUPPRESS)  # a child's job (time_in_child)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure_spec(json.loads(args.measure))))
        return 0
    # MXNet reads the thread count when it is imported.
    os.environ['OMP_NUM_THREADS'] = str(args.threads)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    if args.gluoncv:
        try:
            import_gluoncv()
        except ImportError:
            parser.error('gluoncv is not installed: pip install -r requirements-bench.txt '
                         '(make bench does), or pass --no-gluoncv')
    if args.pytorch and not all(importlib.util.find_spec(name) for name in ('torch', 'timm')):
        parser.error('torch and timm are not installed: pip install --no-deps -r '
                     'requirements-test.txt (make bench does), or pass --no-pytorch')
    tic = time.perf_counter()
    results = run_benchmarks(args)
    results['seconds'] = time.perf_counter() - tic
    print(format_table(results))
    directory = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(directory, exist_ok=True)
    with open(args.output, 'w') as stream:
        json.dump(results, stream, indent=1)
    LOG.info('wrote %s (%.0f s)', args.output, results['seconds'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
