"""The README and docs/ against what the repository really does.

* The inference snippet of docs/python.md (linked from the README) runs as written, paths aside,
  on a short run of the Makefile's ``make train`` configuration (its ``TRAIN_ARGS``, with fewer
  examples and one epoch), and on the shipped ``pretrained/se-resnext-fashion-mnist-14``. It must
  feed the network exactly what the network saw in training (its predictions equal those on the
  ImageRecordIter's batches) and score what ``score.py`` scores on the same test images.
* Every shell command in the README, the changelog and docs/ names a script, module and flags that
  exist (each ``--flag`` appears in the script's ``--help``) or a make target of the Makefile; every
  relative link and every file path they name exists.
"""
import os
import re
import shlex
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

import data
from tests.conftest import ROOT, run_script

MODEL_DIR = 'pretrained/se-resnext-fashion-mnist-14'
"""The shipped copy of a ``make train`` run, as the card snippet names it."""
README_LOG = 'log/se-resnext-fashion-mnist-14.log'
"""The log ``make train`` writes, as the log snippet names it."""
TRAIN_EXAMPLES = 4096
"""Training images of the short run: one epoch of them takes seconds, and the network learns."""
TEST_IMAGES = 500
"""Fashion-MNIST test images the short run's snippet classifies and score.py scores."""
SHIPPED_IMAGES = 300
SHIPPED_OFFSET = 1000
"""The shipped model classifies test images 1000-1299 (not the short run's)."""
PYTHON_DOC = 'docs/python.md'
"""The inference snippet, which the README links to."""
DOCUMENTS = ['README.md', 'CHANGELOG.md'] + sorted(
    'docs/' + name for name in os.listdir(os.path.join(ROOT, 'docs')) if name.endswith('.md'))


def read(document):
    with open(os.path.join(ROOT, document)) as stream:
        return stream.read()


# --- the Makefile's make train ---

def makefile_text():
    return read('Makefile').replace('\\\n', ' ')


def makefile_variable(name):
    """The words of a ``NAME ?= ...`` (or ``=``, ``:=``) assignment of the Makefile."""
    match = re.search(r'^%s\s*[?:]?=\s*(.*)$' % re.escape(name), makefile_text(), re.M)
    assert match, 'the Makefile defines no %s' % name
    return shlex.split(match.group(1))


def makefile_targets():
    return set(re.findall(r'^([A-Za-z][\w.-]*)\s*:(?!=)', makefile_text(), re.M))


def flag_value(args, flag):
    return args[args.index(flag) + 1]


def with_flags(args, **overrides):
    """``args`` with the flags given as keywords (``num_epochs='1'``) replaced or appended."""
    args = list(args)
    for name, value in overrides.items():
        flag = '--' + name.replace('_', '-')
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


def pack_fashion_mnist(directory, split, count, offset=0):
    """The ``split``'s images ``offset``.. ``offset + count`` packed as data.py packs the full set
    (32x32 records, 3 channels, manifest), so the trainer takes the directory as packed."""
    images, labels = data.load_fashion_mnist(split)
    chosen = slice(offset, offset + count)
    name = data.DATA_TYPES['fashion-mnist'][split]
    data.write_indexed_rec(os.path.join(str(directory), name), data.to_rgb32(images[chosen]),
                           labels[chosen])
    return os.path.join(str(directory), name), images[chosen], labels[chosen]


