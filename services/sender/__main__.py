"""`python -m services.sender`."""

from services.runtime.server import run_service
from services.sender.app import create_app
from services.sender.settings import SenderSettings

if __name__ == "__main__":
    run_service("sender", SenderSettings, create_app)
