"""The API's JSON parser: input that cannot be parsed is a 400, input that is too large a 413."""

from __future__ import annotations

import io

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with two gaps closed.

    - RecursionError (`[[[[...` nested deeply) is bad input, not a 500; DRF only maps ValueError.
    - The body is read up to DATA_UPLOAD_MAX_MEMORY_SIZE whatever the headers say: the middleware's
      Content-Length check cannot see a chunked body, which Django's ASGI handler passes on unbounded.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if stream is not None and limit is not None:
            body = stream.read(limit + 1)
            if len(body) > limit:
                raise RequestDataTooBig("Request body too large.")  # the API's exception handler: 413
            stream = io.BytesIO(body)
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.")
