"""WSGI entry point: `gunicorn -c app/gunicorn_conf.py wsgi:app`."""

from app import create_app
from config import exit_on_config_error

with exit_on_config_error():
    app = create_app()
