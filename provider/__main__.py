"""`python -m provider`: serve the provider to Terraform (plugin handshake on stdout)."""

import signal
import sys


def main() -> None:
    # Ctrl-C reaches the plugins too; a Go provider ignores SIGINT and waits for Terraform's
    # StopProvider, then returns from the calls in flight. Do the same (every create is also
    # adoptable on retry, for a provider killed outright).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import tf.runner

    from provider.provider import EeVertexProvider

    tf.runner._ShutdownInterceptor = graceful_stop_interceptor()
    tf.runner.run_provider(EeVertexProvider(), sys.argv)


def graceful_stop_interceptor():
    from tf.runner import _ShutdownInterceptor

    class GracefulStop(_ShutdownInterceptor):
        """StopProvider (Terraform's answer to Ctrl-C) ends the waits for long-running
        operations, whose calls then return their diagnostics; tf's own interceptor would stop
        the server at once, losing every answer in flight. The plugin's Shutdown still stops it."""

        def intercept_service(self, continuation, handler_call_details):
            if handler_call_details.method == "/tfplugin6.Provider/StopProvider":
                from provider.client import STOP, log

                log("Terraform asked the provider to stop: ending waits for operations")
                STOP.set()
                return continuation(handler_call_details)
            return super().intercept_service(continuation, handler_call_details)

    return GracefulStop


if __name__ == "__main__":
    main()
