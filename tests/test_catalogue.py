"""docs/reliability.md's failure catalogue and range table are the tests' own tables.

The catalogue rows are :data:`tests.test_os_failures.CATALOGUE` and
:data:`tests.test_tool_failures.CATALOGUE` (each test checks its line against its row), the ranges
are :data:`senet.ranges.RANGES` (which drives the check). This test fails when the document and
the tables differ, or when a failure test has no row; ``python -m tests.test_catalogue`` prints
the sections to paste.
"""
import os

from senet import faults, ranges
from tests import test_os_failures, test_tool_failures
from tests.conftest import ROOT

DOC = os.path.join(ROOT, 'docs', 'reliability.md')


def _cell(text):
    return text.replace('|', '\\|')


def catalogue():
    """The failure catalogue as a markdown table."""
    statuses = {'test_tool_failure[%s]' % case[0]: case[3] for case in test_tool_failures.CASES}
    lines = ['| failure | what you see on stderr (after `<script>: error: `) | status | what is '
             'kept | test |', '|---|---|---|---|---|']
    for module, rows in (('test_os_failures', test_os_failures.CATALOGUE),
                         ('test_tool_failures', test_tool_failures.CATALOGUE)):
        for row in rows:
            status = statuses.get(row.test, faults.EXIT_CODE)
            lines.append('| %s | `%s` | %d | %s | `tests/%s.py::%s` |' % (
                row.situation, _cell(row.line), status, row.kept, module, row.test))
    return '\n'.join(lines) + '\n'


def range_table():
    """Every numeric flag's range as a markdown table (``nan`` is outside every range)."""
    lines = ['| flag | accepted values |', '|---|---|']
    for row in ranges.RANGES:
        low, high = (bound.__doc__ if callable(bound) else bound for bound in (row.low, row.high))
        interval = '%s%s, %s%s' % ('(' if row.low_open else '[', low,
                                   'inf' if high == ranges.INF else high,
                                   ')' if row.high_open or high == ranges.INF else ']')
        words = (row.words or 'in {interval}').split(' for --network')[0].split(' (at most')[0]
        if row.dest == 'image_shape':
            words = 'height and width in ' + words
        lines.append('| `%s` | %s |' % (row.flag, words.replace('{interval}', interval)))
    return '\n'.join(lines) + '\n'


def test_the_document_shows_the_catalogue_and_the_ranges():
    with open(DOC) as stream:
        text = stream.read()
    assert catalogue() in text, 'docs/reliability.md: paste the catalogue of ' \
        '`python -m tests.test_catalogue`:\n' + catalogue()
    assert range_table() in text, 'docs/reliability.md: paste the range table of ' \
        '`python -m tests.test_catalogue`:\n' + range_table()


def test_every_failure_test_has_a_row():
    tests = {name for name in dir(test_os_failures) if name.startswith('test_')}
    assert tests == {row.test for row in test_os_failures.CATALOGUE}
    cases = {'test_tool_failure[%s]' % case[0] for case in test_tool_failures.CASES}
    assert cases == {row.test for row in test_tool_failures.CATALOGUE}


if __name__ == '__main__':
    print(catalogue())
    print(range_table())
