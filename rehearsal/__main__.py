"""`python -m rehearsal [config.toml ...] [--scenario all|rollout|gcloud]`: rehearse each config's
rollout offline, then the gcloud CLI scenario and its parity check."""

import sys

from rehearsal.scenario import main

sys.exit(main(sys.argv[1:]))
