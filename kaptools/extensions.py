"""Unbound extension objects, so that nothing imports the package root to get ``db``."""

from __future__ import annotations

from pathlib import Path

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


# Objects stay loaded after a commit: a page commits its audit event and then renders
# what it already loaded, without reading it all again.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(directory=str(Path(__file__).resolve().parent / "migrations"))
login_manager = LoginManager()
csrf = CSRFProtect()
