"""`python -m services.router`."""

from services.router.app import create_app
from services.router.settings import RouterSettings
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("router", RouterSettings, create_app)
