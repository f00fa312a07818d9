"""Fetches an OpenAPI document over HTTP and validates it as OpenAPI 3.1.

Usage: validate.py URL. Prints the OpenAPI version and exits 0 when valid; a validation
error is printed and exits non-zero.
"""

import json
import sys
import urllib.request

from openapi_spec_validator import OpenAPIV31SpecValidator, validate

with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
    document = json.load(response)
validate(document, cls=OpenAPIV31SpecValidator)
print(document["openapi"])
