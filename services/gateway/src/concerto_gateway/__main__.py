import os

from concerto_gateway.app import create_app
from concerto_gateway.settings import GatewaySettings
from concerto_runtime import serve

settings = GatewaySettings()
# The gateway alone decides whose X-Forwarded-For to believe (TRUSTED_PROXIES, create_app):
# uvicorn's own proxy headers, which by default trust any peer on 127.0.0.1, trust no one.
os.environ["FORWARDED_ALLOW_IPS"] = ""
serve(create_app(settings), "gateway", settings.http_port or 8080, settings)
