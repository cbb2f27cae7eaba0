"""``python -m tme_abm`` is the ``tme-abm`` command."""

import sys

from tme_abm.cli import main

sys.exit(main())
