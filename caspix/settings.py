"""Caspix settings: one module, driven by the environment (see README, "Configuration").

``CASPIX_ENV`` selects the profile:

* ``production`` (the default: an unset variable fails closed) needs every secret from the
  environment or a ``*_FILE``, and refuses to start without them;
* ``demo`` is the embedded default behind ``make demo``: SQLite under ``var/``, Celery in-process;
* ``test`` is what ``make test`` runs: PostgreSQL and Redis on loopback.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF

from caspix.env import ConfigError, Env
from caspix.logconfig import build_logging

env = Env()

BASE_DIR = Path(__file__).resolve().parent.parent

CASPIX_ENV = env.str("CASPIX_ENV", "production", choices=("production", "demo", "test"))
PRODUCTION = CASPIX_ENV == "production"
DEMO = CASPIX_ENV == "demo"
TESTING = CASPIX_ENV == "test"

# Runtime state of the embedded default (SQLite file, demo secret, keyring): never committed.
VAR_DIR = Path(env.str("CASPIX_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env.bool("CASPIX_DEBUG", False)
if DEBUG and PRODUCTION:
    raise ConfigError("CASPIX_DEBUG must not be enabled when CASPIX_ENV=production")


def _demo_secret_key() -> str:
    """A per-installation key for the demo, created once under var/ and reused."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(64), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


if PRODUCTION:
    SECRET_KEY = env.secret("CASPIX_SECRET_KEY", min_length=50)
elif DEMO:
    SECRET_KEY = env.secret("CASPIX_SECRET_KEY", default=_demo_secret_key(), min_length=50)
else:
    SECRET_KEY = env.secret("CASPIX_SECRET_KEY", default="test-" + "k" * 20 + "-not-a-secret-" + "x" * 20)

if PRODUCTION:
    ALLOWED_HOSTS = env.list("CASPIX_ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ConfigError("CASPIX_ALLOWED_HOSTS is required: the host names Caspix is served under, comma-separated")
else:
    ALLOWED_HOSTS = env.list("CASPIX_ALLOWED_HOSTS", ("127.0.0.1", "localhost", "[::1]"))
CSRF_TRUSTED_ORIGINS = env.list("CASPIX_CSRF_TRUSTED_ORIGINS")

# --- Applications ----------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_prometheus",
    "csp",
    "guardian",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Floors, bottom to top: each app imports only from the ones listed before it.
    "caspix.crypto",
    "audit",
    "accounts",
    # Its user-handle table (the passkey models are accounts' own). After accounts: its models
    # module reads the user model as it is imported.
    "django_otp_webauthn",
    "cases",
    "reporting",
]
if TESTING:
    INSTALLED_APPS.append("tests.crypto_app")  # models that exercise the encrypted fields

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "caspix.requestcontext.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "caspix.requestcontext.UserContextMiddleware",
    "accounts.middleware.ActivityMiddleware",
    "accounts.sessions.SessionPolicyMiddleware",
    "accounts.oidc.SessionRefresh",
    "accounts.middleware.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "caspix.errors.KeyServiceErrorMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "caspix.urls"
WSGI_APPLICATION = "caspix.wsgi.application"
ASGI_APPLICATION = "caspix.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.navigation",
                "accounts.context_processors.session_clock",
                "audit.context_processors.ledger_alert",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------