@pytest.fixture(scope='module')
def make_train_run(tmp_path_factory):
    """A short ``make train``: TRAIN_ARGS, one epoch of TRAIN_EXAMPLES images, files under tmp."""
    root = tmp_path_factory.mktemp('make-train')
    data_dir = root / 'data' / 'fashion-mnist'
    pack_fashion_mnist(data_dir, 'train', TRAIN_EXAMPLES)
    val_rec, images, labels = pack_fashion_mnist(data_dir, 'val', TEST_IMAGES)
    train_args = makefile_variable('TRAIN_ARGS')
    assert flag_value(train_args, '--data-type') == 'fashion-mnist'
    prefix = str(root / 'model' / 'se-resnext-fashion-mnist-14')
    log = str(root / README_LOG)
    args = with_flags(train_args, num_epochs='1', num_examples=str(TRAIN_EXAMPLES),
                      data_dir=str(data_dir), model_prefix=prefix, log_file=log)
    result = run_script('train_se_resnext_w_d.py', args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(prefix + '-0001.params') and os.path.isfile(prefix + '-symbol.json')
    return dict(prefix=prefix, log=log, val_rec=val_rec, images=images, labels=labels,
                image_shape=tuple(int(side) for side in flag_value(train_args, '--image-shape')
                                  .split(',')))


# --- the inference snippet (docs/python.md) ---

def inference_snippets():
    """The three python blocks of docs/python.md's first part: {'card': ..., 'log': ..., 'classify': ...}
    (its last section, the released model's snippet, is tests/test_compat.py's)."""
    section = read(PYTHON_DOC).split('\n## ', 1)[0]
    blocks = re.findall(r'```python\n(.*?)```', section, re.S)
    snippets = {}
    for block in blocks:
        kind = ('card' if 'card.json' in block else 'log' if ' arguments: ' in block
                else 'classify' if 'def classify' in block else None)
        assert kind and kind not in snippets, block
        snippets[kind] = block
    assert sorted(snippets) == ['card', 'classify', 'log']
    return snippets


def substitute(code, literal, path):
    """``code`` with the quoted path ``literal`` replaced by ``path``; the snippet must use it."""
    quoted = repr(literal)
    assert quoted in code, 'the snippet no longer names %s' % quoted
    return code.replace(quoted, repr(path))


def run_snippets(*codes):
    namespace = {}
    for code in codes:
        exec(compile(code, PYTHON_DOC, 'exec'), namespace)
    return namespace


def classify_files(namespace, images, directory):
    """The snippet's ``classify`` on each 28x28 gray image written as a PNG file, as the data set's."""
    predictions = []
    for i, image in enumerate(images):
        path = str(directory / ('%d.png' % i))
        cv2.imwrite(path, image)
        label, prob = namespace['classify'](path)
        assert 0.0 < prob <= 1.0 and np.isfinite(prob)
        predictions.append(label)
    return np.array(predictions)


def iterator_predictions(mod, rec_path, image_shape):
    """(predictions, labels) of the bound module on the records as ImageRecordIter feeds them in
    training and validation (batch 1, no augmentation)."""
    predictions, labels = [], []
    for batch in data.make_rec_iter(rec_path, image_shape, 1):
        mod.forward(mx.io.DataBatch(batch.data), is_train=False)
        predictions.append(int(mod.get_outputs()[0].asnumpy()[0].argmax()))
        labels.append(int(batch.label[0].asnumpy()[0]))
    return np.array(predictions), np.array(labels)


def score_correct(args):
    """(correct predictions, images) that score.py reports for ``args``."""
    result = run_script('score.py', args, timeout=300)
    assert result.returncode == 0, result.stderr
    top1, images = re.search(r'top-1 ([0-9.]+)\s.*?(\d+) images in', result.stdout).groups()
    return float(top1) * int(images), int(images)


def test_inference_snippet_on_a_make_train_checkpoint(make_train_run, tmp_path):
    """The log snippet finds the run's checkpoint and input shape; classify scores as score.py."""
    snippets = inference_snippets()
    code = substitute(snippets['log'], README_LOG, make_train_run['log'])
    namespace = run_snippets(code, snippets['classify'])
    assert namespace['prefix'] == make_train_run['prefix'] and namespace['epoch'] == 1
    assert namespace['image_shape'] == make_train_run['image_shape'] == (3, 28, 28)

    predictions = classify_files(namespace, make_train_run['images'], tmp_path)
    labels = make_train_run['labels']
    correct = int((predictions == labels).sum())
    assert correct / len(labels) > 0.4  # chance is 0.1; images unseen in training

    fed, fed_labels = iterator_predictions(namespace['mod'], make_train_run['val_rec'],
                                           namespace['image_shape'])
    assert (fed_labels == labels).all()
    assert (predictions == fed).all(), 'the snippet prepares images unlike the training iterator'

    scored, images = score_correct([
        '--prefix', make_train_run['prefix'], '--epoch', '1', '--image-shape',
        ','.join(map(str, make_train_run['image_shape'])), '--data-val', make_train_run['val_rec']])
    assert images == TEST_IMAGES
    assert abs(correct - scored) <= 1, (correct, scored)


def test_inference_snippet_on_the_shipped_model(tmp_path, monkeypatch):
    """The card snippet, as written from the repository root, classifies real test images well."""
    snippets = inference_snippets()
    monkeypatch.chdir(ROOT)
    namespace = run_snippets(snippets['card'], snippets['classify'])
    assert namespace['image_shape'] == (3, 28, 28) and namespace['epoch'] == 5

    val_rec, images, labels = pack_fashion_mnist(tmp_path / 'data', 'val', SHIPPED_IMAGES,
                                                 SHIPPED_OFFSET)
    predictions = classify_files(namespace, images, tmp_path)
    correct = int((predictions == labels).sum())
    assert correct / SHIPPED_IMAGES > 0.85, correct  # the card: 93.26 % on all 10,000

    fed, _ = iterator_predictions(namespace['mod'], val_rec, namespace['image_shape'])
    assert (predictions == fed).all()
    scored, count = score_correct(['--model', MODEL_DIR, '--data-val', val_rec])
    assert count == SHIPPED_IMAGES and abs(correct - scored) <= 1, (correct, scored)


# --- the commands of the README, the changelog and docs/ ---

PYTHONS = ('python', 'python3', '.venv/bin/python')
SCRIPTS = ('im2rec_prep.sh', './im2rec_prep.sh')
SEPARATORS = ('|', '||', '&&', ';', '>', '>>', '2>', '<')
FLAG = re.compile(r'^--?[A-Za-z][\w-]*')
ASSIGNMENT = re.compile(r'^[A-Z_][A-Z0-9_]*=')
HELP = {}


def bash_lines(document):
    """The command lines of a document's ```bash blocks, continuation lines joined."""
    text = read(document)
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            words = shlex.split(line, comments=True)
            if words:
                yield line.strip(), words


def help_text(program):
    """The --help output of a python script or ``-m`` module (or im2rec_prep.sh's usage line)."""
    if program not in HELP:
        if program.endswith('.sh'):
            command = ['bash', os.path.join(ROOT, program)]
        elif program.endswith('.py'):
            command = [sys.executable, '-W', 'ignore', os.path.join(ROOT, program), '--help']
        else:
            command = [sys.executable, '-W', 'ignore', '-m', program, '--help']
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
        HELP[program] = result.stdout + result.stderr
    return HELP[program]


def check_flags(program, words, where):
    """Every flag among ``words`` appears in ``program``'s help as a whole word."""
    flags = [FLAG.match(word).group(0) for word in words if FLAG.match(word)]
    if flags:
        text = help_text(program)
        for flag in flags:
            assert re.search(r'(?<![\w-])%s(?![\w-])' % re.escape(flag), text), \
                '%s: %s has no flag %s' % (where, program, flag)
    return len(flags)


def split_commands(words):
    """[(program, its words)] of one command line: a launcher's command is a program of its own."""
    commands, current = [], None
    i = 0
    while i < len(words):
        word = words[i]
        if word in SEPARATORS:
            current = None
            i += 2 if word.startswith(('>', '2>', '<')) else 1
            continue
        if word in PYTHONS and i + 1 < len(words):
            program = words[i + 2] if words[i + 1] == '-m' else words[i + 1]
            current = (program, [])
            commands.append(current)
            i += 3 if words[i + 1] == '-m' else 2
            continue
        if word in SCRIPTS or word == 'make':
            current = (word.lstrip('./'), [])
            commands.append(current)
        elif current is not None:
            current[1].append(word)
        else:
            raise AssertionError('not a command of this repository: %r' % ' '.join(words))
        i += 1
    return commands


def check_make(words, where):
    targets = makefile_targets()
    for word in words:
        if ASSIGNMENT.match(word):
            name, value = word.split('=', 1)
            makefile_variable(name)  # the variable exists
            if name in ('TRAIN_ARGS', 'FULL_ARGS'):
                check_flags('train_se_resnext_w_d.py', shlex.split(value), where)
        else:
            assert word in targets, '%s: the Makefile has no target %r' % (where, word)


@pytest.mark.parametrize('document', DOCUMENTS)
def test_commands_name_existing_scripts_flags_and_targets(document):
    variables = {}
    checked = 0
    for line, words in bash_lines(document):
        where = '%s: %s' % (document, line)
        if all(ASSIGNMENT.match(word) for word in words):
            variables.update(word.split('=', 1) for word in words)
            continue
        expanded = []
        for word in words:
            if word.startswith('$') and word[1:] in variables:
                expanded += shlex.split(variables[word[1:]])
            else:
                expanded.append(word)
        while expanded and (ASSIGNMENT.match(expanded[0]) or expanded[0] == 'time'):
            expanded = expanded[1:]  # environment for the command; `time`
        for program, args in split_commands(expanded):
            if program == 'make':
                check_make(args, where)
            elif program.endswith(('.py', '.sh')):
                assert os.path.isfile(os.path.join(ROOT, program)), '%s: no %s' % (where, program)
                check_flags(program, args, where)
            else:
                module = os.path.join(ROOT, *program.split('.')) + '.py'
                assert os.path.isfile(module), '%s: no module %s' % (where, program)
                check_flags(program, args, where)
            checked += 1
    if document == 'README.md':
        assert checked >= 20, checked


def test_readme_shows_the_two_commands_and_every_script():
    """The quick start is `make train` + `make test`, and every entry script has a README command."""
    commands = [program for _, words in bash_lines('README.md')
                for program, _ in split_commands(words)]
    quick_start = read('README.md').split('## Quick start', 1)[1].split('\n## ', 1)[0]
    assert re.findall(r'^make (\w+)', quick_start, re.M) == ['train', 'test']
    for script in ('train_se_resnext_w_d.py', 'predict.py', 'score.py', 'fine-tune.py',
                   'export_onnx.py', 'make_model_card.py', 'launch.py', 'parse_log.py',
                   'plot_curve.py', 'im2rec_prep.sh'):
        assert script in commands, script


GENERATED_TABLES = [('README.md', 'readme'), ('docs/imagenet.md', 'evaluation')]
"""(document, ``convert_weights.py --table`` name) of the tables printed from senet/weights.py."""


@pytest.mark.parametrize('document,table', GENERATED_TABLES)
def test_generated_tables_are_current(document, table):
    """The ImageNet weights tables are senet.weights.SOURCE_MODELS as convert_weights.py prints it."""
    import convert_weights
    assert convert_weights.TABLES[table]() in read(document), (
        '%s does not hold the table of senet/weights.py as it is now: run `python '
        'convert_weights.py --table %s` and paste its output over the old table' % (document, table))


LINK = re.compile(r'\]\(([^)\s]+)\)')
NAMED_PATH = re.compile(r'`((?:senet|symbols|tests|benchmarks|docs|pretrained)/[\w./-]+'
                        r'|[\w-]+\.(?:py|sh))`')


def anchors(document):
    """GitHub's anchors of a markdown file's headings."""
    found = set()
    for heading in re.findall(r'^#+ (.*)$', read(document), re.M):
        slug = re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
        found.add(slug)
    return found


@pytest.mark.parametrize('document', DOCUMENTS)
def test_links_and_named_files_exist(document):
    text = read(document)
    base = os.path.dirname(document)
    for target in LINK.findall(text):
        if target.startswith(('http://', 'https://')):
            continue
        path, _, anchor = target.partition('#')
        path = os.path.normpath(os.path.join(base, path)) if path else document
        assert os.path.exists(os.path.join(ROOT, path)), '%s links to %s' % (document, target)
        if anchor:
            assert anchor in anchors(path), '%s links to a missing heading %s' % (document, target)
    for path in NAMED_PATH.findall(text):
        if '<' in path or '*' in path:
            continue
        assert os.path.exists(os.path.join(ROOT, path.rstrip('/'))), \
            '%s names %s, which does not exist' % (document, path)
