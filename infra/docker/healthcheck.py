"""Container health check: exit 0 when this service's /health/ready answers 200."""
import os
import sys
import urllib.request

port = os.environ.get("HTTP_PORT", "8080")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:  # refused, 503, timeout: all mean "not healthy yet"
    print(error)
    sys.exit(1)