_DEFAULT_DATABASE_URL = {
    "production": None,
    "demo": f"sqlite:///{VAR_DIR / 'caspix.sqlite3'}",
    "test": "postgres://postgres@127.0.0.1:5432/caspix",
}[CASPIX_ENV]
DATABASES: dict[str, dict[str, Any]] = {
    "default": dict(
        dj_database_url.parse(
            env.secret("DATABASE_URL", default=_DEFAULT_DATABASE_URL),
            conn_max_age=env.int("CASPIX_DB_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with the ledger's pending events sent with each COMMIT (one round trip
    # less for every audited action): audit/backends/postgresql/base.py.
    DATABASES["default"]["ENGINE"] = "audit.backends.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: write-ahead log so readers never wait for the one writer.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication --------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
# django-axes first: a locked account or source is refused before its password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.RoleBackend",
    "accounts.oidc.Backend",  # answers only an OIDC callback; grants no permission
]
# django-guardian stores explicit case grants only. Its backend is not installed (it answers True
# to an active superuser): object access is decided by ``Case.objects.restrict()``, and guardian's
# anonymous user is not created.
ANONYMOUS_USER_NAME = None
SILENCED_SYSTEM_CHECKS = ["guardian.W001"]  # its backend is left out on purpose, as said above
LOGIN_URL = "accounts:login"

# --- Second factors (docs/SECURITY.md) --------------------------------------------------------
# A privileged action needs a second factor verified within this many minutes (step-up).
CASPIX_STEP_UP_MINUTES = env.int("CASPIX_STEP_UP_MINUTES", 10, minimum=1, maximum=60)
# TOTP time steps of tolerance either side of now: none for privileged roles (ASVS 6.5.5: a code
# lives 30 s), one for the others, whose phones drift.
CASPIX_TOTP_TOLERANCE = {
    "privileged": env.int("CASPIX_TOTP_TOLERANCE_PRIVILEGED", 0, minimum=0, maximum=1),
    "standard": env.int("CASPIX_TOTP_TOLERANCE_STANDARD", 1, minimum=0, maximum=1),
}
# NIST SP 800-63B: an authenticator is disabled after at most 100 consecutive failures.
CASPIX_FACTOR_MAX_FAILURES = 100
OTP_TOTP_ISSUER = "Caspix"

# --- Passkeys: WebAuthn through django-otp-webauthn (accounts/passkeys.py) ---------------------
# The relying-party id and the origins are pinned here, never taken from a request's headers. A
# passkey is scoped to the id for good: changing it means enrolling every passkey again. The id
# is a host name, not an address (WebAuthn refuses 127.0.0.1): the demo is reached as localhost.
OTP_WEBAUTHN_RP_ID = env.str("CASPIX_WEBAUTHN_RP_ID", None if PRODUCTION else "localhost")
OTP_WEBAUTHN_RP_NAME = "Caspix"
OTP_WEBAUTHN_ALLOWED_ORIGINS = env.list("CASPIX_WEBAUTHN_ORIGINS", () if PRODUCTION else ("http://localhost:8000",))
if PRODUCTION and (
    not OTP_WEBAUTHN_ALLOWED_ORIGINS or any(not o.startswith("https://") for o in OTP_WEBAUTHN_ALLOWED_ORIGINS)
):
    raise ConfigError("CASPIX_WEBAUTHN_ORIGINS is required: the https:// origins Caspix is served under")
OTP_WEBAUTHN_CREDENTIAL_MODEL = "accounts.Passkey"
OTP_WEBAUTHN_ATTESTATION_MODEL = "accounts.PasskeyAttestation"
OTP_WEBAUTHN_HELPER_CLASS = "accounts.passkeys.Helper"
# Passkey sign-in without a password is offered on the sign-in page when this is on, and then
# admitted only for users all of whose role templates allow it (Role.passkey_sign_in).
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = env.bool("CASPIX_PASSKEY_SIGN_IN", True)
OTP_WEBAUTHN_EXCEPTION_LOGGER_NAME = ""  # refusals are logged, masked, by accounts/passkeys.py
OTP_WEBAUTHN_TIMEOUT_SECONDS = 120

# --- SAML 2.0 federation (accounts/saml.py); off unless an identity provider is configured -----
CASPIX_SAML: dict[str, object] | None = None
if env.is_set("CASPIX_SAML_IDP_ENTITY_ID"):
    CASPIX_SAML = {
        "idp_entity_id": env.str("CASPIX_SAML_IDP_ENTITY_ID"),
        "idp_sso_url": env.str("CASPIX_SAML_IDP_SSO_URL"),
        "idp_cert": env.secret("CASPIX_SAML_IDP_CERT"),  # PEM, usually through CASPIX_SAML_IDP_CERT_FILE
        "sp_base_url": env.str("CASPIX_SAML_SP_BASE_URL"),  # https://caspix.bank.example
        "sp_cert": env.secret("CASPIX_SAML_SP_CERT"),
        "sp_key": env.secret("CASPIX_SAML_SP_KEY"),
        "roles_attribute": env.str("CASPIX_SAML_ROLES_ATTRIBUTE", "caspixRoles"),
        "teams_attribute": env.str("CASPIX_SAML_TEAMS_ATTRIBUTE", "caspixTeams"),
        # "caspix": a Caspix factor after the IdP's sign-in, for whoever needs one; "idp": the
        # IdP's second factor stands for it when the AuthnContextClassRef is one of these.
        "mfa": env.str("CASPIX_SAML_MFA", "caspix", choices=("caspix", "idp")),
        "mfa_contexts": env.list(
            "CASPIX_SAML_MFA_CONTEXTS",
            (
                "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
                "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
                "http://schemas.microsoft.com/claims/multipleauthn",
            ),
        ),
    }
# A SAML response larger than this is refused before it is parsed.
CASPIX_SAML_MAX_BYTES = 256 * 1024

# --- OpenID Connect federation (accounts/oidc.py); off unless a provider is configured ------------
# The provider's endpoints are given, not discovered: nothing is fetched when Caspix starts.
CASPIX_OIDC: dict[str, object] | None = None
if env.is_set("CASPIX_OIDC_ISSUER"):
    CASPIX_OIDC = {
        "issuer": env.str("CASPIX_OIDC_ISSUER"),
        "roles_claim": env.str("CASPIX_OIDC_ROLES_CLAIM", "caspix_roles"),
        "teams_claim": env.str("CASPIX_OIDC_TEAMS_CLAIM", "caspix_teams"),
        # "caspix": a Caspix factor after the provider's sign-in, for whoever needs one; "idp":
        # the provider's own second factor stands for it when the ID token's acr is one of
        # CASPIX_OIDC_MFA_ACR or its amr holds one of CASPIX_OIDC_MFA_AMR (RFC 8176 values).
        "mfa": env.str("CASPIX_OIDC_MFA", "caspix", choices=("caspix", "idp")),
        "mfa_acr": env.list("CASPIX_OIDC_MFA_ACR"),
        "mfa_amr": env.list("CASPIX_OIDC_MFA_AMR", ("mfa", "hwk", "otp")),
        "algorithms": env.list("CASPIX_OIDC_ALGORITHMS", ("RS256", "ES256")),
    }
    if not set(env.list("CASPIX_OIDC_ALGORITHMS", ("RS256",))) <= {"RS256", "ES256", "PS256"}:
        raise ConfigError("CASPIX_OIDC_ALGORITHMS: only RS256, ES256 and PS256 (asymmetric, verified by JWKS)")
_OIDC_ON = CASPIX_OIDC is not None
OIDC_RP_CLIENT_ID = env.str("CASPIX_OIDC_CLIENT_ID") if _OIDC_ON else ""
OIDC_RP_CLIENT_SECRET = env.secret("CASPIX_OIDC_CLIENT_SECRET") if _OIDC_ON else ""
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("CASPIX_OIDC_AUTHORIZATION_ENDPOINT") if _OIDC_ON else ""
OIDC_OP_TOKEN_ENDPOINT = env.str("CASPIX_OIDC_TOKEN_ENDPOINT") if _OIDC_ON else ""
OIDC_OP_USER_ENDPOINT = env.str("CASPIX_OIDC_USERINFO_ENDPOINT") if _OIDC_ON else ""
OIDC_OP_JWKS_ENDPOINT = env.str("CASPIX_OIDC_JWKS_URI") if _OIDC_ON else ""
OIDC_OP_LOGOUT_ENDPOINT = env.str("CASPIX_OIDC_END_SESSION_ENDPOINT", "") if _OIDC_ON else ""
if PRODUCTION and _OIDC_ON:
    _plain = [
        url
        for url in (
            OIDC_OP_AUTHORIZATION_ENDPOINT,
            OIDC_OP_TOKEN_ENDPOINT,
            OIDC_OP_USER_ENDPOINT,
            OIDC_OP_JWKS_ENDPOINT,
        )
        if not url.startswith("https://")
    ]
    if _plain:
        raise ConfigError("the OIDC provider's endpoints must be https:// URLs")
OIDC_RP_SIGN_ALGO = "RS256"  # selects the library's JWKS path; accounts.oidc.Backend checks the algorithm
OIDC_RP_SCOPES = env.str("CASPIX_OIDC_SCOPES", "openid profile")
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_USE_NONCE = True
OIDC_ALLOW_UNSECURED_JWT = False
OIDC_VERIFY_SSL = True
OIDC_TIMEOUT = 10
OIDC_STORE_ID_TOKEN = True  # the hint for RP-initiated logout
OIDC_CREATE_USER = True
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc_callback"
# How often a federated session is confirmed with the provider (a silent round trip).
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = env.int("CASPIX_OIDC_RECHECK_SECONDS", 15 * 60, minimum=60, maximum=3600)

# --- Failed sign-ins (accounts/lockout.py) --------------------------------------------------------
# An account, or a source address, is locked after this many consecutive failures, for a minute
# that doubles with every further failure, up to an hour.
AXES_FAILURE_LIMIT = env.int("CASPIX_LOCKOUT_FAILURES", 5, minimum=3, maximum=100)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = "accounts.lockout.cool_off"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.locked_out"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # its log lines name the account and the address
AXES_DISABLE_ACCESS_LOG = True  # successes are in the ledger
AXES_ENABLE_ADMIN = False
AXES_HTTP_RESPONSE_CODE = 429
# Credential stuffing: failures on this many accounts from one source within the window.
CASPIX_STUFFING_ACCOUNTS = env.int("CASPIX_STUFFING_ACCOUNTS", 10, minimum=3, maximum=1000)
CASPIX_STUFFING_WINDOW_MINUTES = env.int("CASPIX_STUFFING_WINDOW_MINUTES", 15, minimum=1, maximum=1440)
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
if TESTING:
    # Hashing dominates the cost of creating personas; tests do not measure hash strength.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Absolute session lifetime; idle timeouts and per-role tiers come with session policy.
SESSION_COOKIE_AGE = env.int("CASPIX_SESSION_ABSOLUTE_SECONDS", 12 * 3600, minimum=300, maximum=24 * 3600)
# Per tier (privileged: a role that administers or approves): the idle timeout in seconds, and
# how many sessions one person may hold at once (the newest wins; the oldest ends). NIST SP
# 800-63B AAL3: 15 minutes idle, 12 hours absolute (SESSION_COOKIE_AGE, for both tiers).
CASPIX_SESSION_IDLE_SECONDS = {
    "privileged": env.int("CASPIX_SESSION_IDLE_PRIVILEGED_SECONDS", 15 * 60, minimum=60, maximum=3600),
    "standard": env.int("CASPIX_SESSION_IDLE_STANDARD_SECONDS", 30 * 60, minimum=60, maximum=3600),
}
CASPIX_SESSION_LIMIT = {
    "privileged": env.int("CASPIX_SESSION_LIMIT_PRIVILEGED", 1, minimum=1, maximum=10),
    "standard": env.int("CASPIX_SESSION_LIMIT_STANDARD", 2, minimum=1, maximum=10),
}
# The browser warns this many seconds before the idle timeout, and offers to stay signed in.
CASPIX_SESSION_WARNING_SECONDS = 120
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# --- Transport and browser security ----------------------------------------------------------

_SECURE_COOKIES = env.bool("CASPIX_SECURE_COOKIES", PRODUCTION)
SESSION_COOKIE_SECURE = _SECURE_COOKIES
CSRF_COOKIE_SECURE = _SECURE_COOKIES
# The __Host- prefix makes the browser refuse the cookie unless it is Secure, host-only, Path=/.
SESSION_COOKIE_NAME = "__Host-caspix_session" if _SECURE_COOKIES else "caspix_session"
CSRF_COOKIE_NAME = "__Host-caspix_csrf" if _SECURE_COOKIES else "caspix_csrf"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

SECURE_SSL_REDIRECT = env.bool("CASPIX_SSL_REDIRECT", PRODUCTION)
# Probes and scrapers talk to the web process directly, inside the network, without TLS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if env.bool("CASPIX_BEHIND_TLS_PROXY", PRODUCTION):
    # Only behind the deployment's own reverse proxy, which overwrites this header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("CASPIX_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("CASPIX_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "manifest-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
if PRODUCTION:
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["upgrade-insecure-requests"] = True
if OIDC_OP_LOGOUT_ENDPOINT:
    # Signing out is a form whose answer redirects to the provider's end-session endpoint; the
    # browser holds that redirect to the form's form-action, so the provider's origin is named.
    from urllib.parse import urlsplit as _urlsplit

    _end_session = _urlsplit(OIDC_OP_LOGOUT_ENDPOINT)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(f"{_end_session.scheme}://{_end_session.netloc}")

PERMISSIONS_POLICY: dict[str, list[str]] = {
    "accelerometer": [],
    "camera": [],
    "display-capture": [],
    "geolocation": [],
    "gyroscope": [],
    "magnetometer": [],
    "microphone": [],
    "payment": [],
    "usb": [],
    "publickey-credentials-create": ["self"],
    "publickey-credentials-get": ["self"],
}

# --- Static files: every asset is served by the app ------------------------------------------

STATIC_URL = "/static/"
# collectstatic runs only for production images; elsewhere the finders serve the source folders.
STATIC_ROOT = Path(env.str("CASPIX_STATIC_ROOT", str(BASE_DIR / "staticfiles"))) if PRODUCTION else None
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Outside production, serve straight from the source folders: no collectstatic step.
WHITENOISE_USE_FINDERS = not PRODUCTION

# --- Internationalisation --------------------------------------------------------------------

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Celery ----------------------------------------------------------------------------------

if DEMO:
    CELERY_BROKER_URL = "memory://"
else:
    CELERY_BROKER_URL = env.secret("CELERY_BROKER_URL", default=None if PRODUCTION else "redis://127.0.0.1:6379/0")
# The embedded default runs tasks in-process, inside the web request.
CELERY_TASK_ALWAYS_EAGER = DEMO
CELERY_TASK_EAGER_PROPAGATES = True
# Tasks are idempotent, so a task whose worker died is delivered again rather than lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
# Longer than any task runs; no task is scheduled with a long ETA (beat schedules instead).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A worker keeps its database connection from one task to the next, as a web process keeps it
# from one request to the next (CONN_MAX_AGE, health-checked): Celery would otherwise close it
# before and after every task, and each task would pay for a new PostgreSQL backend, several
# times the cost of sequencing a few hundred ledger events. caspix/celery.py closes a connection
# that is broken or too old around each task instead; Celery still renews it every 1,000 tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_TIMEZONE = "UTC"
# Evidence packs and regulatory exports: how long a built pack can be downloaded before its
# encrypted content is erased (the record of it stays), and the widest period one may cover.
CASPIX_EXPORT_HOURS = env.int("CASPIX_EXPORT_HOURS", 72, minimum=1, maximum=24 * 90)
CASPIX_EXPORT_MAX_DAYS = env.int("CASPIX_EXPORT_MAX_DAYS", 366, minimum=1, maximum=3660)
# A build whose worker gave no sign of life for this long is taken over by another (it died).
CASPIX_EXPORT_STALE_SECONDS = env.int("CASPIX_EXPORT_STALE_SECONDS", 120, minimum=1, maximum=3600)
CELERY_BEAT_SCHEDULE = {
    # A backstop: every recording transaction already asks for integration on commit.
    "integrate-ledger": {"task": "audit.tasks.integrate_ledger", "schedule": 5.0},
    # A backstop too: every transaction that writes the outbox asks for a relay on commit.
    "relay-outbox": {"task": "cases.tasks.relay_outbox", "schedule": 10.0},
    "purge-idempotency-records": {
        "task": "cases.tasks.purge_idempotency_records",
        "schedule": crontab(minute=17, hour=3),
    },
    # A no-op while SIEM["TARGET"] is "": sends the events after the cursor (docs/LEDGER.md).
    "forward-ledger": {"task": "audit.tasks.forward_ledger", "schedule": 10.0, "options": {"expires": 10.0}},
    "verify-ledger": {"task": "audit.tasks.verify_ledger", "schedule": crontab(minute="*/5")},
    "verify-ledger-fully": {
        "task": "audit.tasks.verify_ledger",
        "schedule": crontab(hour=2, minute=41),
        "kwargs": {"scope": "full"},
    },
    # A no-op while SEGMENTS names no target: writes each new checkpoint as a segment (docs/LEDGER.md).
    "seal-ledger-segments": {"task": "audit.tasks.seal_segments", "schedule": 60.0, "options": {"expires": 60.0}},
    # Reports due soon or overdue raise their case to critical, once (docs/STR.md).
    "escalate-report-deadlines": {
        "task": "reporting.tasks.escalate_report_deadlines",
        "schedule": crontab(minute=23),
    },
    "expire-approvals": {"task": "accounts.tasks.expire_approvals", "schedule": crontab(minute="*/5")},
    # Evidence packs and exports past their time lose their content (docs/AUDITORS.md).
    "expire-exports": {"task": "reporting.tasks.expire_exports", "schedule": crontab(minute="*/15")},
    # A backstop to the broker's redelivery: builds queued or stalled are asked for again.
    "resume-exports": {"task": "reporting.tasks.resume_exports", "schedule": 60.0, "options": {"expires": 60.0}},
    "purge-sign-in-records": {"task": "accounts.tasks.purge_sign_in_records", "schedule": crontab(hour=3, minute=29)},
    "clear-expired-sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": crontab(hour=3, minute=17),
    },
}

# --- Operations ------------------------------------------------------------------------------

# /metrics answers only to these source ranges, or to a bearer token when one is configured.
METRICS_ALLOWED_NETWORKS = env.networks("CASPIX_METRICS_ALLOWED_CIDRS", ("127.0.0.1/32", "::1/128"))
METRICS_TOKEN = env.optional_secret("CASPIX_METRICS_TOKEN")

LOG_LEVEL = env.str("CASPIX_LOG_LEVEL", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
LOGGING = build_logging(LOG_LEVEL)

# Demo data may be created only under the embedded default.
DEMO_USERS_FILE = VAR_DIR / "demo-users.json"
CSRF_FAILURE_VIEW = "caspix.errors.csrf_failure"

# --- Key service -----------------------------------------------------------------------------

# OpenBao/Vault Transit in production; a local keyring file under var/ for the embedded default.
KEY_BACKEND = env.str("CASPIX_KEY_BACKEND", "transit" if PRODUCTION else "local", choices=("local", "transit"))
if PRODUCTION and KEY_BACKEND == "local":
    raise ConfigError("CASPIX_KEY_BACKEND=local is refused when CASPIX_ENV=production: use transit")
KEYRING_FILE = Path(env.str("CASPIX_KEYRING_FILE", str(VAR_DIR / "keyring.json")))
VAULT: dict[str, Any] = {}
if KEY_BACKEND == "transit":
    VAULT = {
        "ADDR": env.str("CASPIX_VAULT_ADDR"),
        "TOKEN": env.optional_secret("CASPIX_VAULT_TOKEN"),
        "ROLE_ID": env.optional_secret("CASPIX_VAULT_ROLE_ID"),
        "SECRET_ID": env.optional_secret("CASPIX_VAULT_SECRET_ID"),
        "CACERT": env.str("CASPIX_VAULT_CACERT", "") or None,
        "NAMESPACE": env.str("CASPIX_VAULT_NAMESPACE", "") or None,
        "MOUNT": env.str("CASPIX_VAULT_TRANSIT_MOUNT", "transit"),
        "TIMEOUT": env.int("CASPIX_VAULT_TIMEOUT_SECONDS", 5, minimum=1, maximum=60),
    }
    if not (VAULT["TOKEN"] or (VAULT["ROLE_ID"] and VAULT["SECRET_ID"])):
        raise ConfigError(
            "CASPIX_VAULT_TOKEN (or CASPIX_VAULT_ROLE_ID and CASPIX_VAULT_SECRET_ID, each possibly as *_FILE) "
            "is required when CASPIX_KEY_BACKEND=transit"
        )
    if PRODUCTION and not VAULT["ADDR"].startswith("https://"):
        raise ConfigError("CASPIX_VAULT_ADDR must be an https:// URL when CASPIX_ENV=production")

# --- Audit ledger --------------------------------------------------------------------------------

LEDGER: dict[str, Any] = {
    # The checkpoint origin line: names this ledger to verifiers and witnesses (default: host/caspix).
    "ORIGIN": env.str("CASPIX_LEDGER_ORIGIN", ""),
    "CHECKPOINT_SECONDS": env.int("CASPIX_LEDGER_CHECKPOINT_SECONDS", 10, minimum=1, maximum=3600),
    "CHECKPOINT_EVENTS": env.int("CASPIX_LEDGER_CHECKPOINT_EVENTS", 1000, minimum=1, maximum=1_000_000),
    # After a recording transaction commits, sequence its events in a Celery task, or in the
    # committing process itself (the tests: deterministic, no broker in between; the demo: no
    # worker and no beat).
    "INTEGRATE": env.str(
        "CASPIX_LEDGER_INTEGRATE", "inline" if TESTING or DEMO else "task", choices=("task", "inline")
    ),
    # The web processes together ask for sequencing at most twice a window, shared through the
    # cache (audit/ledger.py _Scheduler): an event waits at most this long (plus the worker's
    # delay) for its sequence number.
    "SCHEDULE_WINDOW": 0.5,
}

# --- Alert intake API (docs/API.md) ---------------------------------------------------------------

INTAKE: dict[str, Any] = {
    "BULK_MAX": env.int("CASPIX_INTAKE_BULK_MAX", 500, minimum=1, maximum=10_000),
    "MAX_BODY_BYTES": env.int("CASPIX_INTAKE_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=4096, maximum=64 * 1024 * 1024),
    # How old a request's signature (its "created") may be; its nonce is remembered as long.
    "SIGNATURE_WINDOW": env.int("CASPIX_INTAKE_SIGNATURE_WINDOW_SECONDS", 300, minimum=30, maximum=3600),
    "IDEMPOTENCY_HOURS": env.int("CASPIX_INTAKE_IDEMPOTENCY_HOURS", 72, minimum=1, maximum=24 * 30),
    # A new case is due this many hours after it opens, by priority.
    "SLA_HOURS": {
        "critical": env.int("CASPIX_SLA_CRITICAL_HOURS", 4, minimum=1, maximum=24 * 90),
        "high": env.int("CASPIX_SLA_HIGH_HOURS", 24, minimum=1, maximum=24 * 90),
        "medium": env.int("CASPIX_SLA_MEDIUM_HOURS", 72, minimum=1, maximum=24 * 90),
        "low": env.int("CASPIX_SLA_LOW_HOURS", 168, minimum=1, maximum=24 * 90),
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = INTAKE["MAX_BODY_BYTES"]

# --- The analysts' workspace (docs/WORKFLOW.md) -------------------------------------------------

CASES: dict[str, Any] = {
    # Closing a case whose transactions reach this amount, in any currency, needs a second
    # person's approval (as closing it as confirmed fraud always does). A currency not listed
    # has no threshold to compare with: its cases always need the approval.
    "CLOSURE_APPROVAL_AT": env.amounts("CASPIX_CLOSURE_APPROVAL_AT", "EUR 10000, USD 10000, GBP 10000, CHF 10000"),
    # How long a proposed closure or reopening waits for its approval.
    "APPROVAL_HOURS": env.int("CASPIX_CASE_APPROVAL_HOURS", 72, minimum=1, maximum=24 * 30),
    # Evidence files: largest size, in bytes.
    "EVIDENCE_MAX_BYTES": env.int(
        "CASPIX_EVIDENCE_MAX_BYTES", 20 * 1024 * 1024, minimum=1024, maximum=100 * 1024 * 1024
    ),
}
# After a transaction writes the outbox, relay it in a Celery task, or in the committing process
# (the tests: deterministic, no broker in between).
OUTBOX_RELAY = env.str("CASPIX_OUTBOX_RELAY", "inline" if TESTING else "task", choices=("task", "inline"))

# --- Oversight: access reviews (docs/ACCESS.md) ----------------------------------------------------

# An active account with no sign-in for this many days (counted from its creation when it never
# signed in) is dormant in an access review.
CASPIX_ACCESS_REVIEW_DORMANT_DAYS = env.int("CASPIX_ACCESS_REVIEW_DORMANT_DAYS", 90, minimum=1, maximum=3650)

REST_FRAMEWORK: dict[str, Any] = {
    # Each API view names its own authentication and permission; the defaults let nobody in.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["caspix.strictjson.StrictJSONParser"],
    "EXCEPTION_HANDLER": "caspix.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Caspix alert intake API",
    "DESCRIPTION": "Signed (RFC 9421, hmac-sha256), idempotent alert intake. See docs/API.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served by the app: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Shared across processes: the intake API's spent nonces and rate counters. Redis outside the
# embedded default: CASPIX_REDIS_URL, or else the Celery broker when it is Redis (the tests use
# a database of their own on the local server, keys prefixed by the test database's name).
if DEMO:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    _broker_redis = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else None
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.secret(
                "CASPIX_REDIS_URL", default=_broker_redis if PRODUCTION else "redis://127.0.0.1:6379/12"
            ),
            "KEY_PREFIX": str(DATABASES["default"].get("NAME", "")) if TESTING else "caspix",
        }
    }

# --- E-mail (security alerts) -------------------------------------------------------------------

if DEMO:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
EMAIL_HOST = env.str("CASPIX_EMAIL_HOST", "localhost")
EMAIL_PORT = env.int("CASPIX_EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = env.str("CASPIX_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env.optional_secret("CASPIX_EMAIL_PASSWORD") or ""
EMAIL_USE_TLS = env.bool("CASPIX_EMAIL_STARTTLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("CASPIX_EMAIL_FROM", "caspix@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Ledger copies: SIEM forwarding and sealed segments (docs/LEDGER.md) -------------------------

SIEM: dict[str, Any] = {
    # "" (off), "file:///var/log/caspix/ledger.jsonl", or "syslog+tls://siem.bank.example:6514"
    "TARGET": env.str("CASPIX_SIEM_TARGET", ""),
    "CACERT": env.str("CASPIX_SIEM_CACERT", "") or None,  # CA of the syslog receiver's certificate
    "CLIENT_CERT": env.str("CASPIX_SIEM_CLIENT_CERT", "") or None,  # for mutual TLS, with its key:
    "CLIENT_KEY": env.str("CASPIX_SIEM_CLIENT_KEY", "") or None,
    "TIMEOUT": env.int("CASPIX_SIEM_TIMEOUT_SECONDS", 10, minimum=1, maximum=120),
    "BATCH": env.int("CASPIX_SIEM_BATCH", 500, minimum=1, maximum=10_000),
}
SEGMENTS: dict[str, Any] = {
    # Each checkpoint, with its events and proofs, written once to every target configured.
    "DIRECTORY": env.str("CASPIX_SEGMENT_DIR", ""),
    "S3_BUCKET": env.str("CASPIX_SEGMENT_S3_BUCKET", ""),
    "S3_PREFIX": env.str("CASPIX_SEGMENT_S3_PREFIX", "caspix-ledger/"),
    "S3_ENDPOINT": env.str("CASPIX_SEGMENT_S3_ENDPOINT", "") or None,
    "S3_REGION": env.str("CASPIX_SEGMENT_S3_REGION", "eu-west-1"),
    "S3_ACCESS_KEY_ID": env.optional_secret("CASPIX_SEGMENT_S3_ACCESS_KEY_ID"),
    "S3_SECRET_ACCESS_KEY": env.optional_secret("CASPIX_SEGMENT_S3_SECRET_ACCESS_KEY"),
    # Object Lock in compliance mode: nobody, root included, can delete before this many days.
    "S3_RETENTION_DAYS": env.int("CASPIX_SEGMENT_S3_RETENTION_DAYS", 2557, minimum=1, maximum=36_500),
}
