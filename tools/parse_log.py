#!/usr/bin/python3
"""Turn a training log into CSV tables, as Caffe's tools/extra/parse_log.py.

Writes OUTDIR/LOGNAME.train and OUTDIR/LOGNAME.test with the columns NumIters, Seconds,
LearningRate and then one column per net output (loss, accuracy, ...), one row per displayed
(train) or tested (test) iteration. Reads the engine's logs and BVLC Caffe's.

The lines it uses (glog prefix first, e.g. `I20261207 01:08:02.248286 10927 solver.cpp:304] `
or Caffe's `I1207 01:08:02.248286 ...`):
    Iteration 100 (36.7 iter/s, 294.0 images/s), loss = 1.42   (Caffe: Iteration 100, loss = ..)
        Train net output #0: loss = 1.42 (* 1 = 1.42 loss)
    Iteration 100, lr = 0.05
    Iteration 100, Testing net (#0)
        Test net output #0: accuracy = 0.5
Seconds count from the first timestamped line of the log. The train `loss` column comes from
the "Train net output" lines; a log without those uses the loss of the "Iteration N" lines. A
row's learning rate is the one logged for its iteration (else the latest before it; else the
first logged).

Needs only the standard library; `import parse_log` gives parse_log(path) to other tools.
"""
import argparse
import csv
import datetime
import math
import os
import re
import sys

# glog's line prefix: severity, then MMDD (glog) or YYYYMMDD (the engine), then the time.
_TIMESTAMP = re.compile(r'^[IWEF](\d{8}|\d{4}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?\b')
_NUMBER = r'([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)'
_ITERATION = re.compile(r'\bIteration (\d+)')
_ITERATION_LOSS = re.compile(r'\bIteration \d+\b.*?, loss = ' + _NUMBER)
_LEARNING_RATE = re.compile(r'\bIteration \d+, lr = ' + _NUMBER)
_TESTING = re.compile(r'\bIteration \d+, Testing net \(#(\d+)\)')
_TRAIN_OUTPUT = re.compile(r'Train net output #(\d+): (\S+) = ' + _NUMBER)
_TEST_OUTPUT = re.compile(r'Test net output #(\d+): (\S+) = ' + _NUMBER)

FIXED_COLUMNS = ['NumIters', 'Seconds', 'LearningRate']


def _line_times(lines, last_year):
    """The datetime of each line (None for lines without a glog timestamp).

    Caffe's MMDD stamps carry no year: a month smaller than the previous line's means the log
    crossed a new year. `last_year` is the year of the log's last line (its file's
    modification time), so the first line's year is last_year minus the number of crossings.
    """
    stamps = []
    for line in lines:
        m = _TIMESTAMP.match(line)
        if not m:
            stamps.append(None)
            continue
        date, hh, mm, ss, frac = m.groups()
        micro = int((frac or '0').ljust(6, '0'))
        if len(date) == 8:
            stamps.append((int(date[:4]), int(date[4:6]), int(date[6:]), int(hh), int(mm),
                           int(ss), micro))
        else:
            stamps.append((None, int(date[:2]), int(date[2:]), int(hh), int(mm), int(ss),
                           micro))

    months = [s[1] for s in stamps if s is not None and s[0] is None]
    crossings = sum(1 for a, b in zip(months, months[1:]) if b < a)
    year = last_year - crossings
    times = []
    previous_month = None
    for s in stamps:
        if s is None:
            times.append(None)
            continue
        if s[0] is None:
            if previous_month is not None and s[1] < previous_month:
                year += 1
            previous_month = s[1]
            s = (year,) + s[1:]
        try:
            times.append(datetime.datetime(*s))
        except ValueError:  # e.g. 29 February in a year guessed wrong: ignore the stamp
            times.append(None)
    return times


