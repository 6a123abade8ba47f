"""`python -m provider`: serve the provider to Terraform (plugin handshake on stdout)."""

import signal
import sys


def main() -> None:
    # Terraform forwards Ctrl-C to its plugins and then asks them to stop; a Go provider ignores
    # SIGINT and finishes the call in flight. Do the same, so an interrupted apply records what
    # it created (and every create is adoptable on retry anyway).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tf.runner import run_provider

    from provider.provider import EeVertexProvider

    run_provider(EeVertexProvider(), sys.argv)


if __name__ == "__main__":
    main()
