"""Read the trainers' log files back: per-epoch accuracy, time and learning rate; learning curves.

The trainers log MXNet's standard lines (``Epoch[n] Train-accuracy=…``, ``Epoch[n] Validation-accuracy=…``,
``Epoch[n] Time cost=…``) and ``Epoch[n] Throughput=… lr=…``. A resumed run appends to the same file:
a later line for an epoch replaces an earlier one, so the table is the run as it finally went. A fresh
run (one whose logged arguments say ``'retrain': False``) starts the table again, so the epochs of an
earlier, longer run into the same file do not linger.
"""
import os
import re

EPOCH_LINE = re.compile(r'Epoch\[(\d+)\] (Train-accuracy|Validation-accuracy|Time cost|Throughput)'
                        r'=([0-9.eE+-]+)(?:.*\blr=([0-9.eE+-]+))?')
FRESH_RUN_LINE = re.compile(r"arguments: \{.*'retrain': False")
FIELDS = {'Train-accuracy': 'train', 'Validation-accuracy': 'val', 'Time cost': 'time',
          'Throughput': 'throughput'}


def current_run(path):
    """The lines of the log's last fresh run, with the resumed runs appended after it."""
    with open(path, errors='replace') as stream:
        lines = stream.readlines()
    starts = [index for index, line in enumerate(lines) if FRESH_RUN_LINE.search(line)]
    return lines[starts[-1]:] if starts else lines


def parse(path):
    """Rows ``{'epoch', 'train', 'val', 'time', 'lr'}`` (1-based epochs), in epoch order."""
    rows = {}
    with open(path, errors='replace') as stream:
        for line in stream:
            if FRESH_RUN_LINE.search(line):
                rows.clear()
                continue
            match = EPOCH_LINE.search(line)
            if not match:
                continue
            epoch, field, value, lr = match.groups()
            row = rows.setdefault(int(epoch) + 1, {'epoch': int(epoch) + 1})
            row[FIELDS[field]] = float(value)
            if lr is not None:
                row['lr'] = float(lr)
    return [rows[epoch] for epoch in sorted(rows)]


def markdown_table(rows):
    """A markdown table of epoch, train and validation accuracy, time and learning rate."""
    def cell(row, key, fmt):
        return fmt % row[key] if key in row else ''
    lines = ['| epoch | train accuracy | validation accuracy | time (s) | lr |',
             '|---|---|---|---|---|']
    for row in rows:
        lines.append('| %d | %s | %s | %s | %s |' % (
            row['epoch'], cell(row, 'train', '%.4f'), cell(row, 'val', '%.4f'),
            cell(row, 'time', '%.1f'), cell(row, 'lr', '%g')))
    return '\n'.join(lines)


def curve_path(log_path):
    """Where a run's learning-curve PNG goes: beside its log, ``<log without .log>.png``."""
    base, ext = os.path.splitext(log_path)
    return (base if ext == '.log' else log_path) + '.png'


def plot(log_paths, out_path, title=None):
    """Training and validation top-1 error (%) against epochs of each log, in one PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    plotted = 0
    for i, path in enumerate(log_paths):
        rows = parse(path)
        # One run: the title names it; several: each legend entry names its log.
        label = os.path.splitext(os.path.basename(path))[0] + ' ' if len(log_paths) > 1 else ''
        colour = colours[i % len(colours)]
        for key, style, name in (('train', '--', 'training'), ('val', '-', 'validation')):
            points = [(row['epoch'], 100 * (1 - row[key])) for row in rows if key in row]
            if points:
                epochs, errors = zip(*points)
                axes.plot(epochs, errors, style, color=colour, marker='.',
                          label=label + name)
                plotted += 1
    if not plotted:
        plt.close(figure)
        raise ValueError('no "Epoch[n] Train-accuracy/Validation-accuracy" lines in %s'
                         % ', '.join(log_paths))
    axes.set_xlabel('epoch')
    axes.set_ylabel('top-1 error (%)')
    axes.set_title(title or 'learning curves')
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize='small')
    figure.tight_layout()
    tmp = out_path + '.tmp-%d.png' % os.getpid()
    figure.savefig(tmp)
    plt.close(figure)
    os.replace(tmp, out_path)
    return out_path
