"""`python -m services.producer`."""

from services.producer.app import create_app
from services.producer.settings import ProducerSettings
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("producer", ProducerSettings, create_app)
