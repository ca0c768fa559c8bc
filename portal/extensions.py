"""Extension singletons, bound to the app in create_app."""

from flask_htmx import HTMX
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from .database import Base
from .queue import JobQueue
from .throttles import AppLimiter, client_address

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()
queue = JobQueue()
#: Request throttles per client address (the real one: behind a proxy, ProxyFix sets it), in Redis.
limiter = AppLimiter(key_func=client_address, key_prefix="ledgerlink:throttle", headers_enabled=True)
