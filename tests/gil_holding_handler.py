"""A CPR handler whose load holds the GIL for `EEV_TEST_HOLD_GIL_S` seconds, as a model load
can (a C extension's import, a deserializer): a call through ctypes.PyDLL keeps the GIL."""

import ctypes
import os

from fastapi import Response


class Handler:
    def __init__(self, artifacts_uri, predictor=None):
        ctypes.PyDLL(None).sleep(int(os.environ["EEV_TEST_HOLD_GIL_S"]))

    async def handle(self, request):
        return Response(content=b"{}", media_type="application/json")