def parse_log(path):
    """(train_rows, test_rows): lists of dicts, each with NumIters, Seconds, LearningRate and the
    net outputs of one iteration, in the log's order."""
    with open(path, errors='replace') as f:
        lines = f.read().splitlines()
    last_year = datetime.datetime.fromtimestamp(os.path.getmtime(path)).year
    times = _line_times(lines, last_year)
    start = next((t for t in times if t is not None), None)

    train, test = {}, {}          # iteration -> row (dicts keep insertion order)
    train_losses = {}             # iteration -> loss of the "Iteration N, loss = X" line
    learning_rates = {}           # iteration -> lr
    iteration = None
    test_net = 0
    seconds = 0.0
    for line, time in zip(lines, times):
        if time is not None and start is not None:
            seconds = (time - start).total_seconds()
        m = _ITERATION.search(line)
        if m:
            iteration = int(m.group(1))
        if iteration is None:
            continue  # nothing before the first iteration belongs to a row
        m = _LEARNING_RATE.search(line)
        if m:
            learning_rates[iteration] = float(m.group(1))
            continue
        m = _TESTING.search(line)
        if m:
            test_net = int(m.group(1))
            continue
        m = _ITERATION_LOSS.search(line)
        if m:
            train_losses[iteration] = float(m.group(1))
            train.setdefault(iteration, _new_row(iteration, seconds))
            continue
        m = _TRAIN_OUTPUT.search(line)
        if m:
            row = train.setdefault(iteration, _new_row(iteration, seconds))
            row[m.group(2)] = float(m.group(3))
            continue
        m = _TEST_OUTPUT.search(line)
        if m:
            row = test.setdefault(iteration, _new_row(iteration, seconds))
            # Outputs of a second test net get its number, so they do not overwrite the first's.
            name = m.group(2) if test_net == 0 else '{}#{}'.format(m.group(2), test_net)
            row[name] = float(m.group(3))

    # A log without "Train net output" lines (a net whose only output is the loss, printed by
    # a solver that logs just the iteration line) still has the (smoothed) iteration loss.
    if not any(len(row) > len(FIXED_COLUMNS) for row in train.values()):
        for it, row in train.items():
            if it in train_losses:
                row['loss'] = train_losses[it]
    train_rows = [row for row in train.values() if len(row) > len(FIXED_COLUMNS)]
    test_rows = list(test.values())
    for row in train_rows + test_rows:
        row['LearningRate'] = _learning_rate_at(row['NumIters'], learning_rates)
    return train_rows, test_rows


def _new_row(iteration, seconds):
    return {'NumIters': iteration, 'Seconds': seconds, 'LearningRate': math.nan}


def _learning_rate_at(iteration, learning_rates):
    """The lr logged for `iteration`, else the latest one before it, else the first one."""
    if iteration in learning_rates:
        return learning_rates[iteration]
    earlier = [it for it in learning_rates if it <= iteration]
    if earlier:
        return learning_rates[max(earlier)]
    if learning_rates:
        return learning_rates[min(learning_rates)]
    return math.nan


def columns(rows):
    """The CSV columns of some rows: the fixed ones, then every output in order of appearance."""
    names = list(FIXED_COLUMNS)
    for row in rows:
        names += [k for k in row if k not in names]
    return names


def write_csv(filename, rows, delimiter=',', verbose=False):
    """Write rows as a CSV table (nothing is written for no rows), atomically."""
    if not rows:
        if verbose:
            print('Not writing {}; no lines to write'.format(filename))
        return
    tmp = filename + '.tmp{}'.format(os.getpid())
    with open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns(rows), delimiter=delimiter,
                                lineterminator='\n', restval='')
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, filename)
    if verbose:
        print('Wrote {}'.format(filename))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Parse a training log (the engine\'s or BVLC Caffe\'s) into LOGNAME.train '
                    'and LOGNAME.test CSV tables in OUTDIR.')
    parser.add_argument('logfile_path', help='the training log')
    parser.add_argument('output_dir', help='folder for the .train and .test tables')
    parser.add_argument('--verbose', action='store_true', help='say what is written')
    parser.add_argument('--delimiter', default=',',
                        help='column delimiter of the tables (default ",")')
    args = parser.parse_args(argv)
    if len(args.delimiter) != 1:
        parser.error('--delimiter must be one character')
    try:
        train_rows, test_rows = parse_log(args.logfile_path)
    except OSError as e:
        print('parse_log.py: {}'.format(e), file=sys.stderr)
        return 1
    os.makedirs(args.output_dir, exist_ok=True)
    base = os.path.join(args.output_dir, os.path.basename(args.logfile_path))
    write_csv(base + '.train', train_rows, args.delimiter, args.verbose)
    write_csv(base + '.test', test_rows, args.delimiter, args.verbose)
    return 0


if __name__ == '__main__':
    sys.exit(main())
