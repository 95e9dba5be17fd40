"""Authentication (bearer tokens) and authorization (Casbin), the one door of the API."""
