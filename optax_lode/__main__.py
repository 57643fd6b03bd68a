import sys

from optax_lode.cli import main

sys.exit(main())
