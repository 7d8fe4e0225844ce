"""The trace stage: PyEdu records in, sandboxed snoop traces and rejects out."""

import sys

from trace_workers.jail.protocol import INT_DIGITS

sys.set_int_max_str_digits(INT_DIGITS)  # in every process that reads the job's values
