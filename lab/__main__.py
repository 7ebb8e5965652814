"""`python -m lab ...`: see `lab.cli`."""

import sys

from lab.cli import main
from lab.threads import set_torch_threads

set_torch_threads()
sys.exit(main())
