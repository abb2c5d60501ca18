#!/usr/bin/python3
"""Plot training curves from one or several training logs into one image.

    plot_training_log.py OUT.png LOG [LOG ...] [--x iters|seconds] [--y NAME ...]

(`LOG [LOG ...] OUT.png` works too: the image is whichever end has an image extension.) The
top panel shows the train outputs (by default the losses), the bottom one the test outputs (by
default all of them), against iterations or seconds; each log gets its own colour. Logs are read
with parse_log.py (the engine's and BVLC Caffe's formats). Needs matplotlib, not the engine.
"""
import argparse
import os
import sys

import matplotlib
matplotlib.use('Agg')  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from parse_log import parse_log  # noqa: E402  (lives next to this script)

IMAGE_EXTENSIONS = ('.png', '.svg', '.pdf', '.jpg', '.jpeg', '.eps', '.ps', '.tif', '.tiff')
X_COLUMNS = {'iters': ('NumIters', 'Iterations'), 'seconds': ('Seconds', 'Seconds')}


def _is_image(path):
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _split_paths(parser, paths):
    """(output image, logs) from the positional arguments, the image first or last."""
    if len(paths) < 2:
        parser.error('need an output image and at least one log')
    if _is_image(paths[0]):
        return paths[0], paths[1:]
    if _is_image(paths[-1]):
        return paths[-1], paths[:-1]
    parser.error('the output must end in one of ' + ' '.join(IMAGE_EXTENSIONS))


def _plot_rows(ax, rows, names, x_column, log_label, color, style):
    """One line per output name present in rows; returns how many were drawn."""
    drawn = 0
    for name in names:
        points = [(row[x_column], row[name]) for row in rows if name in row]
        if not points:
            continue
        xs, ys = zip(*points)
        label = '{}: {}'.format(log_label, name)
        ax.plot(xs, ys, style, color=color, label=label, markersize=3)
        drawn += 1
    return drawn


def _output_names(rows):
    names = []
    for row in rows:
        names += [k for k in row if k not in ('NumIters', 'Seconds', 'LearningRate')
                  and k not in names]
    return names


def _loss_names(names):
    """The train outputs plotted by default: the losses (e.g. GoogLeNet's loss1/loss ...),
    or every output when none is named like a loss."""
    return [n for n in names if 'loss' in n.lower()] or names


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Plot loss and test outputs of training logs against iterations or '
                    'seconds, several logs on one figure.')
    parser.add_argument('paths', nargs='+', metavar='OUT.png LOG',
                        help='the output image, then one or more logs (or the logs, then the '
                             'image)')
    parser.add_argument('--x', choices=sorted(X_COLUMNS), default='iters',
                        help='horizontal axis: iters (default) or seconds')
    parser.add_argument('--y', nargs='+', metavar='NAME',
                        help='outputs to plot, train and test (default: the train losses and '
                             'every test output)')
    args = parser.parse_args(argv)
    out, logs = _split_paths(parser, args.paths)

    x_column, x_label = X_COLUMNS[args.x]
    fig, (ax_train, ax_test) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    drawn = 0
    for i, log in enumerate(logs):
        try:
            train_rows, test_rows = parse_log(log)
        except OSError as e:
            print('plot_training_log.py: {}'.format(e), file=sys.stderr)
            return 1
        color = colors[i % len(colors)]
        label = os.path.basename(log)
        train_names = args.y or _loss_names(_output_names(train_rows))
        test_names = args.y or _output_names(test_rows)
        drawn += _plot_rows(ax_train, train_rows, train_names, x_column, label, color, '-')
        drawn += _plot_rows(ax_test, test_rows, test_names, x_column, label, color, 'o-')
    if not drawn:
        print('plot_training_log.py: nothing to plot (no matching outputs in the logs)',
              file=sys.stderr)
        return 1

    ax_train.set_title('Train')
    ax_test.set_title('Test')
    for ax in (ax_train, ax_test):
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize='small')
    ax_test.set_xlabel(x_label)
    fig.tight_layout()
    # Written whole or not at all: into a temporary file, then renamed into place.
    tmp = '{}.tmp{}'.format(out, os.getpid())
    fig.savefig(tmp, format=os.path.splitext(out)[1][1:].lower())
    os.replace(tmp, out)
    plt.close(fig)
    print('Wrote {}'.format(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
