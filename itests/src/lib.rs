//! Integration tests live in `tests/`; they need the services from `scripts/services.sh up`.
