"""`python -m rehearsal [config.toml ...]`: rehearse each config's rollout offline."""

import sys

from rehearsal.scenario import main

sys.exit(main(sys.argv[1:]))
