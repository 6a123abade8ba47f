"""`python -m rehearsal.google_standin`: serve the stand-in google provider to Terraform."""

import sys


def main() -> None:
    import tf.runner

    from rehearsal.google_standin.provider import GoogleStandIn

    tf.runner.run_provider(GoogleStandIn(), sys.argv)


if __name__ == "__main__":
    main()
